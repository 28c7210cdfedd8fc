"""Rule functions of rule set version 2 (issue 12; bench/claims/versions/2.toml): ``c1@2`` ... ``c6@2`` here,
``c7@2`` in bench/claims/c7.py. Versions 3 and 4 still decide most claims with them. Frozen: a change of logic is a
new function under a new id (bench/claims/registry.py).

What changed from version 1: every decision needs a 95% interval on the right side of its threshold; C2 asks the
paper's question within images (does PSNR/SSIM prefer a dull output over a plausible recolouring that a
semantic yardstick prefers?) and per model, never pooling models; C3 calls a pixel grey by its Lab chroma (one
JND) and reads adversarial models only; C4-C6 pair arms by seed and image, with intervals that carry the
variance between seeds; C6 tests a vividness-loss variant when one was trained; C7 scores both arms on the
pixels both contain, with the grey model as a negative control. Metric directions are the metric registry's
as of version 2, pinned in ``stats.goodness``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from colorbench.claims.arms import arm_differences, capped, seed_note
from colorbench.claims.c7 import CONTROL
from colorbench.claims.evidence import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, STATEMENTS, SUPPORTED, Claim, Evidence
from colorbench.claims.registry import Thresholds, bound, rule
from colorbench.claims.stats import best_worst_gap, crossed_bootstrap, paired_bootstrap
from colorbench.claims.text import fmt, interval_text, say

TRIVIAL_MODELS = ("baseline0", "gray")
#: C2: the dull outputs and the plausible recolourings of the paired study (interface 2); oversaturated
#: alternatives are context (preferring dull over them is correct behaviour).
DULL_OUTPUTS = ("grey", "desaturated_50")
PLAUSIBLE = ("object_hue_plausible", "colour_transfer")
OVERSATURATED = ("oversaturated_150", "oversaturated_200")
YARDSTICKS = ("semantic_kl",)
FIDELITY = ("psnr", "ssim")
C6_VARIANT, C6_BASE = "chromagan-vivid", "chromagan"
# The tests in words (colorbench.claims.text.say): a field names a threshold or a word the function passes.
#: What c1@2 tests, in words.
TEST_C1 = ("per trivial baseline ({trivial}), 95% bootstrap intervals over images: supported if mean SSIM and PSNR lie "
           "above {ssim} / {psnr_db:g} dB and the colour share (mean colorfulness / the truth's on the same images) "
           "lies below {dull_share:.0%} for some baseline; not supported if for every baseline an interval lies on the "
           "wrong side")
#: What c2@2 tests, in words.
TEST_C2 = ("within images in the high band (dull output with PSNR >= {band_psnr_db:g} dB and SSIM >= {band_ssim}), "
           "paired study ({dull} vs {plausible} and vs each model's output, one comparison per model): a comparison "
           "supports when the 95% intervals of the share of images where PSNR and SSIM prefer the dull output lie "
           "above {majority} while the yardstick ({yardsticks}) prefers the recolouring (interval below {majority}); "
           "it contradicts when PSNR and SSIM prefer the recolouring or side with the yardstick. Supported if some "
           "comparison supports and none contradicts, not supported if the reverse, inconclusive otherwise")
#: What c3@2 tests, in words.
TEST_C3 = ("adversarial models, each seed replica: a pixel is near grey when its Lab chroma is below {grey_chroma} "
           "(one JND); stable runs need the mean share of near-grey pixels above {near_grey} (95% interval), diverged "
           "runs (training divergence flag) a mean colorfulness above the truth's (paired interval of delta "
           "colorfulness above 0). Supported if both hold for every run and both kinds occur; not supported if an "
           "interval lies on the wrong side for some run")
#: What c4@2 tests, in words.
TEST_C4 = ("chromagan-noclass minus chromagan, paired by seed replica and image, 95% two-way bootstrap over seeds and "
           "images: supported if the mean PSNR and SSIM differences both lie above 0, not supported if either lies "
           "below 0; fewer than {min_seeds:g} seeds give at most inconclusive")
#: What c5@2 tests, in words.
TEST_C5 = ("adversarial models, each seed replica a run: unstable = divergence flag and best-worst validation PSNR gap "
           ">= {wild_gap_db:g} dB; stable = no flag over >= {min_epochs:g} epochs and a gap < {calm_gap_db:g} dB. "
           "Supported if at least {unstable_share:.0%} of the runs are unstable, not supported if every run is stable")
#: What c6@2 tests, in words.
TEST_C6 = ("{variant} minus {base}, paired by seed replica and image, 95% two-way bootstrap: supported if "
           "segment_chroma_ratio (ideal 1, scored -|log r|) or vivid_recall improves (interval above 0) while PSNR and "
           "SSIM lose no more than {psnr_margin_db:g} dB / {ssim_margin} (lower bounds above minus the margins); not "
           "supported if both segment intervals lie at or below 0; fewer than {min_seeds:g} seeds give at most "
           "inconclusive; without the variant not run")


def _finite_pairs(a: Mapping[str, float], b: Mapping[str, float]) -> list[str]:
    return [i for i in a if i in b and np.isfinite(a[i]) and np.isfinite(b[i])]


# -- C1 ----------------------------------------------------------------------------------------------------
@rule("c1@2")
def claim_c1(e: Evidence, C1: Thresholds) -> Claim:
    statement, test = STATEMENTS["C1"], say(TEST_C1, C1, trivial=" or ".join(TRIVIAL_MODELS))
    if missing := e.missing("ssim", "psnr", "colorfulness", "delta_colorfulness"):
        return Claim("C1", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    present = [m for m in TRIVIAL_MODELS if e.values(m, "psnr")]
    if not present:
        return Claim("C1", statement, test, "no trivial baseline in this run", NOT_RUN,
                     change="run gray or baseline0")
    numbers, holds, fails, straddles, n = [], [], [], [], 0
    for model in present:
        ssim, psnr, cf, delta = (e.values(model, m) for m in ("ssim", "psnr", "colorfulness", "delta_colorfulness"))
        ids = [i for i in _finite_pairs(ssim, psnr) if i in cf and i in delta]
        n = max(n, len(ids))
        s = paired_bootstrap(np.mean, np.array([ssim[i] for i in ids]), seed=e.seed)
        p = paired_bootstrap(np.mean, np.array([psnr[i] for i in ids]), seed=e.seed)
        pred, truth = np.array([cf[i] for i in ids]), np.array([cf[i] - delta[i] for i in ids])
        share = paired_bootstrap(lambda a, b, axis=-1: np.mean(a, axis=axis) / np.mean(b, axis=axis), pred, truth,
                                 seed=e.seed)
        numbers.append(f"{model} ({len(ids)} images): SSIM {interval_text(*s)}, PSNR {interval_text(*p, 4)} dB, "
                       f"colour share {interval_text(*share, 2)}")
        holds.append(s[1] > C1["ssim"] and p[1] > C1["psnr_db"] and share[2] < C1["dull_share"])
        fails.append(s[2] < C1["ssim"] or p[2] < C1["psnr_db"] or share[1] >= C1["dull_share"])
        straddles += [f"{model} {name}" for name, (_, lo, hi), cut in
                      (("SSIM", s, C1["ssim"]), ("PSNR", p, C1["psnr_db"]), ("colour share", share, C1["dull_share"]))
                      if lo <= cut <= hi]
    verdict = SUPPORTED if any(holds) else NOT_SUPPORTED if all(fails) else INCONCLUSIVE
    change = {SUPPORTED: "an interval of every passing baseline crossing its threshold (more or other images)",
              NOT_SUPPORTED: "a baseline whose three intervals clear the thresholds (e.g. COCO at the paper's size)",
              INCONCLUSIVE: "more images narrowing the intervals that straddle a threshold: "
                            + (", ".join(straddles) or "none")}[verdict]
    return Claim("C1", statement, test, "; ".join(numbers), verdict, n=n, models=tuple(present), change=change)


# -- C2 ----------------------------------------------------------------------------------------------------
def _judge(prefs: Mapping[str, tuple[float, float, float]], yardstick: str, C2: Thresholds) -> str:
    """One paired comparison of a dull output with a recolouring: ``supports`` (PSNR and SSIM prefer the dull
    output in most images while the yardstick prefers the recolouring), ``contradicts`` (PSNR and SSIM prefer
    the recolouring, or side with the yardstick), or ``undecided``."""
    half = C2["majority"]
    fidelity_dull = all(prefs[m][1] > half for m in FIDELITY)
    fidelity_alt = all(prefs[m][2] < half for m in FIDELITY)
    yard_dull, yard_alt = prefs[yardstick][1] > half, prefs[yardstick][2] < half
    if fidelity_dull and yard_alt:
        return "supports"
    if fidelity_alt or (fidelity_dull and yard_dull):
        return "contradicts"
    return "undecided"


def _units(e: Evidence, yardstick: str) -> list[tuple[str, dict[str, tuple[float, float, float]], int]]:
    """(label, metric -> prefers_dull with interval, n) for each comparison of the paired study's high band:
    every dull output against every plausible recolouring, and against each model's output (one comparison per
    model, never pooled across models)."""
    rows = {(r["dull"], r["alternative"], r["metric"]): r for r in e.paired_study if r["band"] == "high"}
    alternatives = [*PLAUSIBLE, *(m for m in e.models if m != CONTROL)]
    units = []
    for dull in DULL_OUTPUTS:
        for alternative in alternatives:
            metrics = (*FIDELITY, yardstick)
            found = {m: r for m in metrics if (r := rows.get((dull, alternative, m))) is not None}
            if len(found) == len(metrics) and all(int(r["n"]) > 1 for r in found.values()):
                prefs = {m: (float(r["prefers_dull"]), float(r["prefers_dull_lo"]), float(r["prefers_dull_hi"]))
                         for m, r in found.items()}
                units.append((f"{dull} vs {alternative}", prefs, int(found[yardstick]["n"])))
    return units


def _context_c2(e: Evidence) -> list[str]:
    """Numbers shown beside the C2 verdict but not used by it."""
    rows = {(r["dull"], r["alternative"], r["metric"]): r for r in e.paired_study if r["band"] == "high"}
    out = []
    for dull in DULL_OUTPUTS:
        for alternative in OVERSATURATED:
            if (row := rows.get((dull, alternative, "psnr"))) is not None and int(row["n"]) > 1:
                share, lo, hi = (float(row[k]) for k in ("prefers_dull", "prefers_dull_lo", "prefers_dull_hi"))
                out.append(f"{dull} vs {alternative}: PSNR prefers {dull} in {interval_text(share, lo, hi, 2)} of "
                           "images")
    for human in e.human:
        if human.get("metric") in FIDELITY:
            out.append(f"BAPPS 2AFC agreement of {human['metric']} {fmt(float(human['agreement']), 3)}")
    for sweep in e.sensitivity:
        if sweep["sweep"] == "desaturation" and sweep["metric"] in FIDELITY:
            discrimination = float(sweep["discrimination"])  # type: ignore[arg-type]
            out.append(f"cross-image discrimination of {sweep['metric']} in desaturation {fmt(discrimination, 2)}")
    return out


@rule("c2@2")
def claim_c2(e: Evidence, C2: Thresholds) -> Claim:
    statement, test = STATEMENTS["C2"], say(TEST_C2, C2, dull=", ".join(DULL_OUTPUTS), plausible=", ".join(PLAUSIBLE),
                                            yardsticks=" or ".join(YARDSTICKS))
    if missing := e.missing("psnr", "ssim"):
        return Claim("C2", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    yardstick = next((y for y in YARDSTICKS if any(r["metric"] == y for r in e.paired_study) or not e.missing(y)),
                     None)
    if yardstick is None:
        return Claim("C2", statement, test, f"no yardstick ({', '.join(YARDSTICKS)}) in the paired study or the "
                     "records", NOT_RUN, change="the paired study with semantic_kl (analysis/paired_study.csv)")
    units = _units(e, yardstick)
    if not units:
        return Claim("C2", statement, test, "no paired comparison in the high band (analysis/paired_study.csv "
                     "missing or without images in the band)", NOT_RUN, change="run the paired study")
    numbers, judged = [], []
    for label, prefs, n in units:
        judged.append(_judge(prefs, yardstick, C2))
        numbers.append(f"{label} (n {n}): prefers dull by " + ", ".join(
            f"{m} {interval_text(*prefs[m], 2)}" for m in (*FIDELITY, yardstick)) + f" -> {judged[-1]}")
    numbers += [f"(context) {c}" for c in _context_c2(e)]
    supports, contradicts = judged.count("supports"), judged.count("contradicts")
    verdict = (SUPPORTED if supports and not contradicts else NOT_SUPPORTED if contradicts and not supports
               else INCONCLUSIVE)
    change = {SUPPORTED: "a comparison where PSNR/SSIM prefer the recolouring or side with the yardstick",
              NOT_SUPPORTED: "a comparison where PSNR and SSIM prefer the dull output against the yardstick",
              INCONCLUSIVE: "more images (narrower intervals) or a yardstick that decides; now "
                            f"{supports} support, {contradicts} contradict"}[verdict]
    compared = (label.split(" vs ")[1] for label, _, _ in units)
    models = tuple(dict.fromkeys(m for m in compared if m in e.models))
    return Claim("C2", statement, test, "; ".join(numbers), verdict, n=max(n for _, _, n in units), models=models,
                 change=change)


# -- C3 ----------------------------------------------------------------------------------------------------
@rule("c3@2")
def claim_c3(e: Evidence, C3: Thresholds) -> Claim:
    statement, test = STATEMENTS["C3"], say(TEST_C3, C3)
    if missing := e.missing("delta_colorfulness"):
        return Claim("C3", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    gans = e.adversarial()
    if not gans:
        return Claim("C3", statement, test, "no trained adversarial model in this run", NOT_RUN,
                     change="train an adversarial model (chromagan, model-a, model-a2)")
    if absent := [m for m in gans if not e.near_grey.get(m)]:
        return Claim("C3", statement, test, f"no near-grey measurement for {', '.join(absent)} (predictions missing)",
                     NOT_RUN, models=tuple(gans), change="keep the predictions in the run folder")
    numbers, holds, fails, n = [], [], [], 0
    for model in gans:
        if e.diverged(model):
            delta = e.values(model, "delta_colorfulness")
            m, lo, hi = paired_bootstrap(np.mean, np.array(list(delta.values())), seed=e.seed)
            numbers.append(f"{model} (diverged): colorfulness - truth's {interval_text(m, lo, hi)}")
            holds.append(("diverged", lo > 0))
            fails.append(hi < 0)
            n = max(n, len(delta))
        else:
            share = e.near_grey[model]
            m, lo, hi = paired_bootstrap(np.mean, np.array(list(share.values())), seed=e.seed)
            numbers.append(f"{model} (stable): near-grey pixel share {interval_text(m, lo, hi)}")
            holds.append(("stable", lo > C3["near_grey"]))
            fails.append(hi < C3["near_grey"])
            n = max(n, len(share))
    kinds = {kind for kind, _ in holds}
    if any(fails):
        verdict = NOT_SUPPORTED
    elif all(ok for _, ok in holds) and kinds == {"stable", "diverged"}:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    change = {SUPPORTED: "a stable run with colour or a diverged run duller than the truth",
              NOT_SUPPORTED: "runs whose intervals move to the claimed side",
              INCONCLUSIVE: "a diverged run" if kinds == {"stable"} else "a stable run" if kinds == {"diverged"}
              else "more images narrowing the intervals"}[verdict]
    return Claim("C3", statement, test, "; ".join(numbers), verdict, n=n, models=tuple(gans), change=change)


# -- C4 / C6: arms paired by seed and image (bench/claims/arms.py) ------------------------------------------
@rule("c4@2")
def claim_c4(e: Evidence, C4: Thresholds) -> Claim:
    statement, test = STATEMENTS["C4"], say(TEST_C4, C4)
    if missing := e.missing("psnr", "ssim"):
        return Claim("C4", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    seeds = [s for s in e.replicas("chromagan-noclass") if s in e.replicas("chromagan")]
    if not seeds:
        return Claim("C4", statement, test, "chromagan and chromagan-noclass were not both trained with a shared "
                     "seed", NOT_RUN, change="train both arms (--models chromagan,chromagan-noclass --seeds 3)")
    parts, above, below, n = [], [], [], 0
    for metric in FIDELITY:
        table, _ = arm_differences(e, "chromagan-noclass", "chromagan", metric)
        mean, lo, hi = crossed_bootstrap(table, seed=e.seed)
        n = max(n, table.shape[1])
        parts.append(f"{metric} difference {interval_text(mean, lo, hi)}")
        above.append(lo > 0)
        below.append(hi < 0)
    parts.append(seed_note(seeds, C4["min_seeds"]))
    verdict = capped(SUPPORTED if all(above) else NOT_SUPPORTED if any(below) else INCONCLUSIVE, seeds,
                      C4["min_seeds"])
    change = {SUPPORTED: "a seed or image sample pulling a lower bound below 0",
              NOT_SUPPORTED: "more seeds pulling the negative interval up to 0",
              INCONCLUSIVE: f"at least {C4['min_seeds']:g} seeds" if len(seeds) < C4["min_seeds"]
              else "more seeds or images narrowing the intervals"}[verdict]
    models = tuple(e.replicas("chromagan").values()) + tuple(e.replicas("chromagan-noclass").values())
    return Claim("C4", statement, test, "; ".join(parts), verdict, n=n, models=models, change=change)


# -- C5 ----------------------------------------------------------------------------------------------------
@rule("c5@2")
def claim_c5(e: Evidence, C5: Thresholds) -> Claim:
    statement, test = STATEMENTS["C5"], say(TEST_C5, C5)
    runs = [m for m in e.adversarial() if e.training(m)]
    if not runs:
        return Claim("C5", statement, test, "no adversarial training record in this run", NOT_RUN,
                     change="train an adversarial model")
    numbers, unstable, stable = [], 0, 0
    for model in runs:
        info = e.training(model)
        gap, epochs, diverged = best_worst_gap(info), int(info.get("epochs", 0)), e.diverged(model)  # type: ignore[call-overload]
        numbers.append(f"{model}: {epochs} epochs, {'diverged' if diverged else 'no divergence'}, best-worst "
                       f"validation PSNR gap {fmt(gap)} dB")
        unstable += diverged and gap >= C5["wild_gap_db"]
        stable += not diverged and epochs >= C5["min_epochs"] and gap < C5["calm_gap_db"]
    numbers.append(f"{unstable} of {len(runs)} runs unstable, {stable} stable")
    verdict = (SUPPORTED if unstable >= C5["unstable_share"] * len(runs) else NOT_SUPPORTED if stable == len(runs)
               else INCONCLUSIVE)
    change = {SUPPORTED: "more seed replicas training stably",
              NOT_SUPPORTED: "a replica that diverges with a wide best-worst gap",
              INCONCLUSIVE: "more epochs or seed replicas that settle stable or unstable"}[verdict]
    return Claim("C5", statement, test, "; ".join(numbers), verdict, n=len(runs), models=tuple(runs), change=change)


# -- C6 ----------------------------------------------------------------------------------------------------
@rule("c6@2")
def claim_c6(e: Evidence, C6: Thresholds) -> Claim:
    statement, test = STATEMENTS["C6"], say(TEST_C6, C6, variant=C6_VARIANT, base=C6_BASE)
    if missing := e.missing("psnr", "ssim", "segment_chroma_ratio", "vivid_recall"):
        return Claim("C6", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    seeds = [s for s in e.replicas(C6_VARIANT) if s in e.replicas(C6_BASE)]
    if not seeds:
        premise = bound("1", "C6")(e)  # context: version 1's premise test, with version 1's thresholds
        return Claim("C6", statement, test, f"no {C6_VARIANT} and {C6_BASE} trained with a shared seed; (context, "
                     f"not the verdict) premise: {premise.numbers}", NOT_RUN,
                     change=f"train {C6_VARIANT} beside {C6_BASE} (issue 10)")
    results, n = {}, 0
    for metric in ("segment_chroma_ratio", "vivid_recall", *FIDELITY):
        table, _ = arm_differences(e, C6_VARIANT, C6_BASE, metric)
        results[metric] = crossed_bootstrap(table, seed=e.seed)
        n = max(n, table.shape[1])
    improves = results["segment_chroma_ratio"][1] > 0 or results["vivid_recall"][1] > 0
    keeps = results["psnr"][1] > -C6["psnr_margin_db"] and results["ssim"][1] > -C6["ssim_margin"]
    no_gain = results["segment_chroma_ratio"][2] <= 0 and results["vivid_recall"][2] <= 0
    verdict = capped(SUPPORTED if improves and keeps else NOT_SUPPORTED if no_gain else INCONCLUSIVE, seeds,
                      C6["min_seeds"])
    numbers = [f"{m} goodness difference {interval_text(*r)}" for m, r in results.items()]
    numbers.append(seed_note(seeds, C6["min_seeds"]))
    change = {SUPPORTED: "a segment gain whose interval reaches 0, or a fidelity loss beyond the margin",
              NOT_SUPPORTED: "a variant whose segment metrics improve",
              INCONCLUSIVE: f"at least {C6['min_seeds']:g} seeds" if len(seeds) < C6["min_seeds"]
              else "narrower intervals (more images or seeds)"}[verdict]
    models = tuple(e.replicas(C6_VARIANT).values()) + tuple(e.replicas(C6_BASE).values())
    return Claim("C6", statement, test, "; ".join(numbers), verdict, n=n, models=models, change=change)

