"""The arms of claim C2 under rule ``c2@5``: outputs a colorizer could produce from L alone, and the twins that
test a judge (issue 21). Every arm keeps the truth's L and is brought into the sRGB gamut at constant L and hue
(colorbench.study.recolour.gamut_map_ab); the class statistics come from the training split
(colorbench.study.class_colours), never from the evaluation image's own colours except where stated.

- Dull arms: grey (ab = 0), baseline0's output and every model's own output at half chroma (:func:`half_chroma`).
- Alternatives: every credible model's output, and :func:`class_recolouring`: every *large* instance of the
  image (covering >= ``large_area``) of a *selected* class (at least ``min_class_instances`` large train
  instances with a hue) with a hue (mean chroma >= MIN_HUE_CHROMA) rotated, chroma kept, to a hue drawn at random
  from that class's train hues: what a colorizer that knows the class but not this object could output.
- Twins (:func:`twins`), for every large instance of a *narrow* class (selected, and circular hue spread of its
  train instances <= ``narrow_hue_sd_deg``): the instance's pixels shifted by one ab vector d towards the mean
  colour of a train instance of the class (the farthest from this instance's mean among those within
  ``twin_inside_sd`` spreads of the class's mean hue), and by the same vector turned by the angle that takes the
  instance's mean colour farthest in hue from the class (at least ``twin_outside_sd`` spreads and
  ``twin_outside_deg`` degrees away, chroma >= MIN_HUE_CHROMA). A shift (rather than a hue rotation about the
  truth) gives both twins the same error |d| at every pixel before gamut mapping, so they differ in plausibility
  and (up to the gamut and 8-bit rounding) not in fidelity; shifts shorter than ``twin_min_shift`` make no twin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from colorbench.data.color import rgb_to_lab
from colorbench.study.class_colours import ClassColours
from colorbench.study.perturbations import rotate_ab
from colorbench.study.recolour import MIN_HUE_CHROMA, hue_difference, mean_hue
from colorbench.study.run import to_rgb8

#: The arm parameters a C2 rule fixes (its manifest's thresholds of the same names).
ARM_PARAMETERS = ("large_area", "min_class_instances", "narrow_hue_sd_deg", "twin_inside_sd", "twin_outside_sd",
                  "twin_outside_deg", "twin_min_shift", "recolourings")
#: The turns of the plausible shift tried for the implausible twin, in degrees.
TURNS = np.arange(5, 360, 5)


@dataclass(frozen=True)
class Instance:
    """A large instance of a selected class: its segment label, class and mask (H, W)."""

    label: int
    category: str
    mask: torch.Tensor


def selected(fit: ClassColours, category: str, rules: Mapping[str, float]) -> bool:
    return len(fit.hues.get(category, [])) >= rules["min_class_instances"]


def narrow(fit: ClassColours, category: str, rules: Mapping[str, float]) -> bool:
    return selected(fit, category, rules) and fit.circular(category)[1] <= rules["narrow_hue_sd_deg"]


def large_instances(segments: torch.Tensor, categories: Mapping[int, str], fit: ClassColours,
                    rules: Mapping[str, float]) -> list[Instance]:
    """The image's instances ((H, W) labels) covering >= large_area whose class is selected, in label order."""
    found = []
    for label, category in sorted(categories.items()):
        mask = segments == label
        if float(mask.double().mean()) >= rules["large_area"] and selected(fit, category, rules):
            found.append(Instance(label, category, mask))
    return found


def half_chroma(rgb8: torch.Tensor) -> torch.Tensor:
    """An 8-bit RGB output (B, 3, H, W) with its own ab halved at its own L: the dull version of a model."""
    lab = rgb_to_lab(rgb8.float() / 255)
    return to_rgb8(lab[:, :1], lab[:, 1:] * 0.5)


def class_recolouring(lab: torch.Tensor, instances: list[Instance], fit: ClassColours,
                      rng: np.random.Generator) -> tuple[torch.Tensor, str] | None:
    """ab (2, H, W) of one class-conditioned recolouring of the truth's Lab (3, H, W) and what it did; None when
    no instance has a hue."""
    ab, done = lab[1:].clone(), []
    for instance in instances:
        own, chroma = mean_hue(lab[1:], instance.mask)
        if chroma < MIN_HUE_CHROMA:
            continue
        drawn = float(rng.choice(fit.hues[instance.category]))
        turn = hue_difference(drawn, own)
        ab[:, instance.mask] = rotate_ab(lab[None, 1:], turn)[0][:, instance.mask]
        done.append(f"{instance.category} {turn:+.0f} deg")
    return (ab, "; ".join(done)) if done else None


def _hue(vector: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(vector[..., 1], vector[..., 0]))


def twin_shifts(own: np.ndarray, fit: ClassColours, category: str,
                rules: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(plausible shift d (2,), candidate implausible shifts (K, 2): d turned by every TURNS angle that puts the
    instance's mean colour outside the class) for an instance with mean ab ``own``; None when the rule of the
    module docstring makes no twin."""
    centre, spread = fit.circular(category)
    means = np.array(fit.means[category], dtype=np.float64)
    means = means[np.linalg.norm(means, axis=1) >= MIN_HUE_CHROMA]
    inside = np.abs([hue_difference(h, centre) for h in _hue(means)]) <= rules["twin_inside_sd"] * spread
    if not inside.any():
        return None
    shifts = means[inside] - own
    plausible = shifts[int(np.argmax(np.linalg.norm(shifts, axis=1)))]
    if np.linalg.norm(plausible) < rules["twin_min_shift"]:
        return None
    angles = np.radians(TURNS)[:, None]
    turned = np.concatenate((plausible[0] * np.cos(angles) - plausible[1] * np.sin(angles),
                             plausible[0] * np.sin(angles) + plausible[1] * np.cos(angles)), axis=1)
    colours = own + turned
    away = np.abs([hue_difference(h, centre) for h in _hue(colours)])
    outside = (away >= max(rules["twin_outside_sd"] * spread, rules["twin_outside_deg"])) & (
        np.linalg.norm(colours, axis=1) >= MIN_HUE_CHROMA)
    return (plausible, turned[outside]) if outside.any() else None


def _shifted(lab: torch.Tensor, mask: torch.Tensor, shifts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(ab (K, 2, H, W) with the instance shifted by each of ``shifts`` (K, 2), their displayed 8-bit RGB)."""
    ab = lab[1:].expand(len(shifts), -1, -1, -1).clone()
    ab += torch.tensor(shifts, dtype=ab.dtype)[:, :, None, None] * mask
    return ab, to_rgb8(lab[None, :1].expand(len(shifts), -1, -1, -1), ab)


def twins(lab: torch.Tensor, instances: list[Instance], fit: ClassColours,
          rules: Mapping[str, float]) -> list[tuple[str, torch.Tensor, torch.Tensor, str]]:
    """(instance key, plausible ab, implausible ab, detail) for every large instance of a narrow class of the
    truth's Lab (3, H, W) that gets a twin; each ab is (2, H, W), changed on that instance only. Of the candidate
    implausible shifts, the one whose displayed output (after gamut mapping and 8-bit rounding) has the RGB mean
    squared error against the truth closest to the plausible twin's is taken."""
    out = []
    truth = to_rgb8(lab[None, :1], lab[None, 1:]).double()
    for instance in instances:
        if not narrow(fit, instance.category, rules):
            continue
        own = lab[1:, instance.mask].double().mean(dim=1).numpy()
        found = twin_shifts(own, fit, instance.category, rules)
        if found is None:
            continue
        plausible, candidates = found
        ab, shown = _shifted(lab, instance.mask, np.concatenate((plausible[None], candidates)))
        error = (shown.double() - truth).pow(2).mean(dim=(1, 2, 3))
        best = 1 + int((error[1:] - error[0]).abs().argmin())
        centre = fit.circular(instance.category)[0]
        away = abs(hue_difference(float(_hue(own + candidates[best - 1])), centre))
        detail = (f"{instance.category}: shift {math.hypot(*plausible):.1f} ab units, implausible hue {away:.0f} deg "
                  f"from the class's {centre:.0f}")
        out.append((f"{instance.label}", ab[0], ab[best], detail))
    return out
