"""The layout of a run folder: the one place that names its files and folders.

Every module that reads or writes a run folder (runner stages, scoring, study, tables, report, CLI) asks a
:class:`RunLayout` for the path; none spells a folder name itself. Every component passes through
:func:`colorbench.core.paths.child`, so an image id or model name from outside cannot climb out of the folder. The
layout may gain entries over time but never renames one, so folders written by earlier versions still read::

    manifest.csv, manifest_train.csv        split manifests (colorbench.data.splits)
    ground_truth/<id>.png, gray/<id>.png     originals and grey inputs at the working size
    segments/<id>.png                        segment label maps
    predictions/<model>/<id>.png             colorizations
    records/<model>/<metric set>/            per-image records (colorbench.io.records); set_level.json beside them
    checkpoints/<model>.safetensors          fitted or trained weights
    train/<model>/                           steps.csv, epochs.csv, summary.json, checkpoints/
    study/                                   perturbations.csv, paired_variants.csv, fingerprint.json
    analysis/, figures/                      analysis tables and figures of the report
    run.json, per_image.csv, leaderboard.csv, claims.csv, index.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorbench.core.paths import child

#: Files of a model's training folder ``train/<model>/`` (written by the trainer; the report reads the logs from
#: the folder that run.json records, which may be another run's).
STEPS_FILE, EPOCHS_FILE, SUMMARY_FILE, EPOCH_CHECKPOINTS = "steps.csv", "epochs.csv", "summary.json", "checkpoints"


@dataclass(frozen=True)
class RunLayout:
    """The paths of the run folder ``root``."""

    root: Path

    def _file(self, *names: str) -> Path:
        return child(self.root, *names)

    def relative(self, path: Path) -> str:
        """A path of this folder relative to its root, as the report's links name it (``gray/<id>.png``)."""
        return path.relative_to(self.root).as_posix()

    # -- tables at the top of the folder ------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        """The evaluation split's manifest."""
        return self._file("manifest.csv")

    @property
    def train_manifest(self) -> Path:
        return self._file("manifest_train.csv")

    @property
    def run_json(self) -> Path:
        return self._file("run.json")

    @property
    def per_image(self) -> Path:
        return self._file("per_image.csv")

    @property
    def leaderboard(self) -> Path:
        return self._file("leaderboard.csv")

    @property
    def claims(self) -> Path:
        return self._file("claims.csv")

    @property
    def index_html(self) -> Path:
        return self._file("index.html")

    # -- images -------------------------------------------------------------------------------------------
    @property
    def ground_truth_dir(self) -> Path:
        return self._file("ground_truth")

    def ground_truth(self, image_id: str) -> Path:
        return self._file("ground_truth", f"{image_id}.png")

    def gray(self, image_id: str) -> Path:
        """The grey input (L only) the models see."""
        return self._file("gray", f"{image_id}.png")

    @property
    def segments_dir(self) -> Path:
        return self._file("segments")

    def segments(self, image_id: str) -> Path:
        return self._file("segments", f"{image_id}.png")

    def predictions_dir(self, model: str) -> Path:
        return self._file("predictions", model)

    def prediction(self, model: str, image_id: str) -> Path:
        return self._file("predictions", model, f"{image_id}.png")

    # -- records ------------------------------------------------------------------------------------------
    def records_dir(self, model: str, metric_set: str) -> Path:
        """Per-image records of ``model`` under one metric set (colorbench.pipeline.scoring.metric_set_id)."""
        return self._file("records", model, metric_set)

    def set_level(self, model: str) -> Path:
        """Sealed cache of a model's set-level metric values."""
        return self._file("records", model, "set_level.json")

    # -- weights and training -----------------------------------------------------------------------------
    def checkpoint(self, model: str) -> Path:
        """The final fitted or trained weights of ``model``."""
        return self._file("checkpoints", f"{model}.safetensors")

    def train_dir(self, model: str) -> Path:
        """Training logs of ``model``: steps.csv, epochs.csv, summary.json and checkpoints/."""
        return self._file("train", model)

    def train_file(self, model: str, name: str) -> Path:
        """A file of ``train/<model>/``: :data:`STEPS_FILE`, :data:`EPOCHS_FILE`, :data:`SUMMARY_FILE` or the
        folder :data:`EPOCH_CHECKPOINTS`."""
        return self._file("train", model, name)

    @property
    def training_cache(self) -> Path:
        """Where trained models keep what they derive from the training data (teacher targets, vocabularies,
        segment maps): ``train/``, shared by the models of the run (``TrainingData.cache_dir``)."""
        return self._file("train")

    # -- study, analyses and figures ----------------------------------------------------------------------
    @property
    def study_records(self) -> Path:
        """The perturbation study's records (one row per sweep, strength and image)."""
        return self._file("study", "perturbations.csv")

    @property
    def study_variants(self) -> Path:
        """The paired study's variant records (dull, recoloured and oversaturated outputs)."""
        return self._file("study", "paired_variants.csv")

    @property
    def study_fingerprint(self) -> Path:
        return self._file("study", "fingerprint.json")

    @property
    def analysis_dir(self) -> Path:
        return self._file("analysis")

    def analysis(self, name: str) -> Path:
        """An analysis table of the report (``analysis/<name>``)."""
        return self._file("analysis", name)

    @property
    def bapps_agreement(self) -> Path:
        """Agreement of every metric with BAPPS human judgements, written by ``bench bapps --into``."""
        return self.analysis("bapps_agreement.csv")

    @property
    def paired_study(self) -> Path:
        """The paired study's preferences, written by the report and read by the claims."""
        return self.analysis("paired_study.csv")

    @property
    def figures_dir(self) -> Path:
        return self._file("figures")

    def figure(self, name: str) -> Path:
        return self._file("figures", name)
