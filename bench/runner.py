"""``bench run``: split manifests -> ground truth -> each model (fit/train/load, predict, score) -> tables ->
report. Every stage writes its output to the run folder as it goes, and every stage skips work that is
already on disk with a matching key, so an interrupted run resumes and a repeated run recomputes nothing.

Under torchrun each process takes a shard of the images (by position in the manifest); rank 0 writes the
tables and the report once all shards are done.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bench import integrity
from bench.analysis.study import DEFAULT_STUDY_IMAGES, run_study, study_subset
from bench.cachekey import LEGACY_SEPARATORS, cache_key, key_description
from bench.checkpoints import cached_state, load_state, save_state
from bench.color import lab_to_rgb
from bench.crashpoints import crash_point
from bench.data import Preprocess, iterate_batches, make_loader
from bench.device import DistInfo, autocast, barrier, distributed, fixed_shapes, resolve_device, step_done
from bench.errors import BenchError, IncompleteError
from bench.images import PIXELS_TAG, quantize, read_png_text, write_label_png, write_png
from bench.outputs import per_run, write_results
from bench.paths import child
from bench.records import RecordStore
from bench.runfolder import claim
from bench.scoring import Pair, SetLevelScorer, metric_set_id, score_pairs
from bench.segments import (
    SegmentSource,
    coco_label_categories,
    coco_label_map,
    needs_segments,
    segments_from,
    slic_label_map,
    slic_source,
    to_working_size,
)
from bench.sources import CocoSource, ImageSource, open_source
from bench.splits import Manifest, ManifestEntry, build_manifest
from bench.timings import StageTimer, record_in_run_json
from bench.train import resolve_profile, train
from metrics.registry import select_metrics
from models.base import Colorizer
from models.registry import ModelSpec, get_model_spec

logger = logging.getLogger(__name__)

KEY_TAG = "colorbench-key"
SOURCE_TAG = "colorbench-source-sha256"
NONFINITE_TAG = "colorbench-nonfinite"
OUT_OF_RANGE_TAG = "colorbench-out-of-range"
#: A prediction value further than half an 8-bit level outside [0, 1] counts as out of range.
RANGE_SLACK = 0.5 / 255
#: Shared files named in the overlap error (the count gives the rest).
OVERLAP_SHOWN = 3


@dataclass
class RunConfig:
    """Everything that defines a run; written verbatim to run.json."""

    models: list[str]
    metrics: list[str] | None = None  # None: every registered metric that is available here
    eval_source: str = "sample:test"
    train_source: str = "sample:train"
    eval_split: str = "full"
    train_split: str = "full"
    preprocess: Preprocess = field(default_factory=Preprocess)
    out: Path | None = None
    device: str = "auto"
    bf16: bool = True  # bf16 autocast on CUDA/XLA (training and prediction); the CPU always runs fp32
    seed: int = 0
    seeds: int = 1
    allow_overlap: bool = False
    limit: int | None = None
    batch_size: int = 16
    workers: int = 0
    weights: dict[str, Path] = field(default_factory=dict)
    gallery: int = 8
    progress: bool = True
    study: bool = True
    study_images: int | None = DEFAULT_STUDY_IMAGES  # None: every image of the evaluation split
    profile: str = "auto"
    teacher: str = "auto"
    epochs: int | None = None
    resume: bool = True
    keep_checkpoints: int | None = 1  # epoch checkpoints kept besides the best: the last N (None: all)

    @property
    def command(self) -> str:
        """``run``, or ``study`` for the perturbation study alone (no models)."""
        return "run" if self.models else "study"

    def data_id(self) -> str:
        """Hash of what fixes the images and ground truth (not the models)."""
        fixed = {k: v for k, v in self.as_dict().items()
                 if k in ("eval_source", "train_source", "eval_split", "train_split", "preprocess", "limit")}
        return cache_key(fixed, 10, separators=LEGACY_SEPARATORS)  # legacy text: names existing run folders

    def identity(self) -> dict[str, object]:
        """What makes a run folder this command's (bench.runfolder): the command, the data and the models."""
        return {"command": self.command, "data": self.data_id(), "eval_source": self.eval_source,
                "models": list(self.models)}

    def resolved_out(self) -> Path:
        """``--out``, else ``results/<eval source>-<command>-<hash of the identity>``: commands with other models
        or data never share a folder."""
        if self.out is not None:
            return self.out
        name = "".join(c if c.isalnum() else "-" for c in self.eval_source.rsplit("/", 1)[-1]).strip("-")
        digest = cache_key(self.identity(), 10, separators=LEGACY_SEPARATORS)  # legacy text: existing folders
        return Path("results") / f"{name}-{self.command}-{digest}"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["out"] = str(self.out) if self.out else None
        data["weights"] = {k: str(v) for k, v in self.weights.items()}
        return data


@dataclass(frozen=True)
class ModelEntry:
    """One model as the run's folders and tables name it: a registry entry and, for trained models, the seed of
    this replica. ``--seeds N`` trains replica k with seed + k; replica 0 keeps the registry name, replica k > 0 is
    named ``NAME@seed{k}`` (interface 3 of the project's brief)."""

    name: str
    spec: ModelSpec
    seed: int | None = None

    @property
    def trained(self) -> bool:
        return self.seed is not None

    def describe(self) -> dict[str, object]:
        """run.json facts of the entry: adversarial for every model, replica_of and seed for trained ones."""
        facts: dict[str, object] = {"adversarial": self.spec.adversarial}
        if self.trained:
            facts.update({"replica_of": self.spec.name, "seed": self.seed})
        return facts


def replica_name(name: str, k: int) -> str:
    return name if k == 0 else f"{name}@seed{k}"


def model_entries(cfg: RunConfig) -> list[ModelEntry]:
    """The run's models in order: each trained model ``cfg.seeds`` times (seeds seed, seed + 1, ...), unless its
    weights come from a file (then once); every other model once."""
    entries = []
    for name in cfg.models:
        spec = get_model_spec(name)
        if spec.training != "train":
            entries.append(ModelEntry(spec.name, spec))
            continue
        replicas = 1 if spec.name in cfg.weights else cfg.seeds
        entries += [ModelEntry(replica_name(spec.name, k), spec, cfg.seed + k) for k in range(replicas)]
    return entries


@dataclass
class ModelOutcome:
    """What run.json records for one model entry."""

    entry: ModelEntry
    info: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    set_level: dict[str, float] = field(default_factory=dict)


class Run:
    """One execution of a :class:`RunConfig` (shared state of the stages)."""

    def __init__(self, cfg: RunConfig, device: torch.device, dist: DistInfo) -> None:
        self.cfg, self.device, self.dist = cfg, device, dist
        self.out = cfg.resolved_out()
        self.skips: list[dict[str, str]] = []
        self.progress = cfg.progress and dist.is_main
        self.metrics = select_metrics(cfg.metrics)
        self.metric_names = list(self.metrics.per_image)
        self.timer = StageTimer()
        if dist.is_main:
            for name, reason in self.metrics.unavailable.items():
                logger.info("metric %s is unavailable and left out: %s", name, reason)

    # -- data ---------------------------------------------------------------------------------------------
    def _manifest(self, source: ImageSource, split: str, filename: str) -> Manifest:
        manifest = build_manifest(source, split, limit=self.cfg.limit, progress=self.progress)
        if self.dist.is_main:
            manifest.write(self.out / filename)
        if not manifest.usable:
            raise BenchError(f"no usable image in {source.spec} (split {split}): see {self.out / filename}")
        return manifest

    @property
    def eval_source(self) -> ImageSource:
        return open_source(self.cfg.eval_source)

    @cached_property
    def eval_manifest(self) -> Manifest:
        manifest = self._manifest(self.eval_source, self.cfg.eval_split, "manifest.csv")
        self.skips += [{"image_id": e.image_id, "stage": "manifest", "reason": f"{e.status}: {e.reason}"}
                       for e in manifest.skipped]
        return manifest

    @cached_property
    def train_manifest(self) -> Manifest:
        return self._manifest(open_source(self.cfg.train_source), self.cfg.train_split, "manifest_train.csv")

    @property
    def used_training_data(self) -> bool:
        """Whether some model was fitted or trained (so the training manifest belongs in run.json)."""
        return "train_manifest" in vars(self)

    def needs_training_data(self, entry: ModelEntry) -> bool:
        """Whether ``entry`` is fitted or trained here (not loaded from a --weights file)."""
        return entry.spec.training in ("fit", "train") and entry.name not in self.cfg.weights

    @cached_property
    def overlap(self) -> list[tuple[ManifestEntry, ManifestEntry]]:
        """(training, evaluation) entry pairs of usable images whose files have the same sha256."""
        by_sha = {e.sha256: e for e in self.train_manifest.usable}
        return [(by_sha[e.sha256], e) for e in self.eval_manifest.usable if e.sha256 in by_sha]

    def check_overlap(self) -> None:
        """Refuse to train or fit on a file that is also evaluated, unless ``allow_overlap`` (a deliberate
        overfitting check, recorded in run.json)."""
        if self.overlap and not self.cfg.allow_overlap:
            shown = ", ".join(f"{t.file} = {e.file}" for t, e in self.overlap[:OVERLAP_SHOWN])
            more = f" and {len(self.overlap) - OVERLAP_SHOWN} more" if len(self.overlap) > OVERLAP_SHOWN else ""
            raise BenchError(f"{len(self.overlap)} evaluation image(s) are also training images (same sha256): "
                             f"{shown}{more}; pass --allow-overlap only for a deliberate overfitting check")
        if self.overlap and self.dist.is_main:
            logger.warning("%d evaluation image(s) are also training images (--allow-overlap); scores measure "
                           "fitting, not generalization", len(self.overlap))

    def overlap_record(self) -> dict[str, object]:
        """run.json's record of files shared by the training and evaluation manifests."""
        return {"n_shared": len(self.overlap), "allowed": self.cfg.allow_overlap,
                "eval_image_ids": [e.image_id for _, e in self.overlap]}

    def protocol(self, outcomes: Sequence[ModelOutcome]) -> dict[str, object]:
        """The protocol facts the claims table states per row: data, sizes, seeds, segments, overlap."""
        trained = any(o.entry.trained for o in outcomes)
        sources = [self.cfg.eval_source] + ([self.cfg.train_source] if self.used_training_data else [])
        return {
            "eval_source": self.cfg.eval_source, "eval_split": self.cfg.eval_split,
            "train_source": self.cfg.train_source if self.used_training_data else None,
            "train_split": self.cfg.train_split if self.used_training_data else None,
            "builtin_sample": any(s.startswith("sample:") for s in sources),
            "n_eval_images": len(self.eval_manifest.usable),
            "working_size": self.cfg.preprocess.size, "resize_mode": self.cfg.preprocess.mode,
            "seeds": [self.cfg.seed + k for k in range(self.cfg.seeds)] if trained else [self.cfg.seed],
            "segment_source": self.segment_source.kind if self.writes_segments else None,
            "train_eval_overlap": len(self.overlap) if self.used_training_data else None,
        }

    def shard(self, entries: Sequence[ManifestEntry]) -> list[ManifestEntry]:
        return list(entries[self.dist.rank::self.dist.world_size])

    def loader(self, entries: Sequence[ManifestEntry], *, batch_size: int | None = None, padded: bool = False):
        """A loader over ``entries``; ``padded``: the consumer reads only ``len(batch)`` rows, so on fixed-shape
        devices short batches are padded (one graph per pass, :mod:`bench.data`)."""
        return make_loader(entries, self.cfg.preprocess, batch_size=batch_size or self.cfg.batch_size,
                           workers=self.cfg.workers, seed=self.cfg.seed, pad=padded and fixed_shapes(self.device))

    def gt_path(self, image_id: str) -> Path:
        return child(self.out, "ground_truth", f"{image_id}.png")

    def gray_path(self, image_id: str) -> Path:
        return child(self.out, "gray", f"{image_id}.png")

    def pred_path(self, model: str, image_id: str) -> Path:
        return child(self.out, "predictions", model, f"{image_id}.png")

    def segments_path(self, image_id: str) -> Path:
        return child(self.out, "segments", f"{image_id}.png")

    @property
    def writes_segments(self) -> bool:
        """Label maps are written when a metric needs them or the perturbation study runs (object sweeps)."""
        return self.cfg.study or needs_segments(self.metric_names)

    @cached_property
    def segment_source(self) -> SegmentSource:
        """COCO instances when the evaluation source has them, SLIC superpixels otherwise."""
        source = self.eval_source
        if isinstance(source, CocoSource) and source.instances() is not None:
            return SegmentSource("coco-instances", f"{source.instances_file.name}, smaller instances on top, "
                                 "crowd regions left out, nearest-neighbour to the working size")
        return slic_source()

    def _segments(self, image_id: str, rgb_u8: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        if self.segment_source.kind == "slic":
            return slic_label_map(rgb_u8)
        coco = self.eval_source.instances()
        return to_working_size(coco_label_map(coco, int(image_id), size[1], size[0]), self.cfg.preprocess)

    def segment_categories(self, image_ids: Sequence[str]) -> dict[str, dict[int, str]]:
        """Class name of each segment label per image (COCO instances only; empty for SLIC superpixels)."""
        if not self.writes_segments or self.segment_source.kind != "coco-instances":
            return {}
        coco = self.eval_source.instances()
        return {image_id: coco_label_categories(coco, int(image_id)) for image_id in image_ids}

    def write_ground_truth(self) -> None:
        """Save each usable original at the working size, the grey input the models see and, when a metric
        needs them, the segment label map."""
        tag = {e.image_id: f"{e.sha256}|{self.segment_source.kind if self.writes_segments else ''}"
               for e in self.eval_manifest.usable}
        todo = [e for e in self.shard(self.eval_manifest.usable) if not self._ground_truth_is_valid(e, tag[e.image_id])]
        sizes = {e.image_id: (e.width, e.height) for e in todo}
        for batch in iterate_batches(self.loader(todo, padded=True), self.device):
            self._record_failed(batch.failed, "ground truth")
            grey = quantize(lab_to_rgb(torch.cat((batch.L, torch.zeros_like(batch.ab)), dim=1)))
            for i, image_id in enumerate(batch.image_ids):
                write_png(self.gray_path(image_id), grey[i], {SOURCE_TAG: self.sha[image_id]})
                write_png(self.gt_path(image_id), batch.rgb_u8[i], {SOURCE_TAG: self.sha[image_id]})
                if self.writes_segments:
                    labels = self._segments(image_id, batch.rgb_u8[i].cpu(), sizes[image_id])
                    write_label_png(self.segments_path(image_id), labels, {SOURCE_TAG: tag[image_id]})

    def _ground_truth_is_valid(self, entry: ManifestEntry, segments_tag: str) -> bool:
        """The ground truth, grey input and label map of an original exist, belong to it and have intact pixels."""
        wanted = {SOURCE_TAG: entry.sha256}
        return (integrity.verified_png_text(self.gt_path(entry.image_id), wanted, "ground truth") is not None
                and integrity.verified_png_text(self.gray_path(entry.image_id), wanted, "grey input") is not None
                and (not self.writes_segments or integrity.verified_png_text(
                    self.segments_path(entry.image_id), {SOURCE_TAG: segments_tag}, "segment map") is not None))

    @cached_property
    def sha(self) -> dict[str, str]:
        """sha256 of each evaluation original, by image id."""
        return {e.image_id: e.sha256 for e in self.eval_manifest.entries}

    def _record_failed(self, failed: list[tuple[str, str]], stage: str) -> None:
        for image_id, reason in failed:
            logger.warning("skipped %s at %s: %s", image_id, stage, reason)
            self.skips.append({"image_id": image_id, "stage": stage, "reason": reason})

    # -- models -------------------------------------------------------------------------------------------
    def obtain(self, entry: ModelEntry) -> tuple[Colorizer, dict[str, object]]:
        """Build the model and give it weights: a user's file, a cached fit, or a fresh fit/training."""
        spec = entry.spec
        model = spec.build(**self.build_options(entry))
        if entry.name in self.cfg.weights:
            path = self.cfg.weights[entry.name]
            _load_into(model, path)
            info: dict[str, object] = {"weights_from": "file", "weights_path": str(path)}
        elif spec.training == "fit":
            info = self._fit(entry.name, model)
        elif spec.training == "train":
            info = train(model, entry.name, self.train_manifest, self.out, device=self.device, dist=self.dist,
                         resize_mode=self.cfg.preprocess.mode, workers=self.cfg.workers, resume=self.cfg.resume,
                         progress=self.progress, keep_checkpoints=self.cfg.keep_checkpoints, bf16=self.cfg.bf16)
        else:
            info = {"weights_from": "none needed"}
        model.to(self.device).eval()
        info["weights_sha256"] = model.weights_sha256()
        info["options"] = model.options()
        return model, info

    def build_options(self, entry: ModelEntry) -> dict[str, object]:
        """Build options of trained models: the run's training profile, class teacher, the replica's seed and
        the epochs."""
        if not entry.trained:
            return {}
        return {"profile": resolve_profile(self.cfg.profile, self.cfg.train_source), "teacher": self.cfg.teacher,
                "seed": entry.seed, "epochs": self.cfg.epochs}

    def _fit(self, name: str, model: Colorizer) -> dict[str, object]:
        """Fit a statistics model over the training manifest, reusing a checkpoint fitted on the same data."""
        checkpoint = self.out / "checkpoints" / f"{name}.safetensors"
        wanted = {"model": name, "options": model.options(), "train_manifest": self.train_manifest.sha256,
                  "preprocess": self.cfg.preprocess.as_dict()}
        cached = cached_state(checkpoint, "fitted model")
        if cached is not None and cached[1] == wanted:
            _state_into(model, cached[0], checkpoint)
            return {"weights_from": "cached fit", "checkpoint": str(checkpoint)}
        model.fit(iterate_batches(self.loader(self.shard(self.train_manifest.usable)), self.device))
        crash_point("fit")
        if self.dist.is_main:
            save_state(checkpoint, model.state_dict(), wanted)
        return {"weights_from": "fitted", "checkpoint": str(checkpoint)}

    def predict(self, entry: ModelEntry, model: Colorizer, key: str) -> None:
        """Colorize this rank's images that have no prediction under ``key`` yet."""
        name, inputs = entry.name, entry.spec.inputs
        kind = f"prediction of {name}"
        todo = [e for e in self.shard(self.eval_manifest.usable)
                if integrity.verified_png_text(self.pred_path(name, e.image_id),
                                               {KEY_TAG: key, SOURCE_TAG: e.sha256}, kind) is None]
        if not todo:
            return
        bar = tqdm(total=len(todo), desc=f"predict {name}", unit="img", disable=not self.progress)
        with torch.no_grad(), bar:
            for batch in iterate_batches(self.loader(todo, padded=True), self.device):
                self._record_failed(batch.failed, f"predict {name}")
                if not len(batch):
                    continue
                with autocast(self.device, self.cfg.bf16):
                    rgb = model.colorize(batch.inputs_for(inputs)).float()
                nonfinite = (~torch.isfinite(rgb)).flatten(1).sum(1)
                clean = torch.nan_to_num(rgb, nan=0.5, posinf=0.5, neginf=0.5)  # finite values only
                out_of_range = ((clean < -RANGE_SLACK) | (clean > 1 + RANGE_SLACK)).flatten(1).sum(1)
                pixels = quantize(rgb)
                step_done(self.device)
                # one copy to the host per batch (padding rows included: slicing on the device is a new graph)
                pixels, nonfinite, out_of_range = pixels.cpu(), nonfinite.cpu(), out_of_range.cpu()
                for i, image_id in enumerate(batch.image_ids):
                    write_png(self.pred_path(name, image_id), pixels[i], {
                        KEY_TAG: key, SOURCE_TAG: self.sha[image_id],
                        NONFINITE_TAG: str(int(nonfinite[i])), OUT_OF_RANGE_TAG: str(int(out_of_range[i]))})
                bar.update(len(batch))
                crash_point("predict")

    def score(self, name: str, key: str) -> None:
        """Score this rank's predictions that have no record under (key, metric set) yet."""
        store = RecordStore(self.records_dir(name), self.dist.rank)
        done = store.load()
        entries = self.shard(self.eval_manifest.usable)
        expected = {e.image_id: self.record_identity(name, key, e) for e in entries}
        pairs = [Pair(e.image_id, e.file, self.pred_path(name, e.image_id), self.gt_path(e.image_id))
                 for e in entries
                 if not _record_is_current(done.get(e.image_id, {}), expected[e.image_id])
                 and self.pred_path(name, e.image_id).is_file()]
        extras_for = segments_from(self.out / "segments") if needs_segments(self.metric_names) else None
        for records, skips in score_pairs(pairs, self.metric_names, device=self.device, batch_size=self.cfg.batch_size,
                                          progress=self.progress, desc=f"score {name}",
                                          extras_for=extras_for):
            for record in records:
                record.update(expected[str(record["image_id"])])
            store.append(records)
            self.skips += [s.as_dict() for s in skips]
            crash_point("score")

    def record_identity(self, model: str, key: str, entry: ManifestEntry) -> dict[str, str | None]:
        """What a record must have been computed from to be current: the model's cache key, the original's
        hash, and the pixel hashes of the prediction and of the ground truth it was scored against (so models
        are never compared against different ground truths)."""
        return {"key": key, "source_sha256": entry.sha256,
                "pred_pixels": read_png_text(self.pred_path(model, entry.image_id)).get(PIXELS_TAG),
                "gt_pixels": read_png_text(self.gt_path(entry.image_id)).get(PIXELS_TAG)}

    def records_dir(self, model: str) -> Path:
        return child(self.out, "records", model, metric_set_id(self.metric_names))

    @cached_property
    def set_level_scorer(self) -> SetLevelScorer:
        return SetLevelScorer(self.metrics.set_level, device=self.device, batch_size=self.cfg.batch_size,
                              progress=self.progress)

    def set_level(self, name: str, key: str) -> dict[str, float]:
        """Set-level metrics of this model's predictions (rank 0), cached beside the per-image records."""
        if not self.metrics.set_level:
            return {}
        records = self.model_records(name, key)
        ids = [str(r["image_id"]) for r in records]
        described = {n: key_description(d) for n, d in self.metrics.describe().items()}
        fingerprint = cache_key([key, [r["pred_pixels"] for r in records], [r["gt_pixels"] for r in records], ids,
                                 described], 64, separators=LEGACY_SEPARATORS)  # legacy text: existing caches
        cache = self.out / "records" / name / "set_level.json"
        stored = integrity.read_sealed_json(cache, "set-level values")
        if stored is not None and stored.get("fingerprint") == fingerprint and isinstance(stored.get("values"), dict):
            return stored["values"]  # type: ignore[return-value]
        pairs = [Pair(i, i, self.pred_path(name, i), self.gt_path(i)) for i in ids]
        values = self.set_level_scorer(pairs, name) if pairs else {}
        integrity.write_sealed_json(cache, {"fingerprint": fingerprint, "values": values})
        return values

    def model_records(self, model: str, key: str) -> list[dict[str, object]]:
        """This model's current records in manifest order (stale ones, under another key, left out)."""
        done = RecordStore(self.records_dir(model)).load()
        return [done[e.image_id] for e in self.eval_manifest.usable
                if _record_is_current(done.get(e.image_id, {}), self.record_identity(model, key, e))]

    def prediction_health(self, model: str) -> dict[str, int]:
        """Totals over the stored predictions of values that were non-finite or out of range (then clipped)."""
        totals = {"images_with_nonfinite": 0, "nonfinite_values": 0, "images_out_of_range": 0,
                  "out_of_range_values": 0}
        for e in self.eval_manifest.usable:
            text = read_png_text(self.pred_path(model, e.image_id))
            nonfinite, out_of_range = int(text.get(NONFINITE_TAG, 0)), int(text.get(OUT_OF_RANGE_TAG, 0))
            totals["images_with_nonfinite"] += nonfinite > 0
            totals["nonfinite_values"] += nonfinite
            totals["images_out_of_range"] += out_of_range > 0
            totals["out_of_range_values"] += out_of_range
        return totals

    def evaluate(self, entry: ModelEntry) -> ModelOutcome:
        outcome = ModelOutcome(entry)
        try:
            with self.timer.stage(self.obtain_stage(entry), entry.name):
                model, outcome.info = self.obtain(entry)
        except BenchError as exc:
            outcome.error = str(exc)
            logger.error("model %s: %s", entry.name, exc)
            return outcome
        key = prediction_key(entry.name, outcome.info, self.cfg.preprocess, entry.spec.version)
        outcome.info["cache_key"] = key
        with self.timer.stage("predict", entry.name):
            self.predict(entry, model, key)
            barrier(self.dist)
        with self.timer.stage("score", entry.name):
            self.score(entry.name, key)
            barrier(self.dist)
            if self.dist.is_main:
                outcome.set_level = self.set_level(entry.name, key)
        return outcome

    def obtain_stage(self, entry: ModelEntry) -> str:
        """The timing stage of obtaining a model's weights: ``load`` (a file, or none needed), ``fit``, ``train``."""
        if entry.name in self.cfg.weights or entry.spec.training not in ("fit", "train"):
            return "load"
        return entry.spec.training


def trained_protocol(info: Mapping[str, object]) -> dict[str, object]:
    """Per trained model: the protocol its training followed (profile, network size, width, batch, epochs,
    teacher, seed) and whether the batch exceeded the training set; None where weights came from a file."""
    options: Mapping[str, object] = info.get("options") or {}  # type: ignore[assignment]
    training: Mapping[str, object] = info.get("training") or {}  # type: ignore[assignment]
    return {**{k: options.get(k) for k in ("profile", "image_size", "width", "batch_size", "epochs", "teacher",
                                           "seed")},
            "n_train_images": training.get("n_train_images"),
            "batch_exceeds_training_set": training.get("batch_exceeds_training_set")}


def _record_is_current(record: dict[str, object], expected: dict[str, str | None]) -> bool:
    """A metric record was computed for the current prediction of the current original and ground truth."""
    return all(record.get(k) == v for k, v in expected.items())


def _load_into(model: Colorizer, path: Path) -> None:
    _state_into(model, load_state(path), path)


def _state_into(model: Colorizer, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BenchError(f"weights in {path} do not fit this model: {' '.join(str(exc).split())}") from exc


def prediction_key(model: str, info: dict[str, object], preprocess: Preprocess, version: int = 1) -> str:
    """Cache key of a model's predictions: its name, definition version (``ModelSpec.version``), options,
    weights and the preprocessing. Legacy text: the key tags existing prediction PNGs."""
    payload = key_description({"model": model, "options": info.get("options"), "version": version,
                               "weights_sha256": info.get("weights_sha256"), "preprocess": preprocess.as_dict()})
    return cache_key(payload, 16, separators=LEGACY_SEPARATORS)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@per_run
def execute(cfg: RunConfig, *, report: Callable[[Path], None] | None = None) -> Path:
    """Run ``cfg`` end to end and return the run folder."""
    if cfg.seeds < 1:
        raise BenchError(f"--seeds {cfg.seeds}: train every model at least once")
    entries = model_entries(cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    with distributed(device) as dist, claim(cfg.resolved_out(), cfg.identity(), writer=dist.is_main):
        barrier(dist)  # the other ranks write only once rank 0 has checked and claimed the folder
        run = Run(cfg, device, dist)
        run.out.mkdir(parents=True, exist_ok=True)
        with run.timer.stage("data"):
            if any(run.needs_training_data(e) for e in entries):
                run.check_overlap()
            run.write_ground_truth()
            barrier(dist)
        outcomes = [run.evaluate(entry) for entry in entries]
        if dist.is_main:
            if cfg.study:
                with run.timer.stage("study"):
                    scored = [e.image_id for e in run.eval_manifest.usable if run.gt_path(e.image_id).is_file()]
                    studied = study_subset(scored, cfg.study_images)
                    run_study(run.out, studied, run.metric_names, device=device, batch_size=cfg.batch_size,
                              progress=cfg.progress, categories=run.segment_categories(studied))
            with run.timer.stage("tables"):
                write_tables(run, outcomes)
            crash_point("report")
            if report is not None:
                with run.timer.stage("report"):
                    report(run.out)
            record_in_run_json(run.out, run.timer)
    failed = "; ".join(f"{o.entry.name}: {o.error}" for o in outcomes if o.error is not None)
    if failed:
        raise IncompleteError(f"a model failed ({failed}); the other results are in {run.out}")
    return run.out


def write_tables(run: Run, outcomes: list[ModelOutcome]) -> None:
    """per_image.csv, leaderboard.csv and run.json from the stored records."""
    done = [o for o in outcomes if o.error is None]
    by_model = {o.entry.name: run.model_records(o.entry.name, str(o.info["cache_key"])) for o in done}
    splits: dict[str, object] = {"eval": run.eval_manifest.summary()}
    if run.used_training_data:
        splits["train"] = run.train_manifest.summary()
        splits["overlap"] = run.overlap_record()
    models = {}
    for o in outcomes:
        name = o.entry.name
        models[name] = {"spec": o.entry.spec.as_dict(), **o.entry.describe(), **o.info, "error": o.error}
        if o.entry.trained and o.error is None:
            models[name]["protocol"] = trained_protocol(o.info)
        if o.error is None:
            models[name]["prediction_health"] = run.prediction_health(name)
            models[name]["metric_na"] = na_counts(by_model[name], run.metric_names)
    write_results(run.out, by_model, run.metrics, seed=run.cfg.seed, device=str(run.device),
                  config=run.cfg.as_dict(), models=models, splits=splits, skipped=run.skips,
                  set_level={o.entry.name: o.set_level for o in done},
                  segments=run.segment_source.describe() if run.writes_segments else None,
                  protocol=run.protocol(outcomes))


def na_counts(records: Sequence[dict[str, object]], names: Sequence[str]) -> dict[str, int]:
    """Per metric, how many images have no value (n/a), e.g. no segments or smaller than the SSIM window."""
    return {name: sum(1 for r in records if not math.isfinite(float(r[name]))) for name in names}  # type: ignore[arg-type]
