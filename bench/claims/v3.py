"""Claims rules, version 3 (issue 10; thresholds in bench/claims/rules.py, equal to version 2's).

What changed from version 2: C6 is asked of every vividness-loss variant against its plain twin, each pair on its
own (ChromaGAN and the U-Net control: the paper's proposal is a loss term, not a property of one network), and
the colorfulness difference is reported beside the segment and fidelity metrics. Every other claim is version 2's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from colorbench.claims import v2 as claims_v2
from colorbench.claims.arms import arm_differences, capped, seed_note
from colorbench.claims.evidence import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Evidence,
    crossed_bootstrap,
    interval_text,
)
from colorbench.claims.rules import parameters
from colorbench.claims.v2 import FIDELITY

VERSION = "3"
C6 = parameters(VERSION, "C6")
#: (vivid variant, plain twin): the same family, settings, data, budget and seeds but for the vividness term.
C6_PAIRS = (("chromagan-vivid", "chromagan"), ("unet-l1-vivid", "unet-l1"))
SEGMENT_METRICS = ("segment_chroma_ratio", "vivid_recall")
#: Reported as a plain difference (positive = the variant is more colourful), never as a goodness: more colour is
#: not better by itself (colorfulness is a diagnostic in the metric registry).
CONTEXT_METRICS = ("colorfulness",)


def _raw(_: str, values: np.ndarray) -> np.ndarray:
    return values


def _pair_verdict(e: Evidence, treated: str, base: str) -> tuple[str, str, int]:
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


def claim_c6(e: Evidence) -> Claim:
    statement = ("(proposal, Sec. 7.6) A loss that rewards saturation inside segments would fix faded objects that "
                 "global losses and metrics average away.")
    pairs = " and ".join(f"{t} minus {b}" for t, b in C6_PAIRS)
    test = (f"each of {pairs} that was trained with a shared seed, paired by seed replica and image, 95% two-way "
            "bootstrap: a pair supports if segment_chroma_ratio (ideal 1, scored -|log r|) or vivid_recall improves "
            f"(interval above 0) while PSNR and SSIM lose no more than {C6['psnr_margin_db']:g} dB / "
            f"{C6['ssim_margin']} (lower bounds above minus the margins), and refutes if both segment intervals lie "
            f"at or below 0; fewer than {C6['min_seeds']:g} seeds make a pair at most inconclusive. Supported if "
            "every tested pair supports, not supported if every tested pair refutes, else inconclusive; the "
            "colorfulness difference is context")
    if missing := e.missing("psnr", "ssim", *SEGMENT_METRICS):
        return Claim("C6", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    tested = [(t, b) for t, b in C6_PAIRS if any(s in e.replicas(b) for s in e.replicas(t))]
    if not tested:
        premise = claims_v2.claim_c6(e)
        return Claim("C6", statement, test, f"no vivid variant trained beside its plain twin with a shared seed; "
                     f"{premise.numbers}", NOT_RUN, change="train a vivid variant beside its twin "
                     "(--models unet-l1,unet-l1-vivid,chromagan,chromagan-vivid --seeds 3)")
    verdicts, numbers, n = [], [], 0
    for treated, base in tested:
        verdict, text, pair_n = _pair_verdict(e, treated, base)
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


RULES: tuple[Callable[[Evidence], Claim], ...] = tuple(claim_c6 if rule is claims_v2.claim_c6 else rule
                                                       for rule in claims_v2.RULES)
