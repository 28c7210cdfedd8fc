"""Segment label maps for the segment metrics (paper Sec. 7.6): the scoring extras that hand each image's map to
the metrics, and which metrics need them. The maps themselves (COCO instance masks, or SLIC superpixels, at the
working size) are built in :mod:`bench.label_maps`.

Sources without instance annotations (folders, the built-in sample, ``bench score``) get SLIC superpixels
computed on the ground truth at the working size. Which of the two a run used is recorded in run.json.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from bench.images import read_label_png
from bench.label_maps import slic_label_map
from bench.paths import inside, safe_component
from metrics.registry import METRICS


def slic_segments(_: object, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scoring extras for sources without instances: SLIC segments of the ground truth (3, H, W) uint8."""
    return {"segments": torch.from_numpy(slic_label_map(target))}


def segments_from(folder: Path) -> Callable[[object, torch.Tensor], dict[str, torch.Tensor]]:
    """Scoring extras read from label-map PNGs named by image id (a run's ``segments/``); a missing map (or a
    symlink out of the folder) gives an empty one, so only the segment metrics of that image are n/a."""

    def extras(pair: object, target: torch.Tensor) -> dict[str, torch.Tensor]:
        path = folder / safe_component(f"{pair.image_id}.png")  # type: ignore[attr-defined]
        readable = path.is_file() and inside(folder, path)
        labels = read_label_png(path) if readable else torch.zeros(target.shape[1:], dtype=torch.int64)
        return {"segments": labels}

    return extras


def needs_segments(metric_names: Sequence[str]) -> bool:
    return any("segments" in METRICS[name].needs for name in metric_names)
