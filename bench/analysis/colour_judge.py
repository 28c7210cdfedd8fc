"""A proxy judge of colour plausibility for claim C2 (rule ``c2@5``): a class-conditional colour likelihood
fitted on the training split (colorbench.study.class_colours), which never sees the evaluation image's truth;
only its COCO instance masks and class labels, which a colorizer is not given either but which say nothing of
colour. A proxy, not a person: it stands in for "correct object colours" (paper Sec. 1, 7) and must pass the
claim's gate (colorbench.claims.c2gate) before it is used.

Score of an output: the mean, over the image's large instances of the classes with a narrow natural hue (the
twins' classes, colorbench.study.c2_arms.narrow: the objects whose colour can be right or wrong), of

    log p(mean ab of the instance in the output | class),

with p(. | class) a Gaussian kernel density estimate (isotropic, bandwidth KDE_BANDWIDTH ab units) over the
mean ab vectors of the class's large train instances, grey ones included. Instance means rather than pixels:
near-grey ab is the most frequent *pixel* colour of most classes (the pull towards grey that the paper's
Sec. 7.4 describes), so per-pixel scores favour grey (a per-pixel ratio to the all-class ab histogram, tried
first, preferred the truth to grey in only 0.48 [0.36, 0.60] of coco-mini's val images), while a grey banana is
far from every banana of the training split. The classes with a broad hue are left out: their instance means
crowd around grey (a person's clothes average out), so the density there favours grey as well (on coco-mini,
scoring every class preferred the truth to grey in only 0.36 [0.25, 0.47] of the images).

The judge's classification sibling (an ImageNet classifier's top-k hitting the image's COCO labels) is not
built: ImageNet-1k has no class for most COCO categories (person, dining table, chair, cup, ...), and a map for
the rest would be our own unvalidated choice; the claims table says so instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from colorbench.study.c2_arms import narrow
from colorbench.study.class_colours import ClassColours

#: Kernel width in ab units: about 4 JND (2.3, Sharma 2003), so colours a person would call the same share mass.
KDE_BANDWIDTH = 10.0
NAME = "colour_likelihood"


def instance_log_density(colour: np.ndarray, means: np.ndarray) -> float:
    """log of the KDE density (module docstring) at the ab vector ``colour`` (2,) of the class means (N, 2)."""
    squared = ((means - colour) ** 2).sum(axis=1) / KDE_BANDWIDTH**2
    log_kernels = -0.5 * squared - math.log(2 * math.pi * KDE_BANDWIDTH**2)
    peak = float(log_kernels.max())
    return peak + math.log(float(np.exp(log_kernels - peak).mean()))


def colour_likelihood(ab: torch.Tensor, segments: torch.Tensor, categories: Mapping[int, str],
                      fit: ClassColours, rules: Mapping[str, float]) -> float:
    """The judge's score (module docstring) of one output's ab (2, H, W) on the image's label map (H, W), with the
    arm parameters ``rules`` of the C2 rule; NaN when no large instance belongs to a narrow class."""
    found = []
    for label, category in categories.items():
        mask = segments == label
        if narrow(fit, category, rules) and float(mask.double().mean()) >= rules["large_area"]:
            colour = ab[:, mask].double().mean(dim=1).numpy()
            found.append(instance_log_density(colour, np.array(fit.means[category], dtype=np.float64)))
    return float(np.mean(found)) if found else math.nan
