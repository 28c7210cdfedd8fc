"""Rule function ``c2@5`` of rule set version 5 (issue 21; bench/claims/versions/5.toml): claim C2, the paper's
headline (Sec. 1 and 7: above about SSIM 0.9 / PSNR 22 dB, PSNR and SSIM stop tracking colorization quality and
only separate credible outputs from failed ones), asked with arms a colorizer could produce from L alone and a
judge that never sees the image's truth. Frozen: a change of logic is a new function under a new id
(bench/claims/registry.py).

What changed from version 4 (whose judge, semantic_kl, follows PSNR within images and whose dull arm, the truth at
half chroma, no colorizer can make): the arms are those of colorbench.study.c2_arms (grey, baseline0 and every
model at half chroma against every credible model and class-conditioned recolourings, hues drawn from the
training split); a judge is used only after a gate (truth over grey and plausible over implausible twins, 95%
intervals above ``gate_share``), and the gate itself is valid only if -MSE fails its plausibility part (else the
twins differ in fidelity). Judges in order: people (the rating protocol's CSV), then the proxy colour likelihood;
semantic_kl and -MSE go through the gate as controls and are never used. No passing judge: "not tested".

Two endpoints, fixed here, each asked of PSNR and of SSIM with Holm's step-down over the two (family-wise
``alpha``): (a) among high-band pairs (dull and alternative both above the band) the share per image where the
metric prefers the dull arm and the judge the alternative, against ``reversal_share``; (b) the per-image drop of
Kendall tau-a between metric and judge from pairs with an arm at or below the band to pairs above it, against
``tau_margin``. Supported: both endpoints hold for both metrics; not supported: some endpoint is refuted for a
metric (its mean surely on the other side) and none holds; inconclusive otherwise, and always when fewer images
enter than the power calculation asks (colorbench.claims.c2gate.images_needed with the planning values below).
"""

from __future__ import annotations

from collections.abc import Sequence

from colorbench.claims.c2gate import (
    Preferences,
    Test,
    agreement_drops,
    gate_shares,
    holm,
    images_needed,
    rating_preferences,
    reversal_shares,
    score_preferences,
    twin_psnr_gap,
)
from colorbench.claims.evidence import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    NOT_TESTED,
    STATEMENTS,
    SUPPORTED,
    Claim,
    Evidence,
)
from colorbench.claims.registry import Thresholds, rule
from colorbench.claims.text import fmt, interval_text, say
from colorbench.study.c2_arms import ARM_PARAMETERS

METRICS = ("psnr", "ssim")
#: The judges in the order they are tried, with what they are.
JUDGES = (("ratings", "people: the rating protocol's pairwise choices (colorbench.analysis.ratings)"),
          ("colour_likelihood", "proxy: class-conditional likelihood of instance colours fitted on the training split"))
#: Run through the gate but never used: they see the truth.
CONTROLS = (("neg_mse", "-MSE"), ("semantic_kl", "semantic_kl"))
NO_CLASSIFIER = ("classification judge not built: ImageNet-1k has no class for most COCO categories, so no "
                 "defensible ImageNet-to-COCO map exists")
TRIVIAL = ("gray", "baseline0")
TEST_C2 = ("arms from L alone per image (dull: grey, baseline0, each model at half chroma; alternatives: credible "
           "models and {recolourings:g} class-conditioned recolourings of every instance covering >= {large_area:.0%} "
           "of a class with >= {min_class_instances:g} train hues); a judge that never sees the truth must first "
           "pass the gate (truth over grey and plausible over implausible twins of classes with hue spread <= "
           "{narrow_hue_sd_deg:g} deg, 95% intervals above {gate_share}; -MSE must fail the twins); endpoints per "
           "PSNR (band {band_psnr_db:g} dB) and SSIM (band {band_ssim}), Holm at {alpha}: (a) share of high-band "
           "dull/alternative pairs where the metric prefers dull and the judge the alternative vs {reversal_share}, "
           "(b) drop of within-image Kendall tau (metric vs judge) from below to above the band vs {tau_margin}; "
           "supported if both endpoints hold for both metrics, not supported if one is refuted and none holds; "
           "fewer images than the power calculation asks (power {power}) give inconclusive")


def _gate(prefs: Preferences, e: Evidence, C2: Thresholds) -> tuple[bool, bool, str]:
    """(passes both parts, passes the plausibility part, the numbers) of one judge's gate."""
    truth, twins = gate_shares(prefs, e.c2_arms)
    t, p = (Test.of(v, C2["gate_share"], e.seed) for v in (truth, twins))
    truth_ok, twins_ok = t.lo > C2["gate_share"], p.lo > C2["gate_share"]
    text = (f"truth > grey {interval_text(t.mean, t.lo, t.hi, 2)} (n {t.n}), plausible > implausible twin "
            f"{interval_text(p.mean, p.lo, p.hi, 2)} (n {p.n})")
    return truth_ok and twins_ok, twins_ok, text


def _endpoint(e: Evidence, prefs: Preferences, C2: Thresholds, name: str) -> tuple[str, list[str], int]:
    """(supports / refutes / open, the numbers, fewest images over the metrics) of endpoint ``a`` or ``b``."""
    tests = {}
    for metric in METRICS:
        band = C2["band_psnr_db"] if metric == "psnr" else C2["band_ssim"]
        if name == "a":
            tests[metric] = Test.of(reversal_shares(e.c2_arms, metric, band, prefs), C2["reversal_share"], e.seed)
        else:
            tests[metric] = Test.of(agreement_drops(e.c2_arms, metric, band, prefs), C2["tau_margin"], e.seed)
    holds = holm({m: t.p_above for m, t in tests.items()}, C2["alpha"])
    refuted = holm({m: t.p_below for m, t in tests.items()}, C2["alpha"])
    state = "refutes" if any(refuted.values()) else "supports" if all(holds.values()) else "open"
    what = "reversal share" if name == "a" else "tau drop"
    parts = [f"({name}) {m} {what} {interval_text(t.mean, t.lo, t.hi, 2)} (n {t.n}, p {fmt(t.p_above, 2)})"
             for m, t in tests.items()]
    return state, [*parts[:-1], f"{parts[-1]} -> {state}"], min(t.n for t in tests.values())


def _judges(e: Evidence) -> list[tuple[str, str, Preferences]]:
    found = []
    for name, what in JUDGES:
        prefs = rating_preferences(e.c2_ratings) if name == "ratings" else score_preferences(e.c2_arms, name)
        if prefs and any(prefs.values()):
            found.append((name, what, prefs))
    return found


def _not_tested(statement: str, test: str, parts: Sequence[str], why: str, change: str) -> Claim:
    return Claim("C2", statement, test, "; ".join([*parts, f"not tested: {why}", NO_CLASSIFIER]), NOT_TESTED,
                 change=change)


def _arm_models(e: Evidence) -> tuple[str, ...]:
    arms = {str(r["arm"]).split("@")[0] for r in e.c2_arms}
    return tuple(m for m in e.models if m in arms)


@rule("c2@5")
def claim_c2(e: Evidence, C2: Thresholds) -> Claim:
    statement, test = STATEMENTS["C2"], say(TEST_C2, C2)
    if not e.c2_arms:
        return Claim("C2", statement, test, "no C2 arms in this run (analysis/c2_arms.csv: needs COCO instances on "
                     "the evaluation and training sources)", NOT_RUN, change="a run on COCO with instances")
    made = {k: e.c2_params.get(k) for k in ARM_PARAMETERS}
    if made != {k: C2[k] for k in ARM_PARAMETERS}:
        return Claim("C2", statement, test, f"the arms were made with other parameters ({made}) than this rule "
                     "fixes", NOT_RUN, change="rebuild the report (the arms are remade with the rule's parameters)")
    controls, parts = {}, [f"twin |PSNR difference| {interval_text(*_gap(e))} dB"]
    for column, label in CONTROLS:
        prefs = score_preferences(e.c2_arms, column)
        if any(prefs.values()):
            passed, twins_ok, text = _gate(prefs, e, C2)
            controls[column] = twins_ok
            parts.append(f"control {label} (sees the truth, never used): {text} -> "
                         f"{'passes' if passed else 'fails'}")
    if controls.get("neg_mse", True):
        return _not_tested(statement, test, parts, "-MSE passes the plausibility part of the gate (or was not "
                           "scored), so the twins differ in fidelity and no judge can be validated",
                           "twins whose fidelity is equal (-MSE failing their part of the gate)")
    chosen = None
    for name, what, prefs in _judges(e):
        passed, _, text = _gate(prefs, e, C2)
        parts.append(f"judge {name} ({what}): gate {text} -> {'passed' if passed else 'failed, not used'}")
        if passed and chosen is None:
            chosen = (name, prefs)
    if chosen is None:
        return _not_tested(statement, test, parts, "no judge passed the gate", "a judge that passes the gate: "
                           "ratings from the rating protocol (analysis/ratings.csv) or a better proxy")
    name, prefs = chosen
    parts.append(f"judge used: {name}, gate passed")
    states, counts = [], []
    for endpoint in ("a", "b"):
        state, numbers, n = _endpoint(e, prefs, C2, endpoint)
        states.append(state)
        counts.append(n)
        parts += numbers
    needed = max(images_needed(C2["planning_sd_share"], C2["planning_effect_share"], C2["alpha"], C2["power"]),
                 images_needed(C2["planning_sd_tau"], C2["planning_effect_tau"], C2["alpha"], C2["power"]))
    n = min(counts)
    outcome = (SUPPORTED if all(s == "supports" for s in states)
               else NOT_SUPPORTED if "refutes" in states and "supports" not in states else INCONCLUSIVE)
    parts.append(f"power: a verdict needs >= {needed} images per endpoint, has {n}")
    if n < needed:
        outcome = INCONCLUSIVE
        parts.append("inconclusive: n below the power requirement")
    parts.append(NO_CLASSIFIER)
    change = (f"at least {needed} images entering both endpoints" if n < needed else
              {SUPPORTED: "an endpoint whose interval reaches its threshold for PSNR or SSIM",
               NOT_SUPPORTED: "both endpoints holding for PSNR and SSIM (more or other images, another judge)",
               INCONCLUSIVE: "more images narrowing the endpoint intervals"}[outcome])
    return Claim("C2", statement, test, "; ".join(parts), outcome, n=n, models=_arm_models(e), change=change)


def _gap(e: Evidence) -> tuple[float, float, float]:
    found = Test.of(twin_psnr_gap(e.c2_arms), 0.0, e.seed)
    return found.mean, found.lo, found.hi

