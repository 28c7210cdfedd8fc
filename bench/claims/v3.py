"""Rule function ``c6@3`` of rule set version 3 (issue 10; bench/claims/versions/3.toml, thresholds equal to
version 2's). Frozen: a change of logic is a new function under a new id (bench/claims/registry.py).

What changed from version 2: C6 is asked of every vividness-loss variant against its plain twin, each pair on its
own (ChromaGAN and the U-Net control: the paper's proposal is a loss term, not a property of one network), and
the colorfulness difference is reported beside the segment and fidelity metrics. Every other claim is version 2's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from colorbench.claims.arms import arm_differences, capped, seed_note
from colorbench.claims.evidence import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, STATEMENTS, SUPPORTED, Claim, Evidence
from colorbench.claims.registry import Thresholds, rule
from colorbench.claims.stats import crossed_bootstrap
from colorbench.claims.text import interval_text, say
from colorbench.claims.v2 import FIDELITY
from colorbench.claims.v2 import claim_c6 as claim_c6_v2

#: (vivid variant, plain twin): the same family, settings, data, budget and seeds but for the vividness term.
C6_PAIRS = (("chromagan-vivid", "chromagan"), ("unet-l1-vivid", "unet-l1"))
SEGMENT_METRICS = ("segment_chroma_ratio", "vivid_recall")
#: Reported as a plain difference (positive = the variant is more colourful), never as a goodness: more colour is
#: not better by itself (colorfulness is a diagnostic in the metric registry).
CONTEXT_METRICS = ("colorfulness",)
# The tests in words (colorbench.claims.text.say): a field names a threshold or a word the function passes.
#: What c6@3 tests, in words.
TEST_C6 = ("each of {pairs} that was trained with a shared seed, paired by seed replica and image, 95% two-way "
           "bootstrap: a pair supports if segment_chroma_ratio (ideal 1, scored -|log r|) or vivid_recall improves "
           "(interval above 0) while PSNR and SSIM lose no more than {psnr_margin_db:g} dB / {ssim_margin} (lower "
           "bounds above minus the margins), and refutes if both segment intervals lie at or below 0; fewer than "
           "{min_seeds:g} seeds make a pair at most inconclusive. Supported if every tested pair supports, not "
           "supported if every tested pair refutes, else inconclusive; the colorfulness difference is context")


def _raw(_: str, values: np.ndarray) -> np.ndarray:
    return values


def _pair_verdict(e: Evidence, treated: str, base: str, C6: Thresholds) -> tuple[str, str, int]:
    """(verdict, numbers, n images) of one vivid variant against its twin, under version 2's C6 decision."""
    results, n = {}, 0
    for metric in (*SEGMENT_METRICS, *FIDELITY):
        table, _ = arm_differences(e, treated, base, metric)
        results[metric] = crossed_bootstrap(table, seed=e.seed)
        n = max(n, table.shape[1])
    improves = any(results[m][1] > 0 for m in SEGMENT_METRICS)
    keeps = results["psnr"][1] > -C6["psnr_margin_db"] and results["ssim"][1] > -C6["ssim_margin"]
    no_gain = all(results[m][2] <= 0 for m in SEGMENT_METRICS)
    seeds = [s for s in e.replicas(treated) if s in e.replicas(base)]
    verdict = capped(SUPPORTED if improves and keeps else NOT_SUPPORTED if no_gain else INCONCLUSIVE, seeds,
                      C6["min_seeds"])
    parts = [f"{m} goodness difference {interval_text(*r)}" for m, r in results.items()]
    for metric in CONTEXT_METRICS:
        if not e.missing(metric):
            table, _ = arm_differences(e, treated, base, metric, score=_raw)
            parts.append(f"{metric} difference (context) {interval_text(*crossed_bootstrap(table, seed=e.seed))}")
    parts.append(seed_note(seeds, C6["min_seeds"]))
    return verdict, f"{treated} minus {base}: {'; '.join(parts)}; pair {verdict}", n


@rule("c6@3")
def claim_c6(e: Evidence, C6: Thresholds) -> Claim:
    statement, test = STATEMENTS["C6"], say(TEST_C6, C6, pairs=" and ".join(f"{t} minus {b}" for t, b in C6_PAIRS))
    if missing := e.missing("psnr", "ssim", *SEGMENT_METRICS):
        return Claim("C6", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    tested = [(t, b) for t, b in C6_PAIRS if any(s in e.replicas(b) for s in e.replicas(t))]
    if not tested:
        premise = claim_c6_v2(e, C6)  # its not-run row, with the version 1 premise as context
        return Claim("C6", statement, test, f"no vivid variant trained beside its plain twin with a shared seed; "
                     f"{premise.numbers}", NOT_RUN, change="train a vivid variant beside its twin "
                     "(--models unet-l1,unet-l1-vivid,chromagan,chromagan-vivid --seeds 3)")
    verdicts, numbers, n = [], [], 0
    for treated, base in tested:
        verdict, text, pair_n = _pair_verdict(e, treated, base, C6)
        verdicts.append(verdict)
        numbers.append(text)
        n = max(n, pair_n)
    outcome = _combined(verdicts)
    change = {SUPPORTED: "a pair whose segment gain reaches 0 or whose fidelity loss passes the margin",
              NOT_SUPPORTED: "a pair whose segment metrics improve",
              INCONCLUSIVE: "pairs that agree, with at least "
                            f"{C6['min_seeds']:g} seeds and narrower intervals"}[outcome]
    models = tuple(m for pair in tested for arm in pair for m in e.replicas(arm).values())
    return Claim("C6", statement, test, " | ".join(numbers), outcome, n=n, models=models, change=change)


def _combined(verdicts: Sequence[str]) -> str:
    """Supported when every pair supports, not supported when every pair refutes, else inconclusive."""
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if all(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    return INCONCLUSIVE
