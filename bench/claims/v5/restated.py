"""Rule functions of rule set version 5 (issue 21; bench/claims/versions/5.toml): ``c1@5``, ``c5@5``,
``c6-premise@5`` and ``c7@5``. C3 under version 5 is ``c3@2`` at the paper's 82% (a threshold-only change).
Frozen: a change of logic is a new function under a new id (bench/claims/registry.py).

What changed from version 4:

- C1 judges ``baseline0`` alone (``gray`` adds no colour by construction, so it passes the colour condition
  without testing anything) and only on an evaluation split of at least ``min_split_images`` listed images
  (val-1k by default): on a smaller split the verdict is ``inconclusive``, with the reason, since two small COCO
  samples gave opposite verdicts (issue 21). The paper's Table 1 figures are quoted beside ours
  (bench/claims/reproduction.py).
- C5 counts a training run only when its validation hold-out is at least a tenth of its training images (rounded
  down, the most bench/training/validation.py holds out): the divergence flag and the best-worst gap of one
  validation image say nothing. Its ``n`` counts runs.
- C6's premise (the faded object of Sec. 7.6 is averaged away by global metrics and registered by a segment
  metric) is its own claim, ``C6-premise``, decided without training, with thresholds fixed in the manifest and
  the segment source (COCO instances or SLIC superpixels) stated, since the premise moves with it.
- C7's grey control must be shown equivalent to no change: every control interval inside a stated margin, so
  floating-point noise passes and a real shift of targets does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from colorbench.claims.c7 import C7_METRICS, CONTROL, _crop_effect, model_effects, tested_models
from colorbench.claims.evidence import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    STATEMENTS,
    SUPPORTED,
    Claim,
    Evidence,
    part,
)
from colorbench.claims.registry import Thresholds, rule
from colorbench.claims.reproduction import reproduction_rows
from colorbench.claims.stats import best_worst_gap, paired_bootstrap
from colorbench.claims.text import fmt, interval_text, say

BASELINE = "baseline0"
#: C7: the manifest's equivalence margin of the grey control, per metric (goodness units).
CONTROL_MARGINS = {"psnr": "control_psnr_db", "deltae2000": "control_deltae2000",
                   "segment_chroma_ratio": "control_log_ratio"}
# The tests in words (colorbench.claims.text.say): a field names a threshold or a word the function passes.
#: What c1@5 tests, in words.
TEST_C1 = ("{baseline} alone, on an evaluation split of at least {min_split_images:g} listed images (val-1k; a smaller "
           "split gives inconclusive), 95% bootstrap intervals over images: supported if mean SSIM and PSNR lie above "
           "{ssim} / {psnr_db:g} dB and the colour share (mean colorfulness / the truth's on the same images) lies "
           "below {dull_share:.0%}; not supported if an interval lies on the wrong side; the paper's Table 1 figures "
           "are context")
#: What c5@5 tests, in words.
TEST_C5 = ("adversarial models, each seed replica a run, counted only when its validation hold-out is at least "
           "{min_validation_share:.0%} of its training images (rounded down): unstable = divergence flag and "
           "best-worst validation PSNR gap >= {wild_gap_db:g} dB; stable = no flag over >= {min_epochs:g} epochs and a "
           "gap < {calm_gap_db:g} dB. Supported if at least {unstable_share:.0%} of the counted runs are unstable, not "
           "supported if every run is counted and stable; n counts runs")
#: What c6-premise@5 tests, in words.
TEST_C6_PREMISE = ("the object_fade sweep at alpha 0 (the most vivid object fully faded, all else the truth), medians "
                   "over the study's images: the global metrics average the loss away when median PSNR > "
                   "{averaged_away_db:g} dB and median SSIM > {averaged_away_ssim} (the paper's reference ChromaGAN, "
                   "Table 2); a segment metric registers it when median vivid recall or segment chroma ratio (both 1 "
                   "at the identity) <= {segment_catches}. Supported if both hold, not supported if both global "
                   "metrics see the loss or no segment metric registers it, inconclusive otherwise or below "
                   "{min_images:g} images; the segment source is stated")
#: What c7@5 tests, in words.
TEST_C7 = ("a resize run and a center-crop run, both scored on the centre square both contain, paired by image, per "
           "trained model: better with crops if at least 2 of {metrics} improve (goodness, 95% interval above 0), "
           "worse if at least 2 worsen. The {control} model is the negative control and must be equivalent to no "
           "change: every interval inside +-{control_psnr_db:g} dB PSNR, +-{control_deltae2000:g} CIEDE2000 and "
           "+-{control_log_ratio:g} in -|log segment chroma ratio|; a control interval outside its margin or "
           "across it makes the verdict inconclusive. Supported if some model is better and none worse, not "
           "supported if the reverse")


def _split_listed(e: Evidence, scored: int) -> int:
    """Images the evaluation split listed (run.json ``splits.eval.n_listed``), else the images scored."""
    listed = part(part(e.run, "splits"), "eval").get("n_listed")
    return int(listed) if isinstance(listed, int | float) else scored


def _table1_context(e: Evidence) -> str:
    """The paper's Table 1 exp0 SSIM and PSNR beside ours (the whole table: analysis/reproduction.csv)."""
    rows = [r for r in reproduction_rows(e.leaderboard, e.run) if r["model"] == BASELINE
            and r["experiment"] == "exp0" and r["metric"] in ("ssim", "psnr") and r["interval_excludes_paper"]]
    said = {"yes": "excludes", "no": "includes"}
    return "; ".join(f"(context) paper Table 1 exp0 {r['metric']} {r['paper']:g}: gap {fmt(float(r['gap']))}, our "  # type: ignore[arg-type]
                     f"interval {said[str(r['interval_excludes_paper'])]} it" for r in rows)


@rule("c1@5")
def claim_c1(e: Evidence, C1: Thresholds) -> Claim:
    statement, test = STATEMENTS["C1"], say(TEST_C1, C1, baseline=BASELINE)
    if missing := e.missing("ssim", "psnr", "colorfulness", "delta_colorfulness"):
        return Claim("C1", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    ssim, psnr, cf, delta = (e.values(BASELINE, m) for m in ("ssim", "psnr", "colorfulness", "delta_colorfulness"))
    ids = [i for i in psnr if all(i in v and np.isfinite(v[i]) for v in (ssim, psnr, cf, delta))]
    if not ids:
        return Claim("C1", statement, test, f"no {BASELINE} in this run", NOT_RUN, change=f"run {BASELINE}")
    s = paired_bootstrap(np.mean, np.array([ssim[i] for i in ids]), seed=e.seed)
    p = paired_bootstrap(np.mean, np.array([psnr[i] for i in ids]), seed=e.seed)
    pred, truth = np.array([cf[i] for i in ids]), np.array([cf[i] - delta[i] for i in ids])
    share = paired_bootstrap(lambda a, b, axis=-1: np.mean(a, axis=axis) / np.mean(b, axis=axis), pred, truth,
                             seed=e.seed)
    listed = _split_listed(e, len(ids))
    numbers = [f"{BASELINE} ({len(ids)} images of a split of {listed}): SSIM {interval_text(*s)}, PSNR "
               f"{interval_text(*p, 4)} dB, colour share {interval_text(*share, 2)}"]
    holds = s[1] > C1["ssim"] and p[1] > C1["psnr_db"] and share[2] < C1["dull_share"]
    fails = s[2] < C1["ssim"] or p[2] < C1["psnr_db"] or share[1] >= C1["dull_share"]
    straddles = [name for name, (_, lo, hi), cut in (("SSIM", s, C1["ssim"]), ("PSNR", p, C1["psnr_db"]),
                                                     ("colour share", share, C1["dull_share"])) if lo <= cut <= hi]
    if listed < C1["min_split_images"]:
        verdict = INCONCLUSIVE
        numbers.append(f"split below {C1['min_split_images']:g} images ({listed} listed): the rule does not decide")
        change = f"the same run on a split of at least {C1['min_split_images']:g} images (--eval-split val-1k)"
    else:
        verdict = SUPPORTED if holds else NOT_SUPPORTED if fails else INCONCLUSIVE
        change = {SUPPORTED: "an interval crossing its threshold (other images)",
                  NOT_SUPPORTED: "intervals that clear the thresholds on other images",
                  INCONCLUSIVE: "more images narrowing the intervals that straddle a threshold: "
                                + (", ".join(straddles) or "none")}[verdict]
    if context := _table1_context(e):
        numbers.append(context)
    return Claim("C1", statement, test, "; ".join(numbers), verdict, n=len(ids), models=(BASELINE,), change=change)


def _validation(info: Mapping[str, object]) -> tuple[int, int]:
    """(validation images, training images in all) of a training record."""
    held = info.get("validation_images")
    n_val = len(held) if isinstance(held, list) else 0
    fit = info.get("n_train_images")
    return n_val, n_val + (int(fit) if isinstance(fit, int | float) else 0)


@rule("c5@5")
def claim_c5(e: Evidence, C5: Thresholds) -> Claim:
    statement, test = STATEMENTS["C5"], say(TEST_C5, C5)
    runs = {m: _validation(e.training(m)) for m in e.adversarial() if e.training(m)}
    if not runs:
        return Claim("C5", statement, test, "no adversarial training record in this run", NOT_RUN,
                     change="train an adversarial model", unit="runs")
    numbers: list[str] = []
    counted, unstable, stable = [], 0, 0
    for model, (n_val, total) in runs.items():
        info = e.training(model)
        enough = n_val >= 1 and n_val >= math.floor(C5["min_validation_share"] * total)
        gap, epochs, diverged = best_worst_gap(info), int(info.get("epochs", 0)), e.diverged(model)  # type: ignore[call-overload]
        numbers.append(f"{model}: validation on {n_val} of {total} training images"
                       f"{'' if enough else ' (too few: not counted)'}, {epochs} epochs, "
                       f"{'diverged' if diverged else 'no divergence'}, best-worst validation PSNR gap {fmt(gap)} dB")
        if enough:
            counted.append(model)
            unstable += diverged and gap >= C5["wild_gap_db"]
            stable += not diverged and epochs >= C5["min_epochs"] and gap < C5["calm_gap_db"]
    numbers.append(f"{len(counted)} of {len(runs)} runs counted: {unstable} unstable, {stable} stable")
    if not counted:
        verdict = INCONCLUSIVE
    else:
        verdict = (SUPPORTED if unstable >= C5["unstable_share"] * len(counted)
                   else NOT_SUPPORTED if stable == len(runs) else INCONCLUSIVE)
    change = {SUPPORTED: "more counted replicas training stably",
              NOT_SUPPORTED: "a counted replica that diverges with a wide best-worst gap",
              INCONCLUSIVE: f"runs validated on at least {C5['min_validation_share']:.0%} of their training images "
                            "(the paper profile holds out at most 500: a tenth of a 5000-image training split)"
              if not counted else "more epochs or seed replicas that settle stable or unstable"}[verdict]
    return Claim("C5", statement, test, "; ".join(numbers), verdict, n=len(counted), models=tuple(runs),
                 change=change, unit="runs")


def _fade_median(e: Evidence, metric: str) -> tuple[float, int]:
    row = next((c for c in e.curves if c["sweep"] == "object_fade" and c["metric"] == metric
                and float(c["strength"]) == 0.0), None)  # type: ignore[arg-type]
    return (float(row["median"]), int(row.get("n", 0))) if row else (np.nan, 0)  # type: ignore[arg-type, call-overload]


@rule("c6-premise@5")
def claim_c6_premise(e: Evidence, P: Thresholds) -> Claim:
    statement, test = STATEMENTS["C6-premise"], say(TEST_C6_PREMISE, P)
    if missing := e.missing("psnr", "ssim"):
        return Claim("C6-premise", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    (psnr, n), (ssim, _) = _fade_median(e, "psnr"), _fade_median(e, "ssim")
    recall, ratio = _fade_median(e, "vivid_recall")[0], _fade_median(e, "segment_chroma_ratio")[0]
    if not np.isfinite(psnr) or not (np.isfinite(recall) or np.isfinite(ratio)):
        return Claim("C6-premise", statement, test, "no object_fade sweep with segment metrics in this run",
                     NOT_RUN, change="run the perturbation study with segment metrics")
    segments = part(e.run, "segments")
    source = f"segments {segments.get('kind', 'not recorded')}" + (f" ({segments['detail']})"
                                                                   if segments.get("detail") else "")
    numbers = (f"object fully faded, {n} images: median PSNR {fmt(psnr, 4)} dB, median SSIM {fmt(ssim)}, median "
               f"vivid recall {fmt(recall)}, median segment chroma ratio {fmt(ratio)}; {source}")
    averaged = psnr > P["averaged_away_db"] and ssim > P["averaged_away_ssim"]
    seen = psnr <= P["averaged_away_db"] and ssim <= P["averaged_away_ssim"]
    segment = [v for v in (recall, ratio) if np.isfinite(v)]
    caught = min(segment) <= P["segment_catches"]
    if n < P["min_images"]:
        verdict = INCONCLUSIVE
        numbers += f"; fewer than {P['min_images']:g} images"
    else:
        verdict = SUPPORTED if averaged and caught else NOT_SUPPORTED if seen or not caught else INCONCLUSIVE
    change = {SUPPORTED: "global metrics that see the faded object, or segment metrics that miss it (another "
                         "segment source)",
              NOT_SUPPORTED: "a segment source whose segments isolate the faded object",
              INCONCLUSIVE: f"at least {P['min_images']:g} study images with an object to fade (--study-images 32 "
                            "or all)" if n < P["min_images"]
              else "PSNR and SSIM that agree"}[verdict]
    return Claim("C6-premise", statement, test, numbers, verdict, n=n, change=change)


@rule("c7@5")
def claim_c7(e: Evidence, C7: Thresholds) -> Claim:
    statement, test = STATEMENTS["C7"], say(TEST_C7, C7, metrics=", ".join(C7_METRICS), control=CONTROL)
    tested = tested_models(e, statement, test)
    if isinstance(tested, Claim):
        return tested
    control = _crop_effect(e, CONTROL)
    margins = {m: C7[CONTROL_MARGINS[m]] for m in control}
    moves = [m for m, (_, lo, hi, _) in control.items() if lo > margins[m] or hi < -margins[m]]
    unsettled = [m for m, (_, lo, hi, _) in control.items() if m not in moves and not -margins[m] <= lo <= hi
                 <= margins[m]]
    numbers = [f"control {CONTROL}: " + ", ".join(f"{m} {interval_text(*r[:3])} (margin +-{margins[m]:g})"
                                                  for m, r in control.items())]
    better, worse, n, effects = model_effects(e, tested)
    numbers += effects
    problem = (f"no {CONTROL} control scored" if not control
               else f"control outside its margin on {', '.join(moves)}: the arms score different pixels or targets"
               if moves else f"control not shown within its margin on {', '.join(unsettled)}" if unsettled else "")
    numbers += [problem] if problem else []
    verdict = (INCONCLUSIVE if problem else SUPPORTED if better and not worse
               else NOT_SUPPORTED if worse and not better else INCONCLUSIVE)
    change = {SUPPORTED: "a model worse with crops, or the control leaving its margin",
              NOT_SUPPORTED: "a model better with crops, or the control leaving its margin",
              INCONCLUSIVE: "a control inside its margins and models that move one way"}[verdict]
    return Claim("C7", statement, test, "; ".join(numbers), verdict, n=n, models=(CONTROL, *tested), change=change)
