"""The claims table: each of the paper's claims C1-C7 (reference.md sec. 1) tested by a stated rule on the
run's records, with the numbers the rule used and a verdict computed from them, never written by hand.

Verdicts: ``supported``, ``not supported``, ``inconclusive`` (the data do not decide under the rule), and
``not run`` (the records the test needs do not exist in this run: e.g. no trained GAN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.aggregate import mean_and_interval
from bench.experiments.analysis import PSNR_THRESHOLD, SSIM_THRESHOLD, column
from metrics.registry import goodness

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN = "supported", "not supported", "inconclusive", "not run"
TRIVIAL_MODELS = ("baseline0", "gray")
#: C1/C3: "little colour" = mean colorfulness below this share of the ground truth's.
DULL_SHARE = 0.5
#: C2: PSNR/SSIM "lag" a colour-aware metric in a sweep when their cross-image discrimination is lower by
#: at least this margin; "weak tracking" of vividness over model outputs = Spearman interval below WEAK_RHO.
LAG_MARGIN = 0.1
WEAK_RHO = 0.5
MIN_BAND_RECORDS = 30
C2_SWEEPS = ("desaturation", "object_fade", "object_hue")
COLOUR_METRICS = ("delta_colorfulness", "colorfulness", "segment_chroma_ratio", "vivid_recall", "deltae2000")
VIVIDNESS_PROXY = "delta_colorfulness"
HIGH_BAND = f"psnr >= {PSNR_THRESHOLD:g}"
#: C3: "near grey" = mean channel equality at least this (the paper saw 0.82).
NEAR_GREY = 0.5
#: C5: "wildly different" best and worst epochs = validation PSNR gap of at least this many dB.
WILD_GAP_DB = 3.0
#: C6: a faded object is "averaged away" when PSNR stays above this with the object fully faded.
AVERAGED_AWAY_DB = 30.0
AVERAGED_AWAY_SSIM = 0.95
#: ... while a segment metric (1 at the identity) registers the loss: its median falls to this value or below.
SEGMENT_CATCHES = 0.8


@dataclass(frozen=True)
class Claim:
    claim: str
    statement: str
    test: str
    numbers: str
    verdict: str

    def as_row(self) -> dict[str, str]:
        return {"claim": self.claim, "statement": self.statement, "test": self.test, "numbers": self.numbers,
                "verdict": self.verdict}


@dataclass
class Evidence:
    """Everything the rules read: the run's json, tables, study sensitivity and (for C7) a crop run."""

    run: Mapping[str, object]
    leaderboard: Sequence[Mapping[str, str]]
    per_image: Sequence[Mapping[str, str]]
    sensitivity: Sequence[Mapping[str, object]] = ()
    curves: Sequence[Mapping[str, object]] = ()
    correlations: Sequence[Mapping[str, object]] = ()
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

    def trained(self) -> list[str]:
        return [m for m, info in self.models.items() if info.get("spec", {}).get("training") == "train"
                and info.get("error") is None and self.board(m) is not None]

    def truth_colorfulness(self) -> float:
        """Mean ground-truth colorfulness over the scored images (colorfulness - delta_colorfulness)."""
        rows = [r for r in self.per_image if r.get("colorfulness") and r.get("delta_colorfulness")]
        return float(np.mean(column(rows, "colorfulness") - column(rows, "delta_colorfulness"))) if rows else np.nan

    def values(self, model: str, metric: str) -> dict[str, float]:
        return {r["image_id"]: float(r[metric]) for r in self.per_image
                if r["model"] == model and r.get(metric) not in (None, "")}


def _f(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if np.isfinite(value) else "n/a"


def _interval(row: Mapping[str, str], metric: str) -> tuple[float, float, float]:
    return float(row[metric]), float(row[f"{metric}_lo"]), float(row[f"{metric}_hi"])


def claim_c1(e: Evidence) -> Claim:
    statement = "A trivial baseline scores SSIM > 0.9 and PSNR > 22 dB while adding little or no colour."
    test = (f"95% bootstrap intervals of mean SSIM and PSNR above {SSIM_THRESHOLD} / {PSNR_THRESHOLD:g} dB and mean "
            f"colorfulness below {DULL_SHARE:.0%} of the ground truth's, for {' or '.join(TRIVIAL_MODELS)}")
    if missing := e.missing('ssim', 'psnr', 'colorfulness', 'delta_colorfulness'):
        return Claim("C1", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    truth = e.truth_colorfulness()
    present = [m for m in TRIVIAL_MODELS if e.board(m) is not None]
    if not present or not np.isfinite(truth):
        return Claim("C1", statement, test, "no trivial baseline in this run", NOT_RUN)
    numbers, holds, fails = [], [], []
    for model in present:
        row = e.board(model)
        ssim, ssim_lo, ssim_hi = _interval(row, "ssim")
        psnr, psnr_lo, psnr_hi = _interval(row, "psnr")
        cf, cf_lo, cf_hi = _interval(row, "colorfulness")
        numbers.append(f"{model}: SSIM {_f(ssim)} [{_f(ssim_lo)}, {_f(ssim_hi)}], PSNR {_f(psnr, 4)} "
                       f"[{_f(psnr_lo, 4)}, {_f(psnr_hi, 4)}] dB, colorfulness {_f(cf)} [{_f(cf_lo)}, {_f(cf_hi)}]")
        holds.append(ssim_lo > SSIM_THRESHOLD and psnr_lo > PSNR_THRESHOLD and cf_hi < DULL_SHARE * truth)
        fails.append(ssim_hi < SSIM_THRESHOLD or psnr_hi < PSNR_THRESHOLD or cf_lo >= DULL_SHARE * truth)
    numbers.append(f"ground truth colorfulness {_f(truth)}")
    verdict = SUPPORTED if any(holds) else NOT_SUPPORTED if all(fails) else INCONCLUSIVE
    return Claim("C1", statement, test, "; ".join(numbers), verdict)


def _discrimination(e: Evidence, sweep: str, metric: str) -> float:
    row = next((r for r in e.sensitivity if r["sweep"] == sweep and r["metric"] == metric), None)
    return float(row["discrimination"]) if row else np.nan  # type: ignore[arg-type]


def _high_band_rho(e: Evidence, other: str = VIVIDNESS_PROXY) -> Mapping[str, object] | None:
    """Spearman correlation of PSNR with ``other`` over model outputs in the PSNR >= 22 dB band."""
    pair = {"psnr", other}
    return next((c for c in e.correlations if c["band"] == HIGH_BAND and {c["metric_a"], c["metric_b"]} == pair
                 and "spearman" in c and int(c["n"]) >= MIN_BAND_RECORDS), None)  # type: ignore[arg-type]


def claim_c2(e: Evidence) -> Claim:
    statement = ("Above about SSIM 0.9 / PSNR 22 dB, PSNR and SSIM stop tracking colorization quality (vividness, "
                 "correct object colours); they only separate credible outputs from failed ones.")
    test = (f"(a) perturbation sweeps {', '.join(C2_SWEEPS)}, high-quality regime: PSNR and SSIM lag when their "
            f"cross-image discrimination is at least {LAG_MARGIN} below the best colour-aware metric's "
            f"({', '.join(COLOUR_METRICS)}); (b) model outputs with PSNR >= {PSNR_THRESHOLD:g} dB (when >= "
            f"{MIN_BAND_RECORDS} records): Spearman of PSNR with -|{VIVIDNESS_PROXY}|. Supported if both lag in >= 2 "
            f"sweeps and (b)'s 95% interval lies below {WEAK_RHO}; not supported if PSNR or SSIM discriminates at "
            f"least as well as every colour-aware metric in >= 2 sweeps, or (b)'s interval lies above {WEAK_RHO}")
    if missing := e.missing('psnr', 'ssim'):
        return Claim("C2", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    if not e.sensitivity:
        return Claim("C2", statement, test, "no perturbation study in this run", NOT_RUN)
    numbers, lagging, matching = [], 0, 0
    for sweep in C2_SWEEPS:
        psnr, ssim = _discrimination(e, sweep, "psnr"), _discrimination(e, sweep, "ssim")
        colour = {m: v for m in COLOUR_METRICS if np.isfinite(v := _discrimination(e, sweep, m))}
        if not colour or not np.isfinite(psnr):
            continue
        best = max(colour, key=colour.__getitem__)
        numbers.append(f"{sweep}: discrimination PSNR {_f(psnr, 2)}, SSIM {_f(ssim, 2)}, "
                       f"{best} {_f(colour[best], 2)}")
        lagging += max(psnr, ssim) <= colour[best] - LAG_MARGIN
        matching += max(psnr, ssim) >= colour[best]
    rho = _high_band_rho(e)
    weak = strong = False
    if rho is None:
        numbers.append(f"(b) fewer than {MIN_BAND_RECORDS} model records with PSNR >= {PSNR_THRESHOLD:g} dB: "
                       "(a) decides")
    else:
        lo, hi = float(rho["spearman_lo"]), float(rho["spearman_hi"])  # type: ignore[arg-type]
        numbers.append(f"(b) Spearman PSNR vs -|{VIVIDNESS_PROXY}| with PSNR >= {PSNR_THRESHOLD:g} dB: "
                       f"{_f(float(rho['spearman']), 2)} [{_f(lo, 2)}, {_f(hi, 2)}], n = {rho['n']}")  # type: ignore[arg-type]
        context = _high_band_rho(e, "segment_chroma_ratio")
        if context is not None:  # shown, not used by the rule
            numbers.append(f"(context, not in the rule) Spearman PSNR vs segment_chroma_ratio in that band: "
                           f"{_f(float(context['spearman']), 2)} [{_f(float(context['spearman_lo']), 2)}, "  # type: ignore[arg-type]
                           f"{_f(float(context['spearman_hi']), 2)}]")  # type: ignore[arg-type]
        weak, strong = hi < WEAK_RHO, lo > WEAK_RHO
    if lagging >= 2 and (rho is None or weak):
        verdict = SUPPORTED
    elif matching >= 2 or strong:
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Claim("C2", statement, test, "; ".join(numbers), verdict)


def _training(e: Evidence, model: str) -> Mapping[str, object]:
    """The training record of a model (bench.train.summarize), empty when it was not trained in this run."""
    return e.models[model].get("training") or {}  # type: ignore[return-value]


def _diverged(training: Mapping[str, object]) -> bool:
    return bool((training.get("divergence") or {}).get("diverged"))  # type: ignore[union-attr]


def _best_worst_gap(training: Mapping[str, object]) -> float:
    """|validation PSNR of the best epoch - that of the worst| (epochs chosen by the trainer's selection metric)."""
    best, worst = training.get("best_epoch") or {}, training.get("worst_epoch") or {}
    if "val_psnr" not in best or "val_psnr" not in worst:  # type: ignore[operator]
        return float("nan")
    return abs(float(best["val_psnr"]) - float(worst["val_psnr"]))  # type: ignore[index]


def claim_c3(e: Evidence) -> Claim:
    statement = "Stable GAN runs output near-grey images (about 82% of pixels R=G=B); diverged runs are oversaturated."
    test = (f"trained GANs: stable runs need mean channel equality >= {NEAR_GREY}; diverged runs (training divergence "
            "flag) need mean colorfulness above the ground truth's. Inconclusive when no run diverged")
    if missing := e.missing('channel_equality', 'colorfulness', 'delta_colorfulness'):
        return Claim("C3", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    gans = e.trained()
    if not gans:
        return Claim("C3", statement, test, "no trained GAN in this run", NOT_RUN)
    truth, numbers, stable_grey, diverged_vivid = e.truth_colorfulness(), [], [], []
    for model in gans:
        row = e.board(model)
        equality, colorfulness = float(row["channel_equality"]), float(row["colorfulness"])
        diverged = _diverged(_training(e, model))
        numbers.append(f"{model} ({'diverged' if diverged else 'stable'}): channel equality {_f(equality)}, "
                       f"colorfulness {_f(colorfulness)}")
        (diverged_vivid if diverged else stable_grey).append(
            colorfulness > truth if diverged else equality >= NEAR_GREY)
    numbers.append(f"ground truth colorfulness {_f(truth)}")
    if (stable_grey and not all(stable_grey)) or (diverged_vivid and not all(diverged_vivid)):
        verdict = NOT_SUPPORTED
    elif stable_grey and diverged_vivid:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Claim("C3", statement, test, "; ".join(numbers), verdict)


def _paired_difference(e: Evidence, a: str, b: str, metric: str) -> tuple[float, float, float, int]:
    """Mean over images of metric(a) - metric(b) with its bootstrap 95% interval."""
    va, vb = e.values(a, metric), e.values(b, metric)
    diffs = [va[i] - vb[i] for i in va if i in vb]
    return (*mean_and_interval(diffs, seed=e.seed), len(diffs))


def claim_c4(e: Evidence) -> Claim:
    statement = "Dropping ChromaGAN's class-distribution head gives higher PSNR/SSIM than keeping it."
    test = ("paired per-image differences chromagan-noclass minus chromagan: supported if the 95% intervals of the "
            "mean PSNR and SSIM differences are both above 0, not supported if either lies below 0")
    if missing := e.missing('psnr', 'ssim'):
        return Claim("C4", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    if not {"chromagan", "chromagan-noclass"} <= set(e.trained()):
        return Claim("C4", statement, test, "chromagan and chromagan-noclass were not both trained", NOT_RUN)
    parts, above, below = [], [], []
    for metric in ("psnr", "ssim"):
        mean, lo, hi, n = _paired_difference(e, "chromagan-noclass", "chromagan", metric)
        parts.append(f"{metric} difference {_f(mean)} [{_f(lo)}, {_f(hi)}] over {n} images")
        above.append(lo > 0)
        below.append(hi < 0)
    verdict = SUPPORTED if all(above) else NOT_SUPPORTED if any(below) else INCONCLUSIVE
    return Claim("C4", statement, test, "; ".join(parts), verdict)


def claim_c5(e: Evidence) -> Claim:
    statement = ("GAN training is unstable: losses fall, then the generator loss climbs once the discriminator wins; "
                 "best and worst epochs differ wildly in metrics.")
    test = (f"training records: supported if some run carries the divergence flag and its best and worst epochs differ "
            f"by >= {WILD_GAP_DB:g} dB validation PSNR; not supported if no run diverged over >= 5 epochs and every "
            "best-worst gap is < 1 dB")
    gans = [m for m in e.trained() if _training(e, m)]
    if not gans:
        return Claim("C5", statement, test, "no GAN training records in this run", NOT_RUN)
    numbers, wild, calm = [], [], []
    for model in gans:
        info = _training(e, model)
        gap, epochs, diverged = _best_worst_gap(info), int(info.get("epochs", 0)), _diverged(info)  # type: ignore[call-overload]
        where = f" at epoch {info['divergence']['epoch']}" if diverged else ""  # type: ignore[index]
        numbers.append(f"{model}: {epochs} epochs, {'diverged' + where if diverged else 'no divergence'}, "
                       f"best-worst validation PSNR gap {_f(gap)} dB")
        wild.append(diverged and gap >= WILD_GAP_DB)
        calm.append(not diverged and epochs >= 5 and gap < 1.0)
    verdict = SUPPORTED if any(wild) else NOT_SUPPORTED if all(calm) else INCONCLUSIVE
    return Claim("C5", statement, test, "; ".join(numbers), verdict)


def claim_c6(e: Evidence) -> Claim:
    statement = ("(proposal, Sec. 7.6) A loss that rewards saturation inside segments would fix faded objects that "
                 "global losses and metrics average away.")
    test = (f"premise only (no model with such a loss is registered): with the most vivid object fully faded "
            f"(object_fade, alpha 0), global metrics stay near perfect (median PSNR > {AVERAGED_AWAY_DB:g} dB and "
            f"median SSIM > {AVERAGED_AWAY_SSIM}) while a segment metric registers the loss (median vivid recall or "
            f"segment chroma ratio <= {SEGMENT_CATCHES}; both are 1 at the identity). Inconclusive if the premise "
            "holds (the fix itself is untested), not supported if it fails")

    def median(metric: str) -> float:
        row = next((c for c in e.curves if c["sweep"] == "object_fade" and c["metric"] == metric
                    and float(c["strength"]) == 0.0), None)  # type: ignore[arg-type]
        return float(row["median"]) if row else np.nan  # type: ignore[arg-type]

    if missing := e.missing('psnr', 'ssim'):
        return Claim("C6", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    psnr, ssim, recall, ratio = (median(m) for m in ("psnr", "ssim", "vivid_recall", "segment_chroma_ratio"))
    if not np.isfinite(psnr) or not (np.isfinite(recall) or np.isfinite(ratio)):
        return Claim("C6", statement, test, "no object_fade sweep with segment metrics in this run", NOT_RUN)
    numbers = (f"object fully faded: median PSNR {_f(psnr, 4)} dB, median SSIM {_f(ssim)}, median vivid recall "
               f"{_f(recall)}, median segment chroma ratio {_f(ratio)}")
    averaged_away = psnr > AVERAGED_AWAY_DB and ssim > AVERAGED_AWAY_SSIM
    caught = min(np.nan_to_num(recall, nan=1.0), np.nan_to_num(ratio, nan=1.0)) <= SEGMENT_CATCHES
    return Claim("C6", statement, test, numbers, INCONCLUSIVE if averaged_away and caught else NOT_SUPPORTED)


def claim_c7(e: Evidence) -> Claim:
    statement = "Resizing COCO's non-square images distorts shapes; center crops may colorize better."
    test = ("the same trained models evaluated on a resize run and a center-crop run (bench report --crop-run): "
            "supported if the crop run is better on at least 2 of PSNR, deltae2000 and segment chroma ratio "
            "(paired 95% intervals of the difference excluding 0), not supported if worse on at least 2")
    if e.crop is None:
        return Claim("C7", statement, test, "no center-crop run given", NOT_RUN)
    common = [m for m in e.trained() if m in e.crop.trained()]
    if not common:
        return Claim("C7", statement, test, "no trained model in both runs", NOT_RUN)
    numbers, better, worse = [], 0, 0
    for metric in ("psnr", "deltae2000", "segment_chroma_ratio"):
        diffs = []
        for model in common:
            crop, resize = e.crop.values(model, metric), e.values(model, metric)
            ids = [i for i in crop if i in resize]
            diffs += list(goodness(metric, np.array([crop[i] for i in ids]))
                          - goodness(metric, np.array([resize[i] for i in ids])))
        mean, lo, hi = mean_and_interval(diffs, seed=e.seed)
        numbers.append(f"{metric} improvement with crops {_f(mean)} [{_f(lo)}, {_f(hi)}]")
        better += lo > 0
        worse += hi < 0
    verdict = SUPPORTED if better >= 2 else NOT_SUPPORTED if worse >= 2 else INCONCLUSIVE
    return Claim("C7", statement, test, f"models {', '.join(common)}: " + "; ".join(numbers), verdict)


RULES: tuple[Callable[[Evidence], Claim], ...] = (claim_c1, claim_c2, claim_c3, claim_c4, claim_c5, claim_c6, claim_c7)


def evaluate_claims(e: Evidence) -> list[Claim]:
    """All seven claims, in order."""
    return [rule(e) for rule in RULES]
