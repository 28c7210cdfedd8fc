"""Writing a finished run's tables and run.json (shared by ``run`` and ``score``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench import integrity
from bench.aggregate import leaderboard
from bench.provenance import provenance, utc_now
from bench.schema import SCHEMA_VERSION, leaderboard_columns, per_image_columns, write_csv, write_json
from bench.weights import used_weights
from metrics.registry import MetricSelection


def write_results(
    out: Path,
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
    """per_image.csv, leaderboard.csv and run.json (see bench.schema for every column and field).

    Set-level metrics have one value per model: their leaderboard column holds it, their ``_lo``/``_hi``
    columns stay empty. ``extra_columns`` are appended to the leaderboard, filled per model from ``extra``
    (the caption models' ``caption_sensitivity_*``; empty for other models).
    """
    rows = [{"model": model, **record} for model, records in by_model.items() for record in records]
    write_csv(out / "per_image.csv", per_image_columns(metrics.per_image), rows)
    table = leaderboard(by_model, metrics.per_image, seed=seed)
    for row in table:
        row.update(set_level.get(str(row["model"]), {}))
        row.update((extra or {}).get(str(row["model"]), {}))
    write_csv(out / "leaderboard.csv", [*leaderboard_columns(metrics.names), *extra_columns], table)
    write_json(out / "run.json", {
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
        "weight_files": used_weights(),
        "skipped": list(skipped),
        "integrity": integrity.summary(),
    })
