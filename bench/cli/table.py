"""``bench table RUN [RUN ...]``: a table for a paper from finished run folders (written by ``run``, ``study`` or
``score``), printed on stdout as Markdown, LaTeX or CSV (colorbench.analysis.paper_table formats it).

Rows are the models of every run, in run order then leaderboard order; a model name that appears in more than one
run is labelled ``model (run)`` with the run folder's name (its path where two folders share a name). A metric
asked for that a run's leaderboard lacks is refused (exit 2) naming the folder and the metric.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from colorbench.analysis.paper_table import FORMATS, INTERVALS, Estimate, TableRow, render_table
from colorbench.cli.options import bounded, split_names
from colorbench.core.errors import BenchError
from colorbench.core.strictjson import loads_unique
from colorbench.io import integrity
from colorbench.io.layout import RunLayout
from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS, get_metric


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (run, study or score)")
    parser.add_argument("--metrics", help="comma-separated metric names, in column order (default: every metric "
                        "of the first run's leaderboard)")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default markdown)")
    parser.add_argument("--digits", type=bounded(1, 17), default=3,
                        help="significant digits of the means (1 to 17, default 3)")
    parser.add_argument("--interval", choices=INTERVALS, default="pm", help="the 95%% bootstrap interval the run "
                        "wrote, as mean ± half-width (pm, default), [lo, hi] (range), or not at all (none)")


def _number(cell: str | None) -> float:
    return float(cell) if cell not in (None, "") else float("nan")


def _leaderboard(run: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a run folder's leaderboard.csv."""
    layout = RunLayout(run)
    if not layout.run_json.is_file():
        raise BenchError(f"{run} is not a run folder (no run.json)")
    if not layout.leaderboard.is_file():
        raise BenchError(f"{run} has no leaderboard.csv; rerun the command that made it to finish it")
    try:
        record = loads_unique(layout.run_json.read_bytes())
        integrity.check_tables(record if isinstance(record, dict) else {}, run)
    except ValueError as exc:
        raise BenchError(f"{run}: {exc}; rerun the command that made it (it resumes and rewrites the tables)") from exc
    with layout.leaderboard.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _metric_columns(header: Sequence[str]) -> list[str]:
    """The registered metrics of a leaderboard header (caption-sensitivity and other extra columns left out)."""
    return [name for name in header if name in METRICS or name in DISTRIBUTION_METRICS]


def _requested_metrics(names: Sequence[str] | None, first_header: Sequence[str]) -> list[str]:
    """The metrics asked for (default: the first run's), checked against the registry, each named once."""
    checked = [get_metric(name).name for name in names or _metric_columns(first_header)]
    repeated = sorted({name for name in checked if checked.count(name) > 1})
    if repeated:
        raise BenchError(f"--metrics names {', '.join(repeated)} more than once; name each metric once")
    return checked


def _run_labels(runs: Sequence[Path]) -> list[str]:
    names = Counter(run.resolve().name for run in runs)
    return [run.resolve().name if names[run.resolve().name] == 1 else str(run) for run in runs]


def table_rows(runs: Sequence[Path], metrics: Sequence[str] | None) -> tuple[list[TableRow], list[str]]:
    """The table's rows and metric columns from run folders (``metrics`` None: the first run's)."""
    headers, boards = zip(*(_leaderboard(run) for run in runs), strict=True)
    names = _requested_metrics(metrics, headers[0])
    for run, header in zip(runs, headers, strict=True):
        missing = [name for name in names if name not in header]
        if missing:
            raise BenchError(f"{run}: metric {', '.join(missing)} is not in its leaderboard.csv (it has: "
                             f"{', '.join(_metric_columns(header)) or 'no metric'})")
    models = Counter(row["model"] for board in boards for row in board)
    rows = []
    for label, board in zip(_run_labels(runs), boards, strict=True):
        for row in board:
            model = row["model"]
            rows.append(TableRow(model if models[model] == 1 else f"{model} ({label})",
                                 {name: Estimate(_number(row[name]), _number(row.get(f"{name}_lo")),
                                                 _number(row.get(f"{name}_hi"))) for name in names}))
    return rows, names


def run(args: argparse.Namespace) -> int:
    rows, names = table_rows(args.runs, split_names(args.metrics))
    print(render_table(rows, names, fmt=args.format, digits=args.digits, interval=args.interval), end="")
    return 0
