"""Kernel Inception Distance (Binkowski, Sutherland, Arbel, Gretton 2018, "Demystifying MMD GANs", Sec. 4 and
App. D): the squared maximum mean discrepancy between two feature sets under the cubic polynomial kernel

    k(a, b) = (a . b / d + 1)^3          (d: feature dimension)

estimated without bias (the U-statistic, diagonal terms left out):

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)

Unlike the Frechet distance (colorbench.metrics.distribution), whose covariance estimates are rank-deficient and
biased upwards when N < D + 1, this estimator's expectation is the population MMD^2 at every N >= 2, so values at
different N are comparable and it can be negative when the sets are alike; that makes it the small-N answer on the
same features. Its spread is taken over random subsets as in the paper (there: 100 subsets of 1,000 images); here
the subsets hold at most half of the smaller set, so that they differ from one another when N is small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Subsets drawn for the spread, and the largest subset size (Binkowski et al.: 100 subsets of 1,000 images).
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


def _kernel_sums(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """Sums of the off-diagonal k(x, x), off-diagonal k(y, y) and all k(x, y) terms, float64."""
    d = x.shape[1]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    return (float(k_xx.sum() - k_xx.diagonal().sum()), float(k_yy.sum() - k_yy.diagonal().sum()),
            float(k_xy.sum()))


def _as_float64(features: torch.Tensor) -> torch.Tensor:
    return features.detach().to("cpu", torch.float64)


def kid_unbiased(pred_features: torch.Tensor, target_features: torch.Tensor) -> float:
    """The unbiased MMD^2 estimate (module formula) between two (N, D) feature sets, on all their rows, float64.
    NaN for fewer than 2 rows in either set."""
    x, y = _as_float64(pred_features), _as_float64(target_features)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        return math.nan
    xx, yy, xy = _kernel_sums(x, y)
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


@dataclass(frozen=True)
class KIDEstimate:
    """KID over random subsets: ``mean`` and ``std`` (population) of the subset estimates, their 2.5 and 97.5
    percentiles ``lo``/``hi``, and how many subsets of how many rows gave them."""

    mean: float
    std: float
    lo: float
    hi: float
    n_subsets: int
    subset_size: int


def kid_subsets(
    pred_features: torch.Tensor,
    target_features: torch.Tensor,
    *,
    n_subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> KIDEstimate:
    """KID as Binkowski et al. report it: :func:`kid_unbiased` on ``n_subsets`` subsets drawn without replacement
    (seeded, so the same sets give the same numbers), each of ``min(subset_size, N_min // 2)`` rows of each set.
    All fields NaN when the smaller set has fewer than 4 rows (subsets of 2 are the least the estimator takes)."""
    x, y = _as_float64(pred_features), _as_float64(target_features)
    size = min(subset_size, min(x.shape[0], y.shape[0]) // 2)
    if size < 2:
        return KIDEstimate(math.nan, math.nan, math.nan, math.nan, n_subsets, size)
    generator = torch.Generator().manual_seed(seed)
    values = np.array([kid_unbiased(x[torch.randperm(x.shape[0], generator=generator)[:size]],
                                    y[torch.randperm(y.shape[0], generator=generator)[:size]])
                       for _ in range(n_subsets)])
    lo, hi = np.percentile(values, [2.5, 97.5])
    return KIDEstimate(float(values.mean()), float(values.std()), float(lo), float(hi), n_subsets, size)


def kid_interval(pred_features: torch.Tensor, target_features: torch.Tensor) -> tuple[float, float]:
    """The 95% subset interval (2.5 and 97.5 percentiles) of :func:`kid_subsets` with the paper's defaults."""
    estimate = kid_subsets(pred_features, target_features)
    return estimate.lo, estimate.hi
