"""baseline0 (paper Sec. 4.1): the mean colour of every grey level.

Fitting accumulates, over all training pixels, the sum of R, G and B and the pixel count for each 8-bit
BT.601 luma level (a 3x256 table of sums), one batch at a time, so fitting on all of COCO train2017 holds
two small tables in memory, not the data set. Prediction looks each pixel's luma level up in the table of
means M (3x256). Levels never seen in training take the mean of the nearest seen levels (linear
interpolation); with no training pixels at all the table is the identity grey.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tqdm import tqdm

from colorbench.core.device import all_reduce_sum
from colorbench.data.loader import Batch, ModelInputs
from colorbench.models.base import Colorizer
from colorbench.models.registry import register_model

LEVELS = 256


def luma_levels(luma: torch.Tensor) -> torch.Tensor:
    """BT.601 luma in [0, 1] -> integer grey levels 0..255, shape (B, H, W)."""
    return (luma.squeeze(1).clamp(0, 1) * (LEVELS - 1)).round().long()


def fill_unseen(means: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Linear interpolation over levels with no pixels (clamped at the ends); identity grey if none seen."""
    seen = torch.nonzero(counts > 0).squeeze(1)
    levels = torch.arange(LEVELS, dtype=torch.float64)
    if seen.numel() == 0:
        return (levels / (LEVELS - 1)).expand(3, LEVELS).clone()
    if seen.numel() == 1:
        return means[:, seen].expand(3, LEVELS).clone()
    x = seen.double()
    right = torch.searchsorted(x, levels).clamp(1, seen.numel() - 1)
    x0, x1 = x[right - 1], x[right]
    w = ((levels - x0) / (x1 - x0)).clamp(0, 1)
    return means[:, seen[right - 1]] * (1 - w) + means[:, seen[right]] * w


class Baseline0(Colorizer):
    """Per-grey-level mean RGB table, fitted by streaming sums (float64 accumulators)."""

    rgb_sums: torch.Tensor  # registered buffers
    pixel_counts: torch.Tensor
    table: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rgb_sums", torch.zeros(3, LEVELS, dtype=torch.float64))
        self.register_buffer("pixel_counts", torch.zeros(LEVELS, dtype=torch.float64))
        self.register_buffer("table", fill_unseen(torch.zeros(3, LEVELS, dtype=torch.float64), torch.zeros(LEVELS)))

    def accumulate(self, batch: Batch) -> None:
        levels = luma_levels(batch.luma).flatten().cpu()
        rgb = batch.rgb.permute(1, 0, 2, 3).reshape(3, -1).double().cpu()
        self.rgb_sums.index_add_(1, levels, rgb)
        self.pixel_counts += torch.bincount(levels, minlength=LEVELS).double()

    def finish(self) -> None:
        """Turn the sums into the table of means (summing over ranks first under torchrun)."""
        self.rgb_sums = all_reduce_sum(self.rgb_sums)
        self.pixel_counts = all_reduce_sum(self.pixel_counts)
        means = self.rgb_sums / self.pixel_counts.clamp_min(1)
        self.table = fill_unseen(means, self.pixel_counts)

    def fit(self, batches: Iterable[Batch], progress: bool = True) -> None:
        for batch in tqdm(batches, desc="fit baseline0", unit="batch", disable=not progress):
            if len(batch):
                self.accumulate(batch)
        self.finish()

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        levels = luma_levels(inputs.luma)
        table = self.table.to(inputs.luma.device, torch.float32)
        return table[:, levels].permute(1, 0, 2, 3)


@register_model("baseline0", inputs=("luma",), training="fit", paper="Sec. 4.1, Table 1",
                description="mean training RGB for each of the 256 BT.601 luma levels (table lookup)")
def build_baseline0() -> Colorizer:
    return Baseline0()
