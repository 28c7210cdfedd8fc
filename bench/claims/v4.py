"""Claims rules, version 4 (issue 9): version 3's rules for C1-C7, unchanged, plus C8, the paper's premise that
captions improve colorization (Sec. 3: the mapping Psi(I_g, t); Models B and C, Sec. 4.2.3-4.2.4), which the
paper could not test. Thresholds and their sources are in bench/analysis/rules.py.

C8's rule, fixed before any caption model was trained: a caption model M (model-b, model-c1, model-c2) supports
the claim when, trained on the same data with the same budget as ``chromagan-noclass`` (the same generator
without captions), (1) the paired goodness difference M - chromagan-noclass on every segment metric has its
interval above 0 (seed replicas paired by seed, images by id, two-way bootstrap over seeds and images; the
level is Bonferroni-corrected over the caption models compared), and (2) for a model that reads the caption
(B, C.1) the caption sensitivity (colorbench.pipeline.caption_sensitivity) of every seed replica on every segment
metric has
its 95% interval above 0, i.e. the gain comes from what the caption says. Model C.2 reads no caption at
prediction, so (2) does not apply to it. Supported: some model meets (1) and (2); not supported: every model
has an interval below 0 in (1) or a sensitivity interval entirely at or below 0 on some segment metric in (2);
otherwise inconclusive; fewer than ``min_seeds`` shared seeds give at most inconclusive (as C4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from colorbench.claims import v3 as claims_v3
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
from colorbench.core.values import section

VERSION = "4"
C8 = parameters(VERSION, "C8")
CAPTION_MODELS = ("model-b", "model-c1", "model-c2")
READS_CAPTION = ("model-b", "model-c1")
BASELINE = "chromagan-noclass"
SEGMENT_METRICS = ("segment_chroma_ratio", "vivid_recall")
#: Settings that make up the training budget; they must be equal between a caption model and the baseline.
BUDGET = ("profile", "image_size", "width", "batch_size", "epochs", "lr", "betas", "adversarial", "trunk_init")


def _budget(info: Mapping[str, object]) -> dict[str, object]:
    options = section(info, "options")
    return {k: options.get(k) for k in BUDGET}


def _sensitivity(e: Evidence, model: str, metric: str) -> tuple[float, float, float] | None:
    row = e.board(model)
    cell = f"caption_sensitivity_{metric}"
    if row is None or not row.get(cell) or not row.get(f"{cell}_lo"):
        return None
    return float(row[cell]), float(row[f"{cell}_lo"]), float(row[f"{cell}_hi"])


def _judge_model(e: Evidence, model: str, level: float) -> tuple[str, list[str], int, list[int]]:
    """(meets / fails / open, the numbers, n images, shared seeds) of one caption model."""
    parts, above, below, n = [], [], [], 0
    seeds = [s for s in e.replicas(model) if s in e.replicas(BASELINE)]
    for metric in SEGMENT_METRICS:
        table, _ = arm_differences(e, model, BASELINE, metric)
        mean, lo, hi = crossed_bootstrap(table, seed=e.seed, level=level)
        n = max(n, table.shape[1])
        parts.append(f"{model} - {BASELINE} {metric} {interval_text(mean, lo, hi)}")
        above.append(lo > 0)
        below.append(hi < 0)
    if model in READS_CAPTION:
        for metric in SEGMENT_METRICS:
            found = [(r, _sensitivity(e, r, metric)) for r in e.replicas(model).values()]
            if not found or any(s is None for _, s in found):
                parts.append(f"{model} caption sensitivity on {metric} not recorded")
                above.append(False)
                continue
            parts += [f"{r} caption sensitivity {metric} {interval_text(*s)}" for r, s in found]  # type: ignore[misc]
            above.append(all(s[1] > 0 for _, s in found))  # type: ignore[index]
            below.append(any(s[2] <= 0 for _, s in found))  # type: ignore[index]
    state = "meets" if all(above) else "fails" if any(below) else "open"
    return state, parts, n, seeds


def claim_c8(e: Evidence) -> Claim:
    statement = "Captions improve colorization (paper Sec. 3 and 4.2.3-4.2.4: Psi(I_g, t), Models B and C)."
    test = (f"per caption model trained with {BASELINE}'s data and budget: its goodness difference to {BASELINE} on "
            f"{' and '.join(SEGMENT_METRICS)} (paired by seed and image, two-way bootstrap, family-wise "
            f"{1 - C8['alpha']:.0%} over the models compared) lies above 0, and for B and C.1 the caption "
            "sensitivity (true minus swapped caption, 95% interval) on those metrics lies above 0; supported if some "
            "model meets both, not supported if every model has an interval on the wrong side; fewer than "
            f"{C8['min_seeds']:g} seeds give at most inconclusive")
    if missing := e.missing(*SEGMENT_METRICS):
        return Claim("C8", statement, test, f"not computed in this run: {missing}", NOT_RUN)
    compared: list[str] = []
    skipped: list[str] = []
    for model in CAPTION_MODELS:
        if not e.replicas(model) or not e.replicas(BASELINE):
            continue
        budgets = {str(_budget(e.models[r])) for r in (*e.replicas(model).values(), *e.replicas(BASELINE).values())}
        (compared if len(budgets) == 1 else skipped).append(model)
    if not compared:
        why = f"; trained with another budget than {BASELINE}: {', '.join(skipped)}" if skipped else ""
        return Claim("C8", statement, test, f"no caption model was trained beside {BASELINE}{why}", NOT_RUN,
                     change=f"run --models {BASELINE},model-b,model-c1,model-c2 on a captioned source")
    level = 1 - C8["alpha"] / len(compared)
    states, parts, n, shared = {}, [], 0, []
    for model in compared:
        states[model], numbers, count, seeds = _judge_model(e, model, level)
        parts += numbers
        n = max(n, count)
        shared.append(seeds)
    if skipped:
        parts.append(f"left out (another budget than {BASELINE}): {', '.join(skipped)}")
    seeds = min(shared, key=len)
    parts.append(seed_note(seeds, C8["min_seeds"]))
    outcome = (SUPPORTED if "meets" in states.values()
               else NOT_SUPPORTED if all(s == "fails" for s in states.values()) else INCONCLUSIVE)
    verdict = capped(outcome, seeds, C8["min_seeds"])
    change = {SUPPORTED: "a seed or image sample pulling a lower bound to 0",
              NOT_SUPPORTED: "a caption model whose segment-metric gain and caption sensitivity both exclude 0",
              INCONCLUSIVE: f"at least {C8['min_seeds']:g} seeds" if len(seeds) < C8["min_seeds"]
              else "more images or seeds narrowing the intervals"}[verdict]
    models = tuple(r for m in (*compared, BASELINE) for r in e.replicas(m).values())
    return Claim("C8", statement, test, "; ".join(parts), verdict, n=n, models=models, change=change)


RULES: tuple[Callable[[Evidence], Claim], ...] = (*claims_v3.RULES, claim_c8)
