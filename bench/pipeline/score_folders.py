"""``bench score``: score colorizations made by any tool against ground truth, matched by file name stem.

Many models share one call and one folder: the ground truth is listed, checked and read once and each of its
images is scored against every model's prediction in turn (colorbench.pipeline.scoring.score_models), so its
decode, segments, classifier logits and set-level features are computed once. A score folder is defined by its
ground truth (folder and file hashes) and metric set, not by its models: scoring more models into it later adds
their rows to its leaderboard and report, while the models already there are read back, never recomputed.

Ground-truth rules are ``run``'s (colorbench.data.splits): a grey original (colorbench.io.images.check_original)
has no colour to score against and is set aside with its reason, as ``run``'s manifest does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from colorbench.core.cachekey import cache_key
from colorbench.core.device import resolve_device
from colorbench.core.errors import BenchError, IncompleteError
from colorbench.core.files import atomic_write_bytes, file_sha256
from colorbench.core.paths import child, printable, printable_name
from colorbench.core.strictjson import loads_unique
from colorbench.data.segments import SegmentSource, segments_from, slic_segments, slic_source
from colorbench.io.images import UnreadableImageError, check_original
from colorbench.io.layout import RunLayout
from colorbench.io.runfolder import claim
from colorbench.metrics.registry import MetricSelection, needs_segments, select_metrics
from colorbench.pipeline.outputs import ReportBuilder, per_run, write_results
from colorbench.pipeline.scoring import (
    RESIZE_PRED,
    GroundTruth,
    Pair,
    SetLevelScorer,
    Skip,
    match_predictions,
    score_models,
)

logger = logging.getLogger(__name__)

#: Skip reasons quoted in the one-line stderr summary of a call's skipped pairs (all are in run.json).
SHOWN_REASONS = 3


def checked_ground_truth(gt_dir: Path) -> GroundTruth:
    """The ground-truth folder listed, with grey originals and unreadable files set aside under the reason
    ``run``'s manifest gives them (``grayscale: ...``, ``unreadable: ...``)."""
    listed = GroundTruth.listed(gt_dir)
    files, skips, set_aside = {}, list(listed.skips), set()
    for image_id, path in listed.files.items():
        try:
            check = check_original(path)
            status, reason = check.status, check.reason
        except UnreadableImageError as exc:
            status, reason = exc.status, str(exc)
        if status == "ok":
            files[image_id] = path
        else:
            skips.append(Skip(image_id, "ground truth", f"{status}: {reason}"))
            set_aside.add(image_id)
    return GroundTruth(gt_dir, files, skips, frozenset(set_aside))


def files_digest(paths: Mapping[str, Path]) -> str:
    """sha256 over the (image id, file sha256) of a folder's files: what a folder's scores were computed from."""
    digest = hashlib.sha256()
    for image_id in sorted(paths):
        digest.update(f"{image_id}\0{file_sha256(paths[image_id])}\n".encode())
    return digest.hexdigest()


@dataclass
class ModelScores:
    """One model's scores in a score folder, stored as ``scored/<model>.json`` so that a later call adding
    models reads them back instead of recomputing them."""

    predictions: str
    files_sha256: str
    n_pairs: int
    records: list[dict[str, object]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    set_level: dict[str, float] = field(default_factory=dict)
    resized: list[str] = field(default_factory=list)

    @staticmethod
    def folder(out: Path) -> Path:
        return child(out, "scored")

    @classmethod
    def path(cls, out: Path, model: str) -> Path:
        return child(cls.folder(out), f"{model}.json")

    def save(self, out: Path, model: str) -> None:
        """Written atomically; NaN values are kept as JSON ``NaN`` so the tables read back are those written."""
        path = self.path(out, model)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(vars(self), indent=1) + "\n").encode())

    @classmethod
    def load(cls, out: Path, model: str) -> ModelScores | None:
        path = cls.path(out, model)
        if not path.is_file():
            return None
        try:
            return cls(**loads_unique(path.read_bytes()))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BenchError(f"{path} is damaged ({exc}); pass --out with a new folder") from exc


def stored_models(out: Path) -> list[str]:
    """The models a score folder holds: those run.json lists, in the order they were added, then any whose scores
    were saved by a call stopped before it wrote run.json."""
    layout = RunLayout(out)
    listed = list(loads_unique(layout.run_json.read_bytes()).get("models", {})) if layout.run_json.is_file() else []
    folder = ModelScores.folder(out)
    saved = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    return [m for m in listed if ModelScores.path(out, m).is_file()] + [m for m in saved if m not in listed]


def _reused(out: Path, model: str, folder: Path, digest: str) -> ModelScores | None:
    """The stored scores of ``model`` when they were computed from these very prediction files; a model of the
    folder named again with other predictions is refused (its scores are never overwritten)."""
    stored = ModelScores.load(out, model)
    if stored is None:
        return None
    if stored.predictions != str(folder.resolve()) or stored.files_sha256 != digest:
        raise BenchError(f"{out} already holds model {model}, scored from other predictions "
                         f"({printable(stored.predictions)}); name this one differently, or pass --out with a new "
                         "folder")
    return stored


def _say_left_out(metrics: MetricSelection, requested: Sequence[str] | None) -> None:
    """One stderr line naming the metrics the default set leaves out (a metric asked for by name and not
    computable here is refused before this, by the CLI)."""
    if requested is None and metrics.unavailable:
        first = next(iter(metrics.unavailable.values()))
        logger.warning("the default metric set leaves out %s: they cannot be computed here (%s); every reason is in "
                       "run.json's metrics_unavailable", ", ".join(metrics.unavailable), first)


def _say_skipped(skips: Sequence[Skip], run_json: Path) -> None:
    if skips:
        shown = "; ".join(f"{s.image_id}: {s.reason}" for s in skips[:SHOWN_REASONS])
        more = f"; {len(skips) - SHOWN_REASONS} more" if len(skips) > SHOWN_REASONS else ""
        logger.warning("skipped %d pairs (%s%s); every reason is in %s", len(skips), shown, more, run_json)


@per_run
def score_folders(
    predictions: Mapping[str, Path],
    gt_dir: Path,
    *,
    out: Path | None,
    metric_names: Sequence[str] | None,
    resize_pred: str = "none",
    device_name: str = "auto",
    batch_size: int = 16,
    progress: bool = True,
    segments_dir: Path | None = None,
    report: ReportBuilder | None = None,
) -> Path:
    """Score every model's matched pairs at the ground truth's resolution and write tables, run.json, report.

    ``predictions`` maps each model name to its folder of predictions. ``resize_pred`` is the policy for a
    prediction of another size than its ground truth (:data:`colorbench.pipeline.scoring.RESIZE_PRED`). Segment
    metrics read label maps named like the images from ``segments_dir`` (e.g. a run folder's ``segments/``, to
    reproduce its numbers), else use SLIC superpixels of each ground truth. ``report`` builds the report of the
    finished folder (the CLI passes it, as for ``run`` and ``study``).

    The folder is claimed for this ground truth and metric set (colorbench.io.runfolder: never a run's folder);
    models it already holds are read back. When a model of this call got no pair scored the tables and report
    are still written, then :class:`IncompleteError` says which (exit status 1)."""
    if resize_pred not in RESIZE_PRED:
        raise BenchError(f"--resize-pred takes one of {', '.join(RESIZE_PRED)}, not {resize_pred!r}")
    if not predictions:
        raise BenchError("no prediction folder given; pass --pred NAME=DIR or --pred-root DIR")
    if segments_dir is not None and not segments_dir.is_dir():
        raise BenchError(f"segments folder {segments_dir} does not exist or is not a folder")
    metrics = select_metrics(metric_names)
    truth = checked_ground_truth(gt_dir)
    matched = {model: match_predictions(folder, truth) for model, folder in predictions.items()}
    settings = {"metrics": list(metrics.names), "segments": str(segments_dir.resolve()) if segments_dir else None,
                "resize_pred": resize_pred}
    identity = {"command": "score", "settings": settings,
                "data": f"ground truth {gt_dir.resolve()} ({len(truth.files)} files, sha256 "
                        f"{files_digest(truth.files)[:16]})"}
    if out is None:
        out = child(Path("results"), f"score-{printable_name(gt_dir)}-{cache_key(identity, 10)}")
    _say_left_out(metrics, metric_names)
    with claim(out, identity):
        digests = {model: files_digest({p.image_id: p.pred for p in pairs}) for model, (pairs, _) in matched.items()}
        scores = {m: s for m in stored_models(out) if (s := ModelScores.load(out, m)) is not None}
        reused = {m for m, folder in predictions.items() if _reused(out, m, folder, digests[m]) is not None}
        fresh = {m: ModelScores(str(predictions[m].resolve()), digests[m], len(matched[m][0]),
                                skipped=[s.as_dict() for s in matched[m][1]])
                 for m in predictions if m not in reused}
        if reused:
            logger.info("%s already scored in %s: read back, not recomputed", ", ".join(sorted(reused)), out)
        device = resolve_device(device_name)
        with_segments = needs_segments(metrics.per_image)
        extras_for = (segments_from(segments_dir) if segments_dir else slic_segments) if with_segments else None
        segment_source = SegmentSource("label maps", str(segments_dir)) if segments_dir else slic_source()
        new_skips = [*truth.skips, *(s for m in fresh for s in matched[m][1])]
        for scored in score_models({m: matched[m][0] for m in fresh}, metrics.per_image, device=device,
                                   batch_size=batch_size, progress=progress, desc="score", extras_for=extras_for,
                                   resize_pred=resize_pred):
            fresh[scored.model].records += scored.records
            fresh[scored.model].skipped += [s.as_dict() for s in scored.skips]
            fresh[scored.model].resized += scored.resized
            new_skips += scored.skips
        _set_level(fresh, matched, metrics, SetLevelScorer(metrics.set_level, device=device, batch_size=batch_size,
                                                           progress=progress))
        for model, model_scores in fresh.items():
            model_scores.save(out, model)
        scores.update(fresh)
        _write(out, scores, truth, metrics, device=str(device), config={
            "gt": str(gt_dir), "pred": str(next(iter(predictions.values()))), "name": next(iter(predictions)),
            "predictions": {m: s.predictions for m, s in scores.items()}, "batch_size": batch_size,
            "metrics": list(metric_names) if metric_names else None, "resize_pred": resize_pred,
            "segments": str(segments_dir) if segments_dir else None},
            segments=segment_source.describe() if with_segments else None)
        _say_skipped(new_skips, RunLayout(out).run_json)
        resized = sum(len(s.resized) for s in fresh.values())
        if resized:
            logger.warning("resized %d predictions to their ground truth's size (--resize-pred gt: bilinear, "
                           "antialiased)", resized)
        if report is not None:
            report(out)
    empty = sorted(m for m, s in fresh.items() if not s.records)
    if empty:
        many = len(fresh) > 1
        raise IncompleteError(f"no image was scored{' for ' + ', '.join(empty) if many else ''}: "
                              + "; ".join(f"{m + ': ' if many else ''}{fresh[m].n_pairs} matched pairs, "
                                          f"{len(fresh[m].skipped)} skipped" for m in empty)
                              + f" (reasons in {RunLayout(out).run_json} and the report)")
    return out


def _set_level(fresh: Mapping[str, ModelScores], matched: Mapping[str, tuple[list[Pair], list[Skip]]],
               metrics: MetricSelection, scorer: SetLevelScorer) -> None:
    """Set-level metrics of each new model on its scored pairs; one scorer keeps the ground truth's features
    of an image set for every model scored on that set."""
    for model, model_scores in fresh.items():
        scored = {str(r["image_id"]) for r in model_scores.records}
        if metrics.set_level and scored:
            model_scores.set_level = scorer([p for p in matched[model][0] if p.image_id in scored], model)


def _write(out: Path, scores: Mapping[str, ModelScores], truth: GroundTruth, metrics: MetricSelection, *,
           device: str, config: Mapping[str, object], segments: Mapping[str, str] | None) -> None:
    """The folder's tables and run.json over every model it holds, old and new."""
    skipped = [s.as_dict() for s in truth.skips]
    skipped += [{**s, "model": m} for m, model_scores in scores.items() for s in model_scores.skipped]
    write_results(RunLayout(out), {m: s.records for m, s in scores.items()}, metrics, seed=0, device=device,
                  config=config, splits={}, skipped=skipped, set_level={m: s.set_level for m, s in scores.items()},
                  models={m: {"predictions": s.predictions, "n_pairs": s.n_pairs, "resized": s.resized}
                          for m, s in scores.items()},
                  segments=segments)
