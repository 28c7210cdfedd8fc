"""What the unit tests of trained families share: the built-in sample as training data (real photos with ids the
families' prepared tables know) and a real StepContext built by hand (updates are zero_grad, backward, step on the
model's own optimisers), so that ``training_step`` is tested without the trainer."""

from __future__ import annotations

from pathlib import Path

import torch

from colorbench.data.loader import Batch, Preprocess, iterate_batches, make_loader
from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest
from colorbench.models.trainable import StepContext, TrainableModel, TrainingData

CPU = torch.device("cpu")


def sample_training(cache: Path, size: int = 64, images: int = 3) -> tuple[TrainingData, Batch]:
    """The built-in sample's training part as TrainingData (cache folder ``cache``) and a batch of its first
    ``images`` photos at ``size``."""
    entries = build_manifest(open_source("sample:train"), "full", progress=False).usable
    data = TrainingData(entries, "sample:train", "resize", cache, CPU, progress=False)
    batch = next(iterate_batches(make_loader(entries[:images], Preprocess(size), batch_size=images), CPU))
    return data, batch


def hand_step(model: TrainableModel, seed: int = 0) -> StepContext:
    """A StepContext over the model's own modules and optimisers, on the CPU, without bf16."""
    optimizers = model.make_optimizers()

    def update(name: str, loss: torch.Tensor) -> None:
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()

    return StepContext(CPU, torch.Generator().manual_seed(seed), model.trained_modules(), update, bf16=False)


def losses_over(model: TrainableModel, batch: Batch, steps: int) -> list[dict[str, float]]:
    """The loss terms of ``steps`` training steps on one batch, as floats."""
    model.train()  # type: ignore[attr-defined]
    step = hand_step(model)
    return [{k: float(v) for k, v in model.training_step(batch, step).items()} for _ in range(steps)]


def randomize_release_weights(network: torch.nn.Module, *, keep: tuple[torch.nn.Module, ...] = ()) -> None:
    """Random weights a release file might hold, so that a wrong mapping shows: He-normal convolutions with small
    biases, BatchNorm with random statistics and affine terms (``keep``: modules left as initialised)."""
    with torch.no_grad():
        for module in network.modules():
            if any(module is kept for kept in keep):
                continue
            if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                torch.nn.init.kaiming_normal_(module.weight)
                module.bias.normal_(0, 0.05)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
