"""An experiment's latest figures, written into its own block of a markdown file (docs/performance.md).

Each measurement script owns blocks of that file, marked by HTML comments that markdown renders as nothing:

    <!-- colorbench:NAME -->
    ...
    <!-- /colorbench:NAME -->

:func:`update` replaces the block NAME with a markdown table of the new figures and one line saying when, at
which commit, on which machine and under what load they were measured; every other byte of the file (earlier
measurements, prose, the other scripts' blocks) is kept. A file without the block gets it appended. The stamp is
not optional because a wall time from a shared machine means little without the load beside it.

The scripts take ``--docs PATH`` (:func:`add_docs_option`), off by default: a measurement run should not rewrite
a tracked file unless asked. ``--docs docs/performance.md`` updates the repository's page.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes
from colorbench.core.provenance import git_state

logger = logging.getLogger(__name__)

Cell = str | int | float | bool | None
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def add_docs_option(parser: argparse.ArgumentParser) -> None:
    """The ``--docs PATH`` option every measurement script shares."""
    parser.add_argument("--docs", type=Path, metavar="PATH",
                        help="also write the figures into this markdown file's colorbench block for this script "
                             "(e.g. docs/performance.md; default: not written)")


def cell(value: Cell) -> str:
    """A table cell: n/a for missing or NaN values, whole numbers from 100 up, else 3 significant digits."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells under {len(columns)} columns: {row!r}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_text(loads: Sequence[float]) -> str:
    """``0.7`` or ``0.3-1.2``: the range of the 1-minute load averages read during the measurement."""
    low, high = min(loads), max(loads)
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}"


def commit_text() -> str:
    """This checkout's short commit, marked when the work tree has uncommitted changes."""
    state = git_state()
    if not state["commit"]:
        return "unknown (not a git checkout)"
    return str(state["commit"])[:7] + (" with uncommitted changes" if state["dirty"] else "")


def stamp(*, loads: Sequence[float] = (), commit: str | None = None, device: str | None = None,
          today: str | None = None) -> str:
    """The line under a table: date (UTC), commit, machine (cores, CPU, the device when not the CPU), load."""
    date = today or datetime.now(UTC).date().isoformat()
    machine = f"{os.cpu_count()} cores ({cpu_model()})" + (f", {device}" if device else "")
    load = load_text(loads or [os.getloadavg()[0]])
    return f"Measured {date} at commit {commit or commit_text()} on {machine}, load average {load}."


def markers(name: str) -> tuple[str, str]:
    if not _NAME.fullmatch(name):
        raise ValueError(f"block name {name!r}: lower-case letters, digits, '_' and '-' only")
    return f"<!-- colorbench:{name} -->", f"<!-- /colorbench:{name} -->"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with block ``name`` holding ``body`` (appended at the end when the file has no such block)."""
    begin, end = markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    start = text.find(begin)
    if start < 0:
        if end in text:
            raise BenchError(f"{end} without {begin}: fix the file by hand")
        return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"
    stop = text.find(end, start)
    if stop < 0:
        raise BenchError(f"{begin} is not closed by {end}: fix the file by hand")
    if text.find(begin, start + len(begin)) >= 0:
        raise BenchError(f"{begin} appears twice: fix the file by hand")
    return text[:start] + block + text[stop + len(end):]


def update(path: Path, name: str, *, columns: Sequence[str], rows: Iterable[Sequence[Cell]], command: str,
           loads: Sequence[float] = (), commit: str | None = None, device: str | None = None,
           notes: Sequence[str] = ()) -> None:
    """Write the figures of one measurement into block ``name`` of ``path`` (created if missing)."""
    body = "\n\n".join([f"`{command}`", markdown_table(columns, rows),
                        stamp(loads=loads, commit=commit, device=device), *notes])
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_bytes(path, replace_block(text, name, body).encode("utf-8"))
    logger.info("figures written to %s (block colorbench:%s)", path, name)


def command_line(prog: str, argv: Sequence[str] | None) -> str:
    """The command as typed: ``prog`` and the arguments (``sys.argv[1:]`` when ``argv`` is None)."""
    return " ".join([prog, shlex.join(sys.argv[1:] if argv is None else argv)]).strip()


def first_minute(loads: Iterable[Sequence[float]]) -> list[float]:
    """The 1-minute values of :func:`os.getloadavg` readings."""
    return [float(load[0]) for load in loads]


def stage_names(runs: Iterable[dict[str, Any]]) -> list[str]:
    """The stages of ``run.json["timings"]`` (each run's ``stages_s``) over several runs, in first-seen order."""
    return list(dict.fromkeys(stage for run in runs for stage in run["stages_s"]))
