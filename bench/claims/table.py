"""The claims table: each of the paper's claims C1-C7 (reference.md sec. 1), and the caption claim C8, tested under
every rule version (bench/claims/versions/*.toml, read by manifest.py; rule functions by id in registry.py), with
the numbers the rule used, the protocol the numbers come from (n images, data source, image size, training
profile, teacher, segment source, seeds) and a verdict computed from them, never written by hand.

A verdict computed from the built-in sample or from ``smoke`` trainings is ``plumbing only``: those runs test
that the code path works, not the paper (the rule's own outcome stays in the ``outcome`` column). The current
version's rows carry the previous version's verdict so that the report can show a changed verdict beside the
old one, and :func:`verdict_changes` lists every change of a claim's verdict from one version to the next.
``claims.csv`` lists the current version's rows first (:func:`csv_rows`, with a ``current`` column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from colorbench.claims.evidence import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    NOT_TESTED,
    OUTCOMES,
    PLUMBING_ONLY,
    SUPPORTED,
    Claim,
    Evidence,
    part,
)
from colorbench.claims.manifest import BUILT_IN, CURRENT_VERSION, RuleVersion
from colorbench.claims.registry import apply

__all__ = ["INCONCLUSIVE", "NOT_RUN", "NOT_SUPPORTED", "PLUMBING_ONLY", "SUPPORTED", "Claim", "Evidence",
           "csv_rows", "current", "evaluate_claims", "plumbing_banner", "verdict_changes"]
VERDICTS = (*OUTCOMES, NOT_RUN, NOT_TESTED, PLUMBING_ONLY)


def _option(info: Mapping[str, object], key: str) -> object:
    return part(info, "options").get(key)


def _seed(info: Mapping[str, object], default: object) -> object:
    return info.get("seed", _option(info, "seed") if _option(info, "seed") is not None else default)


def _runs(e: Evidence) -> list[Evidence]:
    return [e] if e.crop is None else [e, e.crop]


def source_kind(e: Evidence) -> str:
    """``sample``, ``coco`` or ``folder``: the kind of the evaluation source."""
    return str(part(e.run, "config").get("eval_source", "folder")).split(":", 1)[0]


def _geometry(e: Evidence) -> str:
    """Working size and resize mode of a run ("" when not recorded)."""
    pre = part(part(e.run, "config"), "preprocess")
    return f"{pre['size']} px {pre['mode']}" if pre else ""


def protocol(e: Evidence, claim: Claim) -> str:
    """One line: n images, source, image size, and for the models the claim read their profile, teacher and
    seeds, and the segment source."""
    config = part(e.run, "config")
    n = claim.n if claim.n or claim.unit != "images" else len({r["image_id"] for r in e.per_image
                                                                 if r["model"] in claim.models})
    parts = [f"n {n} {claim.unit}", f"source {config.get('eval_source', 'folder')}"]
    if geometry := " / ".join(dict.fromkeys(g for r in _runs(e) if (g := _geometry(r)))):
        parts.append(geometry)
    infos = [e.models[m] for m in claim.models if m in e.models]
    for key, label in (("profile", "profile"), ("teacher", "teacher")):
        if values := sorted({str(v) for info in infos if (v := _option(info, key)) is not None}):
            parts.append(f"{label} {', '.join(values)}")
    if overlap := part(e.run, "protocol").get("train_eval_overlap"):
        parts.append(f"{overlap} files shared by training and evaluation")
    if claim.models and (segments := part(e.run, "segments").get("kind")):
        parts.append(f"segments {segments}")
    trained = [info for info in infos if part(info, "spec").get("training") == "train"]
    if trained:
        seeds = sorted({str(_seed(info, e.seed)) for info in trained})
        parts.append(f"seeds {', '.join(seeds)}")
    return "; ".join(parts)


def _trained_on_sample(e: Evidence, model: str) -> bool:
    """Whether ``model`` learnt from the built-in sample (fitted or trained there, weights not from a file)."""
    info = e.models[model]
    train_source = str(part(e.run, "config").get("train_source", ""))
    learnt = part(info, "spec").get("training") in ("fit", "train")
    return learnt and info.get("weights_from") != "file" and train_source.startswith("sample:")


def plumbing_reason(e: Evidence, claim: Claim) -> str | None:
    """Why a claim's numbers cannot test the paper (built-in sample data, smoke-profile trainings), or None."""
    reasons = []
    if any(source_kind(r) == "sample" for r in _runs(e)):
        reasons.append("the built-in sample")
    elif fitted := [m for r in _runs(e) for m in claim.models if m in r.models and _trained_on_sample(r, m)]:
        reasons.append(f"fitting or training on the built-in sample ({', '.join(dict.fromkeys(fitted))})")
    smoke = [m for r in _runs(e) for m in claim.models if m in r.models and _option(r.models[m], "profile") == "smoke"]
    if smoke:
        reasons.append(f"smoke-profile training ({', '.join(dict.fromkeys(smoke))})")
    return " and ".join(reasons) or None


def plumbing_banner(e: Evidence) -> str:
    """What makes this run a plumbing run (built-in sample data, smoke-profile trainings), or ""."""
    everything = Claim("", "", "", "", "", models=tuple(e.models))
    return plumbing_reason(e, everything) or ""


def _label(e: Evidence, claim: Claim, version: str) -> Claim:
    claim = replace(claim, rule_version=version, protocol=protocol(e, claim), verdict=claim.outcome)
    if claim.outcome in OUTCOMES and (reason := plumbing_reason(e, claim)):
        return replace(claim, verdict=PLUMBING_ONLY, numbers=f"computed on {reason}; {claim.numbers}",
                       change=f"the same rule on COCO with paper-profile training (rule alone would say: "
                              f"{claim.outcome})")
    return claim


def evaluate_claims(e: Evidence, versions: Sequence[RuleVersion] = tuple(BUILT_IN.values())) -> list[Claim]:
    """Every claim under every rule version (the built-in ones unless told: oldest first, claims in the manifest's
    order); each row after the first version carries the verdict of the version before it in ``previous``."""
    out: list[Claim] = []
    before: dict[str, str] = {}
    for version in versions:
        rows = [_label(e, apply(entry, e), version.id) for entry in version.claims.values()]
        out += [replace(c, previous=before.get(c.claim, "")) for c in rows]
        before = {c.claim: c.verdict for c in rows}
    return out


def current(claims: Sequence[Claim]) -> list[Claim]:
    """The rows of the current rule version (what the report shows first)."""
    return [c for c in claims if c.rule_version == CURRENT_VERSION]


def verdict_changes(claims: Sequence[Claim]) -> list[dict[str, str]]:
    """Every change of a claim's verdict between consecutive rule versions (oldest first): claim, from_version,
    from_verdict, to_version, to_verdict. A claim a version adds (no row before) starts no change."""
    last: dict[str, Claim] = {}
    changes = []
    for claim in claims:
        before = last.get(claim.claim)
        if before is not None and before.verdict != claim.verdict:
            changes.append({"claim": claim.claim, "from_version": before.rule_version, "from_verdict": before.verdict,
                            "to_version": claim.rule_version, "to_verdict": claim.verdict})
        last[claim.claim] = claim
    return changes


def csv_rows(claims: Sequence[Claim]) -> list[dict[str, object]]:
    """The rows of ``claims.csv``: the current version's first, then the older versions newest first, each row
    with ``current`` (yes / no) after its ``rule_version``."""
    order = sorted(dict.fromkeys(c.rule_version for c in claims), key=lambda v: (v != CURRENT_VERSION, -int(v)))
    rows = []
    for rule_version in order:
        for claim in (c for c in claims if c.rule_version == rule_version):
            row = claim.as_row()
            rows.append({"rule_version": row.pop("rule_version"),
                         "current": "yes" if rule_version == CURRENT_VERSION else "no", **row})
    return rows
