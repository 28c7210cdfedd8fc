"""Recolourings for the paired saturation study (claim C2): outputs that differ from the ground truth in a
plausible way, and the gamut mapping that keeps the lightness of every study variant.

The paper (Sec. 1 and 7) says that above SSIM 0.9 / PSNR 22 dB PSNR and SSIM stop telling good colorizations
from dull ones. Tested within an image, that asks whether PSNR/SSIM prefer a dull output (grey, desaturated)
to a recolouring that is plausible but not the truth. Two such recolourings, both on the input L:

- ``object_hue_plausible``: the most vivid object (the segment of :func:`vivid_object_masks`) rotated in the ab
  plane, so every pixel keeps its chroma, to a hue that the same COCO class takes elsewhere in the study's
  images. Rule (ours, data-driven): the class's *hue pool* holds the mean-ab hue angle of every instance of the
  class in the other study images that covers at least MIN_OBJECT_AREA of its image and whose mean ab vector
  has chroma >= MIN_HUE_CHROMA; the target is the pool hue farthest (in angle) from the object's own, i.e. the
  largest change that COCO photographs show for that class. Without a class (SLIC segments) or with an empty
  pool the object is rotated by FALLBACK_HUE_SHIFT degrees, a moderate shift (our choice: the mild strength of
  the ``object_hue`` sweep, which moves most hues only to a neighbouring hue name, e.g. red to orange).
  Objects whose mean chroma is below MIN_HUE_CHROMA have no hue to change and get no variant.
- ``colour_transfer``: Reinhard et al. (2001) statistics transfer restricted to a and b: each channel is
  standardised and given the mean and standard deviation of a *donor*, the nearest other study image by a
  tiny-image descriptor of its lightness (Torralba, Fergus, Freeman 2008: the L channel area-averaged to
  TINY_SIZE x TINY_SIZE, mean removed, unit norm; Euclidean distance; ties go to the earlier image in split
  order). The donor is chosen from L alone, what a colorizer sees.

Every variant is brought into the sRGB gamut by :func:`gamut_map_ab`: per pixel the chroma is scaled down at
constant L and hue until the colour is displayable, instead of clipping RGB channels, which would change L.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from colorbench.data.color import lab_to_linear_rgb
from colorbench.study.perturbations import MIN_OBJECT_AREA, rotate_ab

#: A hue angle is only meaningful for a mean ab vector at least this long (Lab chroma units).
MIN_HUE_CHROMA = 10.0
FALLBACK_HUE_SHIFT = 30.0
TINY_SIZE = 16
#: Linear-RGB overshoot still counted as inside the sRGB gamut (float32 rounding of in-gamut colours; 1e-4 in
#: linear RGB is at most 0.3 of an 8-bit level after encoding).
GAMUT_TOLERANCE = 1e-4
GAMUT_BISECTION_STEPS = 8


def in_srgb_gamut(lab: torch.Tensor) -> torch.Tensor:
    """Per pixel (..., 1, H, W), whether the Lab colour is displayable in sRGB without clipping: Z >= 0 and every
    linear RGB channel within [0, 1] (up to GAMUT_TOLERANCE)."""
    L, b = lab.narrow(-3, 0, 1), lab.narrow(-3, 2, 1)
    linear = lab_to_linear_rgb(lab)
    in_range = ((linear >= -GAMUT_TOLERANCE) & (linear <= 1 + GAMUT_TOLERANCE)).all(dim=-3, keepdim=True)
    return in_range & ((L + 16) / 116 - b / 200 >= 0)


def gamut_map_ab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """ab (B, 2, H, W) scaled per pixel by the largest factor s in [0, 1] (bisection to 2^-8, under 0.5 chroma
    units) for which (L, s ab) is inside the sRGB gamut: lightness and hue kept, chroma reduced only where the
    colour cannot be displayed. Only the pixels outside the gamut are searched."""
    outside = ~in_srgb_gamut(torch.cat((L, ab), dim=1))[:, 0]
    if not bool(outside.any()):
        return ab
    pixels = torch.cat((L, ab), dim=1).permute(0, 2, 3, 1)[outside][:, :, None, None]  # (N, 3, 1, 1)
    low, high = torch.zeros_like(pixels[:, :1]), torch.ones_like(pixels[:, :1])
    for _ in range(GAMUT_BISECTION_STEPS):
        middle = (low + high) / 2
        fits = in_srgb_gamut(torch.cat((pixels[:, :1], pixels[:, 1:] * middle), dim=1))
        low, high = torch.where(fits, middle, low), torch.where(fits, high, middle)
    mapped = ab.permute(0, 2, 3, 1).clone()
    mapped[outside] = pixels[:, 1:, 0, 0] * low[:, :, 0, 0]
    return mapped.permute(0, 3, 1, 2)


def ab_statistics(ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel mean and (population) standard deviation of ab, each (B, 2, 1, 1)."""
    return ab.mean(dim=(2, 3), keepdim=True), ab.std(dim=(2, 3), keepdim=True, correction=0)


def transfer_ab(ab: torch.Tensor, donor_mean: torch.Tensor, donor_std: torch.Tensor) -> torch.Tensor:
    """Reinhard-style transfer on a and b: (ab - mean) / std * donor_std + donor_mean, per image and channel.
    A channel without spread (a grey image) takes the donor's mean."""
    mean, std = ab_statistics(ab)
    return (ab - mean) / std.clamp_min(1e-6) * donor_std + donor_mean


def tiny_image_features(L: torch.Tensor) -> torch.Tensor:
    """The donor descriptor: L (B, 1, H, W) area-averaged to TINY_SIZE^2, mean removed, unit norm; (B, D)."""
    tiny = F.adaptive_avg_pool2d(L.double(), TINY_SIZE).flatten(1)
    tiny = tiny - tiny.mean(dim=1, keepdim=True)
    return tiny / tiny.norm(dim=1, keepdim=True).clamp_min(1e-12)


def nearest_donors(features: torch.Tensor) -> list[int]:
    """For each row, the index of the nearest *other* row (Euclidean); ties go to the lower index."""
    if len(features) < 2:
        return [-1] * len(features)
    distance = torch.cdist(features, features)
    distance.fill_diagonal_(math.inf)
    return [int(i) for i in distance.argmin(dim=1)]


def mean_hue(ab: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(hue angle in degrees, chroma) of the mean ab vector of one image's (2, H, W) pixels under ``mask``."""
    mean = ab[:, mask].double().mean(dim=1)
    return math.degrees(math.atan2(float(mean[1]), float(mean[0]))), float(mean.norm())


def hue_difference(to: float, start: float) -> float:
    """Signed smallest rotation (degrees, in (-180, 180]) taking hue ``start`` to hue ``to``."""
    delta = (to - start) % 360.0
    return delta - 360.0 if delta > 180.0 else delta


@dataclass(frozen=True)
class ObjectInstance:
    """A segment usable in a class's hue pool: its image, class name and mean-ab hue."""

    image_id: str
    category: str
    hue: float


def segment_instances(
    image_id: str, ab: torch.Tensor, segments: torch.Tensor, categories: Mapping[int, str]
) -> list[ObjectInstance]:
    """The segments of one image ((2, H, W) ab, (H, W) labels) that qualify for a hue pool."""
    found = []
    for label, category in categories.items():
        mask = segments == label
        if mask.sum() >= MIN_OBJECT_AREA * mask.numel():
            hue, strength = mean_hue(ab, mask)
            if strength >= MIN_HUE_CHROMA:
                found.append(ObjectInstance(image_id, category, hue))
    return found


@dataclass(frozen=True)
class HueChange:
    """How one image's object is recoloured: the rotation and the rule that chose it (for the records)."""

    degrees: float
    detail: str


def plausible_hue_change(
    image_id: str, own: tuple[float, float] | None, category: str | None, pool: Sequence[ObjectInstance]
) -> HueChange | None:
    """The rotation of the module docstring's rule for one object, given its :func:`mean_hue` (``own``, None
    without an object); None when the object has no hue (mean chroma below MIN_HUE_CHROMA)."""
    if own is None or own[1] < MIN_HUE_CHROMA:
        return None
    hue = own[0]
    candidates = [o for o in pool if o.category == category and o.image_id != image_id] if category else []
    if not candidates:
        why = f"class {category}: no other instance" if category else "no class"
        return HueChange(FALLBACK_HUE_SHIFT, f"{why}; fallback shift {FALLBACK_HUE_SHIFT:+g} deg")
    donor = max(candidates, key=lambda o: abs(hue_difference(o.hue, hue)))
    degrees = hue_difference(donor.hue, hue)
    return HueChange(degrees, f"class {category}: hue of image {donor.image_id} ({len(candidates)} in pool), "
                              f"{degrees:+.0f} deg")


def recolour_object(ab: torch.Tensor, mask: torch.Tensor, degrees: float) -> torch.Tensor:
    """ab (B, 2, H, W) with the pixels under ``mask`` (B, 1, H, W) rotated by ``degrees`` (chroma kept)."""
    return torch.where(mask, rotate_ab(ab, degrees), ab)
