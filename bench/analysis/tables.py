"""Statistics over saved records: perturbation curves and sensitivity, rank correlations between metrics,
and the direction-aware leaderboard. Pure functions of CSV rows, so ``bench report`` reruns them cheaply.

Direction: every metric value is first turned into a *goodness* (higher = better colorization) by the
registry's :func:`colorbench.metrics.registry.goodness`; diagnostics (raw colorfulness, channel equality) have none and
are left out of every direction-aware analysis here (:func:`colorbench.metrics.registry.ranked`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from colorbench.core.values import number
from colorbench.metrics.registry import goodness, ranked
from colorbench.study.perturbations import SWEEPS_BY_NAME

#: Metrics left out of correlation and win-rate analyses because they rank images exactly like PSNR does
#: (PSNR is a monotone function of MSE per image), which would count pixel error three times.
RANK_DUPLICATES = ("mse", "mse255")
PSNR_THRESHOLD = 22.0
SSIM_THRESHOLD = 0.9
N_BOOTSTRAP = 1000
N_JACKKNIFE_GROUPS = 20


def column(rows: Sequence[Mapping[str, str]], name: str) -> np.ndarray:
    """A CSV column as floats (empty cells -> NaN)."""
    return np.array([float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows], dtype=np.float64)


def analysed_metrics(names: Sequence[str]) -> list[str]:
    """The metrics direction-aware analyses use: ranked ones (no diagnostics), PSNR's rank duplicates left out."""
    return [n for n in ranked(names) if n not in RANK_DUPLICATES]


# -- perturbation study ------------------------------------------------------------------------------------
def sweep_curves(rows: Sequence[Mapping[str, str]], metric_names: Sequence[str]) -> list[dict[str, object]]:
    """Median and interquartile range of each metric at each strength of each sweep."""
    out = []
    for sweep in dict.fromkeys(r["sweep"] for r in rows):
        subset = [r for r in rows if r["sweep"] == sweep]
        for strength in dict.fromkeys(float(r["strength"]) for r in subset):
            level = [r for r in subset if float(r["strength"]) == strength]
            for name in metric_names:
                values = column(level, name)
                values = values[np.isfinite(values)]
                q25, median, q75 = np.percentile(values, [25, 50, 75]) if values.size else (np.nan,) * 3
                out.append({"sweep": sweep, "strength": strength, "metric": name, "median": median, "q25": q25,
                            "q75": q75, "n": int(values.size)})
    return out


def _paired(rows: Sequence[Mapping[str, str]], sweep: str, strength: float, name: str) -> dict[str, float]:
    return {r["image_id"]: float(r[name]) for r in rows
            if r["sweep"] == sweep and float(r["strength"]) == strength and r.get(name) not in (None, "")}


def discrimination(better: np.ndarray, worse: np.ndarray) -> float:
    """P(goodness of a mildly degraded image > goodness of a more degraded *other* image), ties count half:
    1 = the metric orders quality levels regardless of image content, 0.5 = content drowns quality."""
    if better.size == 0 or worse.size == 0:
        return float("nan")
    u = stats.mannwhitneyu(better, worse, alternative="two-sided").statistic
    return float(u / (better.size * worse.size))


def sweep_sensitivity(rows: Sequence[Mapping[str, str]], metric_names: Sequence[str]) -> list[dict[str, object]]:
    """Each metric's response in each sweep's high-quality regime (mild -> moderate strength).

    ``sensitivity`` = median over images of the paired drop in goodness, divided by the interquartile range
    of goodness across images at the mild strength: how far a typical image moves relative to how much
    images differ from each other at the same quality. ``discrimination`` is the cross-image probability of
    :func:`discrimination`. Both are direction-aware: a metric that calls the degradation an improvement
    gets a negative sensitivity and a discrimination below 0.5.
    """
    out = []
    for sweep_name in dict.fromkeys(r["sweep"] for r in rows):
        mild, moderate = SWEEPS_BY_NAME[sweep_name].regime
        for name in ranked(metric_names):
            before, after = _paired(rows, sweep_name, mild, name), _paired(rows, sweep_name, moderate, name)
            ids = [i for i in before if i in after and np.isfinite(before[i]) and np.isfinite(after[i])]
            if len(ids) < 2:
                continue
            good_before = goodness(name, np.array([before[i] for i in ids]))
            good_after = goodness(name, np.array([after[i] for i in ids]))
            drop = float(np.median(good_before - good_after))
            spread = float(np.subtract(*np.percentile(good_before, [75, 25])))
            if spread > 0:
                sensitivity = drop / spread
            else:
                sensitivity = math.copysign(math.inf, drop) if drop else 0.0
            out.append({"sweep": sweep_name, "metric": name, "from": mild, "to": moderate, "n": len(ids),
                        "median_drop": drop, "iqr_at_from": spread, "sensitivity": float(sensitivity),
                        "discrimination": discrimination(good_before, good_after)})
    return out


# -- correlations over model outputs ---------------------------------------------------------------------------
BANDS = {
    "all": lambda psnr, ssim: np.ones_like(psnr, dtype=bool),
    f"psnr < {PSNR_THRESHOLD:g}": lambda psnr, ssim: psnr < PSNR_THRESHOLD,
    f"psnr >= {PSNR_THRESHOLD:g}": lambda psnr, ssim: psnr >= PSNR_THRESHOLD,
    f"ssim < {SSIM_THRESHOLD:g}": lambda psnr, ssim: ssim < SSIM_THRESHOLD,
    f"ssim >= {SSIM_THRESHOLD:g}": lambda psnr, ssim: ssim >= SSIM_THRESHOLD,
}


def resampled_ranks(codes: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged, as ``scipy.stats.rankdata``) within each row of the resample ``values[idx]``, given
    ``codes``, the values' positions among their sorted distinct values (``np.unique(..., return_inverse=True)``).
    A resample only repeats known values, so counting each distinct value's copies per row replaces the sort:
    rank = copies of smaller values + (copies of this value + 1) / 2, exact in float64; O(n) per row."""
    picked = codes[idx]
    distinct = int(codes.max()) + 1
    offsets = distinct * np.arange(idx.shape[0])[:, None]
    copies = np.bincount((picked + offsets).ravel(), minlength=idx.shape[0] * distinct).reshape(-1, distinct)
    below = np.cumsum(copies, axis=1) - copies
    return np.take_along_axis(below + (copies + 1) / 2, picked, axis=1)


def _spearman_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of Spearman's rho (resampling records, in chunks)."""
    rhos = []
    x_codes, y_codes = np.unique(x, return_inverse=True)[1], np.unique(y, return_inverse=True)[1]
    for _ in range(N_BOOTSTRAP // 100):
        idx = rng.integers(0, x.size, size=(100, x.size))
        rx, ry = resampled_ranks(x_codes, idx), resampled_ranks(y_codes, idx)
        rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
        denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
        rhos.append(np.where(denominator > 0, (rx * ry).sum(axis=1) / np.where(denominator > 0, denominator, 1), 0))
    lo, hi = np.percentile(np.concatenate(rhos), [2.5, 97.5])
    return float(lo), float(hi)


def _kendall_ci(x: np.ndarray, y: np.ndarray, tau: float, rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of Kendall's tau-b from a grouped jackknife (20 groups; normal approximation)."""
    groups = rng.permutation(x.size) % N_JACKKNIFE_GROUPS
    leave_out = np.array([stats.kendalltau(x[groups != g], y[groups != g]).statistic
                          for g in range(N_JACKKNIFE_GROUPS)])
    k = N_JACKKNIFE_GROUPS
    se = np.sqrt((k - 1) / k * np.sum((leave_out - leave_out.mean()) ** 2))
    return float(tau - 1.96 * se), float(tau + 1.96 * se)


def rank_correlations(
    rows: Sequence[Mapping[str, str]], metric_names: Sequence[str], *, seed: int = 0, min_records: int = 10
) -> list[dict[str, object]]:
    """Spearman and Kendall correlations (with 95% intervals) between every pair of metrics over per-image
    records, overall and within the paper's PSNR and SSIM bands; direction-aware (goodness), so a positive
    value means the two metrics agree on which colorization is better."""
    names = analysed_metrics(metric_names)
    psnr, ssim = column(rows, "psnr"), column(rows, "ssim")
    good = {n: goodness(n, column(rows, n)) for n in names}
    out = []
    rng = np.random.default_rng(seed)
    for band, select in BANDS.items():
        in_band = select(psnr, ssim)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                keep = in_band & np.isfinite(good[a]) & np.isfinite(good[b])
                x, y = good[a][keep], good[b][keep]
                row: dict[str, object] = {"band": band, "metric_a": a, "metric_b": b, "n": int(keep.sum())}
                if keep.sum() >= min_records and np.ptp(x) > 0 and np.ptp(y) > 0:
                    rho, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
                    row.update(spearman=float(rho), kendall=float(tau))
                    row["spearman_lo"], row["spearman_hi"] = _spearman_ci(x, y, rng)
                    row["kendall_lo"], row["kendall_hi"] = _kendall_ci(x, y, float(tau), rng)
                out.append(row)
    return out


# -- direction-aware leaderboard -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WinRates:
    """Mean win rate of each model over metrics, opponents and images, with bootstrap 95% intervals, and
    each model's rank under every single metric."""

    rows: list[dict[str, object]]
    metric_ranks: dict[str, dict[str, int]]  # metric -> model -> rank (1 = best)


def win_rates(
    rows: Sequence[Mapping[str, str]], metric_names: Sequence[str], models: Sequence[str], *, seed: int = 0
) -> WinRates:
    """For every metric and pair of models, the share of images on which one beats the other (ties half);
    a model's win rate averages that over metrics and opponents. Images are resampled for the intervals."""
    names = analysed_metrics(metric_names)
    images = sorted({r["image_id"] for r in rows if r["model"] in models})
    index = {image: k for k, image in enumerate(images)}
    good = np.full((len(names), len(models), len(images)), np.nan)
    for r in rows:
        if r["model"] in models:
            for k, name in enumerate(names):
                if r.get(name) not in (None, ""):
                    good[k, models.index(r["model"]), index[r["image_id"]]] = float(r[name])
    for k, name in enumerate(names):
        good[k] = goodness(name, good[k])
    a, b = good[:, :, None, :], good[:, None, :, :]
    valid = np.isfinite(a) & np.isfinite(b)
    wins = np.where(valid, (a > b) + 0.5 * (a == b), np.nan)  # (metric, model, opponent, image)
    for m in range(len(models)):
        wins[:, m, m, :] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: metrics n/a for an image
        per_image = np.nanmean(wins, axis=(0, 2))  # (model, image)
        rng = np.random.default_rng(seed)
        boot = np.nanmean(per_image[:, rng.integers(0, len(images), size=(N_BOOTSTRAP, len(images)))], axis=2)
        means = np.nanmean(good, axis=2)  # (metric, model)
    table = []
    for m, model in enumerate(models):
        lo, hi = np.nanpercentile(boot[m], [2.5, 97.5])
        table.append({"model": model, "win_rate": float(np.nanmean(per_image[m])), "win_rate_lo": float(lo),
                      "win_rate_hi": float(hi)})
    table.sort(key=lambda r: -number(r["win_rate"]))
    ranks = {name: {model: int(r) for model, r in zip(models, stats.rankdata(-np.nan_to_num(means[k], nan=-np.inf),
                                                                             method="min"), strict=True)}
             for k, name in enumerate(names)}
    return WinRates(table, ranks)
