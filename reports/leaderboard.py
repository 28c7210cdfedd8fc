"""The leaderboard as the report shows it: sorted by a stated key, columns grouped by each metric's registry row
(``group`` and ``column``: fidelity, colour, semantic, diagnostics) into tables narrow enough for a 1,400 px page,
and the best value of each ranked column marked by the registry's direction
(:func:`colorbench.metrics.registry.goodness`: for ``ideal`` metrics the value closest to the ideal, never the
largest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from colorbench.core.values import number
from colorbench.metrics.registry import DISTRIBUTION_METRICS, GROUPS, METRICS, DistributionMetric, Metric, goodness

ARROWS = {"higher": "\u2191", "lower": "\u2193", "diagnostic": "(shown, not ranked)"}


@dataclass(frozen=True)
class Group:
    title: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class Leaderboard:
    """Rows in display order, the column groups, and per metric the models holding its best value."""

    order: str
    rows: list[Mapping[str, str]]
    groups: list[Group]
    best: dict[str, set[str]]


def direction_mark(described: Mapping[str, object]) -> str:
    """Header mark of a metric from its run.json description: an arrow, the ideal value, or 'not ranked'."""
    direction = str(described.get("direction", ""))
    if direction == "ideal":
        return f"\u2192{described['ideal']:g}"
    return ARROWS.get(direction, "")


def _registered(name: str) -> Metric | DistributionMetric | None:
    """The registry row of a metric named in a run's files, or None for a name the registry no longer holds."""
    return METRICS.get(name) or DISTRIBUTION_METRICS.get(name)


def column_groups(metrics: Sequence[str]) -> list[Group]:
    """The run's metrics split into the registry's groups (:data:`colorbench.metrics.registry.GROUPS` order, each
    ordered by the rows' ``column``); empty groups dropped, names the registry does not hold under 'other'."""
    rows = {name: row for name in metrics if (row := _registered(name)) is not None}
    groups = [Group(title, tuple(sorted((n for n, row in rows.items() if row.group == title),
                                        key=lambda n: rows[n].column)))
              for title in GROUPS]
    groups.append(Group("other", tuple(n for n in metrics if n not in rows)))
    return [g for g in groups if g.metrics]


def _value(row: Mapping[str, str], name: str) -> float:
    text = row.get(name)
    return float(text) if text not in (None, "") else float("nan")


def best_models(rows: Sequence[Mapping[str, str]], metrics: Sequence[str]) -> dict[str, set[str]]:
    """For each ranked metric, the models (ties: all) whose mean has the highest goodness."""
    best: dict[str, set[str]] = {}
    for name in metrics:
        known = _registered(name)
        if known is None or known.direction == "diagnostic":
            continue
        good = goodness(name, np.array([_value(r, name) for r in rows]))
        if np.isfinite(good).any():
            top = np.nanmax(good)
            best[name] = {str(r["model"]) for r, g in zip(rows, good, strict=True) if g == top}
    return best


def leaderboard(board: Sequence[Mapping[str, str]], metrics: Sequence[str], references: set[str],
                win_rates: Sequence[Mapping[str, object]]) -> Leaderboard:
    """Sort colorizers by mean win rate (or by PSNR when no win rates were computed: fewer than two
    colorizers), references after them; mark the best colorizer per ranked column."""
    colorizers = [r for r in board if r["model"] not in references]
    if win_rates:
        rate = {str(r["model"]): number(r["win_rate"]) for r in win_rates}
        colorizers.sort(key=lambda r: -rate.get(r["model"], -1.0))
        order = ("sorted by mean win rate over ranked metrics, opponents and images (see the ranking below); "
                 "references last")
    else:
        colorizers.sort(key=lambda r: -np.nan_to_num(_value(r, "psnr"), nan=-np.inf))
        order = "sorted by mean PSNR (no win rates: fewer than two colorizers); references last"
    rows = colorizers + [r for r in board if r["model"] in references]
    return Leaderboard(order, rows, column_groups(metrics), best_models(colorizers, metrics))
