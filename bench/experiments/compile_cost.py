"""What compiling a metric kernel costs and saves: the figures behind :class:`colorbench.metrics.kernels.KernelCost`.

    python -m colorbench.experiments.compile_cost --json compile_cost.json

For each compiled kernel (SSIM means, CIEDE2000, AuC, segment chroma, EfficientNet-lite0 features) two fresh
processes share one new, empty compile cache: the first measures the cold compilation, the second the warm one
(dynamo tracing again, Inductor's artifacts read from the cache). Each process times, on 224x224 inputs: the
eager kernel (image by image, median of --repeats), the first compiled call on one image (compilation + one
run; the compile cost is that minus one compiled run), and the compiled kernel afterwards. The break-even is
compile cost / (eager - compiled seconds per megapixel). Costs are CPU seconds of the process (compilation
kept in-process, TORCHINDUCTOR_COMPILE_THREADS=1), which a shared machine inflates far less than wall time;
wall times and the load average are recorded beside them. Both paths run with ``--threads`` intra-op threads
(default 1): on an oversubscribed machine a second OpenMP thread spins while it waits for a core, which inflates
the CPU time of eager kernels many times over (the figure is in docs/performance.md).

The kernels' :class:`~colorbench.metrics.kernels.KernelCost` constants in ``metrics/*.py`` are copied from this
script's output by hand; ``--docs docs/performance.md`` writes the table into that page's ``colorbench:compile_cost``
block, next to the figures the constants hold now.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from colorbench.experiments import perfdoc
from colorbench.metrics.kernels import Kernel, KernelCost

SIZE = 224
PROG = "python -m colorbench.experiments.compile_cost"


def _inputs(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(count, 3, SIZE, SIZE, generator=generator)
    return (target + 0.1 * torch.randn(target.shape, generator=generator)).clamp(0, 1), target


def _cases() -> dict[str, Callable[[int], tuple[Kernel, tuple[torch.Tensor, ...], dict[str, object]]]]:
    """Kernel name -> builder of (kernel, tensors, constants) for ``count`` images, as the metrics call them."""
    from colorbench.metrics import auc, ciede2000, distribution, segments, ssim

    def ssim_case(count: int):
        return ssim.ssim_means, _inputs(count), {"taps": ssim.gaussian_taps(1.5, 3.5), "c1": 0.01**2, "c2": 0.03**2}

    def effnet_case(count: int):
        return distribution.EffNetLite0Features().pooled_features, _inputs(count)[:1], {}

    return {
        "ssim_means": ssim_case,
        "ciede2000": lambda count: (ciede2000._mean_ciede2000, _inputs(count), {"kL": 1.0, "kC": 1.0, "kH": 1.0}),
        "auc_ab": lambda count: (auc._auc, _inputs(count), {"max_threshold": 150, "downsample": 1}),
        "chroma_maps": lambda count: (segments.chroma_maps, _inputs(count), {}),
        "effnet_lite0_features": effnet_case,
    }


def _seconds(call: Callable[[], object], repeats: int = 1) -> tuple[float, float]:
    """Median CPU seconds (all threads of this process) and wall seconds of ``call``."""
    cpu, wall = [], []
    for _ in range(repeats):
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        call()
        cpu.append(time.process_time() - began_cpu)
        wall.append(time.perf_counter() - began_wall)
    return statistics.median(cpu), statistics.median(wall)


def measure_in_process(name: str, *, images: int, repeats: int) -> dict[str, float]:
    """Eager and compiled seconds per megapixel and the compile cost of one kernel, in this process, as CPU
    seconds (``*_s``, what the policy uses: on a shared machine wall time measures the other users too) and
    wall seconds (``*_wall_s``)."""
    kernel, tensors, constants = _cases()[name](images)
    one = tuple(t[:1] for t in tensors)
    mpx = images * SIZE * SIZE / 1e6
    eager = _seconds(lambda: kernel._apply(False, tensors, constants), repeats)
    first_call = _seconds(lambda: kernel._apply(True, one, constants))
    compiled_one = _seconds(lambda: kernel._apply(True, one, constants), repeats)
    compiled = _seconds(lambda: kernel._apply(True, tensors, constants), repeats)
    return {"eager_s_per_mpx": eager[0] / mpx, "compiled_s_per_mpx": compiled[0] / mpx,
            "compile_s": max(first_call[0] - compiled_one[0], 0.0),
            "eager_wall_s_per_mpx": eager[1] / mpx, "compiled_wall_s_per_mpx": compiled[1] / mpx,
            "compile_wall_s": max(first_call[1] - compiled_one[1], 0.0)}


def measure(name: str, *, images: int, repeats: int, threads: int) -> dict[str, Any]:
    """Cold then warm, each in a fresh process sharing a new compile cache (their JSON, as read)."""
    with tempfile.TemporaryDirectory(prefix="colorbench-compile-cost-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "COLORBENCH_COMPILE": "always",
               "TORCHINDUCTOR_COMPILE_THREADS": "1"}  # compile in this process, so that its CPU time counts
        runs = []
        for _ in ("cold", "warm"):
            command = [sys.executable, "-m", "colorbench.experiments.compile_cost", "--one", name,
                       "--images", str(images), "--repeats", str(repeats), "--threads", str(threads)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cost = KernelCost(eager_s_per_mpx=runs[0]["eager_s_per_mpx"], compiled_s_per_mpx=runs[1]["compiled_s_per_mpx"],
                      cold_compile_s=runs[0]["compile_s"], warm_compile_s=runs[1]["compile_s"])
    return {"kernel": name, "cold": runs[0], "warm": runs[1], "cost": vars(cost),
            "break_even_mpx_cold": cost.break_even_mpx(warm=False),
            "break_even_mpx_warm": cost.break_even_mpx(warm=True)}


def document(path: Path, results: dict[str, Any], command: str) -> None:
    """The ``compile_cost`` block of ``path``: per kernel the KernelCost figures and the break-even, in megapixels
    and in 224x224 images."""
    image_mpx = SIZE * SIZE / 1e6
    rows = [[k["kernel"], k["cost"]["eager_s_per_mpx"], k["cost"]["compiled_s_per_mpx"], k["cost"]["cold_compile_s"],
             k["cost"]["warm_compile_s"], k["break_even_mpx_cold"], k["break_even_mpx_warm"],
             k["break_even_mpx_cold"] / image_mpx, k["break_even_mpx_warm"] / image_mpx] for k in results["kernels"]]
    machine = results["machine"]
    perfdoc.update(path, "compile_cost", rows=rows, command=command,
                   columns=["kernel", "eager s/Mpx", "compiled s/Mpx", "cold compile s", "warm compile s",
                            "break-even cold Mpx", "break-even warm Mpx", f"cold, {SIZE}px images",
                            f"warm, {SIZE}px images"],
                   loads=perfdoc.first_minute([machine["load_average_at_start"], machine["load_average_at_end"]]),
                   notes=[f"CPU seconds of the process, {results['threads']} intra-op thread(s), {results['images']} "
                          f"images of {SIZE}x{SIZE} per timed call, median of {results['repeats']}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", default=",".join(_cases()), help="comma-separated kernel names")
    parser.add_argument("--images", type=int, default=16, help="images per timed call (224x224)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: on a shared CPU, "
                        "threads spinning while others wait for a core inflate CPU time many times over)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: measure one kernel here, print JSON
    parser.add_argument("--json", type=Path, help="write the results to this file")
    perfdoc.add_docs_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure_in_process(args.one, images=args.images, repeats=args.repeats)))
        return 0
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "load_average_at_start": os.getloadavg()},
        "size": SIZE, "images": args.images, "repeats": args.repeats, "threads": args.threads, "kernels": []}
    for name in args.kernels.split(","):
        result = measure(name, images=args.images, repeats=args.repeats, threads=args.threads)
        results["kernels"].append(result)
        print(f"{name}: eager {result['cold']['eager_s_per_mpx']:.3g} s/Mpx, compiled "
              f"{result['warm']['compiled_s_per_mpx']:.3g} s/Mpx, compile {result['cold']['compile_s']:.3g} s cold / "
              f"{result['warm']['compile_s']:.3g} s warm, break-even {result['break_even_mpx_cold']:.3g} / "
              f"{result['break_even_mpx_warm']:.3g} Mpx", flush=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    if args.json:
        from colorbench.io.schema import write_json

        write_json(args.json, results)
    if args.docs:
        document(args.docs, results, perfdoc.command_line(PROG, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
