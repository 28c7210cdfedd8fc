"""The verdict summary a report opens with (issue 23): one line per claim of the paper that this run's records
could test (its badge, one sentence, a link to its collapsed details), and one line naming every claim that could
not run here with what would run it. A ``bench score`` folder has no trained models, study or COCO instances, so
most claims land on that one line instead of filling the page with "not run" rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from colorbench.claims.table import NOT_RUN, PLUMBING_ONLY, Claim

#: Words a full stop follows without ending the sentence ("Sec. 7.6", "et al. 2016").
ABBREVIATIONS = ("Sec", "Secs", "Fig", "Figs", "Eq", "e.g", "i.e", "al", "vs")


@dataclass(frozen=True)
class VerdictLine:
    """One line of the summary: the claim, its verdict (the badge), one sentence, the id of its details."""

    claim: str
    verdict: str
    sentence: str
    anchor: str


@dataclass(frozen=True)
class Summary:
    """The claims that ran (one line each) and the claims that did not, in one line."""

    lines: list[VerdictLine]
    not_run: str


def first_sentence(text: str) -> str:
    """The text up to its first full stop that ends a sentence, with that stop: outside parentheses, followed by
    a space or the end, and not after an abbreviation (so "(proposal, Sec. 7.6) A loss ..." and "0.9" read on)."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char != "." or depth > 0 or text[index + 1:index + 2] not in ("", " "):
            continue
        if not text[:index].endswith(ABBREVIATIONS):
            return text[:index + 1]
    return text


def anchor(claim: str) -> str:
    """The id of a claim's details section, e.g. ``claim-C6-premise``."""
    return "claim-" + re.sub(r"[^A-Za-z0-9-]", "-", claim)


def sentence(claim: Claim) -> str:
    """What the paper claims, in its first sentence; for a plumbing-only verdict also what the rule alone said
    (that is the answer the run gives, with the data it had)."""
    said = first_sentence(claim.statement)
    if claim.verdict == PLUMBING_ONLY:
        return f"{said} The rule alone says {claim.outcome}, on plumbing data."
    return said


def summarize(claims: Sequence[Claim]) -> Summary:
    """The verdict lines of the claims that ran, and the one line of those that did not (empty when all ran)."""
    ran = [c for c in claims if c.verdict != NOT_RUN]
    skipped = [c for c in claims if c.verdict == NOT_RUN]
    lines = [VerdictLine(c.claim, c.verdict, sentence(c), anchor(c.claim)) for c in ran]
    not_run = "; ".join(f"{c.claim} (needs {c.change})" if c.change else c.claim for c in skipped)
    return Summary(lines, f"Not run on these records: {not_run}." if skipped else "")
