"""From per-image records to per-model tables: means with percentile-bootstrap 95% intervals."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from colorbench.core.values import number

N_RESAMPLES = 1000
LEVEL = 0.95


def bootstrap_means(values: np.ndarray, *, seed: int, n_resamples: int = N_RESAMPLES) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of the finite entries of ``values``."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(n_resamples, np.nan)
    rng = np.random.default_rng(seed)
    return finite[rng.integers(0, finite.size, size=(n_resamples, finite.size))].mean(axis=1)


def bootstrap(statistic: Callable[..., np.floating] | Callable[..., np.ndarray], *samples: np.ndarray, seed: int,
              level: float = LEVEL) -> tuple[float, float, float]:
    """``statistic`` of paired samples (one entry per image) and its percentile-bootstrap ``level`` (95%) interval
    over images (scipy.stats.bootstrap); NaN bounds with fewer than two images, the value itself when no sample
    varies."""
    value = float(statistic(*samples))
    if samples[0].size < 2:
        return value, float("nan"), float("nan")
    if all(np.ptp(s) == 0 for s in samples):
        return value, value, value
    result = stats.bootstrap(samples, statistic, paired=True, vectorized=True, confidence_level=level,
                             n_resamples=N_RESAMPLES, method="percentile", rng=np.random.default_rng(seed))
    return value, float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_and_interval(values: Sequence[float], *, seed: int, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of the finite values and the percentile-bootstrap interval of that mean."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = bootstrap_means(array, seed=seed)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(finite.mean()), float(lo), float(hi)


def leaderboard(
    records_by_model: Mapping[str, Sequence[Mapping[str, object]]], metric_names: Sequence[str], *, seed: int
) -> list[dict[str, object]]:
    """One row per model: n_images and, for each metric, its mean and 95% bootstrap bounds."""
    rows = []
    for model, records in records_by_model.items():
        row: dict[str, object] = {"model": model, "n_images": len(records)}
        for name in metric_names:
            mean, lo, hi = mean_and_interval([number(r[name]) for r in records], seed=seed)
            row.update({name: mean, f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    return rows
