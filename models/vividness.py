"""The vividness loss (paper Sec. 7.6): an optional loss term that punishes a faded object even where a global loss
averages it away (the Frisbee on the lawn, the tail lights on the car).

For one image with segments k (COCO instances, or SLIC superpixels where a source has none, as in
:mod:`colorbench.data.segments`) of area A_k and mean Lab chroma C_k = mean sqrt(a^2 + b^2) over the segment's pixels,

    L_vivid = sum_k A_k relu(C_k(truth) - C_k(prediction)) / sum_k A_k

the area-weighted mean chroma deficit of the prediction (Lab units; oversaturation is not rewarded, a segment
rendered at least as vivid as the truth costs nothing), averaged over the batch. Since A_k C_k is the chroma sum of
segment k, the term is sum_k relu(S_k(truth) - S_k(prediction)) / sum_k A_k with S_k the per-segment chroma sums,
computed with one ``index_add_`` over the batch: no loop over segments and no host synchronisation (the label maps
have at most :data:`MAX_LABEL` labels, a fixed size). Pixels labelled 0 (no segment) take no part; an image with
no segment adds 0.

Label maps are computed once at the training size in :meth:`VividnessTerm.prepare` and looked up by image id in
each training step. They are cached in the model's training cache folder, in one file per (segment kind, size,
resize mode, :data:`MAX_LABEL`, SLIC parameters) whose rows are keyed per image by the image's pixels key and
:func:`colorbench.data.segments.segments_key` (that image's own annotations for COCO instances): an edit to one
image's file or polygons recomputes that image's map alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from colorbench.core.cachekey import cache_key
from colorbench.data.loader import Preprocess, iterate_batches, make_loader, repeat_last
from colorbench.data.segments import (
    SLIC_PARAMS,
    SegmentSource,
    oriented_coco_map,
    segments_key,
    slic_label_map,
    slic_source,
    to_working_size,
)
from colorbench.data.sources import CocoSource, open_source
from colorbench.data.splits import ManifestEntry
from colorbench.io.checkpoints import cached_state, save_state, state_sha256
from colorbench.models.trainable import TrainingData

logger = logging.getLogger(__name__)

#: Largest segment label kept (labels are stored as uint8); larger labels (more than 255 instances) count as 0.
MAX_LABEL = 255
#: Added under the square root so that the chroma of a grey pixel has a finite gradient.
CHROMA_EPS = 1e-6


def soft_chroma(ab: torch.Tensor) -> torch.Tensor:
    """sqrt(a^2 + b^2 + eps) per pixel, (B, H, W), differentiable at grey."""
    return (ab.float().square().sum(dim=1) + CHROMA_EPS).sqrt()


def chroma_deficit(pred_ab: torch.Tensor, true_ab: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """The vividness loss of the module docstring: ab (B, 2, H, W) in Lab units, ``segments`` (B, H, W) integer
    labels in [0, MAX_LABEL]; a scalar in Lab chroma units."""
    batch = pred_ab.shape[0]
    columns = MAX_LABEL + 1
    index = (segments.long() + columns * torch.arange(batch, device=segments.device).view(-1, 1, 1)).flatten()

    def per_segment(values: torch.Tensor) -> torch.Tensor:
        sums = torch.zeros(batch * columns, dtype=values.dtype, device=values.device)
        return sums.index_add(0, index, values.flatten()).view(batch, columns)[:, 1:]

    true_sums = per_segment(soft_chroma(true_ab))
    deficit = (true_sums - per_segment(soft_chroma(pred_ab))).relu().sum(dim=1)
    area = per_segment(torch.ones_like(segments, dtype=deficit.dtype)).sum(dim=1)
    return (deficit / area.clamp_min(1)).mean()


def segment_source_of(source_spec: str) -> SegmentSource:
    """COCO instances when the training source has them, SLIC superpixels otherwise (as the evaluation does)."""
    source = open_source(source_spec)
    if isinstance(source, CocoSource) and source.instances() is not None:
        return SegmentSource("coco-instances", f"{source.instances_file.name}, smaller instances on top")
    return slic_source()


def label_maps(entries: Sequence[ManifestEntry], data: TrainingData, size: int,
               kind: str) -> dict[str, np.ndarray]:
    """Image id -> uint8 label map at the training size (labels above :data:`MAX_LABEL` dropped to 0)."""
    preprocess = Preprocess(size, data.resize_mode)
    maps: dict[str, np.ndarray] = {}
    if kind == "coco-instances":
        coco = open_source(data.source).instances()
        for entry in tqdm(entries, desc="vividness segments", unit="image", leave=False, disable=not data.progress):
            labels = oriented_coco_map(coco, int(entry.image_id), entry.width, entry.height, entry.decoding)
            maps[entry.image_id] = to_working_size(labels, preprocess)
    else:
        loader = make_loader(entries, preprocess, batch_size=16, workers=data.workers)
        for batch in tqdm(iterate_batches(loader, torch.device("cpu")), desc="vividness segments", unit="batch",
                          total=len(loader), leave=False, disable=not data.progress):
            for image_id, rgb_u8 in zip(batch.image_ids, batch.rgb_u8, strict=True):
                maps[image_id] = slic_label_map(rgb_u8)
    return {k: np.where(v > MAX_LABEL, 0, v).astype(np.uint8) for k, v in maps.items()}


@dataclass
class VividnessTerm:
    """The vividness term of a family: its weight (the loss is ``weight * chroma_deficit``), and after
    :meth:`prepare` the training images' label maps."""

    weight: float
    source: SegmentSource | None = None
    labels: torch.Tensor | None = None  # (N, S, S) uint8
    rows: dict[str, int] | None = None
    table_sha256: str | None = None

    def prepare(self, data: TrainingData, size: int) -> None:
        """Label maps of every training image at ``size``; the rows of images computed before (same row key, see
        the module text) are read from ``data.cache_dir``, the others computed and added."""
        self.source = segment_source_of(data.source)
        kind = self.source.kind
        entries = sorted(data.entries, key=lambda e: e.image_id)
        coco = open_source(data.source).instances() if kind == "coco-instances" else None
        row_key = {e.image_id: f"{e.pixels_key}|{segments_key(kind, coco, e.image_id)}" for e in entries}
        key = cache_key({"kind": kind, "size": size, "mode": data.resize_mode, "max_label": MAX_LABEL,
                         "slic": SLIC_PARAMS if kind == "slic" else None})
        path = data.cache_dir / f"vivid-segments-{key}.safetensors"
        cached = cached_state(path, "vividness segments")
        rows: dict[str, torch.Tensor] = {}
        stored_keys = cached[1].get("row_keys") if cached is not None else None
        if cached is not None and isinstance(stored_keys, list):
            rows = dict(zip([str(k) for k in stored_keys], cached[0]["labels"], strict=True))
        todo = [e for e in entries if row_key[e.image_id] not in rows]
        if todo:
            logger.info("computing %s label maps of %d training images at %d px", kind, len(todo), size)
            rows.update({row_key[i]: torch.from_numpy(m) for i, m in label_maps(todo, data, size, kind).items()})
            keys = sorted(rows)
            save_state(path, {"labels": torch.stack([rows[k] for k in keys])},
                       {"row_keys": keys, **self.source.describe(), "size": size})
        ids = [e.image_id for e in entries if row_key[e.image_id] in rows]
        state = {"labels": torch.stack([rows[row_key[i]] for i in ids])}
        self.labels = state["labels"]
        self.rows = {image_id: row for row, image_id in enumerate(ids)}
        self.table_sha256 = state_sha256(state)

    def loss(self, pred_ab: torch.Tensor, true_ab: torch.Tensor, image_ids: Sequence[str]) -> torch.Tensor:
        """:func:`chroma_deficit` of a training batch (ab in Lab units at the training size); padding rows after the
        batch's images (colorbench.data.loader's fixed shapes) repeat its last image, as the loader's padding does."""
        if self.labels is None or self.rows is None:
            raise RuntimeError("VividnessTerm.prepare must run before the first training step")
        ids = repeat_last(image_ids, len(pred_ab))
        rows = torch.tensor([self.rows[i] for i in ids])
        segments = self.labels[rows].to(pred_ab.device, non_blocking=True)
        return chroma_deficit(pred_ab, true_ab, segments)

    def options(self) -> dict[str, object]:
        """The term's weight, the segment source and the hash of the label-map table (once prepared)."""
        return {"vivid_weight": self.weight, "vivid_segments": self.source.kind if self.source else None,
                "vivid_segments_sha256": self.table_sha256}
