"""A proxy judge of colour plausibility for claim C2 (rule ``c2@5``): a class-conditional colour likelihood
fitted on the training split (colorbench.study.class_colours), which never sees the evaluation image's truth;
only its COCO instance masks and class labels, which a colorizer is not given either but which say nothing of
colour. A proxy, not a person: it stands in for "correct object colours" (paper Sec. 1, 7) and must pass the
claim's gate (colorbench.claims.c2gate) before it is used.

Score of an output: the mean over the pixels of the image's labelled instances of

    log p(ab | class) - log p(ab),

with p(ab | class) the class's ab histogram and p(ab) the histogram of every labelled train pixel (the same
HIST_BINS x HIST_BINS bins), each smoothed by PSEUDO_COUNT added to every bin (Laplace smoothing) and
normalised. The ratio to the all-class histogram, rather than the plain log-likelihood, keeps grey from
winning by default: near-grey ab is the most frequent colour of most classes (the pull towards grey that the
paper's Sec. 7.4 describes), so a plain likelihood prefers a grey output to the truth; the ratio rewards
colours typical of *this* class more than of objects in general, and is about 0 for grey.

The judge's classification sibling (an ImageNet classifier's top-k hitting the image's COCO labels) is not
built: ImageNet-1k has no class for most COCO categories (person, dining table, chair, cup, ...), and a map for
the rest would be our own unvalidated choice; the claims table says so instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from colorbench.study.class_colours import HIST_BINS, HIST_RANGE, ClassColours

PSEUDO_COUNT = 1.0
NAME = "colour_likelihood"
DESCRIPTION = ("proxy: class-conditional colour likelihood ratio log p(ab|class) - log p(ab), ab histograms of the "
               "training split's COCO instances")


def _log_density(counts: np.ndarray) -> np.ndarray:
    smoothed = counts + PSEUDO_COUNT
    return np.log(smoothed / smoothed.sum())


def colour_likelihood(ab: torch.Tensor, segments: torch.Tensor, categories: Mapping[int, str],
                      fit: ClassColours) -> float:
    """The judge's score (module docstring) of one output's ab (2, H, W) on the image's label map (H, W); NaN
    when no labelled pixel belongs to a class the training split saw."""
    low, high = HIST_RANGE
    index = ((ab.double() - low) / (high - low) * HIST_BINS).floor().clamp(0, HIST_BINS - 1).long()
    background = _log_density(fit.background)
    total, pixels = 0.0, 0
    for label, category in categories.items():
        if category not in fit.histogram:
            continue
        mask = segments == label
        if not bool(mask.any()):
            continue
        a, b = index[0][mask].numpy(), index[1][mask].numpy()
        ratio = _log_density(fit.histogram[category])[a, b] - background[a, b]
        total += float(ratio.sum())
        pixels += int(mask.sum())
    return total / pixels if pixels else math.nan
