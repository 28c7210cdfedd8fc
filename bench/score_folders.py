"""``bench score``: score colorizations made by any tool against ground truth, matched by file name stem."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from bench.device import resolve_device
from bench.outputs import write_results
from bench.scoring import match_folders, score_pairs
from reports.html import build_report


def score_folders(
    pred_dir: Path,
    gt_dir: Path,
    *,
    name: str | None,
    out: Path | None,
    metric_names: Sequence[str],
    device_name: str = "auto",
    batch_size: int = 16,
    progress: bool = True,
) -> Path:
    """Score every matched pair at the files' own resolution and write tables, run.json and the report."""
    pairs, skips = match_folders(pred_dir, gt_dir)
    model = name or pred_dir.resolve().name
    if out is None:
        digest = hashlib.sha256(f"{pred_dir.resolve()}|{gt_dir.resolve()}".encode()).hexdigest()[:10]
        out = Path("results") / f"score-{model}-{digest}"
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device_name)
    records: list[dict[str, object]] = []
    for batch_records, batch_skips in score_pairs(pairs, metric_names, device=device, batch_size=batch_size,
                                                  progress=progress, desc=f"score {model}"):
        records += batch_records
        skips += batch_skips
    config = {"pred": str(pred_dir), "gt": str(gt_dir), "name": model, "batch_size": batch_size}
    write_results(out, {model: records}, metric_names, seed=0, device=str(device), config=config,
                  models={model: {"predictions": str(pred_dir.resolve()), "n_pairs": len(pairs)}},
                  splits={}, skipped=[s.as_dict() for s in skips])
    build_report(out)
    return out
