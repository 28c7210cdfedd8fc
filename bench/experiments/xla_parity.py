"""The XLA path against the CPU path (issue 15), on torch-xla's CPU runtime (or a TPU VM):

    PJRT_DEVICE=CPU python -m colorbench.experiments.xla_parity [--models NAMES] [--epochs 2] [--json F]

Each model is measured in a process of its own (:func:`measure_each`): with all eleven trained models in one process,
XLA's CPU compiler ran out of memory mappings after the sixth model's step ("LLVM compilation error: Cannot
allocate memory" at ``vm.max_map_count`` 65530; the process aborted), since a process keeps every executable it
compiled. The JSON maps each model to its figures.

1. **Parity**: every model with ``training="train"`` (or ``--models``) runs ``bench run`` on the built-in sample
   (``smoke`` profile, ``--epochs`` epochs, 64x64, metrics mse/psnr/ssim, batches of 3 so the last prediction and
   scoring batch is short, bf16 off, no study) on the CPU and on XLA. Reported: the largest per-image record
   difference per metric, and per model the distance between the two trained weight sets relative to the
   training's own update, ||w_xla - w_cpu|| / ||w_cpu - w_init|| over the tensors training changed.
2. **Fixed shapes**: a warm XLA run in the same process (one epoch more, 2 evaluation images instead of 4, with
   their captions in a sidecar): the graphs it compiles (0 when every shape recurs).
3. **Step**: each model's training step driven as the trainer drives it (``colorbench.training.loop.prepare_state``):
   compiles, device-to-host copies and CPU fallbacks after each step (colorbench.core.device.xla_counters).

Wall times are those of this process; on a shared machine they say little about a TPU. ``--docs
docs/performance.md`` writes one row per model into that page's ``colorbench:xla_parity`` block.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from colorbench.cli.main import main as bench_main
from colorbench.core import console
from colorbench.core.device import XlaCounters, resolve_device, step_done, xla_counters
from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess, iterate_batches, make_loader
from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest
from colorbench.experiments import perfdoc
from colorbench.io.checkpoints import load_state
from colorbench.io.layout import RunLayout
from colorbench.io.schema import write_json
from colorbench.models.registry import model_specs
from colorbench.models.trainable import TrainableModel, TrainingData
from colorbench.training.loop import prepare_state

logger = logging.getLogger(__name__)

PROG = "python -m colorbench.experiments.xla_parity"
RECORD_METRICS = ("mse", "psnr", "ssim")
#: Training steps driven before the per-step counters must stay flat (the first builds Adam's state).
WARMUP_STEPS = 2
RUN_ARGS = ("run", "--profile", "smoke", "--size", "64", "--metrics", ",".join(RECORD_METRICS), "--batch-size", "3",
            "--no-study", "--no-progress", "--no-bf16", "--seed", "0")


def trained_models() -> list[str]:
    """Every registered model that the trainer trains (registry ``training="train"``)."""
    return sorted(name for name, spec in model_specs().items() if spec.training == "train")


def run_bench(args: list[str]) -> float:
    """``bench run ARGS`` in this process; its wall seconds (a non-zero exit status raises)."""
    began = time.perf_counter()
    code = bench_main(args)
    if code:
        raise BenchError(f"bench {' '.join(args)} exited with {code}")
    return time.perf_counter() - began


def read_records(run: Path) -> list[dict[str, str]]:
    with RunLayout(run).per_image.open(newline="") as handle:
        return list(csv.DictReader(handle))


def record_gaps(cpu: Path, xla: Path) -> dict[str, float]:
    """The largest absolute difference per metric between the per-image records of two runs of the same images
    and models (which must list the same (model, image) rows)."""
    a, b = read_records(cpu), read_records(xla)
    if [(r["model"], r["image_id"]) for r in a] != [(r["model"], r["image_id"]) for r in b]:
        raise BenchError(f"{cpu} and {xla} scored different (model, image) rows")
    return {m: max(abs(float(x[m]) - float(y[m])) for x, y in zip(a, b, strict=True)) for m in RECORD_METRICS}


def weight_gap(name: str, epochs: int, cpu: Path, xla: Path) -> dict[str, float]:
    """||w_xla - w_cpu|| and the training's update ||w_cpu - w_init|| over the floating tensors training changed
    (w_init: the registry build at the same seed), and their ratio."""
    initial = model_specs()[name].build(profile="smoke", seed=0, epochs=epochs).state_dict()
    trained = {d: load_state(RunLayout(run).checkpoint(name)) for d, run in (("cpu", cpu), ("xla", xla))}
    changed = [k for k, v in initial.items() if v.is_floating_point() and not torch.equal(v, trained["cpu"][k])]
    if not changed:
        raise BenchError(f"{name}: training changed no weight")
    moved = float(torch.stack([(trained["cpu"][k] - initial[k]).double().norm() for k in changed]).norm())
    apart = float(torch.stack([(trained["xla"][k] - trained["cpu"][k]).double().norm() for k in changed]).norm())
    return {"apart": apart, "moved": moved, "ratio": apart / moved}


def step_counts(name: str, steps: int, cache_dir: Path) -> list[XlaCounters]:
    """Drive ``name``'s training step ``steps`` times on XLA as the trainer does (one full batch of the sample's
    training images, bf16 off); the counters after each step."""
    device = resolve_device("xla")
    model = model_specs()[name].build(profile="smoke", seed=0, epochs=1)
    if not isinstance(model, TrainableModel):
        raise BenchError(f"model {name} is not trained by colorbench.training")
    entries = build_manifest(open_source("sample:train"), "full", progress=False).usable
    model.prepare_training(TrainingData(entries, "sample:train", "resize", cache_dir, device, progress=False))
    _, step = prepare_state(model, device, bf16=False)
    settings = model.loop_settings()
    loader = make_loader(entries, Preprocess(settings.image_size), batch_size=min(settings.batch_size, len(entries)),
                         drop_last=True)
    batch = next(iter(iterate_batches(loader, device)))
    counts = []
    for _ in range(steps):
        model.training_step(batch, step)
        step_done(device)
        counts.append(xla_counters())
    return counts


def measure(out: Path, models: list[str], epochs: int, steps: int = 5) -> dict[str, object]:
    """Parity, warm-run compiles and per-step counters (see the module's docstring), with the run folders. ``out``
    must be new or empty: runs in it must train and compile afresh."""
    if out.exists() and any(out.iterdir()):
        raise BenchError(f"{out} is not empty; give xla_parity a new --out folder")
    torch.zeros(1, device=resolve_device("xla")).cpu()  # the runtime starts before any backward (autograd's queues)
    base = [*RUN_ARGS, "--models", ",".join(models), "--epochs", str(epochs)]
    runs = {d: out / d for d in ("cpu", "xla", "warm")}
    seconds = {d: run_bench([*base, "--device", d, "--out", str(runs[d])]) for d in ("xla", "cpu")}
    cold = xla_counters()  # after both cold runs (the CPU run compiles nothing on XLA)
    evaluation = out / "warm-eval"
    evaluation.mkdir(parents=True, exist_ok=True)
    with RunLayout(runs["xla"]).manifest.open(newline="") as handle:
        usable = [(r["image_id"], r["caption"]) for r in csv.DictReader(handle) if r["status"] == "ok"][:2]
    for image_id, _ in usable:
        shutil.copy(RunLayout(runs["xla"]).ground_truth(image_id), evaluation)
    write_json(evaluation / "captions.json", dict(usable))  # the caption models predict these images too
    warm_args = [*RUN_ARGS, "--models", ",".join(models), "--epochs", str(epochs + 1), "--device", "xla",
                 "--train", "sample:train", "--eval", f"folder:{evaluation}", "--out", str(runs["warm"])]
    seconds["warm"] = run_bench(warm_args)
    warm = xla_counters() - cold
    steps_by_model = {name: [vars(c) for c in step_counts(name, steps, out / "steps" / name)] for name in models}
    return {
        "runs": {d: str(p) for d, p in runs.items()}, "seconds": seconds, "epochs": epochs,
        "compiles": {"cold_run": cold.compiles, "warm_run": warm.compiles},
        "host_transfers": {"cold_run": cold.host_transfers, "warm_run": warm.host_transfers},
        "record_gaps": record_gaps(runs["cpu"], runs["xla"]),
        "weight_gaps": {name: weight_gap(name, epochs, runs["cpu"], runs["xla"]) for name in models},
        "steps": steps_by_model,
    }


def measure_each(out: Path, models: list[str], epochs: int, steps: int) -> dict[str, dict[str, object]]:
    """:func:`measure` for each model in a fresh process (``--one``), its run folders under ``out/NAME``; a process
    that fails raises BenchError with the end of its stderr."""
    figures = {}
    for name in models:
        folder = out / name
        command = [sys.executable, "-m", __spec__.name, "--one", name, "--epochs", str(epochs), "--steps", str(steps),
                   "--out", str(folder), "--json", str(out / f"{name}.json")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"xla parity of {name} exited with {done.returncode}: {done.stderr[-3000:]}")
        figures[name] = json.loads((out / f"{name}.json").read_text())
        logger.info("%s: record gaps %s; weight gap / update %.5f; warm-run compiles %s; seconds %s", name,
                    figures[name]["record_gaps"], figures[name]["weight_gaps"][name]["ratio"],
                    figures[name]["compiles"], figures[name]["seconds"])
    return figures


def after_warmup(steps: list[dict[str, int]]) -> list[int | None]:
    """Compiles, host transfers and CPU fallbacks of the steps after :data:`WARMUP_STEPS` (counters are running
    totals); None when no step was driven past the warm-up."""
    if len(steps) <= WARMUP_STEPS:
        return [None, None, None]
    first, last = steps[WARMUP_STEPS - 1], steps[-1]
    return [last[k] - first[k] for k in ("compiles", "host_transfers", "cpu_fallbacks")]


def document(path: Path, figures: dict[str, dict[str, Any]], command: str, loads: list[float]) -> None:
    """One row per model (record and weight gaps, compiles, what later training steps add) as the ``xla_parity``
    block of ``path``."""
    rows = [[name, *(f["record_gaps"][m] for m in RECORD_METRICS), f["weight_gaps"][name]["ratio"],
             f["compiles"]["cold_run"], f["compiles"]["warm_run"], *after_warmup(f["steps"]), f["seconds"]["cpu"],
             f["seconds"]["xla"]] for name, f in figures.items()]
    columns = [*(f"max abs diff {m}" for m in RECORD_METRICS), "weight gap / update", "compiles cold run",
               "compiles warm run", "step compiles", "step host copies", "step CPU fallbacks", "CPU run s",
               "XLA run s"]
    perfdoc.update(path, "xla_parity", columns=["model", *columns], rows=rows, command=command, loads=loads,
                   device=f"PJRT_DEVICE={os.environ.get('PJRT_DEVICE', 'unset')}",
                   notes=[f"bf16 off, `smoke` profile; step columns: what training steps after the first "
                          f"{WARMUP_STEPS} add."])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: every trained model)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # measure_each's worker: this model, in this process
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="training steps driven per model (default 5)")
    parser.add_argument("--out", type=Path, default=Path("results/xla-parity"))
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    perfdoc.add_docs_option(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    console.configure()
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    if args.one:
        result: dict[str, Any] = measure(args.out, [args.one], args.epochs, args.steps)
        by_model = {args.one: result}
    else:
        models = args.models.split(",") if args.models else trained_models()
        result = by_model = measure_each(args.out, models, args.epochs, args.steps)
    if args.json:
        write_json(args.json, result)
    if args.docs:
        document(args.docs, by_model, perfdoc.command_line(PROG, argv), [load_before, os.getloadavg()[0]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
