"""The statistics the claims rules decide with, kept here so that no change elsewhere (colorbench.core.aggregate,
the metric registry) can move an old version's verdict: the golden files of tests/claims_golden/ pin every
function below, and a change of one is a change of every rule that uses it (a new rule id, registry.py).

All intervals are percentile-bootstrap ``LEVEL`` (95%) intervals over ``N_RESAMPLES`` resamples drawn by numpy's
default generator seeded with the run's seed, so a verdict is reproducible from the run folder alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

N_RESAMPLES = 1000
LEVEL = 0.95
#: (value, lower bound, upper bound).
Interval = tuple[float, float, float]
#: A vectorised statistic of paired samples (scipy.stats.bootstrap calls it with an ``axis``); numpy's scalar and
#: array results alike.
Statistic = Callable[..., Any]
#: Goodness (higher is better) of the metrics the rules compare between arms: sign of the value for ``higher`` and
#: ``lower`` metrics; ``segment_chroma_ratio`` has ideal 1 and is scored -|log r| (colorbench.metrics.registry).
_SIGN = {"psnr": 1.0, "ssim": 1.0, "vivid_recall": 1.0, "deltae2000": -1.0}
IDEAL_RATIO = "segment_chroma_ratio"


def _tails(level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [tail, 100 - tail]


def resampled_mean(values: Sequence[float], *, seed: int) -> Interval:
    """Mean of the finite ``values`` and the percentile interval of the means of resamples (with replacement)."""
    kept = np.asarray(values, dtype=np.float64)
    kept = kept[np.isfinite(kept)]
    if not kept.size:
        return math.nan, math.nan, math.nan
    draws = np.random.default_rng(seed).integers(0, kept.size, size=(N_RESAMPLES, kept.size))
    lo, hi = np.percentile(kept[draws].mean(axis=1), _tails(LEVEL))
    return float(kept.mean()), float(lo), float(hi)


def paired_bootstrap(statistic: Statistic, *samples: np.ndarray, seed: int) -> Interval:
    """``statistic`` of samples paired by image and its percentile interval over images (scipy.stats.bootstrap);
    NaN bounds below two images, the value itself as both bounds when no sample varies."""
    value = float(statistic(*samples))
    if samples[0].size < 2:
        return value, math.nan, math.nan
    if not any(np.ptp(s) for s in samples):
        return value, value, value
    found = stats.bootstrap(samples, statistic, paired=True, vectorized=True, confidence_level=LEVEL,
                            n_resamples=N_RESAMPLES, method="percentile", rng=np.random.default_rng(seed))
    return value, float(found.confidence_interval.low), float(found.confidence_interval.high)


def crossed_bootstrap(differences: np.ndarray, *, seed: int, level: float = LEVEL) -> Interval:
    """Mean of a (seed, image) table of paired differences and a ``level`` interval from a two-way crossed
    bootstrap: seeds and images are resampled independently (with replacement), so the interval carries the
    variance between seeds as well as between images. With one seed it resamples images only. NaN cells are
    skipped."""
    n_seeds, n_images = differences.shape
    mean = float(np.nanmean(differences))
    if n_images < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(N_RESAMPLES, n_seeds))
    images = rng.integers(0, n_images, size=(N_RESAMPLES, n_images))
    means = np.array([np.nanmean(differences[s][:, i]) for s, i in zip(seeds, images, strict=True)])
    lo, hi = np.nanpercentile(means, _tails(level))
    return mean, float(lo), float(hi)


def goodness(metric: str, values: np.ndarray) -> np.ndarray:
    """Higher-is-better scores of one metric's values (NaN stays NaN), for the metrics in ``_SIGN`` and
    ``segment_chroma_ratio``; any other metric is a KeyError (a rule that scores it is new logic)."""
    values = np.asarray(values, dtype=np.float64)
    if metric == IDEAL_RATIO:
        with np.errstate(divide="ignore"):
            return -np.abs(np.log(values / 1.0))
    return _SIGN[metric] * values


def best_worst_gap(training: Mapping[str, object]) -> float:
    """|validation PSNR of the best epoch - that of the worst| (epochs chosen by the trainer's selection metric)."""
    best, worst = training.get("best_epoch") or {}, training.get("worst_epoch") or {}
    if "val_psnr" not in best or "val_psnr" not in worst:  # type: ignore[operator]
        return float("nan")
    return abs(float(best["val_psnr"]) - float(worst["val_psnr"]))  # type: ignore[index]
