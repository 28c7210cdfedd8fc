"""The model stages of ``bench run``, per model entry: obtain its weights (a --weights file, a cached or fresh
fit, or training), predict the evaluation images into ``predictions/<model>/`` and score them into
``records/<model>/``; a caption-reading model is evaluated again with swapped captions
(colorbench.pipeline.caption_sensitivity). Each stage skips what is on disk under a matching key, so a rerun
recomputes nothing.

What a prediction is keyed on: the model's key (:func:`prediction_key`), the original's pixels key and, for a model
that reads captions, the digest of the caption it was given. What a record is keyed on
(:meth:`ModelStage.record_identity`): the prediction's key, the original's pixels key, the pixel hashes of the
prediction and of the ground truth, and, when a metric reads segments, the pixel hash of the label map it used;
the metric set names the records folder. Ground truth about to be scored must carry the pixels key the manifest
gives its original; one that does not (changed or replaced during the run) is read again from the original,
with a warning, before it is scored.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import torch
from tqdm import tqdm

from colorbench.core.cachekey import LEGACY_SEPARATORS, cache_key, key_description
from colorbench.core.crashpoints import crash_point
from colorbench.core.device import autocast, barrier, step_done
from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess, iterate_batches
from colorbench.data.segments import segments_from
from colorbench.data.splits import ManifestEntry
from colorbench.io import integrity
from colorbench.io.checkpoints import cached_state, load_state, save_state
from colorbench.io.images import PIXELS_TAG, quantize, read_png_text, write_png
from colorbench.io.legacy_keys import cache_keys
from colorbench.io.records import RecordStore
from colorbench.io.weights import used_weights
from colorbench.metrics.registry import metric_keys, needs_segments
from colorbench.models.base import Colorizer
from colorbench.models.captions import readable_entries
from colorbench.models.releases import release_for
from colorbench.pipeline.caption_sensitivity import swap_key, swapped_captions, swapped_name
from colorbench.pipeline.context import ModelEntry, ModelOutcome, RunContext
from colorbench.pipeline.data_stage import SOURCE_TAG, GroundTruth, Manifests
from colorbench.pipeline.scoring import Pair, SetLevelScorer, metric_set_id, metric_set_keys, score_pairs
from colorbench.training.loop import train
from colorbench.training.profiles import resolve_profile

logger = logging.getLogger(__name__)

KEY_TAG = "colorbench-key"
#: sha256 of the caption a caption-reading model was given for this prediction.
CAPTION_TAG = "colorbench-caption-sha256"
NONFINITE_TAG = "colorbench-nonfinite"
OUT_OF_RANGE_TAG = "colorbench-out-of-range"
#: A prediction value further than half an 8-bit level outside [0, 1] counts as out of range.
RANGE_SLACK = 0.5 / 255


class ModelStage:
    """Obtain, predict and score each model entry over the run's evaluation manifest."""

    def __init__(self, ctx: RunContext, manifests: Manifests, truth: GroundTruth) -> None:
        self.ctx, self.manifests, self.truth = ctx, manifests, truth
        self.cfg, self.device, self.dist, self.progress = ctx.cfg, ctx.device, ctx.dist, ctx.progress
        self.out, self.layout = ctx.out, ctx.layout

    def evaluate(self, entry: ModelEntry) -> ModelOutcome:
        """obtain -> predict -> score one model entry; a model that cannot be obtained is recorded as failed."""
        outcome = ModelOutcome(entry)
        try:
            with self.ctx.timer.stage(self.obtain_stage(entry), entry.name):
                model, outcome.info = self.obtain(entry)
        except BenchError as exc:
            outcome.error = str(exc)
            logger.error("model %s: %s", entry.name, exc)
            return outcome
        key = prediction_key(entry.name, outcome.info, self.cfg.preprocess, entry.spec.version)
        outcome.info["cache_key"] = key
        with self.ctx.timer.stage("predict", entry.name):
            self.predict(entry, model, key)
            barrier(self.dist)
        health = self.prediction_health(entry.name)
        if health["images_with_nonfinite"]:
            outcome.info["prediction_health"] = health
            outcome.error = (f"produced non-finite values (NaN or Inf) in {health['images_with_nonfinite']} of "
                             f"{len(self.manifests.eval.usable)} images; marked non-finite in run.json and left out "
                             "of the tables, rankings and claims")
            logger.error("model %s: %s", entry.name, outcome.error)
            return outcome
        with self.ctx.timer.stage("score", entry.name):
            self.score(entry.name, key)
            barrier(self.dist)
            if self.dist.is_main:
                outcome.set_level = self.set_level(entry.name, key)
        if "caption" in entry.spec.inputs:
            with self.ctx.timer.stage("caption sensitivity", entry.name):
                outcome.info["caption_sensitivity"] = self.swapped_evaluation(entry, model, key)
        return outcome

    def obtain_stage(self, entry: ModelEntry) -> str:
        """The timing stage of obtaining a model's weights: ``load`` (a file, or none needed), ``fit``, ``train``."""
        if entry.name in self.cfg.weights or entry.spec.training not in ("fit", "train"):
            return "load"
        return entry.spec.training

    def obtain(self, entry: ModelEntry) -> tuple[Colorizer, dict[str, object]]:
        """Build the model and give it weights: a user's file, a cached fit, or a fresh fit/training."""
        spec = entry.spec
        path = self.cfg.weights.get(entry.name)
        release = release_for(entry.name, path) if path is not None else None
        if path is not None and release is not None:
            model = release.load(path)
            info: dict[str, object] = {"weights_from": "file", "weights_path": str(path),
                                       "pretrained": "authors' release",
                                       "weights_file_sha256": used_weights().get(str(path.resolve()))}
        else:
            model = spec.build(**self.build_options(entry))
            info = self._weights(entry, model, path)
        model.to(self.device).eval()
        info["weights_sha256"] = model.weights_sha256()
        info["options"] = model.options()
        return model, info

    def _weights(self, entry: ModelEntry, model: Colorizer, path: Path | None) -> dict[str, object]:
        """Give a freshly built model its weights: a safetensors file, a fit or a training; returns their info."""
        spec = entry.spec
        if path is not None:
            _load_into(model, path)
            return {"weights_from": "file", "weights_path": str(path)}
        if spec.training == "fit":
            return self._fit(entry.name, model)
        if spec.training == "train":
            return train(model, entry.name, spec.inputs, self.manifests.training(), self.out,
                         device=self.device, dist=self.dist, resize_mode=self.cfg.preprocess.mode,
                         workers=self.cfg.workers, resume=self.cfg.resume, progress=self.progress,
                         keep_checkpoints=self.cfg.keep_checkpoints, version=spec.version, bf16=self.cfg.bf16)
        return {"weights_from": "none needed"}

    def build_options(self, entry: ModelEntry) -> dict[str, object]:
        """Build options of trained models: the run's training profile, the replica's seed and the epochs, plus
        the family options (ChromaGAN's class ``teacher``, the caption models' ``text_encoder``) that the build
        function names in its signature."""
        if not entry.trained:
            return {}
        options = {"profile": resolve_profile(self.cfg.profile, self.cfg.train_source), "seed": entry.seed,
                   "epochs": self.cfg.epochs}
        family = {"teacher": self.cfg.teacher, "text_encoder": self.cfg.text_encoder}
        accepted = inspect.signature(entry.spec.build).parameters
        return {**options, **{k: v for k, v in family.items() if k in accepted}}

    def _fit(self, name: str, model: Colorizer) -> dict[str, object]:
        """Fit a statistics model over the training manifest, reusing a checkpoint fitted on the same data."""
        checkpoint = self.layout.checkpoint(name)
        wanted: dict[str, object] = {"model": name, "options": model.options(),
                                     "train_manifest": self.manifests.training().sha256,
                                     "preprocess": self.cfg.preprocess.as_dict()}
        cached = cached_state(checkpoint, "fitted model")
        if cached is not None and cached[1] == wanted:
            _state_into(model, cached[0], checkpoint)
            return {"weights_from": "cached fit", "checkpoint": str(checkpoint)}
        model.fit(iterate_batches(self.ctx.loader(self.ctx.shard(self.manifests.training().usable)), self.device),
                  self.progress)
        crash_point("fit")
        if self.dist.is_main:
            save_state(checkpoint, model.state_dict(), wanted)
        return {"weights_from": "fitted", "checkpoint": str(checkpoint)}

    def predict(self, entry: ModelEntry, model: Colorizer, key: str, *, name: str | None = None,
                captions: Mapping[str, str] | None = None) -> None:
        """Colorize this rank's images that have no prediction under ``key`` yet. A caption-reading model gets
        only the images with a caption (the others are recorded as not applicable); ``name`` and ``captions``
        (image id -> caption) give the swapped-caption evaluation its own folder and captions."""
        name, inputs = name or entry.name, entry.spec.inputs
        kind = f"prediction of {name}"
        entries, unreadable = readable_entries(self.ctx.shard(self.manifests.eval.usable), inputs)
        if captions is None:
            self.record_not_applicable(unreadable, name)
        else:
            entries = [replace(e, caption=captions[e.image_id]) for e in entries]
        tags = {e.image_id: prediction_tags(key, e, "caption" in inputs) for e in entries}
        todo = [e for e in entries if integrity.verified_png_text(
            self.layout.prediction(name, e.image_id), tags[e.image_id], kind) is None]
        if not todo:
            return
        bar = tqdm(total=len(todo), desc=f"predict {name}", unit="img", disable=not self.progress)
        with torch.no_grad(), bar:
            for batch in iterate_batches(self.ctx.loader(todo, padded=True), self.device):
                self.ctx.record_failed(batch.failed, f"predict {name}")
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
                    write_png(self.layout.prediction(name, image_id), pixels[i], {
                        **tags[image_id],
                        NONFINITE_TAG: str(int(nonfinite[i])), OUT_OF_RANGE_TAG: str(int(out_of_range[i]))})
                bar.update(len(batch))
                crash_point("predict")

    def record_not_applicable(self, entries: Sequence[ManifestEntry], model: str) -> None:
        """Record each entry ``model`` cannot read (a caption model's images without a caption) as a skip."""
        self.ctx.skips += [{"image_id": e.image_id, "stage": f"predict {model}",
                            "reason": "not applicable: the caption model needs a caption and this image has "
                                      "none (give a folder source a captions.json or captions.csv sidecar)"}
                           for e in entries]

    def swapped_evaluation(self, entry: ModelEntry, model: Colorizer, key: str) -> dict[str, object]:
        """Predict and score the evaluation split again with each image given another image's caption (the
        seeded derangement of colorbench.pipeline.caption_sensitivity); returns run.json's record of it. The
        predictions carry the model's key and the caption each image was given (:func:`prediction_tags`), so a
        changed derangement or caption remakes exactly the images whose given caption changed."""
        captioned, _ = readable_entries(self.manifests.eval.usable, entry.spec.inputs)
        swapped = swapped_captions([e.image_id for e in captioned], [e.caption for e in captioned], self.cfg.seed)
        name = swapped_name(entry.name)
        self.predict(entry, model, key, name=name, captions=swapped)  # each image's given caption is in its tags
        barrier(self.dist)
        self.score(name, key)
        barrier(self.dist)
        return {"records_as": name, "cache_key": key, "swap_key": swap_key(swapped), "derangement_seed": self.cfg.seed,
                "n_images": len(captioned),
                "n_same_caption_text": sum(swapped[e.image_id] == e.caption for e in captioned)}

    def score(self, name: str, key: str) -> None:
        """Score this rank's predictions that have no record under (key, metric set) yet."""
        store = RecordStore(self.records_dir(name), self.dist.rank)
        done = self.stored_records(name, self.dist.rank)
        entries = self.ctx.shard(self.manifests.eval.usable)
        self.reread_stale_truth(entries)
        expected = {e.image_id: self.record_identity(name, key, e) for e in entries}
        layout = self.layout
        pairs = [Pair(e.image_id, e.file, layout.prediction(name, e.image_id), layout.ground_truth(e.image_id))
                 for e in entries
                 if not _record_is_current(done.get(e.image_id, {}), expected[e.image_id])
                 and layout.prediction(name, e.image_id).is_file()]
        extras_for = segments_from(self.layout.segments_dir) if needs_segments(self.ctx.metric_names) else None
        for records, skips in score_pairs(pairs, self.ctx.metric_names, device=self.device,
                                          batch_size=self.cfg.batch_size, progress=self.progress,
                                          desc=f"score {name}", extras_for=extras_for):
            for record in records:
                record.update(expected[str(record["image_id"])])
            store.append(records)
            self.ctx.skips += [s.as_dict() for s in skips]
            crash_point("score")

    def reread_stale_truth(self, entries: Sequence[ManifestEntry]) -> None:
        """Read again, with a warning, the ground truth of ``entries`` that does not carry its original's pixels
        key (replaced or damaged since the data stage); an original that itself changed is left to the run's
        final check (colorbench.pipeline.runner)."""
        stale = [e for e in entries if not self.truth.truth_is_current(e)]
        if stale:
            logger.warning("ground truth of %d image(s) does not match the manifest (first: %s): read again from "
                           "the originals before scoring", len(stale), stale[0].image_id)
            self.truth.write(stale)

    def record_identity(self, model: str, key: str, entry: ManifestEntry) -> dict[str, str | None]:
        """What a record must have been computed from to be current: the model's cache key, the original's
        pixels key, the pixel hashes of the prediction and of the ground truth it was scored against (so models
        are never compared against different ground truths) and, when a metric reads segments, of the label map
        it used."""
        identity = {"key": key, "source_sha256": entry.pixels_key,
                    "pred_pixels": read_png_text(self.layout.prediction(model, entry.image_id)).get(PIXELS_TAG),
                    "gt_pixels": read_png_text(self.layout.ground_truth(entry.image_id)).get(PIXELS_TAG)}
        if needs_segments(self.ctx.metric_names):
            identity["segments_pixels"] = read_png_text(self.layout.segments(entry.image_id)).get(PIXELS_TAG)
        return identity

    def records_dir(self, model: str) -> Path:
        """Where new records of ``model`` under the run's metric set are written."""
        return self.layout.records_dir(model, metric_set_id(self.ctx.metric_names))

    def stored_records(self, model: str, rank: int = 0) -> dict[str, dict[str, object]]:
        """The records of ``model`` under the run's metric set (latest per image): those of a folder the code before
        ``Metric.key()`` named (colorbench.io.legacy_keys; read, new records never go there), overlaid by those of
        :meth:`records_dir`."""
        keys = metric_set_keys(self.ctx.metric_names)
        records: dict[str, dict[str, object]] = {}
        for metric_set in (*keys.legacy, keys.current):
            records.update(RecordStore(self.layout.records_dir(model, metric_set), rank).load())
        return records

    @cached_property
    def set_level_scorer(self) -> SetLevelScorer:
        return SetLevelScorer(self.ctx.metrics.set_level, device=self.device, batch_size=self.cfg.batch_size,
                              progress=self.progress)

    def set_level(self, name: str, key: str) -> dict[str, float]:
        """Set-level metrics of this model's predictions (rank 0), cached beside the per-image records."""
        if not self.ctx.metrics.set_level:
            return {}
        records = self.model_records(name, key)
        ids = [str(r["image_id"]) for r in records]
        names = self.ctx.metrics.names
        pred_pixels, gt_pixels = [r["pred_pixels"] for r in records], [r["gt_pixels"] for r in records]
        fingerprint = cache_keys(
            lambda metrics: [key, pred_pixels, gt_pixels, ids, dict(zip(names, metrics, strict=True))],
            metric_keys(names), 64)
        cache = self.layout.set_level(name)
        stored = integrity.read_sealed_json(cache, "set-level values")
        if (stored is not None and fingerprint.accepts(stored.get("fingerprint"))
                and isinstance(stored.get("values"), dict)):
            return stored["values"]  # type: ignore[return-value]
        pairs = [Pair(i, i, self.layout.prediction(name, i), self.layout.ground_truth(i)) for i in ids]
        values = self.set_level_scorer(pairs, name) if pairs else {}
        integrity.write_sealed_json(cache, {"fingerprint": fingerprint.current, "values": values})
        return values

    def model_records(self, model: str, key: str) -> list[dict[str, object]]:
        """This model's current records in manifest order (stale ones, under another key, left out)."""
        done = self.stored_records(model)
        return [done[e.image_id] for e in self.manifests.eval.usable
                if _record_is_current(done.get(e.image_id, {}), self.record_identity(model, key, e))]

    def prediction_health(self, model: str) -> dict[str, int]:
        """Totals over the stored predictions of values that were non-finite or out of range (then clipped)."""
        totals = {"images_with_nonfinite": 0, "nonfinite_values": 0, "images_out_of_range": 0,
                  "out_of_range_values": 0}
        for e in self.manifests.eval.usable:
            text = read_png_text(self.layout.prediction(model, e.image_id))
            nonfinite, out_of_range = int(text.get(NONFINITE_TAG, 0)), int(text.get(OUT_OF_RANGE_TAG, 0))
            totals["images_with_nonfinite"] += nonfinite > 0
            totals["nonfinite_values"] += nonfinite
            totals["images_out_of_range"] += out_of_range > 0
            totals["out_of_range_values"] += out_of_range
        return totals


def _record_is_current(record: dict[str, object], expected: dict[str, str | None]) -> bool:
    """A metric record was computed for the current prediction of the current original and ground truth."""
    return all(record.get(k) == v for k, v in expected.items())


def _load_into(model: Colorizer, path: Path) -> None:
    _state_into(model, load_state(path), path)


def _state_into(model: Colorizer, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into ``model``; weights that do not fit it, or hold NaN or Inf, are refused."""
    broken = sorted(name for name, tensor in state.items()
                    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()))
    if broken:
        raise BenchError(f"weights in {path} hold NaN or Inf values (tensor {', '.join(broken[:3])}); "
                         "refusing to rank a model with non-finite weights")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BenchError(f"weights in {path} do not fit this model: {' '.join(str(exc).split())}") from exc


def prediction_tags(key: str, entry: ManifestEntry, reads_caption: bool) -> dict[str, str]:
    """The tags a current prediction of ``entry`` carries: the model's key, the original's pixels key and, for a
    caption-reading model, the sha256 of the caption it was given."""
    tags = {KEY_TAG: key, SOURCE_TAG: entry.pixels_key}
    if reads_caption:
        tags[CAPTION_TAG] = hashlib.sha256(entry.caption.encode("utf-8", "surrogatepass")).hexdigest()
    return tags


def prediction_key(model: str, info: dict[str, object], preprocess: Preprocess, version: int = 1) -> str:
    """Cache key of a model's predictions: its name, definition version (``ModelSpec.version``), options,
    weights and the preprocessing. Legacy text: the key tags existing prediction PNGs."""
    payload = key_description({"model": model, "options": info.get("options"), "version": version,
                               "weights_sha256": info.get("weights_sha256"), "preprocess": preprocess.as_dict()})
    return cache_key(payload, 16, separators=LEGACY_SEPARATORS)


