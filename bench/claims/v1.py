"""Rule functions of rule set version 1 (as first shipped; bench/claims/versions/1.toml): ``c1@1`` ... ``c7@1``,
kept so that every report shows the old verdict beside the current one. Each gets its thresholds from the manifest
that names it. Frozen: a change of logic is a new function under a new id (bench/claims/registry.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from colorbench.claims.evidence import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, STATEMENTS, SUPPORTED, Claim, Evidence
from colorbench.claims.registry import Thresholds, rule
from colorbench.claims.stats import best_worst_gap, resampled_mean
from colorbench.claims.text import fmt as _f
from colorbench.claims.text import say

TRIVIAL_MODELS = ("baseline0", "gray")
C2_SWEEPS = ("desaturation", "object_fade", "object_hue")
COLOUR_METRICS = ("delta_colorfulness", "colorfulness", "segment_chroma_ratio", "vivid_recall", "deltae2000")
VIVIDNESS_PROXY = "delta_colorfulness"
# The tests in words (colorbench.claims.text.say): a field names a threshold or a word the function passes.
#: What c1@1 tests, in words.
TEST_C1 = ("95% bootstrap intervals of mean SSIM and PSNR above {ssim} / {psnr_db:g} dB and mean colorfulness below "
           "{dull_share:.0%} of the ground truth's, for {trivial}")
#: What c2@1 tests, in words.
TEST_C2 = ("(a) perturbation sweeps {sweeps}, high-quality regime: PSNR and SSIM lag when their cross-image "
           "discrimination is at least {lag_margin} below the best colour-aware metric's ({colour_metrics}); (b) model "
           "outputs with PSNR >= {psnr_db:g} dB (when >= {min_band_records:g} records): Spearman of PSNR with "
           "-|{proxy}|. Supported if both lag in >= 2 sweeps and (b)'s 95% interval lies below {weak_rho}; not "
           "supported if PSNR or SSIM discriminates at least as well as every colour-aware metric in >= 2 sweeps, or "
           "(b)'s interval lies above {weak_rho}")
#: What c3@1 tests, in words.
TEST_C3 = ("trained GANs: stable runs need mean channel equality >= {near_grey}; diverged runs (training divergence "
           "flag) need mean colorfulness above the ground truth's. Inconclusive when no run diverged")
#: What c4@1 tests, in words.
TEST_C4 = ("paired per-image differences chromagan-noclass minus chromagan: supported if the 95% intervals of the mean "
           "PSNR and SSIM differences are both above 0, not supported if either lies below 0")
#: What c5@1 tests, in words.
TEST_C5 = ("training records: supported if some run carries the divergence flag and its best and worst epochs differ "
           "by >= {wild_gap_db:g} dB validation PSNR; not supported if no run diverged over >= {min_epochs:g} epochs "
           "and every best-worst gap is < {calm_gap_db:g} dB")
#: What c6@1 tests, in words.
TEST_C6 = ("premise only (no model with such a loss is registered): with the most vivid object fully faded "
           "(object_fade, alpha 0), global metrics stay near perfect (median PSNR > {averaged_away_db:g} dB and median "
           "SSIM > {averaged_away_ssim}) while a segment metric registers the loss (median vivid recall or segment "
           "chroma ratio <= {segment_catches}; both are 1 at the identity). Inconclusive if the premise holds (the fix "
           "itself is untested), not supported if it fails")
#: What c7@1 tests, in words.
TEST_C7 = ("the same trained models evaluated on a resize run and a center-crop run (bench report --crop-run): "
           "supported if the crop run is better on at least 2 of PSNR, deltae2000 and segment chroma ratio (paired 95% "
           "intervals of the difference excluding 0), not supported if worse on at least 2")


def _interval(row: Mapping[str, str], metric: str) -> tuple[float, float, float]:
    return float(row[metric]), float(row[f"{metric}_lo"]), float(row[f"{metric}_hi"])


@rule("c1@1")
def claim_c1(e: Evidence, C1: Thresholds) -> Claim:
    statement, test = STATEMENTS["C1"], say(TEST_C1, C1, trivial=" or ".join(TRIVIAL_MODELS))
    if missing := e.missing('ssim', 'psnr', 'colorfulness', 'delta_colorfulness'):
        return Claim("C1", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    truth = e.truth_colorfulness()
    present = [m for m in TRIVIAL_MODELS if e.board(m) is not None]
    if not present or not np.isfinite(truth):
        return Claim("C1", statement, test, "no trivial baseline in this run", NOT_RUN)
    numbers, holds, fails = [], [], []
    for model in present:
        row = e.scored(model)
        ssim, ssim_lo, ssim_hi = _interval(row, "ssim")
        psnr, psnr_lo, psnr_hi = _interval(row, "psnr")
        cf, cf_lo, cf_hi = _interval(row, "colorfulness")
        numbers.append(f"{model}: SSIM {_f(ssim)} [{_f(ssim_lo)}, {_f(ssim_hi)}], PSNR {_f(psnr, 4)} "
                       f"[{_f(psnr_lo, 4)}, {_f(psnr_hi, 4)}] dB, colorfulness {_f(cf)} [{_f(cf_lo)}, {_f(cf_hi)}]")
        holds.append(ssim_lo > C1['ssim'] and psnr_lo > C1['psnr_db'] and cf_hi < C1['dull_share'] * truth)
        fails.append(ssim_hi < C1['ssim'] or psnr_hi < C1['psnr_db'] or cf_lo >= C1['dull_share'] * truth)
    numbers.append(f"ground truth colorfulness {_f(truth)}")
    verdict = SUPPORTED if any(holds) else NOT_SUPPORTED if all(fails) else INCONCLUSIVE
    return Claim("C1", statement, test, "; ".join(numbers), verdict, models=tuple(present))


def _discrimination(e: Evidence, sweep: str, metric: str) -> float:
    row = next((r for r in e.sensitivity if r["sweep"] == sweep and r["metric"] == metric), None)
    return float(row["discrimination"]) if row else np.nan  # type: ignore[arg-type]


def _high_band_rho(e: Evidence, C2: Thresholds, other: str = VIVIDNESS_PROXY) -> Mapping[str, object] | None:
    """Spearman correlation of PSNR with ``other`` over model outputs in the band PSNR >= ``psnr_db`` (the band the
    correlation table labels ``psnr >= 22``, bench/analysis/tables.py)."""
    pair, band = {"psnr", other}, f"psnr >= {C2['psnr_db']:g}"
    return next((c for c in e.correlations if c["band"] == band and {c["metric_a"], c["metric_b"]} == pair
                 and "spearman" in c and int(c["n"]) >= C2['min_band_records']), None)  # type: ignore[call-overload]


@rule("c2@1")
def claim_c2(e: Evidence, C2: Thresholds) -> Claim:
    statement, test = STATEMENTS["C2"], say(TEST_C2, C2, sweeps=", ".join(C2_SWEEPS),
                                            colour_metrics=", ".join(COLOUR_METRICS), proxy=VIVIDNESS_PROXY)
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
        lagging += max(psnr, ssim) <= colour[best] - C2['lag_margin']
        matching += max(psnr, ssim) >= colour[best]
    rho = _high_band_rho(e, C2)
    weak = strong = False
    if rho is None:
        numbers.append(f"(b) fewer than {C2['min_band_records']:g} model records with PSNR >= {C2['psnr_db']:g} dB: "
                       "(a) decides")
    else:
        lo, hi = float(rho["spearman_lo"]), float(rho["spearman_hi"])  # type: ignore[arg-type]
        numbers.append(f"(b) Spearman PSNR vs -|{VIVIDNESS_PROXY}| with PSNR >= {C2['psnr_db']:g} dB: "
                       f"{_f(float(rho['spearman']), 2)} [{_f(lo, 2)}, {_f(hi, 2)}], n = {rho['n']}")  # type: ignore[arg-type]
        context = _high_band_rho(e, C2, "segment_chroma_ratio")
        if context is not None:  # shown, not used by the rule
            numbers.append(f"(context, not in the rule) Spearman PSNR vs segment_chroma_ratio in that band: "
                           f"{_f(float(context['spearman']), 2)} [{_f(float(context['spearman_lo']), 2)}, "  # type: ignore[arg-type]
                           f"{_f(float(context['spearman_hi']), 2)}]")  # type: ignore[arg-type]
        weak, strong = hi < C2['weak_rho'], lo > C2['weak_rho']
    if lagging >= 2 and (rho is None or weak):
        verdict = SUPPORTED
    elif matching >= 2 or strong:
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    n = max((int(r.get("n", 0)) for r in e.sensitivity if r["sweep"] in C2_SWEEPS), default=0)  # type: ignore[call-overload]
    return Claim("C2", statement, test, "; ".join(numbers), verdict, n=n)


@rule("c3@1")
def claim_c3(e: Evidence, C3: Thresholds) -> Claim:
    statement, test = STATEMENTS["C3"], say(TEST_C3, C3)
    if missing := e.missing('channel_equality', 'colorfulness', 'delta_colorfulness'):
        return Claim("C3", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    gans = e.adversarial()
    if not gans:
        return Claim("C3", statement, test, "no trained GAN in this run", NOT_RUN)
    truth, numbers = e.truth_colorfulness(), []
    stable_grey: list[bool] = []
    diverged_vivid: list[bool] = []
    for model in gans:
        row = e.scored(model)
        equality, colorfulness = float(row["channel_equality"]), float(row["colorfulness"])
        diverged = e.diverged(model)
        numbers.append(f"{model} ({'diverged' if diverged else 'stable'}): channel equality {_f(equality)}, "
                       f"colorfulness {_f(colorfulness)}")
        (diverged_vivid if diverged else stable_grey).append(
            colorfulness > truth if diverged else equality >= C3['near_grey'])
    numbers.append(f"ground truth colorfulness {_f(truth)}")
    if (stable_grey and not all(stable_grey)) or (diverged_vivid and not all(diverged_vivid)):
        verdict = NOT_SUPPORTED
    elif stable_grey and diverged_vivid:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Claim("C3", statement, test, "; ".join(numbers), verdict, models=tuple(gans))


def _paired_difference(e: Evidence, a: str, b: str, metric: str) -> tuple[float, float, float, int]:
    """Mean over images of metric(a) - metric(b) with its bootstrap 95% interval."""
    va, vb = e.values(a, metric), e.values(b, metric)
    diffs = [va[i] - vb[i] for i in va if i in vb]
    return (*resampled_mean(diffs, seed=e.seed), len(diffs))


@rule("c4@1")
def claim_c4(e: Evidence, _: Thresholds) -> Claim:
    statement, test = STATEMENTS["C4"], TEST_C4
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
    return Claim("C4", statement, test, "; ".join(parts), verdict, n=n,
                 models=("chromagan", "chromagan-noclass"))


@rule("c5@1")
def claim_c5(e: Evidence, C5: Thresholds) -> Claim:
    statement, test = STATEMENTS["C5"], say(TEST_C5, C5)
    gans = [m for m in e.adversarial() if e.training(m)]
    if not gans:
        return Claim("C5", statement, test, "no GAN training records in this run", NOT_RUN)
    numbers, wild, calm = [], [], []
    for model in gans:
        info = e.training(model)
        gap, epochs, diverged = best_worst_gap(info), int(info.get("epochs", 0)), e.diverged(model)  # type: ignore[call-overload]
        where = f" at epoch {info['divergence']['epoch']}" if diverged else ""  # type: ignore[index]
        numbers.append(f"{model}: {epochs} epochs, {'diverged' + where if diverged else 'no divergence'}, "
                       f"best-worst validation PSNR gap {_f(gap)} dB")
        wild.append(diverged and gap >= C5['wild_gap_db'])
        calm.append(not diverged and epochs >= C5['min_epochs'] and gap < C5['calm_gap_db'])
    verdict = SUPPORTED if any(wild) else NOT_SUPPORTED if all(calm) else INCONCLUSIVE
    return Claim("C5", statement, test, "; ".join(numbers), verdict, n=len(gans), models=tuple(gans))


@rule("c6@1")
def claim_c6(e: Evidence, C6: Thresholds) -> Claim:
    statement, test = STATEMENTS["C6"], say(TEST_C6, C6)

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
    averaged_away = psnr > C6['averaged_away_db'] and ssim > C6['averaged_away_ssim']
    caught = min(np.nan_to_num(recall, nan=1.0), np.nan_to_num(ratio, nan=1.0)) <= C6['segment_catches']
    faded = [c for c in e.curves if c["sweep"] == "object_fade" and c["metric"] == "psnr"]
    n = max((int(c.get("n", 0)) for c in faded), default=0)  # type: ignore[call-overload]
    return Claim("C6", statement, test, numbers, INCONCLUSIVE if averaged_away and caught else NOT_SUPPORTED, n=n)


@rule("c7@1")
def claim_c7(e: Evidence, _: Thresholds) -> Claim:
    statement, test = STATEMENTS["C7"], TEST_C7
    if e.crop is None:
        return Claim("C7", statement, test, "no center-crop run given", NOT_RUN)
    common = [m for m in e.trained() if m in e.crop.trained()]
    if not common:
        return Claim("C7", statement, test, "no trained model in both runs", NOT_RUN)
    numbers, better, worse = [], 0, 0
    for metric, sign in (("psnr", 1), ("deltae2000", -1), ("segment_chroma_ratio", 1)):
        diffs = []
        for model in common:
            crop, resize = e.crop.values(model, metric), e.values(model, metric)
            diffs += [sign * (crop[i] - resize[i]) for i in crop if i in resize]
        mean, lo, hi = resampled_mean(diffs, seed=e.seed)
        numbers.append(f"{metric} improvement with crops {_f(mean)} [{_f(lo)}, {_f(hi)}]")
        better += lo > 0
        worse += hi < 0
    verdict = SUPPORTED if better >= 2 else NOT_SUPPORTED if worse >= 2 else INCONCLUSIVE
    return Claim("C7", statement, test, f"models {', '.join(common)}: " + "; ".join(numbers), verdict,
                 models=tuple(common))

