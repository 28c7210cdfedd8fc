"""The definition of a run and the state its stages share: :class:`RunConfig` (what run.json records verbatim),
the model entries it expands to (replicas of trained models), each model's outcome, and :class:`RunContext`
(device, process group, run-folder layout, metrics, skips, stage timer, image loaders).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from colorbench.core.cachekey import LEGACY_SEPARATORS, cache_key
from colorbench.core.device import DistInfo, fixed_shapes
from colorbench.core.files import file_sha256
from colorbench.data.loader import Preprocess, make_loader
from colorbench.data.splits import ManifestEntry
from colorbench.io.layout import RunLayout
from colorbench.io.timings import StageTimer
from colorbench.metrics.registry import select_metrics
from colorbench.models.registry import ModelSpec, get_model_spec
from colorbench.models.teachers import resolve_teacher

logger = logging.getLogger(__name__)

#: Default of ``--study-images`` for ``run`` and ``study``: 16 images x 35 variants = 560 degraded images, about
#: 7 CPU-minutes compiled and 21 eager by colorbench.study.run.SECONDS_PER_DEGRADED; ``all`` for the full split.
DEFAULT_STUDY_IMAGES = 16


#: Config fields that change no output: the folder itself, progress bars, loader processes, whether a stopped
#: training continues (it ends where a fresh one would) and how many epoch checkpoints stay on disk; and the
#: fields the identity already holds beside its settings (the data and the models).
NEUTRAL_SETTINGS = frozenset({"out", "progress", "workers", "resume", "keep_checkpoints", "models", "eval_source",
                              "train_source", "eval_split", "train_split", "preprocess", "limit"})


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
    text_encoder: str = "bilstm"
    epochs: int | None = None
    resume: bool = True
    keep_checkpoints: int | None = 0  # epochs whose weights stay once a training finishes (None: all, in full)

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
        """What makes a run folder this command's (colorbench.io.runfolder): the command, the data, the models and
        every other setting that changes an output (:meth:`settings`), so that no rerun with other settings
        replaces a finished result."""
        return {"command": self.command, "data": self.data_id(), "eval_source": self.eval_source,
                "models": list(self.models), "settings": self.settings()}

    def settings(self) -> dict[str, object]:
        """The options besides data and models that change some output: every field of the config except
        :data:`NEUTRAL_SETTINGS`, with what "auto" or a path stands for resolved (the metric set computable
        here, the teacher chosen, the bytes of each weight file)."""
        fixed = {k: v for k, v in self.as_dict().items() if k not in NEUTRAL_SETTINGS}
        fixed["metrics"] = list(select_metrics(self.metrics).names)
        fixed["teacher"] = resolve_teacher(self.teacher)
        fixed["weights"] = {name: {"path": str(path), "sha256": file_sha256(path) if path.is_file() else None}
                            for name, path in sorted(self.weights.items())}
        return fixed

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


def study_subset(image_ids: Sequence[str], limit: int | None) -> list[str]:
    """The images of the perturbation study: the first ``limit`` in split order (all of them for None)."""
    return list(image_ids if limit is None else image_ids[:limit])


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


class RunContext:
    """What every stage of one execution of a :class:`RunConfig` shares."""

    def __init__(self, cfg: RunConfig, device: torch.device, dist: DistInfo) -> None:
        self.cfg, self.device, self.dist = cfg, device, dist
        self.out = cfg.resolved_out()
        self.layout = RunLayout(self.out)
        self.skips: list[dict[str, str]] = []
        self.progress = cfg.progress and dist.is_main
        self.metrics = select_metrics(cfg.metrics)
        self.metric_names = list(self.metrics.per_image)
        self.timer = StageTimer()
        if dist.is_main:
            for name, reason in self.metrics.unavailable.items():
                logger.info("metric %s is unavailable and left out: %s", name, reason)

    def shard(self, entries: Sequence[ManifestEntry]) -> list[ManifestEntry]:
        """This process's share of ``entries`` (by position) under torchrun."""
        return list(entries[self.dist.rank::self.dist.world_size])

    def loader(self, entries: Sequence[ManifestEntry], *, batch_size: int | None = None, padded: bool = False):
        """A loader over ``entries``; ``padded``: the consumer reads only ``len(batch)`` rows, so on fixed-shape
        devices short batches are padded (one graph per pass, :mod:`colorbench.data.loader`)."""
        return make_loader(entries, self.cfg.preprocess, batch_size=batch_size or self.cfg.batch_size,
                           workers=self.cfg.workers, seed=self.cfg.seed, pad=padded and fixed_shapes(self.device))

    def record_failed(self, failed: list[tuple[str, str]], stage: str) -> None:
        for image_id, reason in failed:
            logger.warning("skipped %s at %s: %s", image_id, stage, reason)
            self.skips.append({"image_id": image_id, "stage": stage, "reason": reason})
