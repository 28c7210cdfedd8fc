"""Training and inference throughput of a ChromaGAN-family model: images/s, peak memory and model FLOPs
utilisation (MFU), beside the paper's anchors.

    python -m bench throughput --model chromagan --device auto --batch-size 10          # 224x224, width 1.0
    python -m bench throughput --model chromagan --batch-size 4 --steps 3 --warmup 1    # a quick CPU figure
    python -m bench throughput --model chromagan --device cuda --compile --json chromagan-cuda.json

What one training step is: the trainer's own step (:meth:`colorbench.models.chromagan.ChromaGAN.training_step` in
:func:`colorbench.training.loop.prepare_state`'s context): generator forward and
backward (MSE + KL + adversarial term), Adam update, critic forward on real, fake and interpolated ab, gradient
penalty (double backward), Adam update. One inference step is what ``run`` does per batch:
:meth:`colorbench.models.chromagan.ChromaGAN.colorize` (generator forward, ab upsampled, Lab -> sRGB) under ``no_grad``.
The data are synthetic tensors already on the device, so the figures are the model's compute ceiling: no JPEG
decoding or resizing (the paper's TPU sat idle 73% of the time waiting for input; ``bench data prepare`` is
colorbench's answer on the input side). The class teacher is not run per step: colorbench computes its targets
once per image before training, whereas the original ChromaGAN ran VGG-16 on every batch.

Timing: ``--warmup`` untimed steps (they also absorb compilation), then ``--steps`` timed steps between two
device synchronisations (:func:`colorbench.core.device.synchronize`). FLOPs are counted once per step kind with
:class:`torch.utils.flop_counter.FlopCounterMode` on the eager modules (matmuls and convolutions, forward and
backward, the gradient penalty's double backward included; elementwise work is not counted, as is usual for
MFU). MFU = counted FLOPs per step x steps / seconds / the device's peak (:data:`PEAK_TFLOPS`, dense, no
sparsity, for the dtype the step runs in); on the CPU no peak is assumed unless ``--peak-tflops`` gives one.
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the process's peak resident set size.

``--compile`` compiles the generator with ``torch.compile``; the critic stays eager because the gradient
penalty needs a double backward, which compiled graphs do not support. bf16 autocast applies on CUDA and XLA
only (``colorbench.core.device.autocast``); on the CPU the step runs in fp32 whatever ``--bf16`` says. The memory
format of the modules and the generator's input is the device's (channels_last on CUDA,
``colorbench.core.device.memory_format``) unless ``--channels-last`` / ``--no-channels-last`` sets it, so that its
effect can be measured (``python -m colorbench.experiments.gpu_check`` times both).

Paper anchors (reference.md sec. 7): about 4 images/s on one GPU with the original code (8 h per epoch of the
118k COCO train2017 images) and about 131 images/s on a TPU v2-8 (15 min per epoch).
``--docs docs/performance.md`` writes the figures into that page's ``colorbench:throughput-DEVICE`` block (one
block per device type: ``cpu``, ``cuda``, ``xla``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from colorbench.core import console
from colorbench.core.device import autocast, memory_format, resolve_device, step_done, synchronize
from colorbench.data.loader import Batch, ModelInputs
from colorbench.experiments import perfdoc
from colorbench.io.schema import write_json
from colorbench.models.chromagan import VARIANTS, build
from colorbench.models.teachers import Targets, teacher_classes
from colorbench.models.trainable import StepContext

logger = logging.getLogger(__name__)

COCO_TRAIN_IMAGES = 118_287
PAPER_ANCHORS = (
    ("paper: one GPU, original code (8 h/epoch)", COCO_TRAIN_IMAGES / (8 * 3600)),
    ("paper: TPU v2-8, Model A (15 min/epoch)", COCO_TRAIN_IMAGES / (15 * 60)),
)
#: Dense peak TFLOP/s by device-name fragment, (bf16 tensor cores, fp32), from NVIDIA's datasheets (SXM parts;
#: the PCIe H100 is listed apart). The first fragment found in the device name is used.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H100 PCIe": (756.0, 51.0),
    "H100": (989.0, 67.0),
    "H200": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L4": (121.0, 30.3),
    "A10G": (70.0, 31.2),
}


def peak_tflops(device: torch.device, bf16: bool) -> float | None:
    """The device's dense peak for the step's dtype, None when unknown (the CPU, an unlisted GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, (bf16_peak, fp32_peak) in PEAK_TFLOPS.items():
        if fragment in name:
            return bf16_peak if bf16 else fp32_peak
    return None


def peak_memory(device: torch.device) -> dict[str, object]:
    """Peak memory since the last :func:`reset_peak_memory`: CUDA's allocated bytes, or the process's peak RSS."""
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "memory_kind": "cuda allocated"}
    return {"peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "memory_kind": "process peak resident set (CPU)"}


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak (CUDA; a process's peak resident set cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def counted_flops(step: Callable[[], object]) -> int:
    """Matmul/convolution FLOPs of one call of ``step`` (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def timed(step: Callable[[], object], device: torch.device, *, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` calls after ``warmup`` untimed ones, between device synchronisations."""
    for _ in range(warmup):
        step()
    synchronize(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - began


@dataclass
class FormatStep(StepContext):
    """The trainer's step context with a chosen memory format for the generator's input, in place of the device's
    default (``--channels-last`` / ``--no-channels-last``)."""

    chosen_format: torch.memory_format = torch.contiguous_format

    @property
    def memory_format(self) -> torch.memory_format:
        return self.chosen_format


def measure(model_name: str, device: torch.device, *, batch_size: int, steps: int, warmup: int, size: int = 224,
            width: float = 1.0, bf16: bool = True, compile_generator: bool = False,
            channels_last: bool | None = None, peak: float | None = None) -> dict[str, Any]:
    """Training and inference throughput of ``model_name``; returns the figures and the settings used.
    ``channels_last`` None keeps the device's memory format (:func:`colorbench.core.device.memory_format`)."""
    from colorbench.training.loop import prepare_state

    model = build(model_name, profile="paper", image_size=size, width=width, batch_size=batch_size)
    state, step = prepare_state(model, device, bf16=bf16)
    fmt = memory_format(device) if channels_last is None else (
        torch.channels_last if channels_last else torch.contiguous_format)
    if fmt != step.memory_format:
        for module in state.modules.values():
            module.to(memory_format=fmt)  # type: ignore[call-overload]  # a Module.to keyword the stubs omit
        step = FormatStep(step.device, step.rng, step.nets, step.update, step.bf16, fmt)
    generator = torch.Generator().manual_seed(0)
    L = torch.rand(batch_size, 1, size, size, generator=generator).to(device) * 100
    ab = torch.rand(batch_size, 2, size, size, generator=generator).to(device) * 255 - 128
    ids = [str(i) for i in range(batch_size)]
    blank = torch.zeros(batch_size, 3, size, size, device=device)
    batch = Batch(ids, [""] * batch_size, blank.byte(), blank, L, ab, L / 100)
    if model.teacher is not None:
        probs = torch.rand(batch_size, teacher_classes(model.teacher), generator=generator).softmax(dim=1)
        model.targets = {i: Targets(probs[k], torch.tensor(True)) for k, i in enumerate(ids)}
    losses: dict[str, torch.Tensor] = {}

    def train_step() -> None:
        losses.update(model.training_step(batch, step))
        step_done(device)

    train_flops = counted_flops(train_step)
    if compile_generator:
        step.nets["generator"] = torch.compile(model.generator)  # type: ignore[assignment]
    reset_peak_memory(device)
    train_seconds = timed(train_step, device, steps=steps, warmup=warmup)
    train_memory = peak_memory(device)

    model.generator.eval()
    inputs = ModelInputs({"L": L.contiguous(memory_format=fmt)}, batch_size)

    def predict_step() -> None:
        with torch.no_grad(), autocast(device, bf16):
            model.colorize(inputs)

    predict_flops = counted_flops(predict_step)
    if compile_generator:
        model.generator = torch.compile(state.modules["generator"])  # type: ignore[assignment]
    reset_peak_memory(device)
    predict_seconds = timed(predict_step, device, steps=steps, warmup=warmup)
    bf16_used = bf16 and device.type in ("cuda", "xla")
    listed = peak_tflops(device, bf16_used)
    source = "--peak-tflops" if peak is not None else "NVIDIA datasheet, dense" if listed else "unknown: no MFU"
    peak = peak if peak is not None else listed

    def figures(seconds: float, flops: int, memory: dict[str, object]) -> dict[str, object]:
        achieved = flops * steps / seconds / 1e12
        return {"images_per_s": batch_size * steps / seconds, "seconds_per_step": seconds / steps,
                "flops_per_step": flops, "achieved_tflops": achieved,
                "mfu": achieved / peak if peak else None, **memory}

    return {"model": model_name, "device": str(device), "device_name": _device_name(device), "size": size,
            "width": width, "batch_size": batch_size, "steps": steps, "warmup": warmup, "bf16_autocast": bf16_used,
            "channels_last": fmt == torch.channels_last, "compiled_generator": compile_generator,
            "threads": torch.get_num_threads(), "peak_tflops": peak, "peak_source": source,
            "finite_losses": all(bool(torch.isfinite(v)) for v in losses.values()),
            "parameters": {"generator": sum(p.numel() for p in state.modules["generator"].parameters()),
                           "critic": sum(p.numel() for p in state.modules["critic"].parameters())
                           if "critic" in state.modules else 0},
            "training": figures(train_seconds, train_flops, train_memory),
            "inference": figures(predict_seconds, predict_flops, peak_memory(device))}


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def report(result: dict[str, Any]) -> str:
    training, inference = result["training"], result["inference"]
    rate = training["images_per_s"]

    def mfu(part: dict[str, Any]) -> str:
        return f"MFU {part['mfu']:.1%}" if part["mfu"] is not None else "MFU n/a (peak unknown)"

    lines = [f"{result['model']} at {result['size']}x{result['size']}, width {result['width']}, batch "
             f"{result['batch_size']} on {result['device_name']} (bf16 {result['bf16_autocast']}, channels_last "
             f"{result['channels_last']}, compiled generator {result['compiled_generator']}, {result['threads']} "
             "threads):",
             f"  training: {rate:.3g} images/s ({training['seconds_per_step']:.3g} s/step over {result['steps']} "
             f"steps), {training['achieved_tflops']:.3g} TFLOP/s, {mfu(training)}",
             f"  inference: {inference['images_per_s']:.3g} images/s, {inference['achieved_tflops']:.3g} TFLOP/s, "
             f"{mfu(inference)}"]
    for label, anchor in PAPER_ANCHORS:
        lines.append(f"  {label}: {anchor:.3g} images/s -> this training rate is {rate / anchor:.3g}x")
    lines.append(f"  one COCO train2017 epoch at this rate: {COCO_TRAIN_IMAGES / rate / 3600:.3g} h")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m bench throughput``."""
    parser.add_argument("--model", choices=list(VARIANTS), default="chromagan")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=10, help="default: ChromaGAN's 10")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="CUDA/XLA only")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="memory format of the modules and the generator's input (default: the device's, "
                             "channels_last on CUDA)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (default: PEAK_TFLOPS)")
    parser.add_argument("--json", type=Path, help="write the figures to this file (JSON)")
    perfdoc.add_docs_option(parser)


def command(result: dict[str, Any]) -> str:
    """The ``bench throughput`` command that measures with ``result``'s settings."""
    flags = [f"--model {result['model']}", f"--device {result['device'].split(':')[0]}",
             f"--batch-size {result['batch_size']}", f"--size {result['size']}", f"--width {result['width']}",
             f"--steps {result['steps']}", f"--warmup {result['warmup']}"]
    if result["compiled_generator"]:
        flags.append("--compile")
    if result["device"].startswith(("cuda", "xla")) and not result["bf16_autocast"]:
        flags.append("--no-bf16")
    if result["peak_source"] == "--peak-tflops":
        flags.append(f"--peak-tflops {result['peak_tflops']}")
    return " ".join(["python -m bench throughput", *flags])


def document(path: Path, result: dict[str, Any], loads: list[float]) -> None:
    """Training and inference figures as the ``throughput-DEVICE`` block of ``path``."""
    rows = [[kind, part["images_per_s"], part["seconds_per_step"], part["achieved_tflops"], part["mfu"],
             part["peak_memory_bytes"] / 2**20] for kind, part in (("training", result["training"]),
                                                                    ("inference", result["inference"]))]
    anchors = "; ".join(f"{label.removeprefix('paper: ')}: {anchor:.3g} images/s" for label, anchor in PAPER_ANCHORS)
    device = result["device"].split(":")[0]
    perfdoc.update(path, f"throughput-{device}", rows=rows, command=command(result), loads=loads,
                   device=result["device_name"] if device != "cpu" else None,
                   columns=["step", "images/s", "s/step", "TFLOP/s", "MFU", "peak memory MiB"],
                   notes=[f"bf16 autocast: {perfdoc.cell(result['bf16_autocast'])}, channels_last: "
                          f"{perfdoc.cell(result['channels_last'])}, compiled generator: "
                          f"{perfdoc.cell(result['compiled_generator'])}, {result['threads']} threads; peak TFLOP/s: "
                          f"{result['peak_source']}; peak memory: {result['training']['memory_kind']}. "
                          f"Paper anchors: {anchors}."])


def run(args: argparse.Namespace) -> int:
    """Measure, log the summary (stderr) and print the JSON figures (stdout, ``--json`` and ``--docs``)."""
    load_before = os.getloadavg()[0]
    result = measure(args.model, resolve_device(args.device), batch_size=args.batch_size, steps=args.steps,
                     warmup=args.warmup, size=args.size, width=args.width, bf16=args.bf16,
                     compile_generator=args.compile, channels_last=args.channels_last, peak=args.peak_tflops)
    logger.info("%s", report(result))
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    if args.docs:
        document(args.docs, result, [load_before, os.getloadavg()[0]])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.experiments.throughput",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    console.configure()
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
