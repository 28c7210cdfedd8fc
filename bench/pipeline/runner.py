"""``bench run``, the spine: split manifests -> ground truth and segments -> per model obtain (load/fit/train),
predict, score -> perturbation study -> tables -> report. Each stage lives in its own module (data_stage,
model_stage, colorbench.study.run, outputs) and writes its output to the run folder as it goes, skipping work
already on disk with a matching key, so an interrupted run resumes and a repeated run recomputes nothing.

An original that changes while the run reads it is never mixed with its old self: every decode checks the bytes
against the manifest's sha256 (a changed file fails to load), and once every model is scored the originals are
hashed again. When some changed, the run warns, builds its manifests again and repeats its stages, which
recompute exactly the changed images (every artefact is keyed on the original's pixels key); when they change
again during that second pass, the run ends with exit status 1 naming them.

Under torchrun each process takes a shard of the images (by position in the manifest); rank 0 writes the
tables and the report once all shards are done.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from colorbench.core.crashpoints import crash_point
from colorbench.core.device import barrier, distributed, resolve_device
from colorbench.core.errors import BenchError, IncompleteError
from colorbench.core.values import number, section
from colorbench.io.runfolder import claim
from colorbench.io.timings import record_in_run_json
from colorbench.pipeline import caption_sensitivity
from colorbench.pipeline.context import ModelEntry, ModelOutcome, RunConfig, RunContext, model_entries, study_subset
from colorbench.pipeline.data_stage import GroundTruth, Manifests, build_manifests
from colorbench.pipeline.model_stage import ModelStage
from colorbench.pipeline.outputs import ReportBuilder, per_run, write_results
from colorbench.study.run import run_study

logger = logging.getLogger(__name__)


@per_run
def execute(cfg: RunConfig, *, report: ReportBuilder | None = None) -> Path:
    """Run ``cfg`` end to end and return the run folder; ``report`` (colorbench.reports.html.build_report, passed
    in by the CLI: the report is a layer above the pipeline) is optional."""
    if cfg.seeds < 1:
        raise BenchError(f"--seeds {cfg.seeds}: train every model at least once")
    entries = model_entries(cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    with distributed(device) as dist, claim(cfg.resolved_out(), cfg.identity(), writer=dist.is_main):
        barrier(dist)  # the other ranks write only once rank 0 has checked and claimed the folder
        ctx = RunContext(cfg, device, dist)
        ctx.out.mkdir(parents=True, exist_ok=True)
        manifests, truth, models, outcomes = run_stages(ctx, entries)
        changed = manifests.changed()
        if changed:
            logger.warning("%d original(s) changed during the run (first: %s): reading them again and scoring them "
                           "again", len(changed), changed[0].file)
            ctx.skips = []
            manifests, truth, models, outcomes = run_stages(ctx, entries)
            changed = manifests.changed()
            if changed:
                raise IncompleteError(f"{len(changed)} original(s) kept changing during the run (first: "
                                      f"{changed[0].file}); no table was written")
        if dist.is_main:
            if cfg.study:
                with ctx.timer.stage("study"):
                    scored = [e.image_id for e in manifests.eval.usable
                              if ctx.layout.ground_truth(e.image_id).is_file()]
                    studied = study_subset(scored, cfg.study_images)
                    run_study(ctx.out, studied, ctx.metric_names, device=device, batch_size=cfg.batch_size,
                          progress=cfg.progress, categories=truth.segment_categories(studied))
            with ctx.timer.stage("tables"):
                write_tables(ctx, manifests, truth, models, outcomes)
            crash_point("report")
            if report is not None:
                with ctx.timer.stage("report"):
                    report(ctx.out)
            record_in_run_json(ctx.layout.run_json, ctx.timer)
    failed = "; ".join(f"{o.entry.name}: {o.error}" for o in outcomes if o.error is not None)
    if failed:
        raise IncompleteError(f"a model failed ({failed}); the other results are in {ctx.out}")
    return ctx.out


def run_stages(ctx: RunContext, entries: Sequence[ModelEntry]
               ) -> tuple[Manifests, GroundTruth, ModelStage, list[ModelOutcome]]:
    """The manifests, the ground truth and every model's obtain, predict and score stages."""
    with ctx.timer.stage("data"):
        manifests = build_manifests(ctx, with_training=any(needs_training_data(ctx.cfg, e) for e in entries))
        truth = GroundTruth(ctx, manifests.eval)
        truth.write()
        barrier(ctx.dist)
    models = ModelStage(ctx, manifests, truth)
    return manifests, truth, models, [models.evaluate(entry) for entry in entries]


def needs_training_data(cfg: RunConfig, entry: ModelEntry) -> bool:
    """Whether ``entry`` is fitted or trained here (not loaded from a --weights file)."""
    return entry.spec.training in ("fit", "train") and entry.name not in cfg.weights


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def write_tables(ctx: RunContext, manifests: Manifests, truth: GroundTruth, models: ModelStage,
                 outcomes: list[ModelOutcome]) -> None:
    """per_image.csv, leaderboard.csv and run.json from the stored records."""
    done = [o for o in outcomes if o.error is None]
    by_model = {o.entry.name: models.model_records(o.entry.name, str(o.info["cache_key"])) for o in done}
    splits: dict[str, object] = {"eval": manifests.eval.summary()}
    if manifests.train is not None:
        splits["train"] = manifests.train.summary()
        splits["overlap"] = manifests.overlap_record(ctx.cfg.allow_overlap)
    described = {}
    for o in outcomes:
        name = o.entry.name
        described[name] = {"spec": o.entry.spec.as_dict(), **o.entry.describe(), **o.info, "error": o.error}
        if o.entry.trained and o.error is None:
            described[name]["protocol"] = trained_protocol(o.info)
        described[name]["non_finite"] = bool(section(o.info, "prediction_health").get("images_with_nonfinite"))
        if o.error is None:
            described[name]["prediction_health"] = models.prediction_health(name)
            described[name]["metric_na"] = na_counts(by_model[name], ctx.metric_names)
    sensitivity = caption_sensitivities(ctx, models, done, by_model)
    write_results(ctx.layout, by_model, ctx.metrics, seed=ctx.cfg.seed, device=str(ctx.device),
                  extra_columns=caption_sensitivity.columns(ctx.metric_names) if sensitivity else (),
                  extra=sensitivity,
                  config=ctx.cfg.as_dict(), models=described, splits=splits, skipped=ctx.skips,
                  set_level={o.entry.name: o.set_level for o in done},
                  segments=truth.segment_source.describe() if truth.writes_segments else None,
                  protocol=protocol(ctx.cfg, manifests, truth, outcomes))


def protocol(cfg: RunConfig, manifests: Manifests, truth: GroundTruth,
             outcomes: Sequence[ModelOutcome]) -> dict[str, object]:
    """The protocol facts the claims table states per row: data, sizes, seeds, segments, overlap."""
    trained = any(o.entry.trained for o in outcomes)
    used_training = manifests.used_training_data
    sources = [cfg.eval_source] + ([cfg.train_source] if used_training else [])
    return {
        "eval_source": cfg.eval_source, "eval_split": cfg.eval_split,
        "train_source": cfg.train_source if used_training else None,
        "train_split": cfg.train_split if used_training else None,
        "builtin_sample": any(s.startswith("sample:") for s in sources),
        "n_eval_images": len(manifests.eval.usable),
        "working_size": cfg.preprocess.size, "resize_mode": cfg.preprocess.mode,
        "seeds": [cfg.seed + k for k in range(cfg.seeds)] if trained else [cfg.seed],
        "segment_source": truth.segment_source.kind if truth.writes_segments else None,
        "train_eval_overlap": len(manifests.overlap) if used_training else None,
    }


def trained_protocol(info: Mapping[str, object]) -> dict[str, object]:
    """Per trained model: the protocol its training followed (profile, network size, width, batch, epochs,
    teacher, seed) and whether the batch exceeded the training set; None where weights came from a file."""
    options, training = section(info, "options"), section(info, "training")
    return {**{k: options.get(k) for k in ("profile", "image_size", "width", "batch_size", "epochs", "teacher",
                                           "seed")},
            "n_train_images": training.get("n_train_images"),
            "batch_exceeds_training_set": training.get("batch_exceeds_training_set")}


def caption_sensitivities(ctx: RunContext, models: ModelStage, done: Sequence[ModelOutcome],
                          by_model: Mapping[str, Sequence[dict[str, object]]]) -> dict[str, dict[str, object]]:
    """The ``caption_sensitivity_*`` columns of every caption-reading model (see caption_sensitivity)."""
    out = {}
    for o in done:
        swapped = o.info.get("caption_sensitivity")
        if isinstance(swapped, dict):
            records = models.model_records(str(swapped["records_as"]), str(swapped["cache_key"]))
            out[o.entry.name] = caption_sensitivity.sensitivity(by_model[o.entry.name], records, ctx.metric_names,
                                                                seed=ctx.cfg.seed)
    return out


def na_counts(records: Sequence[dict[str, object]], names: Sequence[str]) -> dict[str, int]:
    """Per metric, how many images have no value (n/a), e.g. no segments or smaller than the SSIM window."""
    return {name: sum(1 for r in records if not math.isfinite(number(r[name]))) for name in names}
