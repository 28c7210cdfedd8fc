"""Writing a finished run's tables and run.json (shared by ``run`` and ``score``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.aggregate import leaderboard
from bench.provenance import provenance, utc_now
from bench.schema import SCHEMA_VERSION, leaderboard_columns, per_image_columns, write_csv, write_json
from metrics.registry import METRICS


def write_results(
    out: Path,
    by_model: Mapping[str, Sequence[Mapping[str, object]]],
    metric_names: Sequence[str],
    *,
    seed: int,
    device: str,
    config: Mapping[str, object],
    models: Mapping[str, object],
    splits: Mapping[str, object],
    skipped: Sequence[Mapping[str, str]],
) -> None:
    """per_image.csv, leaderboard.csv and run.json (see bench.schema for every column and field)."""
    rows = [{"model": model, **record} for model, records in by_model.items() for record in records]
    write_csv(out / "per_image.csv", per_image_columns(metric_names), rows)
    table = leaderboard(by_model, metric_names, seed=seed)
    write_csv(out / "leaderboard.csv", leaderboard_columns(metric_names), table)
    write_json(out / "run.json", {
        "schema_version": SCHEMA_VERSION,
        "command": sys.argv,
        "created": utc_now(),
        "provenance": provenance(),
        "device": device,
        "seed": seed,
        "config": dict(config),
        "splits": dict(splits),
        "models": dict(models),
        "metrics": {name: METRICS[name].describe() for name in metric_names},
        "skipped": list(skipped),
    })
