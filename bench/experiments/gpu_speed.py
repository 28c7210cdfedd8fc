"""The speed measurements of ``python -m colorbench.experiments.gpu_check`` (steps ``throughput`` and
``metric_speed``), run in a process of their own so that the step's time budget can stop them: every finished
measurement is appended to a JSON-lines file at once, so a stop loses only the measurement under way.

    python -m colorbench.experiments.gpu_speed throughput --out throughput.jsonl [--dry-run]
    python -m colorbench.experiments.gpu_speed metrics --out metrics.jsonl [--dry-run]

``throughput``: :func:`colorbench.experiments.throughput.measure` (the trainer's own ChromaGAN step and ``run``'s
inference step, FLOPs, peak memory, MFU) for every configuration of :func:`throughput_plan`, in its order.

``metrics``: the default metric suite (every available per-image metric and the set-level feature extraction,
:func:`colorbench.experiments.metric_speed.time_suite`) on :class:`PhotoInputs` at each size of
:func:`metric_plan`, with the suite's peak memory and its counted FLOPs (the networks' matmuls and convolutions:
EfficientNet-lite0, LPIPS where available; the elementwise kernels of SSIM, CIEDE2000 and the rest count none).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorbench.core import console
from colorbench.core.device import synchronize
from colorbench.data.segments import slic_label_map
from colorbench.experiments.metric_speed import default_suite, extract, photo_arrays, random_damage, time_suite
from colorbench.experiments.throughput import counted_flops, measure, peak_memory, peak_tflops, reset_peak_memory
from colorbench.metrics.registry import DISTRIBUTION_METRICS, compute

#: (model, batch) in the order they are measured: ChromaGAN at a batch that fills the GPU, at ChromaGAN's own 10,
#: and the paper's Model A at its batch of 256 (paper Sec. 4.2.1).
THROUGHPUT_SHAPES = (("chromagan", 64), ("chromagan", 10), ("model-a", 256))
#: The run's own settings on CUDA; every other configuration is this with some of them switched off or on.
DEFAULT_SETTINGS = {"bf16": True, "channels_last": True, "compile_generator": False}


def throughput_plan(dry_run: bool) -> list[dict[str, object]]:
    """Every (model, batch) of :data:`THROUGHPUT_SHAPES` with bf16, channels_last and compile on and off, ranked by
    how many settings differ from :data:`DEFAULT_SETTINGS` (so the budget's end cuts the least telling ones),
    then by shape, eager before compiled. Dry run: ChromaGAN at width 1/16, 32x32, batch 2, one timed step, eager
    (compiling costs tens of seconds of CPU) with bf16 on (a no-op on the CPU), channels_last on and off."""
    shapes = (("chromagan", 2),) if dry_run else THROUGHPUT_SHAPES
    sizes = {"size": 32, "width": 0.0625, "steps": 1, "warmup": 1} if dry_run else {
        "size": 224, "width": 1.0, "steps": 10, "warmup": 3}
    plan = []
    for (shape, (model, batch)), bf16, channels_last, compiled in itertools.product(
            enumerate(shapes), (True, False), (True, False), (False, True)):
        settings = {"bf16": bf16, "channels_last": channels_last, "compile_generator": compiled}
        if dry_run and (compiled or not bf16):
            continue
        rank = sum(settings[k] != v for k, v in DEFAULT_SETTINGS.items())
        plan.append(((rank, shape, compiled), {"model": model, "batch_size": batch, **sizes, **settings}))
    return [config for _, config in sorted(plan, key=lambda item: item[0])]


def config_label(config: dict[str, object]) -> str:
    flags = [f"bf16 {'on' if config['bf16'] else 'off'}", f"channels_last {'on' if config['channels_last'] else 'off'}",
             "compiled" if config["compile_generator"] else "eager"]
    return f"{config['model']} b{config['batch_size']} {config['size']}px, {', '.join(flags)}"


def measure_throughput(config: dict[str, Any], device: torch.device) -> dict[str, object]:
    torch._dynamo.reset()  # a fresh compile cache per configuration: no recompile limit reached across them
    return measure(str(config["model"]), device, batch_size=int(config["batch_size"]), steps=int(config["steps"]),
                   warmup=int(config["warmup"]), size=int(config["size"]), width=float(config["width"]),
                   bf16=bool(config["bf16"]), compile_generator=bool(config["compile_generator"]),
                   channels_last=bool(config["channels_last"]))


def throughput_row(config: dict[str, object], result: dict[str, Any]) -> dict[str, object]:
    """The figures of one configuration that gpu_check's table shows (bf16: asked for; bf16_autocast: applied)."""
    training, inference = result["training"], result["inference"]
    return {"model": result["model"], "batch_size": result["batch_size"], "size": result["size"],
            "bf16": config["bf16"], "bf16_autocast": result["bf16_autocast"], "channels_last": result["channels_last"],
            "compiled": result["compiled_generator"], "training_images_per_s": training["images_per_s"],
            "inference_images_per_s": inference["images_per_s"], "training_tflops": training["achieved_tflops"],
            "inference_tflops": inference["achieved_tflops"], "training_mfu_datasheet": training["mfu"],
            "inference_mfu_datasheet": inference["mfu"], "training_peak_gib": training["peak_memory_bytes"] / 2**30,
            "inference_peak_gib": inference["peak_memory_bytes"] / 2**30, "finite_losses": result["finite_losses"]}


class PhotoInputs:
    """The suite's inputs without COCO (the GPU machine has no coco-mini): scikit-image's photos at ``size``
    (:func:`colorbench.experiments.metric_speed.photo_arrays`), each with its SLIC superpixels (the segments a run
    on such a source scores with), cycled, with the suite's random ab damage per batch (``random_damage``)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.seed = seed
        self.photos = [torch.from_numpy(a).permute(2, 0, 1) for a in photo_arrays(None, 6, size)]
        self.segments = [torch.from_numpy(slic_label_map(p)) for p in self.photos]

    def batch(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        picks = [(start + i) % len(self.photos) for i in range(count)]
        gt = torch.stack([self.photos[i] for i in picks]).double() / 255
        return random_damage(gt, self.seed, start).float(), gt.float(), torch.stack([self.segments[i] for i in picks])


def metric_plan(dry_run: bool) -> list[dict[str, int]]:
    """(size, images, batch) of the suite timings: 224 (the working size) and 512 (COCO's long side is 640); the
    dry run: two images at 32."""
    if dry_run:
        return [{"size": 32, "images": 2, "batch_size": 2}]
    return [{"size": 224, "images": 1024, "batch_size": 256}, {"size": 512, "images": 256, "batch_size": 64}]


def measure_suite(config: dict[str, int], device: torch.device) -> dict[str, object]:
    """Images/s of the default suite at one size, timed as a run scores (cold: the first batch pays for any
    compilation and is also reported apart): per-image metrics alone, with the set-level features, and in steady
    state (first batch left out); peak memory; FLOPs of one batch counted afterwards, and MFU against the fp32
    peak (the networks' CUDA convolutions run in TF32, so this MFU is an upper bound of the share used)."""
    names, sets, unavailable = default_suite()
    inputs = PhotoInputs(config["size"])
    reset_peak_memory(device)
    extractors = {n: DISTRIBUTION_METRICS[n].extractor().to(device) for n in sets}
    times = time_suite(inputs.batch, config["images"], config["batch_size"], device, names, extractors)
    synchronize(device)
    memory = peak_memory(device)
    pred, gt, segments = (t.to(device) for t in inputs.batch(0, config["batch_size"]))

    def one_batch() -> None:
        compute(names, pred, gt, segments=segments)
        for extractor in extractors.values():
            extract(extractor, pred, gt)

    flops_per_batch = counted_flops(one_batch)
    per_image_s = sum(times.seconds[n] for n in names)
    steady_s = per_image_s - sum(times.first_batch[n] for n in names)
    achieved = flops_per_batch * config["images"] / config["batch_size"] / times.metric_total_s / 1e12
    peak = peak_tflops(device, bf16=False)
    return {**config, "metrics": names, "set_level": sets, "unavailable": unavailable,
            "per_image_images_per_s": config["images"] / per_image_s,
            "steady_per_image_images_per_s": (config["images"] - times.first_batch_images) / steady_s
            if steady_s > 0 else None,
            "with_set_level_images_per_s": config["images"] / times.metric_total_s,
            "seconds": times.seconds, "first_batch_seconds": times.first_batch, "nan_counts": times.nan_counts,
            "set_level_values": times.set_level_values, "generation_s": times.generation_s,
            "flops_per_batch": flops_per_batch, "achieved_tflops": achieved, "peak_tflops_fp32": peak,
            "mfu": achieved / peak if peak else None, **memory}


def suite_row(config: dict[str, int], result: dict[str, Any]) -> dict[str, object]:
    keys = ("per_image_images_per_s", "steady_per_image_images_per_s", "with_set_level_images_per_s", "mfu")
    return {**config, **{k: result[k] for k in keys}, "peak_gib": result["peak_memory_bytes"] / 2**30}


Measure = Callable[[dict, torch.device], dict[str, Any]]
MEASURES: dict[str, tuple[Callable[[bool], list[dict]], Measure, Callable[[dict, dict], dict[str, object]]]] = {
    "throughput": (throughput_plan, measure_throughput, throughput_row),
    "metrics": (metric_plan, measure_suite, suite_row)}


def run_plan(what: str, dry_run: bool, device: torch.device, out: Path) -> int:
    """Measure each configuration of the plan in order, appending to ``out`` first the plan, then one JSON line
    per configuration (its figures and table row, or its error); returns how many failed."""
    make_plan, measure_one, row_of = MEASURES[what]
    plan = make_plan(dry_run)
    out.write_text(json.dumps({"plan": plan}) + "\n")
    failed = 0
    for config in plan:
        began = time.perf_counter()
        try:
            result = measure_one(config, device)
            line: dict[str, object] = {"config": config, "result": result, "row": row_of(config, result)}
        except Exception as exc:  # one configuration's failure (out of memory, a compiler error) must not stop the rest
            failed += 1
            line = {"config": config, "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=8)}
        line["seconds"] = time.perf_counter() - began
        with out.open("a") as handle:
            handle.write(json.dumps(line, default=str) + "\n")
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.experiments.gpu_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=list(MEASURES))
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file the measurements are appended to")
    parser.add_argument("--dry-run", action="store_true", help="the CPU at tiny sizes")
    args = parser.parse_args(argv)
    console.configure(quiet=True)
    if not args.dry_run and not torch.cuda.is_available():
        print("error: torch sees no CUDA GPU (--dry-run measures on the CPU)", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    np.seterr(divide="ignore")
    return min(1, run_plan(args.what, args.dry_run, device, args.out))


if __name__ == "__main__":
    sys.exit(main())
