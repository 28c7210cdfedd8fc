"""What the claims rules read and return: :class:`Evidence` (a run's records and analyses) and :class:`Claim`
(one verdict with its numbers), plus the statistics every rule version shares.

Verdicts: ``supported``, ``not supported``, ``inconclusive`` (the data do not decide under the rule), ``not run``
(the records the test needs do not exist in this run) and ``plumbing only`` (the rule ran, but on the built-in
sample or on ``smoke`` trainings, which test the code path and not the paper).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from colorbench.analysis.tables import column
from colorbench.core.aggregate import LEVEL, N_RESAMPLES
from colorbench.core.values import integer, number, section

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN = "supported", "not supported", "inconclusive", "not run"
PLUMBING_ONLY = "plumbing only"
OUTCOMES = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)

@dataclass(frozen=True)
class Claim:
    """One claim's verdict under one rule version. ``outcome`` is what the rule computed; ``verdict`` is what the
    report asserts (the outcome, or ``plumbing only`` when the protocol cannot test the paper). ``models`` are
    the model entries the rule read (for the protocol); ``change`` says in one line what would change it."""

    claim: str
    statement: str
    test: str
    numbers: str
    outcome: str
    n: int = 0
    models: tuple[str, ...] = ()
    change: str = ""
    rule_version: str = ""
    protocol: str = ""
    verdict: str = ""
    previous: str = ""  # the verdict under the previous rule version, filled in by claims.evaluate_claims

    def as_row(self) -> dict[str, object]:
        return {"rule_version": self.rule_version, "claim": self.claim, "statement": self.statement,
                "test": self.test, "numbers": self.numbers, "n": self.n, "protocol": self.protocol,
                "outcome": self.outcome, "verdict": self.verdict, "what_would_change": self.change}


@dataclass
class Evidence:
    """Everything the rules read: the run's json and tables, the study's analyses, pixel-level measurements the
    report computes from the saved PNGs (``near_grey``: model -> image -> share of near-grey pixels;
    ``common_pixels``: C7 rows), and (for C7) a crop run."""

    run: Mapping[str, object]
    leaderboard: Sequence[Mapping[str, str]]
    per_image: Sequence[Mapping[str, str]]
    sensitivity: Sequence[Mapping[str, object]] = ()
    curves: Sequence[Mapping[str, object]] = ()
    correlations: Sequence[Mapping[str, object]] = ()
    paired_study: Sequence[Mapping[str, str]] = ()
    human: Sequence[Mapping[str, str]] = ()
    near_grey: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    common_pixels: Sequence[Mapping[str, object]] = ()
    crop: Evidence | None = None
    seed: int = 0
    models: Mapping[str, Mapping[str, object]] = field(init=False)

    def __post_init__(self) -> None:
        self.models = self.run.get("models", {})  # type: ignore[assignment]

    def missing(self, *metrics: str) -> str:
        """The named metrics this run did not compute, as text ("" when all were)."""
        computed = self.run.get("metrics", {})
        return ", ".join(m for m in metrics if m not in computed)  # type: ignore[operator]

    def board(self, model: str) -> Mapping[str, str] | None:
        return next((r for r in self.leaderboard if r["model"] == model), None)

    def row(self, model: str) -> Mapping[str, str]:
        """The leaderboard row of a model known to be on it (KeyError otherwise)."""
        if (row := self.board(model)) is None:
            raise KeyError(f"{model} is not on the leaderboard")
        return row

    def trained(self) -> list[str]:
        return [m for m, info in self.models.items() if section(info, "spec").get("training") == "train"
                and info.get("error") is None and self.board(m) is not None]

    def adversarial(self) -> list[str]:
        """Trained entries that train against a critic (interface 4: ``models[NAME]["adversarial"]``; runs made
        before that field existed fall back to the training record's ``settings.adversarial``)."""
        def flag(info: Mapping[str, object]) -> bool:
            if "adversarial" in info:
                return bool(info["adversarial"])
            return section(section(info, "training"), "settings").get("adversarial", "none") != "none"
        return [m for m in self.trained() if flag(self.models[m])]

    def replicas(self, name: str) -> dict[int, str]:
        """Seed -> model entry for every seed replica of ``name`` (interface 3: ``replica_of`` and ``seed``)."""
        out = {}
        for entry in self.trained():
            info = self.models[entry]
            if info.get("replica_of", entry) == name:
                out[integer(info.get("seed", section(info, "options").get("seed", self.seed)))] = entry
        return dict(sorted(out.items()))

    def truth_colorfulness(self) -> float:
        """Mean ground-truth colorfulness over the scored images (colorfulness - delta_colorfulness)."""
        rows = [r for r in self.per_image if r.get("colorfulness") and r.get("delta_colorfulness")]
        return float(np.mean(column(rows, "colorfulness") - column(rows, "delta_colorfulness"))) if rows else np.nan

    def values(self, model: str, metric: str) -> dict[str, float]:
        return {r["image_id"]: float(r[metric]) for r in self.per_image
                if r["model"] == model and r.get(metric) not in (None, "")}


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if np.isfinite(value) else "n/a"


def interval_text(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{fmt(mean, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def crossed_bootstrap(differences: np.ndarray, *, seed: int, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of a (seed, image) table of paired differences and a ``level`` (95%) interval from a two-way crossed
    bootstrap: seeds and images are resampled independently (with replacement), so the interval carries the
    variance between seeds as well as between images. With one seed it resamples images only. NaN cells are
    skipped."""
    n_seeds, n_images = differences.shape
    mean = float(np.nanmean(differences))
    if n_images < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(N_RESAMPLES, n_seeds))
    images = rng.integers(0, n_images, size=(N_RESAMPLES, n_images))
    means = np.array([np.nanmean(differences[s][:, i]) for s, i in zip(seeds, images, strict=True)])
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(means, [tail, 100 - tail])
    return mean, float(lo), float(hi)


def best_worst_gap(training: Mapping[str, object]) -> float:
    """|validation PSNR of the best epoch - that of the worst| (epochs chosen by the trainer's selection metric)."""
    best, worst = section(training, "best_epoch"), section(training, "worst_epoch")
    if "val_psnr" not in best or "val_psnr" not in worst:
        return float("nan")
    return abs(number(best["val_psnr"]) - number(worst["val_psnr"]))
