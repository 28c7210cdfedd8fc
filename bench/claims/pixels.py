"""Pixel-level evidence that the claims rules (version 2) need beyond the per-image records, computed from the
PNGs a run folder keeps (predictions/, ground_truth/, segments/):

- C3: the share of a prediction's pixels that look grey, by Lab chroma below one JND rather than exact 8-bit
  channel equality (threshold ``grey_chroma`` of C3, bench/claims/versions/2.toml);
- C7: a resize run and a center-crop run scored on the pixels both contain. A center crop keeps the central
  square of the original (side = the shorter side); in the resize run's output that square is a centre band
  (columns for a landscape original, rows for a portrait one). Each arm is scored on that region of its own
  output against the same region of its own ground truth, so no prediction is resampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from colorbench.data.color import chroma, rgb_to_lab
from colorbench.io.images import read_label_png, read_png_u8
from colorbench.io.layout import RunLayout
from colorbench.metrics.registry import METRICS, compute


def grey_share(rgb_u8: torch.Tensor, max_chroma: float) -> float:
    """Share of pixels of a (3, H, W) uint8 image whose CIELAB chroma C*ab is below ``max_chroma``."""
    lab = rgb_to_lab(rgb_u8.double().unsqueeze(0) / 255)
    return float((chroma(lab[:, 1:]) < max_chroma).double().mean())


def near_grey_shares(out: Path, models: Sequence[str], image_ids: Sequence[str],
                     max_chroma: float) -> dict[str, dict[str, float]]:
    """Model -> image id -> near-grey share of its saved prediction (images without a PNG left out)."""
    shares: dict[str, dict[str, float]] = {}
    for model in models:
        paths = {i: RunLayout(out).prediction(model, i) for i in image_ids}
        shares[model] = {i: grey_share(read_png_u8(p), max_chroma) for i, p in paths.items() if p.is_file()}
    return shares


def centre_square(width: int, height: int, size: int) -> tuple[slice, slice]:
    """Rows and columns of a ``size`` x ``size`` anisotropic resize that hold the original's central square."""
    if width == height:
        return slice(0, size), slice(0, size)
    long, short = max(width, height), min(width, height)
    start, stop = round((long - short) / 2 / long * size), round((long + short) / 2 / long * size)
    return (slice(0, size), slice(start, stop)) if width > height else (slice(start, stop), slice(0, size))


def _region_scores(out: Path, model: str, image_id: str, region: tuple[slice, slice],
                   metrics: Sequence[str]) -> dict[str, float]:
    rows, cols, layout = *region, RunLayout(out)
    pred = read_png_u8(layout.prediction(model, image_id))[:, rows, cols]
    truth = read_png_u8(layout.ground_truth(image_id))[:, rows, cols]
    extras = {}
    if any("segments" in METRICS[m].needs for m in metrics):
        labels = layout.segments(image_id)
        extras["segments"] = (read_label_png(labels)[rows, cols] if labels.is_file()
                              else torch.zeros(truth.shape[1:], dtype=torch.int64)).unsqueeze(0)
    values = compute(metrics, pred.unsqueeze(0).float() / 255, truth.unsqueeze(0).float() / 255, **extras)
    return {m: float(v[0]) for m, v in values.items()}


def common_pixel_rows(resize_out: Path, crop_out: Path, size: int, originals: Mapping[str, tuple[int, int]],
                      models: Sequence[str], metrics: Sequence[str]) -> list[dict[str, object]]:
    """One row (model, image_id, metric, resize, crop) per model, image and metric, for the images whose
    original size (width, height) is known and whose predictions exist in both runs."""
    whole = (slice(0, size), slice(0, size))
    out: list[dict[str, object]] = []
    for model in models:
        for image_id, (width, height) in originals.items():
            if not all(RunLayout(run).prediction(model, image_id).is_file() for run in (resize_out, crop_out)):
                continue
            resize = _region_scores(resize_out, model, image_id, centre_square(width, height, size), metrics)
            crop = _region_scores(crop_out, model, image_id, whole, metrics)
            out += [{"model": model, "image_id": image_id, "metric": m, "resize": resize[m], "crop": crop[m]}
                    for m in metrics]
    return out
