"""Ranking bootstrap resamples, the inner loop of the rank-correlation intervals (colorbench.analysis.tables): counting
copies of distinct values (``resampled_ranks``) against sorting each resample (``scipy.stats.rankdata``), on the
same 100 resamples of 15,000 records (5,000 images x 3 models). Under the suite's --benchmark-disable each case runs
once and the two results are compared; to measure:

    python -m pytest tests/benchmarks/test_bootstrap_ranks.py --benchmark-enable --benchmark-columns=mean,rounds
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from colorbench.analysis.tables import resampled_ranks

RECORDS = 15_000
RESAMPLES = 100


@pytest.fixture(scope="module")
def resample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(30.0, 4.0, RECORDS), 3)  # PSNR-like, with ties as in CSV records
    return values, rng.integers(0, RECORDS, size=(RESAMPLES, RECORDS))


@pytest.fixture(scope="module")
def by_sorting(resample) -> np.ndarray:
    values, idx = resample
    return stats.rankdata(values[idx], axis=1)


def test_rank_by_sorting(benchmark, resample):
    values, idx = resample
    benchmark(stats.rankdata, values[idx], axis=1)


def test_rank_by_counting(benchmark, resample, by_sorting):
    values, idx = resample
    codes = np.unique(values, return_inverse=True)[1]
    np.testing.assert_array_equal(benchmark(resampled_ranks, codes, idx), by_sorting)
