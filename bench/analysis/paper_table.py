"""Tables for papers (``bench table``): models by metrics from finished run folders, as Markdown, a LaTeX
``tabular`` (booktabs) or CSV. Pure functions of the leaderboard values a run already wrote: the means and their
95% bootstrap bounds (``M``, ``M_lo``, ``M_hi``; colorbench.io.schema) are printed, never recomputed.

- Numbers: the mean with the chosen significant digits; its interval at the same decimal places, as
  ``mean ± half-width`` (half the bootstrap interval's width, which is symmetric only approximately: the
  percentile bounds are kept exactly by ``range``) or ``[lo, hi]``. Set-level metrics have no bounds and print
  the mean alone.
- Headers: the metric name with its direction from the registry (↑ higher is better, ↓ lower, →v best at the
  ideal value v; diagnostics, never ranked, carry no mark).
- Best per column in bold, direction-aware (colorbench.metrics.registry.goodness), judged on the printed values, so
  rows that print the same number tie and are all bold; diagnostics are never bold.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from colorbench.metrics.registry import get_metric, goodness

FORMATS = ("markdown", "latex", "csv")
INTERVALS = ("pm", "range", "none")
#: LaTeX's special characters in text mode and their escapes (model and metric names may hold them).
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass(frozen=True)
class Estimate:
    """A leaderboard cell: the mean and its 95% interval (NaN where the run wrote none)."""

    mean: float
    lo: float = math.nan
    hi: float = math.nan


@dataclass(frozen=True)
class TableRow:
    """One row of the table: its label (the model, with its run where two runs hold the model) and the estimate
    of each metric."""

    label: str
    values: Mapping[str, Estimate]


def decimals(value: float, digits: int) -> int:
    """Decimal places that show ``value`` with ``digits`` significant digits (0 for values of that many integer
    digits or more)."""
    if not math.isfinite(value) or value == 0:
        return max(digits - 1, 0)
    return max(digits - 1 - math.floor(math.log10(abs(value))), 0)


def fixed(value: float, places: int) -> str:
    """``value`` at ``places`` decimals; large values are rounded to their significant digits by the caller's
    choice of places (no exponent notation, which papers avoid in tables); '-0' printed as '0'."""
    text = f"{value:.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def significant(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits in fixed notation (12345 at 3 digits: 12300)."""
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value != 0:
        magnitude = math.floor(math.log10(abs(value)))
        if magnitude >= digits:
            return fixed(round(value, digits - 1 - magnitude), 0)
    return fixed(value, decimals(value, digits))


def direction_mark(name: str, style: str) -> str:
    """The header mark of a metric: an arrow, or the ideal value with →; '' for diagnostics. ``style`` is
    'latex' (math-mode arrows) or anything else (Unicode)."""
    metric = get_metric(name)
    latex = style == "latex"
    if metric.direction == "higher":
        return r"$\uparrow$" if latex else "\u2191"
    if metric.direction == "lower":
        return r"$\downarrow$" if latex else "\u2193"
    if metric.direction == "ideal":
        ideal = f"{getattr(metric, 'ideal', 0.0):g}"
        return rf"$\rightarrow {ideal}$" if latex else f"\u2192{ideal}"
    return ""


def best_labels(rows: Sequence[TableRow], name: str, digits: int) -> set[str]:
    """Labels of the rows with the best printed value of a metric (all of them on a tie); none for diagnostics or
    a column without finite values."""
    if get_metric(name).direction == "diagnostic":
        return set()
    printed = {row.label: float(text) for row in rows
               if (text := significant(row.values[name].mean, digits)) not in ("n/a", "inf", "-inf")}
    if not printed:
        return set()
    scores = goodness(name, np.array(list(printed.values())))
    top = np.nanmax(scores) if np.isfinite(scores).any() else math.nan
    return {label for label, score in zip(printed, scores, strict=True) if score == top}


def interval_text(estimate: Estimate, digits: int, interval: str) -> tuple[str, str]:
    """The mean and its interval as printed: (mean, '± h' or '[lo, hi]' or ''); the interval at the mean's
    decimal places, empty where the run wrote no bounds or ``interval`` is 'none'."""
    mean = significant(estimate.mean, digits)
    if interval == "none" or not (math.isfinite(estimate.lo) and math.isfinite(estimate.hi)):
        return mean, ""
    places = decimals(estimate.mean, digits)
    if interval == "pm":
        return mean, fixed((estimate.hi - estimate.lo) / 2, places)
    return mean, f"[{fixed(estimate.lo, places)}, {fixed(estimate.hi, places)}]"


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped for text mode."""
    return "".join(LATEX_ESCAPES.get(char, char) for char in text)


def _cells(rows: Sequence[TableRow], metrics: Sequence[str], digits: int, interval: str,
           bold: str, plus_minus: str) -> list[list[str]]:
    """Body cells (label first), best values wrapped by ``bold`` (a format string with ``{}``), the half-width
    after ``plus_minus``."""
    best = {name: best_labels(rows, name, digits) for name in metrics}
    body = []
    for row in rows:
        cells = [row.label]
        for name in metrics:
            mean, spread = interval_text(row.values[name], digits, interval)
            mean = bold.format(mean) if row.label in best[name] else mean
            joiner = f" {plus_minus} " if interval == "pm" else " "
            cells.append(f"{mean}{joiner}{spread}" if spread else mean)
        body.append(cells)
    return body


def markdown_table(rows: Sequence[TableRow], metrics: Sequence[str], digits: int, interval: str) -> str:
    """A GitHub-flavoured Markdown table: label column left-aligned, metric columns right-aligned."""
    header = ["model", *(f"{name} {direction_mark(name, 'markdown')}".rstrip() for name in metrics)]
    lines = [header, [":---", *("---:" for _ in metrics)], *_cells(rows, metrics, digits, interval, "**{}**", "±")]
    return "".join(f"| {' | '.join(cells)} |\n" for cells in lines)


def latex_table(rows: Sequence[TableRow], metrics: Sequence[str], digits: int, interval: str) -> str:
    """A complete booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): one ``l`` and one ``r`` column per
    metric, names escaped, best values in ``\\textbf``."""
    header = ["Model", *(f"{latex_escape(name)} {direction_mark(name, 'latex')}".rstrip() for name in metrics)]
    escaped = [TableRow(latex_escape(row.label), row.values) for row in rows]
    body = _cells(escaped, metrics, digits, interval, r"\textbf{{{}}}", r"$\pm$")
    lines = [rf"\begin{{tabular}}{{l{'r' * len(metrics)}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule",
             *(" & ".join(cells) + r" \\" for cells in body), r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[TableRow], metrics: Sequence[str], digits: int, interval: str) -> str:
    """CSV of the printed numbers (no bold): per metric its mean, then ``M_pm`` (half-width) or ``M_lo``/``M_hi``
    by ``interval``."""
    suffixes = {"pm": ("_pm",), "range": ("_lo", "_hi"), "none": ()}[interval]
    header = ["model", *(column for name in metrics for column in (name, *(name + s for s in suffixes)))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        cells = [row.label]
        for name in metrics:
            mean, spread = interval_text(row.values[name], digits, interval)
            bounds = spread.strip("[]").split(", ") if interval == "range" and spread else [spread] * len(suffixes)
            cells += [mean, *bounds]
        writer.writerow(cells)
    return buffer.getvalue()


RENDERERS = {"markdown": markdown_table, "latex": latex_table, "csv": csv_table}


def render_table(rows: Sequence[TableRow], metrics: Sequence[str], *, fmt: str = "markdown", digits: int = 3,
                 interval: str = "pm") -> str:
    """The table in ``fmt`` (one of :data:`FORMATS`) with ``interval`` one of :data:`INTERVALS`."""
    if digits < 1:
        raise ValueError(f"digits must be at least 1, not {digits}")
    return RENDERERS[fmt](rows, metrics, digits, interval)
