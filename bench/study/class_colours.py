"""Class colour statistics measured on the training split, for the arms and the colour judge of claim C2 (rule
``c2@5``): what colours each COCO class takes in photographs a colorizer could have learnt from, never the
evaluation image's own truth.

Fitted from a COCO source with instance annotations (coco-mini ``train2017`` here; the run's training source),
each image read at ``WORK_SIDE`` pixels on its longer side, instances painted as the evaluation segments are
(colorbench.data.segments.coco_label_map: smaller instances on top, crowds left out). Per class:

- ``means``: the mean ab vector of every *large* instance (covering at least ``large_area`` of its image), grey
  ones included;
- ``hues``: the hue angle (degrees) of those means whose chroma is >= MIN_HUE_CHROMA (a hue is defined).

Grayscale originals (every pixel R = G = B) carry no colour and are left out, as in the harness. The class
statistics derived here (circular mean and spread of the hues, Fisher 1993, Statistical Analysis of Circular Data,
sec. 2.3: R = |mean of unit vectors|, spread sqrt(-2 ln R)) select the classes the arms use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from colorbench.core.errors import BenchError
from colorbench.data.color import rgb_to_lab
from colorbench.data.segments import coco_label_categories, coco_label_map
from colorbench.data.sources import CocoSource, open_source
from colorbench.study.recolour import MIN_HUE_CHROMA

WORK_SIDE = 256
#: Bumped when what is fitted changes, so a stored fit is redone.
FIT_VERSION = 2


@dataclass
class ClassColours:
    """Per-class mean-ab vectors and hue samples of one training split's large instances (module docstring)."""

    source: str
    large_area: float
    hues: dict[str, list[float]] = field(default_factory=dict)
    means: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def circular(self, category: str) -> tuple[float, float]:
        """(circular mean hue, circular spread) in degrees of the class's large-instance hues."""
        angles = np.radians(np.array(self.hues.get(category, []), dtype=np.float64))
        if not angles.size:
            return math.nan, math.nan
        vector = np.exp(1j * angles).mean()
        spread = math.sqrt(-2 * math.log(max(abs(vector), 1e-12)))
        return math.degrees(float(np.angle(vector))), math.degrees(spread)

    def as_json(self) -> dict[str, object]:
        return {"version": FIT_VERSION, "source": self.source, "large_area": self.large_area, "hues": self.hues,
                "means": self.means}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ClassColours:
        means: Mapping[str, list[list[float]]] = data["means"]  # type: ignore[assignment]
        return cls(str(data["source"]), float(data["large_area"]),  # type: ignore[arg-type]
                   {c: list(h) for c, h in data["hues"].items()},  # type: ignore[attr-defined]
                   {c: [(float(a), float(b)) for a, b in m] for c, m in means.items()})


def add_instances(fit: ClassColours, lab: torch.Tensor, labels: np.ndarray, categories: Mapping[int, str]) -> None:
    """Add one image's instances (Lab (3, H, W), label map (H, W), label -> class) to ``fit``."""
    label_map = torch.from_numpy(labels.astype(np.int64))
    for label, category in categories.items():
        mask = label_map == label
        if float(mask.double().mean()) < fit.large_area:
            continue
        mean = lab[1:, mask].double().mean(dim=1)
        fit.means.setdefault(category, []).append((float(mean[0]), float(mean[1])))
        if float(mean.norm()) >= MIN_HUE_CHROMA:
            fit.hues.setdefault(category, []).append(math.degrees(math.atan2(float(mean[1]), float(mean[0]))))


def _working_image(path: Path, coco: Any, image_id: int) -> tuple[torch.Tensor, np.ndarray]:
    """RGB (3, H, W) in [0, 1] at WORK_SIDE on the longer side (never enlarged) and its instance label map,
    carried to that size by nearest neighbour."""
    with Image.open(path) as original:
        image = original.convert("RGB")
    labels = Image.fromarray(coco_label_map(coco, image_id, image.height, image.width), mode="I")
    scale = WORK_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image, labels = image.resize(size, Image.Resampling.BILINEAR), labels.resize(size, Image.Resampling.NEAREST)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255, np.array(labels)


def fit_class_colours(source_spec: str, large_area: float) -> ClassColours:
    """Fit the class colour statistics on the COCO source ``source_spec`` (coco:ROOT:SPLIT or sample:PART)."""
    source = open_source(source_spec)
    coco = source.instances() if isinstance(source, CocoSource) else None
    if coco is None:
        raise BenchError(f"{source_spec} has no COCO instance annotations: class colours need them")
    fit = ClassColours(source_spec, large_area)
    for record in source.records():
        if record.refused:
            continue
        rgb, labels = _working_image(record.path, coco, int(record.image_id))
        if float((rgb.max(dim=0).values - rgb.min(dim=0).values).max()) == 0:
            continue  # a grayscale original
        add_instances(fit, rgb_to_lab(rgb[None])[0], labels, coco_label_categories(coco, int(record.image_id)))
    return fit


def stored_class_colours(path: Path, source_spec: str, large_area: float) -> ClassColours:
    """The fit stored at ``path`` when it was made from the same source and rule, else a new fit (then stored)."""
    if path.is_file():
        data = json.loads(path.read_text())
        if (data.get("version"), data.get("source"), data.get("large_area")) == (FIT_VERSION, source_spec,
                                                                                 large_area):
            return ClassColours.from_json(data)
    fit = fit_class_colours(source_spec, large_area)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fit.as_json()))
    return fit
