"""Rule function ``c7@2``: claim C7 under rule version 2 and later (paper Sec. 7.1: resizing distorts shapes, crops
may colorize better): a resize run and a center-crop run scored on the pixels both contain
(bench/claims/pixels.py), paired by image per trained model, with the grey model as a negative control. It reads
no threshold. Kept apart from v2.py only for size; frozen like it: a change of logic is a new function under a new
id (bench/claims/registry.py)."""

from __future__ import annotations

import numpy as np

from colorbench.claims.evidence import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, STATEMENTS, SUPPORTED, Claim, Evidence
from colorbench.claims.registry import Thresholds, rule
from colorbench.claims.stats import goodness, paired_bootstrap
from colorbench.claims.text import interval_text

C7_METRICS = ("psnr", "deltae2000", "segment_chroma_ratio")
#: The negative control: its outputs do not depend on the crop, so any gain it shows is a difference of targets.
CONTROL = "gray"
# The tests in words (colorbench.claims.text.say): a field names a threshold or a word the function passes.
#: What c7@2 tests, in words.
TEST_C7 = ("a resize run and a center-crop run, both scored on the centre square both contain (mapped into each arm's "
           "own output, against each arm's ground truth), paired by image, per trained model: better with crops if at "
           "least 2 of {metrics} improve (goodness, 95% interval above 0), worse if at least 2 worsen. The {control} "
           "model is the negative control: if any of its intervals excludes 0 the verdict is inconclusive. Supported "
           "if some model is better and none worse, not supported if the reverse")


def _crop_effect(e: Evidence, model: str) -> dict[str, tuple[float, float, float, int]]:
    """Per metric, mean goodness(crop) - goodness(resize) on common pixels, paired by image, with its interval."""
    out = {}
    for metric in C7_METRICS:
        rows = [r for r in e.common_pixels if r["model"] == model and r["metric"] == metric]
        crop = goodness(metric, np.array([float(r["crop"]) for r in rows]))  # type: ignore[arg-type]
        resize = goodness(metric, np.array([float(r["resize"]) for r in rows]))  # type: ignore[arg-type]
        diffs = (crop - resize)[np.isfinite(crop - resize)]
        if diffs.size:
            out[metric] = (*paired_bootstrap(np.mean, diffs, seed=e.seed), int(diffs.size))
    return out


def _weights_note(e: Evidence, model: str) -> str:
    same = (e.crop is not None and e.models[model].get("weights_sha256") is not None
            and e.models[model].get("weights_sha256") == e.crop.models.get(model, {}).get("weights_sha256"))
    return "same weights in both arms" if same else "retrained for the crop arm"


def tested_models(e: Evidence, statement: str, test: str) -> list[str] | Claim:
    """The trained models of both arms, or the ``not run`` row that says what is missing (shared by the C7 rules
    of versions 2 and 5)."""
    if e.crop is None:
        return Claim("C7", statement, test, "no center-crop run given", NOT_RUN,
                     change="bench report RUN --crop-run CROP_RUN")
    tested = [m for m in e.trained() if m in e.crop.trained()]
    if not tested:
        return Claim("C7", statement, test, "no trained model in both runs", NOT_RUN, change="train in both runs")
    if not e.common_pixels:
        return Claim("C7", statement, test, "no common-pixel scores (predictions or originals missing)", NOT_RUN,
                     models=tuple(tested))
    return tested


def model_effects(e: Evidence, tested: list[str]) -> tuple[int, int, int, list[str]]:
    """(models better with crops, models worse, the most images, their numbers): a model is better when at least
    2 of :data:`C7_METRICS` improve (interval above 0), worse when at least 2 worsen."""
    better, worse, n, numbers = 0, 0, 0, []
    for model in tested:
        effect = _crop_effect(e, model)
        ups = sum(lo > 0 for _, lo, _, _ in effect.values())
        downs = sum(hi < 0 for _, _, hi, _ in effect.values())
        better += ups >= 2
        worse += downs >= 2
        n = max([n, *(r[3] for r in effect.values())])
        numbers.append(f"{model} ({_weights_note(e, model)}): " + ", ".join(
            f"{m} gain with crops {interval_text(*r[:3])}" for m, r in effect.items()))
    return better, worse, n, numbers


@rule("c7@2")
def claim_c7(e: Evidence, _: Thresholds) -> Claim:
    statement, test = STATEMENTS["C7"], TEST_C7.format(metrics=", ".join(C7_METRICS), control=CONTROL)
    tested = tested_models(e, statement, test)
    if isinstance(tested, Claim):
        return tested
    control = _crop_effect(e, CONTROL)
    control_moves = [m for m, (_, lo, hi, _) in control.items() if lo > 0 or hi < 0]
    numbers = [f"control {CONTROL}: " + ", ".join(f"{m} {interval_text(*r[:3])}" for m, r in control.items())]
    better, worse, n, effects = model_effects(e, tested)
    numbers += effects
    if not control:
        verdict = INCONCLUSIVE
        numbers.append(f"no {CONTROL} control scored")
    elif control_moves:
        verdict = INCONCLUSIVE
        numbers.append(f"control moves on {', '.join(control_moves)}: the arms score different pixels or targets")
    else:
        verdict = SUPPORTED if better and not worse else NOT_SUPPORTED if worse and not better else INCONCLUSIVE
    change = {SUPPORTED: "a model worse with crops, or the control moving",
              NOT_SUPPORTED: "a model better with crops, or the control moving",
              INCONCLUSIVE: "a control that stays put and models that move one way"}[verdict]
    return Claim("C7", statement, test, "; ".join(numbers), verdict, n=n, models=(CONTROL, *tested), change=change)
