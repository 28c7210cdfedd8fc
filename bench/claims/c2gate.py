"""What rule ``c2@5`` computes from the C2 records (colorbench.analysis.c2_study: one row per image and arm;
ratings: one row per rated pair), kept apart from the rule's wording (bench/claims/v5.py) and pinned with it by
the golden files: pair preferences within images, a judge's gate, the two endpoints, Holm's step-down across PSNR
and SSIM, and the images a verdict needs.

A *preference* of a judge between arms x and y of one image is in [-1, 1]: the sign of the score difference for
a scoring judge (0 on a tie), the mean vote (+1 for x, -1 for y) for people. All intervals are percentile
bootstraps over images (N_RESAMPLES resamples from numpy's default generator seeded with the run's seed, as
colorbench.claims.stats), and a one-sided bootstrap p-value is the share of resampled means on the null side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from colorbench.claims.stats import LEVEL, N_RESAMPLES

#: image -> (arm x, arm y) -> preference for x over y.
Preferences = dict[str, dict[tuple[str, str], float]]
FIDELITY_DIRECTION = {"psnr": 1.0, "ssim": 1.0, "neg_mse": 1.0, "semantic_kl": -1.0, "colour_likelihood": 1.0}


def number(cell: object) -> float:
    try:
        value = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def scores(rows: Sequence[Mapping[str, object]], column: str) -> dict[str, dict[str, float]]:
    """image -> arm -> higher-is-better score in ``column`` (FIDELITY_DIRECTION), missing cells left out."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        value = number(row.get(column)) * FIDELITY_DIRECTION[column]
        if math.isfinite(value):
            out.setdefault(str(row["image_id"]), {})[str(row["arm"])] = value
    return out


def score_preferences(rows: Sequence[Mapping[str, object]], column: str) -> Preferences:
    """Every within-image pair of arms scored in ``column``, both orders."""
    out: Preferences = {}
    for image, arms in scores(rows, column).items():
        pairs = out.setdefault(image, {})
        for x, y in combinations(arms, 2):
            pairs[(x, y)] = float(np.sign(arms[x] - arms[y]))
            pairs[(y, x)] = -pairs[(x, y)]
    return out


def rating_preferences(ratings: Sequence[Mapping[str, object]]) -> Preferences:
    """Mean vote per rated pair (colorbench.analysis.ratings rows: image_id, arm_a, arm_b, choice a/b/none)."""
    votes: dict[str, dict[tuple[str, str], list[float]]] = {}
    for row in ratings:
        a, b, choice = str(row["arm_a"]), str(row["arm_b"]), str(row["choice"])
        vote = {"a": 1.0, "b": -1.0}.get(choice, 0.0)
        votes.setdefault(str(row["image_id"]), {}).setdefault((a, b), []).append(vote)
    out: Preferences = {}
    for image, pairs in votes.items():
        mean = {pair: float(np.mean(v)) for pair, v in pairs.items()}
        out[image] = {**mean, **{(b, a): -p for (a, b), p in mean.items()}}
    return out


def bootstrap_means(values: Sequence[float], seed: int) -> tuple[float, np.ndarray]:
    """Mean of the finite ``values`` and the means of N_RESAMPLES resamples of them (empty below 2 values)."""
    kept = np.asarray(values, dtype=np.float64)
    kept = kept[np.isfinite(kept)]
    if kept.size < 2:
        return (float(kept.mean()) if kept.size else math.nan), np.array([])
    draws = np.random.default_rng(seed).integers(0, kept.size, size=(N_RESAMPLES, kept.size))
    return float(kept.mean()), kept[draws].mean(axis=1)


@dataclass(frozen=True)
class Test:
    """A mean over images against a threshold: its interval and one-sided p-values for each side."""

    mean: float
    lo: float
    hi: float
    n: int
    p_above: float  # evidence that the mean lies above the threshold (small = strong)
    p_below: float

    @classmethod
    def of(cls, values: Sequence[float], threshold: float, seed: int) -> Test:
        mean, means = bootstrap_means(values, seed)
        n = int(np.isfinite(np.asarray(values, dtype=np.float64)).sum())
        if not means.size:
            return cls(mean, math.nan, math.nan, n, 1.0, 1.0)
        tail = (1 - LEVEL) / 2 * 100
        lo, hi = np.percentile(means, [tail, 100 - tail])
        return cls(mean, float(lo), float(hi), n, float(np.mean(means <= threshold)),
                   float(np.mean(means >= threshold)))


def gate_shares(prefs: Preferences, rows: Sequence[Mapping[str, object]]) -> tuple[list[float], list[float]]:
    """Per image, the judge's share of truth over grey, and its mean share of plausible over implausible twin."""
    truth, twins = [], []
    pairs = {(str(r["image_id"]), str(r["pair"])) for r in rows if r.get("role") == "plausible_twin"}
    for image, image_prefs in prefs.items():
        if (found := image_prefs.get(("truth", "grey"))) is not None:
            truth.append((found + 1) / 2)
        mine = [image_prefs.get((f"plausible_twin:{p}", f"implausible_twin:{p}")) for i, p in pairs if i == image]
        if kept := [(p + 1) / 2 for p in mine if p is not None]:
            twins.append(float(np.mean(kept)))
    return truth, twins


def twin_psnr_gap(rows: Sequence[Mapping[str, object]]) -> list[float]:
    """|PSNR(plausible twin) - PSNR(implausible twin)| per twin pair, in dB."""
    psnr = {(str(r["image_id"]), str(r["role"]), str(r["pair"])): number(r.get("psnr")) for r in rows}
    return [abs(v - psnr.get((i, "implausible_twin", p), math.nan)) for (i, role, p), v in psnr.items()
            if role == "plausible_twin" and math.isfinite(psnr.get((i, "implausible_twin", p), math.nan))]


def roles(rows: Sequence[Mapping[str, object]]) -> dict[str, dict[str, str]]:
    """image -> arm -> role."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(str(row["image_id"]), {})[str(row["arm"])] = str(row["role"])
    return out


def reversal_shares(rows: Sequence[Mapping[str, object]], metric: str, band: float,
                    prefs: Preferences) -> list[float]:
    """Endpoint (a) per image: among (dull, alternative) pairs with both arms above ``band`` in ``metric``, the
    share where the metric prefers the dull arm and the judge the alternative."""
    values, out = scores(rows, metric), []
    for image, arm_roles in roles(rows).items():
        metric_of, judged = values.get(image, {}), prefs.get(image, {})
        hits = [float(metric_of[d] > metric_of[a] and judged[(a, d)] > 0)
                for d, rd in arm_roles.items() if rd == "dull" for a, ra in arm_roles.items() if ra == "alternative"
                if min(metric_of.get(d, -math.inf), metric_of.get(a, -math.inf)) > band and (a, d) in judged]
        if hits:
            out.append(float(np.mean(hits)))
    return out


def agreement_drops(rows: Sequence[Mapping[str, object]], metric: str, band: float,
                    prefs: Preferences) -> list[float]:
    """Endpoint (b) per image: Kendall tau-a between metric and judge over pairs of dull and alternative arms
    with at least one arm at or below ``band``, minus tau-a over pairs with both above (images with both)."""
    values, out = scores(rows, metric), []
    for image, arm_roles in roles(rows).items():
        metric_of, judged = values.get(image, {}), prefs.get(image, {})
        arms = [a for a, r in arm_roles.items() if r in ("dull", "alternative") and a in metric_of]
        high: list[float] = []
        low: list[float] = []
        for x, y in combinations(arms, 2):
            if (x, y) in judged:
                agree = float(np.sign(metric_of[x] - metric_of[y]) * np.sign(judged[(x, y)]))
                (high if min(metric_of[x], metric_of[y]) > band else low).append(agree)
        if high and low:
            out.append(float(np.mean(low) - np.mean(high)))
    return out


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, bool]:
    """Holm's step-down (Holm 1979): which hypotheses are rejected at family-wise level ``alpha``."""
    rejected, ordered = {}, sorted(p_values, key=lambda k: p_values[k])
    going = True
    for step, key in enumerate(ordered):
        going = going and p_values[key] <= alpha / (len(ordered) - step)
        rejected[key] = going
    return rejected


def images_needed(sd: float, effect: float, alpha: float, power: float, tests: int = 2) -> int:
    """Images a one-sided test of a mean needs to detect ``effect`` with planning standard deviation ``sd`` at
    level alpha / tests (Holm's first step over ``tests`` metrics) with the given power: the normal
    approximation n = ((z_{1 - alpha/tests} + z_power) sd / effect)^2, rounded up."""
    z = stats.norm.ppf(1 - alpha / tests) + stats.norm.ppf(power)
    return math.ceil((z * sd / effect) ** 2)
