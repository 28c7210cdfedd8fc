"""How the claims rules write their rows: numbers to three significant digits, intervals as ``mean [lo, hi]``,
and each rule's test in words, a template whose fields are the rule's thresholds (so that the words say the
numbers the rule compares with). Pinned with the rules by the golden files of tests/claims_golden/.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if np.isfinite(value) else "n/a"


def interval_text(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{fmt(mean, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


class _Fields(dict[str, object]):
    """The words a template names; a field that is none of them is a threshold, read only when used."""

    def __init__(self, thresholds: Mapping[str, float], words: Mapping[str, object]) -> None:
        super().__init__(words)
        self.thresholds = thresholds

    def __missing__(self, name: str) -> float:
        return self.thresholds[name]


def say(template: str, thresholds: Mapping[str, float], **words: object) -> str:
    """``template`` (str.format fields) filled with ``words`` and the ``thresholds`` it names."""
    return template.format_map(_Fields(thresholds, words))
