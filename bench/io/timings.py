"""Wall time per stage of a run, written to ``run.json["timings"]`` (read by colorbench.experiments.cold_start).

Stages: ``data`` (split manifests, ground truth and segment maps), ``fit`` / ``train`` / ``load`` (obtaining each
model's weights), ``predict``, ``score`` (per-image records and set-level metrics), ``study`` (the perturbation
study), ``tables`` and ``report``. Stages that found their output on disk take about no time, so a repeated run
shows where a cold one spent its time. Seconds are wall-clock of this process (rank 0 under torchrun).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from colorbench.io.schema import write_json


class StageTimer:
    """Accumulates wall seconds per stage, and per model for the model stages."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.stages: dict[str, float] = {}
        self.models: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def stage(self, name: str, model: str | None = None) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - began
            self.stages[name] = self.stages.get(name, 0.0) + seconds
            if model is not None:
                per_model = self.models.setdefault(model, {})
                per_model[name] = per_model.get(name, 0.0) + seconds

    def as_dict(self) -> dict[str, object]:
        return {"stages_s": dict(self.stages), "models_s": {m: dict(s) for m, s in self.models.items()},
                "total_s": time.perf_counter() - self.began}


def record_in_run_json(path: Path, timer: StageTimer) -> None:
    """Write the timer's figures into the run folder's ``run.json`` at ``path`` (a stage that ran after the
    tables, the report, included)."""
    if path.is_file():
        write_json(path, {**json.loads(path.read_text()), "timings": timer.as_dict()})
