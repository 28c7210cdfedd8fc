"""The divergence rule of adversarial trainings (claim C5; paper Sec. 7.2): the critic wins while the generator's
adversarial loss climbs, tested on epoch means with a bounded false-alarm rate (tests/test_train.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats


def divergence_window(n_epochs: int, min_points: int) -> int:
    """Length of the trailing windows the divergence rule tests: half the epochs, at least ``min_points``."""
    return max(min_points, math.ceil(n_epochs / 2))


def trend_pvalue(series: Sequence[float], alternative: Literal["greater", "less"]) -> float:
    """One-sided p-value of Kendall's tau between epoch order and ``series`` (Mann-Kendall trend test; exact
    for short windows without ties). ``alternative``: "greater" (rising) or "less" (falling). NaN -> 1."""
    values = np.asarray(series, dtype=float)
    if not np.isfinite(values).all():
        return 1.0
    p = stats.kendalltau(np.arange(len(values)), values, alternative=alternative).pvalue
    return 1.0 if math.isnan(p) else float(p)


def detect_divergence(generator_adv: Sequence[float], critic: Sequence[float], min_points: int = 5,
                      false_positive_bound: float = 0.01) -> dict[str, object]:
    """The paper's divergence pattern (claim C5): the critic wins and the generator's loss climbs.

    Evaluation points are the epoch means of the generator's adversarial term and of the critic's loss (without
    gradient penalty). Over every trailing window of W = max(``min_points``, ceil(n / 2)) consecutive epochs
    (k = n - W + 1 windows), a one-sided Kendall trend test asks whether the generator term rises and another
    whether the critic loss falls; the run is flagged at the last epoch of the first window where both p-values
    are at most a = sqrt(bound / k). On i.i.d. noise the two series are independent, so each window fires with
    probability at most a^2 and the whole rule, by the union bound, at most ``false_positive_bound``
    (tests/test_train.py measures the rate on simulated noise). Fewer than ``min_points`` epochs: never flagged.
    Returns ``diverged``, ``epoch`` (1-based, or None), ``window``, the per-test level, the rule, the p-values of
    the flagged (or last) window and the two series as evidence.
    """
    n = len(generator_adv)
    window = divergence_window(n, min_points)
    windows = n - window + 1
    level = math.sqrt(false_positive_bound / windows) if windows > 0 else 0.0
    found, p_rise, p_fall = None, None, None
    for end in range(window, n + 1):
        p_rise = trend_pvalue(generator_adv[end - window:end], "greater")
        p_fall = trend_pvalue(critic[end - window:end], "less")
        if p_rise <= level and p_fall <= level:
            found = end
            break
    return {"diverged": found is not None, "epoch": found, "window": window, "test_level": level,
            "false_positive_bound": false_positive_bound, "p_generator_rises": p_rise, "p_critic_falls": p_fall,
            "rule": f"over a trailing window of {window} epoch means (half the epochs, at least {min_points}), the "
                    f"generator adversarial loss rises and the critic loss falls, each by a one-sided Kendall trend "
                    f"test at p <= sqrt({false_positive_bound} / windows) (at most {false_positive_bound:.0%} "
                    "false alarms on i.i.d. noise)",
            "generator_adversarial": list(generator_adv), "critic": list(critic)}
