"""Writing a finished run's tables and run.json (shared by ``run`` and ``score``), and :func:`per_run`, which
gives each run its own record of weight files read and corrupt cache entries met (run.json's ``weight_files``
and ``integrity``)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

from colorbench.core.aggregate import leaderboard
from colorbench.core.files import file_sha256
from colorbench.core.provenance import provenance, utc_now
from colorbench.data.prepared import close_shards
from colorbench.data.sources import open_source
from colorbench.io import integrity
from colorbench.io.image_rule import IMAGE_RULE
from colorbench.io.layout import RunLayout
from colorbench.io.schema import SCHEMA_VERSION, leaderboard_columns, per_image_columns, write_csv, write_json
from colorbench.io.weights import recording_weights, used_weights
from colorbench.metrics.registry import MetricSelection
from colorbench.metrics.small_sets import set_level_section, small_set_notes

logger = logging.getLogger(__name__)

#: Builds the report of a finished run folder; the CLI passes colorbench.reports.html.build_report to run, study and
#: score
#: (the harness never imports reports).
ReportBuilder = Callable[[Path], object]
_P = ParamSpec("_P")
_R = TypeVar("_R")


def per_run(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator of a command's entry point (``execute``, ``score_folders``): the weight files read and the
    corrupt cache entries reported during the call are recorded for it alone and forgotten when it returns, so
    two runs in one process never share them; the opened sources (parsed COCO annotations) and memory-mapped
    input shards are dropped when it returns, so a later run in the process reads the files as they are then."""

    @functools.wraps(command)
    def scoped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            with recording_weights(), integrity.recording_corrupt():
                return command(*args, **kwargs)
        finally:
            open_source.cache_clear()
            close_shards()

    return scoped


def write_results(
    layout: RunLayout,
    by_model: Mapping[str, Sequence[Mapping[str, object]]],
    metrics: MetricSelection,
    *,
    seed: int,
    device: str,
    config: Mapping[str, object],
    models: Mapping[str, object],
    splits: Mapping[str, object],
    skipped: Sequence[Mapping[str, str]],
    set_level: Mapping[str, Mapping[str, float]],
    segments: Mapping[str, str] | None,
    protocol: Mapping[str, object] | None = None,
    extra_columns: Sequence[str] = (),
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> None:
    """per_image.csv, leaderboard.csv and run.json (see colorbench.io.schema for every column and field).

    Set-level metrics have one value per model: their leaderboard column holds it; their ``_lo``/``_hi``
    columns hold the metric's own interval where it has one (KID's subset interval) and stay empty otherwise.
    Set-level metrics computed on fewer images than their registry row trusts are named in one note line each on
    stderr and in run.json's ``set_level`` section. ``extra_columns`` are appended to the
    leaderboard, filled per model from ``extra`` (the caption models' ``caption_sensitivity_*``; empty for other
    models).
    """
    rows = [{"model": model, **record} for model, records in by_model.items() for record in records]
    write_csv(layout.per_image, per_image_columns(metrics.per_image), rows)
    table = leaderboard(by_model, metrics.per_image, seed=seed)
    for row in table:
        row.update(set_level.get(str(row["model"]), {}))
        row.update((extra or {}).get(str(row["model"]), {}))
    write_csv(layout.leaderboard, [*leaderboard_columns(metrics.names), *extra_columns], table)
    small_sets = set_level_section(metrics.set_level, {model: len(records) for model, records in by_model.items()})
    for note in small_set_notes(small_sets):
        logger.info("%s", note)
    write_json(layout.run_json, {
        "schema_version": SCHEMA_VERSION,
        "command": sys.argv,
        "created": utc_now(),
        "provenance": provenance(),
        "device": device,
        "seed": seed,
        "config": dict(config),
        "protocol": dict(protocol) if protocol else None,
        "splits": dict(splits),
        "models": dict(models),
        "metrics": metrics.describe(),
        "metrics_unavailable": dict(metrics.unavailable),
        "segments": dict(segments) if segments else None,
        "image_rule": IMAGE_RULE,
        "weight_files": used_weights(),
        "skipped": list(skipped),
        "tables": {path.name: {"sha256": file_sha256(path), "bytes": path.stat().st_size}
                   for path in (layout.per_image, layout.leaderboard)},
        "integrity": integrity.summary(),
        "set_level": small_sets,
    })
