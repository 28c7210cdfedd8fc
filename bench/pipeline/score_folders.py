"""``bench score``: score colorizations made by any tool against ground truth, matched by file name stem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from colorbench.core.cachekey import cache_key
from colorbench.core.device import resolve_device
from colorbench.core.errors import BenchError, IncompleteError
from colorbench.core.paths import child, printable
from colorbench.data.segments import SegmentSource, segments_from, slic_segments, slic_source
from colorbench.io.layout import RunLayout
from colorbench.io.runfolder import claim
from colorbench.metrics.registry import needs_segments, select_metrics
from colorbench.pipeline.outputs import ReportBuilder, per_run, write_results
from colorbench.pipeline.scoring import SetLevelScorer, match_folders, score_pairs


@per_run
def score_folders(
    pred_dir: Path,
    gt_dir: Path,
    *,
    name: str | None,
    out: Path | None,
    metric_names: Sequence[str] | None,
    device_name: str = "auto",
    batch_size: int = 16,
    progress: bool = True,
    segments_dir: Path | None = None,
    report: ReportBuilder | None = None,
) -> Path:
    """Score every matched pair at the files' own resolution and write tables, run.json and the report.

    Segment metrics read label maps named like the images from ``segments_dir`` (e.g. a run folder's
    ``segments/``, to reproduce its numbers), else use SLIC superpixels of each ground truth. ``report`` builds
    the report of the finished folder (the CLI passes it, as for ``run`` and ``study``).

    The folder is claimed for this command (colorbench.io.runfolder: never a run's folder). When no pair could be
    scored the tables and report are still written, then :class:`IncompleteError` says why (exit status 1)."""
    metrics = select_metrics(metric_names)
    pairs, skips = match_folders(pred_dir, gt_dir)
    model = name or printable(pred_dir.resolve().name)
    settings = {"metrics": list(metrics.names), "batch_size": batch_size,
                "segments": str(segments_dir.resolve()) if segments_dir else None}
    identity = {"command": "score", "data": f"{pred_dir.resolve()} vs {gt_dir.resolve()}", "models": [model],
                "settings": settings}
    if out is None:
        digest = cache_key(identity, 10)
        out = child(Path("results"), f"score-{model}-{digest}")
    with claim(out, identity):
        device = resolve_device(device_name)
        with_segments = needs_segments(metrics.per_image)
        if segments_dir is not None and not segments_dir.is_dir():
            raise BenchError(f"segments folder {segments_dir} does not exist or is not a folder")
        extras_for = (segments_from(segments_dir) if segments_dir else slic_segments) if with_segments else None
        segment_source = SegmentSource("label maps", str(segments_dir)) if segments_dir else slic_source()
        records: list[dict[str, object]] = []
        for batch_records, batch_skips in score_pairs(pairs, metrics.per_image, device=device, batch_size=batch_size,
                                                      progress=progress, desc=f"score {model}", extras_for=extras_for):
            records += batch_records
            skips += batch_skips
        scored = {str(r["image_id"]) for r in records}
        set_level = SetLevelScorer(metrics.set_level, device=device, batch_size=batch_size, progress=progress)(
            [p for p in pairs if p.image_id in scored], model) if metrics.set_level and scored else {}
        config = {"pred": str(pred_dir), "gt": str(gt_dir), "name": model, "batch_size": batch_size,
                  "metrics": list(metric_names) if metric_names else None,
                  "segments": str(segments_dir) if segments_dir else None}
        write_results(RunLayout(out), {model: records}, metrics, seed=0, device=str(device), config=config,
                      models={model: {"predictions": str(pred_dir.resolve()), "n_pairs": len(pairs)}},
                      splits={}, skipped=[s.as_dict() for s in skips], set_level={model: set_level},
                      segments=segment_source.describe() if with_segments else None)
        if report is not None:
            report(out)
    if not records:
        raise IncompleteError(f"no image was scored: {len(pairs)} matched pairs, {len(skips)} skipped (reasons in "
                              f"{RunLayout(out).run_json} and the report)")
    return out
