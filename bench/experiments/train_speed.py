"""Training throughput of a ChromaGAN-family model in images per second, beside the paper's anchors.

    python -m bench.experiments.train_speed                       # chromagan, 224x224, width 1.0, batch 10
    python -m bench.experiments.train_speed --batch-size 4 --steps 3 --warmup 1      # a quick CPU figure
    python -m bench.experiments.train_speed --device cuda --compile --no-bf16

What one step is: the trainer's own step (:meth:`bench.train.GanTrainer.step`): generator forward and backward
(MSE + KL + adversarial term), Adam update, critic forward on real, fake and interpolated ab, gradient penalty
(double backward), Adam update. The data are synthetic tensors already on the device, so the figure is the
model's compute ceiling: no JPEG decoding or resizing (the paper's TPU sat idle 73% of the time waiting for
input). The class teacher is not run per step: colorbench computes its targets once per image before training,
whereas the original ChromaGAN ran VGG-16 on every batch.

``--compile`` compiles the generator with ``torch.compile``; the critic stays eager because the gradient
penalty needs a double backward, which compiled graphs do not support. bf16 autocast applies on CUDA and XLA
only (``bench.device.autocast``); on the CPU the step runs in fp32 whatever ``--bf16`` says.

Paper anchors (reference.md sec. 7): about 4 images/s on one GPU with the original code (8 h per epoch of the
118k COCO train2017 images) and about 131 images/s on a TPU v2-8 (15 min per epoch).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.device import resolve_device, synchronize
from bench.train import GanTrainer
from models.chromagan import VARIANTS, build
from models.teachers import Targets, teacher_classes

COCO_TRAIN_IMAGES = 118_287
PAPER_ANCHORS = (
    ("paper: one GPU, original code (8 h/epoch)", COCO_TRAIN_IMAGES / (8 * 3600)),
    ("paper: TPU v2-8, Model A (15 min/epoch)", COCO_TRAIN_IMAGES / (15 * 60)),
)


def measure(model_name: str, device: torch.device, *, batch_size: int, steps: int, warmup: int, size: int = 224,
            width: float = 1.0, bf16: bool = True, compile_generator: bool = False) -> dict[str, object]:
    """Time ``steps`` training steps after ``warmup`` steps; returns images/s and the settings used."""
    model = build(model_name, profile="paper", image_size=size, width=width, batch_size=batch_size)
    trainer = GanTrainer(model, device, bf16=bf16)
    if compile_generator:
        trainer.g_net = torch.compile(trainer.generator)
    generator = torch.Generator().manual_seed(0)
    L01 = torch.rand(batch_size, 1, size, size, generator=generator).to(device)
    ab01 = torch.rand(batch_size, 2, size, size, generator=generator).to(device)
    targets = None
    if model.teacher is not None:
        probs = torch.rand(batch_size, teacher_classes(model.teacher), generator=generator).softmax(dim=1)
        targets = Targets(probs.to(device), torch.ones(batch_size, dtype=torch.bool, device=device))
    for _ in range(warmup):
        trainer.step(L01, ab01, targets, generator)
    synchronize(device)
    began = time.perf_counter()
    for _ in range(steps):
        losses = trainer.step(L01, ab01, targets, generator)
    synchronize(device)
    seconds = time.perf_counter() - began
    return {"model": model_name, "device": str(device), "device_name": _device_name(device), "size": size,
            "width": width, "batch_size": batch_size, "steps": steps, "warmup": warmup,
            "bf16_autocast": bf16 and device.type in ("cuda", "xla"), "compiled_generator": compile_generator,
            "threads": torch.get_num_threads(), "seconds_per_step": seconds / steps,
            "images_per_s": batch_size * steps / seconds, "finite_losses": all(bool(torch.isfinite(v))
                                                                                for v in losses.values()),
            "parameters": {"generator": sum(p.numel() for p in trainer.generator.parameters()),
                           "critic": sum(p.numel() for p in trainer.critic.parameters()) if trainer.critic else 0}}


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def report(result: dict[str, object]) -> str:
    rate = float(result["images_per_s"])  # type: ignore[arg-type]
    lines = [f"{result['model']} training at {result['size']}x{result['size']}, width {result['width']}, "
             f"batch {result['batch_size']} on {result['device_name']} (bf16 {result['bf16_autocast']}, "
             f"compiled generator {result['compiled_generator']}, {result['threads']} threads): "
             f"{rate:.3g} images/s ({result['seconds_per_step']:.3g} s/step over {result['steps']} steps)"]
    for label, anchor in PAPER_ANCHORS:
        lines.append(f"  {label}: {anchor:.3g} images/s -> this run is {rate / anchor:.3g}x")
    epoch_hours = COCO_TRAIN_IMAGES / rate / 3600
    lines.append(f"  one COCO train2017 epoch at this rate: {epoch_hours:.3g} h")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.experiments.train_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=list(VARIANTS), default="chromagan")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=10, help="default: ChromaGAN's 10")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="CUDA/XLA only")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    result = measure(args.model, resolve_device(args.device), batch_size=args.batch_size, steps=args.steps,
                     warmup=args.warmup, size=args.size, width=args.width, bf16=args.bf16,
                     compile_generator=args.compile)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
