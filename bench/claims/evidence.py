"""What the claims rules read and return: :class:`Evidence` (a run's records and analyses) and :class:`Claim`
(one verdict with its numbers), and the claims' statements (reference.md sec. 1; the same under every rule
version). The golden files of tests/claims_golden/ pin all of it: a change here that moves an old version's row is
a logic change (registry.py).

Verdicts: ``supported``, ``not supported``, ``inconclusive`` (the data do not decide under the rule), ``not run``
(the records the test needs do not exist in this run), ``not tested`` (the records exist but no valid judge
does: rule c2@5) and ``plumbing only`` (the rule ran, but on the built-in
sample or on ``smoke`` trainings, which test the code path and not the paper).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN = "supported", "not supported", "inconclusive", "not run"
#: The rule ran but had nothing valid to decide with (rule c2@5: no judge passed its gate).
NOT_TESTED = "not tested"
PLUMBING_ONLY = "plumbing only"
OUTCOMES = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
#: What each claim says (paper sections in reference.md sec. 1); C8 is the premise the paper could not test.
STATEMENTS: Mapping[str, str] = MappingProxyType({
    "C1": "A trivial baseline scores SSIM > 0.9 and PSNR > 22 dB while adding little or no colour.",
    "C2": "Above about SSIM 0.9 / PSNR 22 dB, PSNR and SSIM stop tracking colorization quality (vividness, correct "
          "object colours); they only separate credible outputs from failed ones.",
    "C3": "Stable GAN runs output near-grey images (about 82% of pixels R=G=B); diverged runs are oversaturated.",
    "C4": "Dropping ChromaGAN's class-distribution head gives higher PSNR/SSIM than keeping it.",
    "C5": "GAN training is unstable: losses fall, then the generator loss climbs once the discriminator wins; best "
          "and worst epochs differ wildly in metrics.",
    "C6": "(proposal, Sec. 7.6) A loss that rewards saturation inside segments would fix faded objects that global "
          "losses and metrics average away.",
    "C6-premise": "(premise of C6, Sec. 7.6) Global metrics average away a faded object that a segment metric "
                  "registers.",
    "C7": "Resizing COCO's non-square images distorts shapes; center crops may colorize better.",
    "C8": "Captions improve colorization (paper Sec. 3 and 4.2.3-4.2.4: Psi(I_g, t), Models B and C).",
})


def part(entry: Mapping[str, object], key: str) -> Mapping[str, object]:
    """A nested table of a run.json entry (``spec``, ``options``, ``training``, ...); empty when absent."""
    found = entry.get(key)
    return found if isinstance(found, Mapping) else {}


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
    unit: str = "images"  # what ``n`` counts (C5 under version 5 counts training runs)

    def as_row(self) -> dict[str, object]:
        return {"rule_version": self.rule_version, "claim": self.claim, "statement": self.statement,
                "test": self.test, "numbers": self.numbers, "n": self.n, "protocol": self.protocol,
                "outcome": self.outcome, "verdict": self.verdict, "what_would_change": self.change}


@dataclass
class Evidence:
    """Everything the rules read: the run's json and tables, the study's analyses, pixel-level measurements the
    report computes from the saved PNGs (``near_grey``: model -> image -> share of near-grey pixels;
    ``common_pixels``: C7 rows), (for C7) a crop run, and for rule c2@5 the C2 arms' rows
    (colorbench.analysis.c2_study), people's ratings of arm pairs (colorbench.analysis.ratings) and the
    parameters the arms were made with."""

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
    c2_arms: Sequence[Mapping[str, object]] = ()
    c2_ratings: Sequence[Mapping[str, object]] = ()
    c2_params: Mapping[str, float] = field(default_factory=dict)
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

    def scored(self, model: str) -> Mapping[str, str]:
        """The leaderboard row of a model the run scored (KeyError when it has none)."""
        if (row := self.board(model)) is None:
            raise KeyError(model)
        return row

    def trained(self) -> list[str]:
        return [m for m, info in self.models.items() if part(info, "spec").get("training") == "train"
                and info.get("error") is None and self.board(m) is not None]

    def adversarial(self) -> list[str]:
        """Trained entries that train against a critic (interface 4: ``models[NAME]["adversarial"]``; runs made
        before that field existed fall back to the training record's ``settings.adversarial``)."""
        def flag(info: Mapping[str, object]) -> bool:
            if "adversarial" in info:
                return bool(info["adversarial"])
            return part(part(info, "training"), "settings").get("adversarial", "none") != "none"
        return [m for m in self.trained() if flag(self.models[m])]

    def replicas(self, name: str) -> dict[int, str]:
        """Seed -> model entry for every seed replica of ``name`` (interface 3: ``replica_of`` and ``seed``)."""
        out = {}
        for entry in self.trained():
            info = self.models[entry]
            if info.get("replica_of", entry) == name:
                out[int(info.get("seed", part(info, "options").get("seed", self.seed)))] = entry  # type: ignore[call-overload]
        return dict(sorted(out.items()))

    def training(self, model: str) -> Mapping[str, object]:
        """The training record of a model (training.summary.summarize), empty when it was not trained in this run."""
        return part(self.models[model], "training")

    def diverged(self, model: str) -> bool:
        """Whether the model's training record carries the divergence flag."""
        return bool(part(self.training(model), "divergence").get("diverged"))

    def truth_colorfulness(self) -> float:
        """Mean ground-truth colorfulness over the scored images (colorfulness - delta_colorfulness)."""
        truth = [float(r["colorfulness"]) - float(r["delta_colorfulness"]) for r in self.per_image
                 if r.get("colorfulness") and r.get("delta_colorfulness")]
        return float(np.mean(np.array(truth, dtype=np.float64))) if truth else np.nan

    def values(self, model: str, metric: str) -> dict[str, float]:
        return {r["image_id"]: float(r[metric]) for r in self.per_image
                if r["model"] == model and r.get(metric) not in (None, "")}
