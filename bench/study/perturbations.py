"""Controlled colour degradations of ground-truth images, for testing what each metric responds to (claim C2).

Every degradation keeps the lightness L and changes only the chroma (a, b), so it is a colorization a model
could have produced from the grey input. Strengths are graded from the identity to a strong degradation:

- ``desaturation``: ab scaled by alpha (1 = ground truth, 0 = the grey output);
- ``hue_rotation``: ab rotated by theta degrees about the neutral axis;
- ``bleeding``: ab blurred by a Gaussian of sigma pixels while L stays sharp;
- ``color_cast``: a constant (a, b) offset of a given magnitude towards orange-yellow (45 degrees in ab);
- ``object_fade`` / ``object_hue``: one object alone faded (alpha) or given a wrong hue (theta): the most
  vivid segment (COCO instance or superpixel) covering at least 1% of the image, the Frisbee of paper Sec. 7.6;
- ``oversaturation``: ab scaled by a factor above 1 (the hyper-saturated output of diverged GANs, Sec. 7.4).

The study brings every degraded ab into the sRGB gamut at constant L and hue
(:func:`colorbench.study.recolour.gamut_map_ab`), so no variant changes the lightness through RGB clipping.

Each sweep also names its *high-quality regime*: two mild strengths between which a metric's response is
measured (for desaturation alpha 0.9 -> 0.5), away from the identity, where capped metrics sit at their caps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from colorbench.data.color import chroma

#: An object for the object sweeps covers at least this share of the image.
MIN_OBJECT_AREA = 0.01
CAST_ANGLE_DEGREES = 45.0


def rotate_ab(ab: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate (B, 2, H, W) ab vectors by ``degrees`` (hue change at constant chroma)."""
    angle = math.radians(degrees)
    a, b = ab.unbind(dim=1)
    return torch.stack((a * math.cos(angle) - b * math.sin(angle), a * math.sin(angle) + b * math.cos(angle)), dim=1)


def blur_ab(ab: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ab (reflect padding, 3-sigma radius, cut to the image size); sigma 0 is the identity."""
    if sigma <= 0:
        return ab
    radius = max(1, min(math.ceil(3 * sigma), ab.shape[-2] - 1, ab.shape[-1] - 1))
    x = torch.arange(-radius, radius + 1, dtype=ab.dtype, device=ab.device)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    taps = taps / taps.sum()
    padded = F.pad(ab, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded.flatten(0, 1)[:, None], taps.view(1, 1, -1, 1))
    return F.conv2d(rows, taps.view(1, 1, 1, -1)).view_as(ab)


def vivid_object_masks(ab: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Per image, the mask (B, 1, H, W) of its most vivid segment (highest mean ground-truth chroma) among
    those covering at least MIN_OBJECT_AREA of the image; all-False where no segment qualifies."""
    batch, height, width = segments.shape
    masks = torch.zeros(batch, 1, height, width, dtype=torch.bool, device=ab.device)
    saturation = chroma(ab)[:, 0]
    for i in range(batch):
        labels = segments[i].flatten()
        count = torch.bincount(labels)
        total = torch.bincount(labels, weights=saturation[i].flatten().double())
        mean = total / count.clamp_min(1)
        eligible = (count >= MIN_OBJECT_AREA * height * width) & (torch.arange(len(count), device=ab.device) > 0)
        if eligible.any():
            best = torch.where(eligible, mean, torch.full_like(mean, -1.0)).argmax()
            masks[i, 0] = segments[i] == best
    return masks


Apply = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (ab, object mask, strength) -> ab


@dataclass(frozen=True)
class Sweep:
    """A graded degradation. ``strengths[0]`` is the identity; ``regime`` = (mild, moderate) strengths."""

    name: str
    strengths: tuple[float, ...]
    regime: tuple[float, float]
    unit: str
    apply: Apply
    needs_object: bool = False
    description: str = ""


def _cast(ab: torch.Tensor, magnitude: float) -> torch.Tensor:
    angle = math.radians(CAST_ANGLE_DEGREES)
    offset = torch.tensor([math.cos(angle), math.sin(angle)], dtype=ab.dtype, device=ab.device).view(1, 2, 1, 1)
    return ab + magnitude * offset


SWEEPS = (
    Sweep("desaturation", (1.0, 0.9, 0.75, 0.5, 0.25, 0.0), (0.9, 0.5), "alpha",
          lambda ab, _, s: ab * s, description="chroma scaled by alpha; alpha 0 is the grey output"),
    Sweep("hue_rotation", (0.0, 10.0, 20.0, 45.0, 90.0, 180.0), (10.0, 45.0), "degrees",
          lambda ab, _, s: rotate_ab(ab, s), description="every hue rotated by theta in the ab plane"),
    Sweep("bleeding", (0.0, 1.0, 2.0, 4.0, 8.0, 16.0), (1.0, 4.0), "pixels",
          lambda ab, _, s: blur_ab(ab, s), description="ab blurred by a Gaussian of sigma pixels, L sharp"),
    Sweep("color_cast", (0.0, 2.0, 5.0, 10.0, 20.0, 40.0), (2.0, 10.0), "ab units",
          lambda ab, _, s: _cast(ab, s), description="constant ab offset towards orange-yellow"),
    Sweep("object_fade", (1.0, 0.75, 0.5, 0.25, 0.0), (0.75, 0.25), "alpha",
          lambda ab, mask, s: torch.where(mask, ab * s, ab), needs_object=True,
          description="the most vivid object alone faded by alpha (paper Sec. 7.6's Frisbee)"),
    Sweep("object_hue", (0.0, 30.0, 60.0, 90.0, 180.0), (30.0, 90.0), "degrees",
          lambda ab, mask, s: torch.where(mask, rotate_ab(ab, s), ab), needs_object=True,
          description="the most vivid object alone given a wrong hue (rotated by theta)"),
    Sweep("oversaturation", (1.0, 1.25, 1.5, 2.0, 3.0), (1.25, 2.0), "factor",
          lambda ab, _, s: ab * s, description="chroma scaled by a factor above 1, then mapped into the sRGB gamut "
          "at constant L and hue (diverged GANs, paper Sec. 7.4)"),
)
SWEEPS_BY_NAME = {s.name: s for s in SWEEPS}
