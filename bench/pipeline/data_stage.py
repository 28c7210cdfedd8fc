"""The data stages of ``bench run``: the split manifests (``manifest.csv``, ``manifest_train.csv``), the check that
training and evaluation share no file, and the ground truth, grey inputs and segment label maps of every usable
evaluation original at the working size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256
from colorbench.data.color import lab_to_rgb
from colorbench.data.loader import iterate_batches
from colorbench.data.segments import (
    SegmentSource,
    coco_label_categories,
    oriented_coco_map,
    segments_key,
    slic_label_map,
    slic_source,
    to_working_size,
)
from colorbench.data.sources import CocoSource, ImageSource, open_source
from colorbench.data.splits import Manifest, ManifestEntry, build_manifest
from colorbench.io import integrity
from colorbench.io.images import quantize, write_label_png, write_png
from colorbench.metrics.registry import needs_segments
from colorbench.pipeline.context import RunConfig, RunContext

logger = logging.getLogger(__name__)

SOURCE_TAG = "colorbench-source-sha256"
#: Shared files named in the overlap error (the count gives the rest).
OVERLAP_SHOWN = 3


@dataclass
class Manifests:
    """The run's split manifests: evaluation always, training only when some model is fitted or trained here."""

    eval: Manifest
    train: Manifest | None = None
    overlap: list[tuple[ManifestEntry, ManifestEntry]] = field(default_factory=list)

    @property
    def used_training_data(self) -> bool:
        """Whether some model was fitted or trained (so the training manifest belongs in run.json)."""
        return self.train is not None

    def training(self) -> Manifest:
        """The training manifest, for a model fitted or trained here (BenchError when the run made none)."""
        if self.train is None:
            raise BenchError("a model is fitted or trained, but the run made no training manifest")
        return self.train

    def changed(self) -> list[ManifestEntry]:
        """The usable originals (evaluation and training) whose file no longer hashes to its manifest sha256."""
        entries = self.eval.usable + (self.train.usable if self.train is not None else [])
        return [e for e in entries if _current_sha256(e.path) != e.sha256]

    def overlap_record(self, allowed: bool) -> dict[str, object]:
        """run.json's record of files shared by the training and evaluation manifests."""
        return {"n_shared": len(self.overlap), "allowed": allowed,
                "eval_image_ids": [e.image_id for _, e in self.overlap]}


def _current_sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""


def build_manifests(ctx: RunContext, *, with_training: bool) -> Manifests:
    """Stage 1 of a run: select the splits, write their manifests (rank 0), list the evaluation skips, and with
    training data refuse files shared with the evaluation split unless ``--allow-overlap``."""
    evaluated = _manifest(ctx, open_source(ctx.cfg.eval_source), ctx.cfg.eval_split, ctx.layout.manifest)
    ctx.skips += [{"image_id": e.image_id, "stage": "manifest", "reason": f"{e.status}: {e.reason}"}
                  for e in evaluated.skipped]
    if not with_training:
        return Manifests(evaluated)
    trained = _manifest(ctx, open_source(ctx.cfg.train_source), ctx.cfg.train_split, ctx.layout.train_manifest)
    by_sha = {e.sha256: e for e in trained.usable}
    manifests = Manifests(evaluated, trained, [(by_sha[e.sha256], e) for e in evaluated.usable if e.sha256 in by_sha])
    _check_overlap(manifests.overlap, ctx.cfg.allow_overlap, warn=ctx.dist.is_main)
    return manifests


def _manifest(ctx: RunContext, source: ImageSource, split: str, path: Path) -> Manifest:
    manifest = build_manifest(source, split, limit=ctx.cfg.limit, progress=ctx.progress)
    if ctx.dist.is_main:
        manifest.write(path)
    if not manifest.usable:
        raise BenchError(f"no usable image in {source.spec} (split {split}): see {path}")
    return manifest


def _check_overlap(overlap: Sequence[tuple[ManifestEntry, ManifestEntry]], allowed: bool, *, warn: bool) -> None:
    """Refuse to train or fit on a file that is also evaluated, unless ``allowed`` (a deliberate overfitting
    check, recorded in run.json)."""
    if overlap and not allowed:
        shown = ", ".join(f"{t.file} = {e.file}" for t, e in overlap[:OVERLAP_SHOWN])
        more = f" and {len(overlap) - OVERLAP_SHOWN} more" if len(overlap) > OVERLAP_SHOWN else ""
        raise BenchError(f"{len(overlap)} evaluation image(s) are also training images (same sha256): "
                         f"{shown}{more}; pass --allow-overlap only for a deliberate overfitting check")
    if overlap and warn:
        logger.warning("%d evaluation image(s) are also training images (--allow-overlap); scores measure "
                       "fitting, not generalization", len(overlap))


def writes_segments(cfg: RunConfig, metric_names: Sequence[str]) -> bool:
    """Label maps are written when a metric needs them or the perturbation study runs (object sweeps)."""
    return cfg.study or needs_segments(metric_names)


class GroundTruth:
    """Stage 2 of a run: the ground truth, grey input and segment label map of each usable evaluation original."""

    def __init__(self, ctx: RunContext, manifest: Manifest) -> None:
        self.ctx, self.manifest = ctx, manifest
        self.source = open_source(ctx.cfg.eval_source)
        self.writes_segments = writes_segments(ctx.cfg, ctx.metric_names)

    @cached_property
    def segment_source(self) -> SegmentSource:
        """COCO instances when the evaluation source has them, SLIC superpixels otherwise."""
        if isinstance(self.source, CocoSource) and self.source.instances() is not None:
            return SegmentSource("coco-instances", f"{self.source.instances_file.name}, smaller instances on top, "
                                 "crowd regions left out, nearest-neighbour to the working size")
        return slic_source()

    def _segments(self, entry: ManifestEntry, rgb_u8: torch.Tensor) -> np.ndarray:
        if self.segment_source.kind == "slic":
            return slic_label_map(rgb_u8)
        labels = oriented_coco_map(self.source.instances(), int(entry.image_id), entry.width, entry.height,
                                   entry.decoding)
        return to_working_size(labels, self.ctx.cfg.preprocess)

    def segments_tag(self, entry: ManifestEntry) -> str:
        """The tag a current label map carries: the pixels key and what else shapes the map
        (colorbench.data.segments.segments_key: the image's own annotations for COCO)."""
        if not self.writes_segments:
            return f"{entry.pixels_key}|"
        kind = self.segment_source.kind
        coco = self.source.instances() if kind == "coco-instances" else None
        return f"{entry.pixels_key}|{segments_key(kind, coco, entry.image_id)}"

    def segment_categories(self, image_ids: Sequence[str]) -> dict[str, dict[int, str]]:
        """Class name of each segment label per image (COCO instances only; empty for SLIC superpixels)."""
        if not self.writes_segments or self.segment_source.kind != "coco-instances":
            return {}
        coco = self.source.instances()
        return {image_id: coco_label_categories(coco, int(image_id)) for image_id in image_ids}

    def write(self, entries: Sequence[ManifestEntry] | None = None) -> None:
        """Save this rank's usable originals (or ``entries``) at the working size, the grey input the models see
        and, when a metric or the study needs them, the segment label maps; files already valid are kept (a stale
        map alone is remade alone). Each is tagged with the original's pixels key, a map with
        :meth:`segments_tag`."""
        ctx, layout = self.ctx, self.ctx.layout
        listed = ctx.shard(self.manifest.usable) if entries is None else list(entries)
        tag = {e.image_id: self.segments_tag(e) for e in listed}
        truth_ok = {e.image_id for e in listed if self._truth_is_valid(e)}
        maps_ok = {e.image_id for e in listed if self._segments_are_valid(e, tag[e.image_id])}
        todo = {e.image_id: e for e in listed if e.image_id not in truth_ok or e.image_id not in maps_ok}
        for batch in iterate_batches(ctx.loader(list(todo.values()), padded=True), ctx.device):
            ctx.record_failed(batch.failed, "ground truth")
            grey = quantize(lab_to_rgb(torch.cat((batch.L, torch.zeros_like(batch.ab)), dim=1)))
            for i, image_id in enumerate(batch.image_ids):
                if image_id not in truth_ok:
                    source = {SOURCE_TAG: todo[image_id].pixels_key}
                    write_png(layout.gray(image_id), grey[i], source)
                    write_png(layout.ground_truth(image_id), batch.rgb_u8[i], source)
                if image_id not in maps_ok:
                    labels = self._segments(todo[image_id], batch.rgb_u8[i].cpu())
                    write_label_png(layout.segments(image_id), labels, {SOURCE_TAG: tag[image_id]})

    def truth_is_current(self, entry: ManifestEntry) -> bool:
        """The ground truth of an original exists, carries its pixels key and has intact pixels."""
        return integrity.verified_png_text(self.ctx.layout.ground_truth(entry.image_id),
                                           {SOURCE_TAG: entry.pixels_key}, "ground truth") is not None

    def _truth_is_valid(self, entry: ManifestEntry) -> bool:
        """The ground truth and grey input of an original exist, belong to it and have intact pixels."""
        return self.truth_is_current(entry) and integrity.verified_png_text(
            self.ctx.layout.gray(entry.image_id), {SOURCE_TAG: entry.pixels_key}, "grey input") is not None

    def _segments_are_valid(self, entry: ManifestEntry, segments_tag: str) -> bool:
        """The label map is not needed, or exists with the tag of its current inputs and intact pixels."""
        return not self.writes_segments or integrity.verified_png_text(
            self.ctx.layout.segments(entry.image_id), {SOURCE_TAG: segments_tag}, "segment map") is not None
