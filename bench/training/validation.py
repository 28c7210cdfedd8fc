"""The validation hold-out of a training (the first ``n_val`` of the images its model can read, in split-hash
order, at most a tenth, at least one; the evaluation split is never used) and its per-epoch metrics, computed
from the model's colorizations of its declared inputs only (registry ``inputs``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from colorbench.core.device import autocast, fixed_shapes
from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess, iterate_batches, make_loader
from colorbench.data.splits import ManifestEntry, split_key
from colorbench.metrics.registry import compute
from colorbench.models.base import Colorizer

#: Validation metrics computed every epoch (colorbench.metrics.registry names).
VAL_METRICS = ("mse", "psnr", "ssim", "colorfulness", "channel_equality")


def split_validation(entries: Sequence[ManifestEntry], n_val: int) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(training, validation): validation is the first ``n_val`` entries by split key, capped at a tenth of the
    entries and at least one; both keep manifest order."""
    if len(entries) < 2:
        raise BenchError(f"training needs at least 2 usable images (one is held out for validation), "
                         f"found {len(entries)}")
    count = max(1, min(n_val, len(entries) // 10))
    held = {e.image_id for e in sorted(entries, key=lambda e: split_key(e.image_id))[:count]}
    return [e for e in entries if e.image_id not in held], [e for e in entries if e.image_id in held]


@torch.no_grad()
def validate(model: Colorizer, inputs: tuple[str, ...], modules: dict[str, nn.Module],
             entries: Sequence[ManifestEntry], preprocess: Preprocess, device: torch.device,
             bf16: bool = True) -> dict[str, float]:
    """Mean validation metrics of the model's colorizations (of ``inputs``) at its training resolution; the
    trained ``modules`` are in eval mode meanwhile. On XLA short batches are padded (colorbench.data.loader) and the
    padding
    rows count for nothing."""
    for module in modules.values():
        module.eval()
    sums = dict.fromkeys(VAL_METRICS, 0.0)
    count = 0
    for batch in iterate_batches(make_loader(entries, preprocess, batch_size=16, pad=fixed_shapes(device)), device):
        with autocast(device, bf16):
            rgb = model.colorize(batch.inputs_for(inputs)).float().clamp(0, 1)
        real = (torch.arange(batch.rows) < len(batch)).to(device)  # data, not a constant: one graph for any count
        for name, values in compute(VAL_METRICS, rgb, batch.rgb).items():
            sums[name] += float(torch.where(real, values, 0).sum())
        count += len(batch)
    for module in modules.values():
        module.train()
    return {f"val_{name}": total / max(count, 1) for name, total in sums.items()}
