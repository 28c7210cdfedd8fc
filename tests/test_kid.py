"""KID (colorbench.metrics.kid) against an independent computation: the unbiased MMD^2 of Binkowski et al. 2018
(Eq. 3 with the cubic kernel) written here as a plain numpy double loop over pairs. Tolerance: 1e-9 relative to
the largest kernel sum (float64 matrix products against float64 scalar sums; torchmetrics is not installed here,
so the loop stands in for its KernelInceptionDistance)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from colorbench.metrics.kid import kid_interval, kid_subsets, kid_unbiased
from colorbench.metrics.registry import DISTRIBUTION_METRICS


def _mmd2_double_loop(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(unbiased MMD^2, the largest of the three kernel sums) by explicit loops over pairs."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((np.dot(a, b) / d + 1.0) ** 3)

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n), max(xx, yy, xy)


def test_matches_an_independent_numpy_double_loop():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 6, (23, 12)), rng.uniform(0, 6, (17, 12)) + 0.4  # ReLU6-like features, shifted
    expected, scale = _mmd2_double_loop(x, y)
    got = kid_unbiased(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    expected32, _ = _mmd2_double_loop(x.astype(np.float32).astype(np.float64),
                                      y.astype(np.float32).astype(np.float64))
    assert abs(got - expected32) <= 1e-9 * scale
    assert got > 0 and abs(got - expected) < 1e-3 * abs(expected)  # only float32 input rounding between them


def test_is_unbiased_where_the_plug_in_estimate_is_not():
    """Two sets of 8 drawn from one distribution: the mean of the unbiased estimate over 400 draws is within 4
    standard errors of 0, while the plug-in (V-statistic, diagonals kept) stays clearly above 0."""
    rng = np.random.default_rng(0)
    unbiased, plug_in = [], []
    for _ in range(400):
        x, y = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
        unbiased.append(kid_unbiased(torch.from_numpy(x), torch.from_numpy(y)))
        kxx, kyy, kxy = ((a @ b.T / 5 + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        plug_in.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    standard_error = np.std(unbiased) / math.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 4 * standard_error
    assert np.mean(plug_in) > 10 * np.std(plug_in) / math.sqrt(len(plug_in))


def test_subsets_are_seeded_and_bracket_their_mean():
    rng = np.random.default_rng(1)
    x, y = torch.from_numpy(rng.normal(size=(40, 6))), torch.from_numpy(rng.normal(size=(50, 6)) + 0.5)
    first, again = kid_subsets(x, y, n_subsets=30, seed=4), kid_subsets(x, y, n_subsets=30, seed=4)
    assert first == again and first.subset_size == 20 and first.n_subsets == 30
    assert first.lo <= first.mean <= first.hi and first.std > 0
    assert first.lo < kid_unbiased(x, y) < first.hi
    assert kid_interval(x, y) == (kid_subsets(x, y).lo, kid_subsets(x, y).hi)


def test_too_few_rows_give_nan():
    three = torch.zeros(3, 4)
    assert math.isnan(kid_unbiased(three[:1], three))
    assert math.isnan(kid_subsets(three, three).mean)


def test_registry_row_states_its_features_interval_and_threshold():
    kid, fd = DISTRIBUTION_METRICS["kid_effnet_lite0"], DISTRIBUTION_METRICS["fd_effnet_lite0"]
    assert kid.extractor is fd.extractor and kid.fn is kid_unbiased and kid.interval is kid_interval
    described = kid.describe()
    assert described["direction"] == "lower" and described["min_images"] == 4
    assert described["interval"] == "colorbench.metrics.kid.kid_interval"
    assert fd.describe()["min_images"] == 1281 and "rank-deficient" in str(fd.describe()["min_images_reason"])


@pytest.mark.parametrize("n", [2, 3])
def test_identical_sets_are_not_forced_to_zero(n: int):
    """Two equal sets: the unbiased estimate is the double loop's, not forced to 0 (the registry's range is the
    whole real line for that reason)."""
    x = torch.arange(n * 3, dtype=torch.float64).reshape(n, 3)
    expected, _ = _mmd2_double_loop(x.numpy(), x.numpy())
    assert kid_unbiased(x, x) == pytest.approx(expected, rel=1e-12) and expected != 0
