"""Claims rules, version 2 (issue 12; thresholds and their sources in bench/analysis/rules.py).

What changed from version 1: every decision needs a 95% interval on the right side of its threshold; C2 asks the
paper's question within images (does PSNR/SSIM prefer a dull output over a plausible recolouring that a
semantic yardstick prefers?) and per model, never pooling models; C3 calls a pixel grey by its Lab chroma (one
JND) and reads adversarial models only; C4-C6 pair arms by seed and image, with intervals that carry the
variance between seeds; C6 tests a vividness-loss variant when one was trained; C7 scores both arms on the
pixels both contain, with the grey model as a negative control. Metric directions come from the registry
(``goodness``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from colorbench.claims.arms import arm_differences, capped, seed_note
from colorbench.claims.c7 import CONTROL, claim_c7
from colorbench.claims.evidence import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Evidence,
    best_worst_gap,
    crossed_bootstrap,
    fmt,
    interval_text,
)
from colorbench.claims.rules import parameters
from colorbench.claims.v1 import claim_c6 as premise_c6
from colorbench.core.aggregate import bootstrap
from colorbench.core.values import integer, number, section

VERSION = "2"
C1, C2, C3, C4, C5, C6 = (parameters(VERSION, c) for c in ("C1", "C2", "C3", "C4", "C5", "C6"))
TRIVIAL_MODELS = ("baseline0", "gray")
#: C2: the dull outputs and the plausible recolourings of the paired study (interface 2); oversaturated
#: alternatives are context (preferring dull over them is correct behaviour).
DULL_OUTPUTS = ("grey", "desaturated_50")
PLAUSIBLE = ("object_hue_plausible", "colour_transfer")
OVERSATURATED = ("oversaturated_150", "oversaturated_200")
YARDSTICKS = ("semantic_kl",)
FIDELITY = ("psnr", "ssim")
C6_VARIANT, C6_BASE = "chromagan-vivid", "chromagan"


def _finite_pairs(a: Mapping[str, float], b: Mapping[str, float]) -> list[str]:
    return [i for i in a if i in b and np.isfinite(a[i]) and np.isfinite(b[i])]


# -- C1 ----------------------------------------------------------------------------------------------------
def claim_c1(e: Evidence) -> Claim:
    statement = "A trivial baseline scores SSIM > 0.9 and PSNR > 22 dB while adding little or no colour."
    test = (f"per trivial baseline ({' or '.join(TRIVIAL_MODELS)}), 95% bootstrap intervals over images: supported if "
            f"mean SSIM and PSNR lie above {C1['ssim']} / {C1['psnr_db']:g} dB and the colour share (mean "
            f"colorfulness / the truth's on the same images) lies below {C1['dull_share']:.0%} for some baseline; "
            "not supported if for every baseline an interval lies on the wrong side")
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
        s = bootstrap(np.mean, np.array([ssim[i] for i in ids]), seed=e.seed)
        p = bootstrap(np.mean, np.array([psnr[i] for i in ids]), seed=e.seed)
        pred, truth = np.array([cf[i] for i in ids]), np.array([cf[i] - delta[i] for i in ids])
        share = bootstrap(lambda a, b, axis=-1: np.mean(a, axis=axis) / np.mean(b, axis=axis), pred, truth,
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
def _judge(prefs: Mapping[str, tuple[float, float, float]], yardstick: str) -> str:
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
            wanted = {m: rows.get((dull, alternative, m)) for m in (*FIDELITY, yardstick)}
            found = {m: r for m, r in wanted.items() if r is not None}
            if len(found) == len(wanted) and all(int(r["n"]) > 1 for r in found.values()):
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
            if (pair := rows.get((dull, alternative, "psnr"))) is not None and int(pair["n"]) > 1:
                share = float(pair["prefers_dull"]), float(pair["prefers_dull_lo"]), float(pair["prefers_dull_hi"])
                out.append(f"{dull} vs {alternative}: PSNR prefers {dull} in {interval_text(*share, 2)} of images")
    for row in e.human:
        if row.get("metric") in FIDELITY:
            out.append(f"BAPPS 2AFC agreement of {row['metric']} {fmt(float(row['agreement']), 3)}")
    for record in e.sensitivity:
        if record["sweep"] == "desaturation" and record["metric"] in FIDELITY:
            discrimination = number(record["discrimination"])
            out.append(f"cross-image discrimination of {record['metric']} in desaturation {fmt(discrimination, 2)}")
    return out


def claim_c2(e: Evidence) -> Claim:
    statement = ("Above about SSIM 0.9 / PSNR 22 dB, PSNR and SSIM stop tracking colorization quality (vividness, "
                 "correct object colours); they only separate credible outputs from failed ones.")
    test = (f"within images in the high band (dull output with PSNR >= {C2['band_psnr_db']:g} dB and SSIM >= "
            f"{C2['band_ssim']}), paired study ({', '.join(DULL_OUTPUTS)} vs {', '.join(PLAUSIBLE)} and vs each "
            "model's output, one comparison per model): a comparison supports when the 95% intervals of the share "
            f"of images where PSNR and SSIM prefer the dull output lie above {C2['majority']} while the yardstick "
            f"({' or '.join(YARDSTICKS)}) prefers the recolouring (interval below {C2['majority']}); it contradicts "
            "when PSNR and SSIM prefer the recolouring or side with the yardstick. Supported if some comparison "
            "supports and none contradicts, not supported if the reverse, inconclusive otherwise")
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
        judged.append(_judge(prefs, yardstick))
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
def _training(e: Evidence, model: str) -> Mapping[str, object]:
    return section(e.models[model], "training")


def _diverged(e: Evidence, model: str) -> bool:
    return bool(section(_training(e, model), "divergence").get("diverged"))


def claim_c3(e: Evidence) -> Claim:
    statement = "Stable GAN runs output near-grey images (about 82% of pixels R=G=B); diverged runs are oversaturated."
    test = (f"adversarial models, each seed replica: a pixel is near grey when its Lab chroma is below "
            f"{C3['grey_chroma']} (one JND); stable runs need the mean share of near-grey pixels above "
            f"{C3['near_grey']} (95% interval), diverged runs (training divergence flag) a mean colorfulness above "
            "the truth's (paired interval of delta colorfulness above 0). Supported if both hold for every run and "
            "both kinds occur; not supported if an interval lies on the wrong side for some run")
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
        if _diverged(e, model):
            delta = e.values(model, "delta_colorfulness")
            m, lo, hi = bootstrap(np.mean, np.array(list(delta.values())), seed=e.seed)
            numbers.append(f"{model} (diverged): colorfulness - truth's {interval_text(m, lo, hi)}")
            holds.append(("diverged", lo > 0))
            fails.append(hi < 0)
            n = max(n, len(delta))
        else:
            share = e.near_grey[model]
            m, lo, hi = bootstrap(np.mean, np.array(list(share.values())), seed=e.seed)
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


# -- C4 / C6: arms paired by seed and image (bench/analysis/arms.py) ------------------------------------------
def claim_c4(e: Evidence) -> Claim:
    statement = "Dropping ChromaGAN's class-distribution head gives higher PSNR/SSIM than keeping it."
    test = ("chromagan-noclass minus chromagan, paired by seed replica and image, 95% two-way bootstrap over seeds "
            "and images: supported if the mean PSNR and SSIM differences both lie above 0, not supported if either "
            f"lies below 0; fewer than {C4['min_seeds']:g} seeds give at most inconclusive")
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
def claim_c5(e: Evidence) -> Claim:
    statement = ("GAN training is unstable: losses fall, then the generator loss climbs once the discriminator wins; "
                 "best and worst epochs differ wildly in metrics.")
    test = (f"adversarial models, each seed replica a run: unstable = divergence flag and best-worst validation PSNR "
            f"gap >= {C5['wild_gap_db']:g} dB; stable = no flag over >= {C5['min_epochs']:g} epochs and a gap < "
            f"{C5['calm_gap_db']:g} dB. Supported if at least {C5['unstable_share']:.0%} of the runs are unstable, "
            "not supported if every run is stable")
    runs = [m for m in e.adversarial() if _training(e, m)]
    if not runs:
        return Claim("C5", statement, test, "no adversarial training record in this run", NOT_RUN,
                     change="train an adversarial model")
    numbers, unstable, stable = [], 0, 0
    for model in runs:
        info = _training(e, model)
        gap, epochs, diverged = best_worst_gap(info), integer(info.get("epochs", 0)), _diverged(e, model)
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
def claim_c6(e: Evidence) -> Claim:
    statement = ("(proposal, Sec. 7.6) A loss that rewards saturation inside segments would fix faded objects that "
                 "global losses and metrics average away.")
    test = (f"{C6_VARIANT} minus {C6_BASE}, paired by seed replica and image, 95% two-way bootstrap: supported if "
            "segment_chroma_ratio (ideal 1, scored -|log r|) or vivid_recall improves (interval above 0) while PSNR "
            f"and SSIM lose no more than {C6['psnr_margin_db']:g} dB / {C6['ssim_margin']} (lower bounds above minus "
            "the margins); not supported if both segment intervals lie at or below 0; fewer than "
            f"{C6['min_seeds']:g} seeds give at most inconclusive; without the variant not run")
    if missing := e.missing("psnr", "ssim", "segment_chroma_ratio", "vivid_recall"):
        return Claim("C6", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    seeds = [s for s in e.replicas(C6_VARIANT) if s in e.replicas(C6_BASE)]
    if not seeds:
        premise = premise_c6(e)
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


RULES: tuple[Callable[[Evidence], Claim], ...] = (claim_c1, claim_c2, claim_c3, claim_c4, claim_c5, claim_c6, claim_c7)
