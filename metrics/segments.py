"""Segment-level saturation metrics: paper Sec. 7.6 (faded objects such as the Frisbee or the tail lights that
global losses and metrics average away) made measurable.

The scorer supplies ``segments``, an int64 label map (B, H, W): 0 = no segment, 1..K the segments of each image
(COCO instance masks, overlaps resolved in favour of the smaller instance, or SLIC superpixels of the ground
truth where a source has no masks; the segment source is recorded with the run). Per segment the mean Lab
chroma C*ab = sqrt(a^2 + b^2) (sRGB -> Lab D65, :mod:`colorbench.data.color`) of prediction and ground truth is
computed with one batched ``bincount`` (no loop over segments).

An image without segments, without segments that qualify, or whose label map does not have the image's size
gets NaN (n/a) for that image, never an exception.
"""

from __future__ import annotations

import torch

from colorbench.data.color import chroma, rgb_to_lab
from colorbench.metrics.kernels import KernelCost, compiled_kernel


def segment_mean_chroma(
    pred: torch.Tensor, target: torch.Tensor, segments: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Per-segment (area, mean predicted chroma, mean true chroma), each (B, K) float64 with K the largest label
    in the batch (column k - 1 holds segment k; area 0 where an image has no segment k). None when the label
    map's shape is not (B, H, W) of the images."""
    batch, _, height, width = pred.shape
    if segments.shape != (batch, height, width):
        return None
    labels = segments.long().clamp_min(0)
    columns = int(labels.max()) + 1 if labels.numel() else 1
    index = (labels + columns * torch.arange(batch, device=labels.device).view(-1, 1, 1)).flatten()
    size = batch * columns

    def per_segment_sum(values: torch.Tensor | None) -> torch.Tensor:
        weights = None if values is None else values.double().flatten()
        return torch.bincount(index, weights=weights, minlength=size).double().view(batch, columns)[:, 1:]

    chroma_pred, chroma_true = chroma_maps(pred, target)
    area = per_segment_sum(None)
    return area, per_segment_sum(chroma_pred) / area, per_segment_sum(chroma_true) / area


#: Compile-policy data (metrics/kernels.py): CPU seconds of one thread at 224x224 from
#: ``python -m colorbench.experiments.compile_cost``; the run and its break-evens: docs/performance.md.
CHROMA_MAPS_COST = KernelCost(eager_s_per_mpx=0.119, compiled_s_per_mpx=0.0517, cold_compile_s=6.08,
                              warm_compile_s=4.27)


@compiled_kernel(CHROMA_MAPS_COST)
def chroma_maps(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab chroma C*ab of prediction and ground truth per pixel, (B, 1, H, W) float32 each."""
    return chroma(rgb_to_lab(pred.float())[:, 1:]), chroma(rgb_to_lab(target.float())[:, 1:])


def _nan(pred: torch.Tensor) -> torch.Tensor:
    return torch.full(pred.shape[:1], float("nan"), dtype=torch.float64, device=pred.device)


def segment_chroma_ratio(
    pred: torch.Tensor, target: torch.Tensor, *, segments: torch.Tensor, cap: float = 10.0, min_chroma: float = 5.0
) -> torch.Tensor:
    """Area-weighted geometric mean over segments of the chroma ratio r = mean predicted chroma / mean true
    chroma, each r clamped to [1 / ``cap``, ``cap``], per image:

        exp( sum_k area_k log(clamp(r_k, 1/cap, cap)) / sum_k area_k )

    Only segments whose true mean chroma exceeds ``min_chroma`` take part (grey segments would divide by about
    0). 1 = every coloured segment as saturated as the truth. The mean is taken over log ratios so that fading a
    segment by a factor k and oversaturating it by k weigh the same (the registry's goodness is -|log r|); the
    clamp keeps a grey segment (r about 0) finite, and at 10 it leaves every realistic oversaturation visible
    (an object at 4x the true chroma counts as 4x, not as a capped 2x). NaN where no segment qualifies.
    """
    stats = segment_mean_chroma(pred, target, segments)
    if stats is None:
        return _nan(pred)
    area, mean_pred, mean_true = stats
    weight = torch.where(mean_true > min_chroma, area, 0.0)
    log_ratio = (mean_pred / mean_true.clamp_min(min_chroma)).clamp(1 / cap, cap).log()
    return (torch.where(weight > 0, weight * log_ratio, 0.0).sum(dim=1) / weight.sum(dim=1)).exp()


def vivid_recall(
    pred: torch.Tensor, target: torch.Tensor, *, segments: torch.Tensor, vivid_chroma: float = 20.0
) -> torch.Tensor:
    """Share of the ground truth's vivid segments (mean chroma > ``vivid_chroma``) that the prediction also
    renders vivid (its mean chroma in the segment > ``vivid_chroma``, the same threshold), per image; each
    segment counts once whatever its area. NaN where the truth has no vivid segment, or where the prediction
    is not finite inside one."""
    stats = segment_mean_chroma(pred, target, segments)
    if stats is None:
        return _nan(pred)
    _, mean_pred, mean_true = stats
    vivid = mean_true > vivid_chroma
    hits = (vivid & (mean_pred > vivid_chroma)).sum(dim=1).double()
    undefined = (vivid & mean_pred.isnan()).any(dim=1)
    return torch.where(undefined, float("nan"), hits / vivid.sum(dim=1).double())


def vivid_precision(
    pred: torch.Tensor, target: torch.Tensor, *, segments: torch.Tensor, vivid_chroma: float = 20.0
) -> torch.Tensor:
    """Share of the segments the prediction renders vivid (its mean chroma > ``vivid_chroma``) that are vivid in
    the ground truth too (the same threshold), per image: the precision partner of :func:`vivid_recall`, which an
    oversaturating colorizer cannot game. Each segment counts once. NaN where the prediction renders no segment
    vivid, or where it is not finite inside a segment."""
    stats = segment_mean_chroma(pred, target, segments)
    if stats is None:
        return _nan(pred)
    area, mean_pred, mean_true = stats
    rendered = mean_pred > vivid_chroma
    hits = (rendered & (mean_true > vivid_chroma)).sum(dim=1).double()
    undefined = ((area > 0) & mean_pred.isnan()).any(dim=1)
    return torch.where(undefined, float("nan"), hits / rendered.sum(dim=1).double())
