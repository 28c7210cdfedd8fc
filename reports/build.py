"""Rebuild everything a reader sees from a run folder's saved records, without recomputing any prediction or
per-image metric: analyses (as CSV under ``analysis/``, among them ``reproduction.csv``: the paper's Table 1, 2 and 4
figures beside ours), ``claims.csv``, figures (PNG under ``figures/``) and
``index.html``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from colorbench.analysis.c2_study import c2_records
from colorbench.analysis.paired import FIGURE_METRICS, PAIRED_COLUMNS, outputs_table, paired_preferences
from colorbench.analysis.ratings import load_ratings
from colorbench.analysis.tables import rank_correlations, sweep_curves, sweep_sensitivity, win_rates
from colorbench.claims.c7 import C7_METRICS
from colorbench.claims.manifest import CURRENT_VERSION, RULE_TABLE, version
from colorbench.claims.pixels import common_pixel_rows, near_grey_shares
from colorbench.claims.reproduction import REPRODUCTION_COLUMNS, reproduction_rows
from colorbench.claims.table import Claim, Evidence, csv_rows, evaluate_claims
from colorbench.core.errors import BenchError
from colorbench.core.strictjson import loads_unique
from colorbench.io import integrity
from colorbench.io.layout import EPOCHS_FILE, STEPS_FILE, RunLayout
from colorbench.io.schema import read_csv, write_csv
from colorbench.pipeline import caption_sensitivity
from colorbench.reports import plots
from colorbench.study.perturbations import SWEEPS_BY_NAME
from colorbench.study.run import load_study, load_variants

CLAIM_COLUMNS = ("rule_version", "current", "claim", "statement", "test", "numbers", "n", "protocol", "outcome",
                 "verdict", "what_would_change")
RULE_COLUMNS = ("version", "claim", "name", "value", "source")
COMMON_PIXEL_COLUMNS = ("model", "image_id", "metric", "resize", "crop")
CORRELATION_COLUMNS = ("band", "metric_a", "metric_b", "n", "spearman", "spearman_lo", "spearman_hi", "kendall",
                       "kendall_lo", "kendall_hi")
#: The steps of :func:`analyse`, in order, each reported to its ``step`` callback when done (the progress line).
ANALYSIS_STEPS = ("perturbation study", "rank correlations", "paired study", "claims", "figures", "win rates",
                  "training curves")
SCATTERS = (("delta_colorfulness", "psnr"), ("delta_colorfulness", "ssim"), ("segment_chroma_ratio", "psnr"),
            ("segment_chroma_ratio", "ssim"))


@dataclass
class RunFolder:
    """The saved records of one run."""

    out: Path
    run: dict
    leaderboard: list[dict[str, str]]
    per_image: list[dict[str, str]]
    study: list[dict[str, str]]

    @classmethod
    def load(cls, out: Path) -> RunFolder:
        try:
            layout = RunLayout(out)
            run = loads_unique(layout.run_json.read_bytes())
            if not isinstance(run, dict) or not isinstance(run.get("config"), dict) or not isinstance(
                    run.get("models", {}), dict):
                raise ValueError(f"{layout.run_json} is not a run record (a JSON object with a config and models)")
            tables = {path: read_csv(path) for path in (layout.leaderboard, layout.per_image)}
            for path, rows in tables.items():
                cut = not path.read_bytes().endswith(b"\n")  # every table colorbench writes ends with a newline
                if cut or any(None in row or None in row.values() or "model" not in row for row in rows):
                    raise ValueError(f"{path} is damaged (rows with missing or extra fields, or no model column)")
            integrity.check_tables(run, out)
            return cls(out, run, tables[layout.leaderboard], tables[layout.per_image], load_study(out))
        except (OSError, ValueError, csv.Error) as exc:
            raise BenchError(f"{out} is not a finished colorbench run folder: {exc}") from exc

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.out)

    @property
    def per_image_metrics(self) -> list[str]:
        return [n for n, m in self.run["metrics"].items() if not m.get("set_level")]

    @property
    def references(self) -> set[str]:
        return {name for name, info in self.run["models"].items() if info.get("spec", {}).get("reference")}

    @property
    def colorizers(self) -> list[str]:
        return [r["model"] for r in self.leaderboard if r["model"] not in self.references]

    def evidence(self, **analyses: object) -> Evidence:
        """The claims' evidence: this folder's records (references left out) plus the given analyses."""
        return Evidence(self.run, self.leaderboard, [r for r in self.per_image if r["model"] not in self.references],
                        seed=int(self.run.get("seed", 0)), **analyses)  # type: ignore[arg-type]


@dataclass
class Report:
    """What the HTML template shows, beyond run.json itself."""

    claims: list[Claim]
    win_rates: list[dict[str, object]] = field(default_factory=list)
    metric_ranks: dict[str, dict[str, int]] = field(default_factory=dict)
    sensitivity: list[dict[str, object]] = field(default_factory=list)
    figures: dict[str, list[str]] = field(default_factory=dict)  # section -> figure paths relative to the folder
    human: list[dict[str, str]] = field(default_factory=list)  # BAPPS agreement rows, when computed
    captions: list[dict[str, object]] = field(default_factory=list)  # caption sensitivity, per model and metric
    reproduction: list[dict[str, object]] = field(default_factory=list)  # the paper's Tables 1, 2, 4 beside ours


def _figure(report: Report, section: str, path: Path, out: Path) -> None:
    report.figures.setdefault(section, []).append(path.relative_to(out).as_posix())


def _paired_study(folder: RunFolder) -> Path | None:
    """analysis/paired_study.csv (read by the claims) and its figure, whose path is returned: the study's dull
    outputs against its recolourings, its oversaturated outputs and the output of every model that learned
    from data (fitted or trained) on the same images."""
    variants = load_variants(folder.out)
    if not variants:
        return None
    learned = [m for m in folder.colorizers if folder.run["models"][m].get("spec", {}).get("training") != "none"]
    metrics = folder.per_image_metrics
    table = paired_preferences(outputs_table(variants, folder.per_image, learned, metrics), metrics,
                               seed=int(folder.run.get("seed", 0)))
    write_csv(folder.layout.paired_study, PAIRED_COLUMNS, table.to_dict("records", into=dict))  # str column names
    if not table["metric"].isin(FIGURE_METRICS).any():
        return None
    return plots.paired_preference_dots(table, FIGURE_METRICS, folder.layout.figure("paired_study.png"))


def _claims(folder: RunFolder, crop_run: Path | None, **analyses: object) -> list[Claim]:
    """Evaluate the claims under every rule version and write ``claims.csv``, ``analysis/claim_rules.csv`` (the
    rule table) and, with a crop run, ``analysis/common_pixels.csv``. Reads the paired study
    (``analysis/paired_study.csv``) when present and measures near-grey pixels of adversarial models' PNGs."""
    paired = folder.layout.paired_study
    evidence = folder.evidence(paired_study=read_csv(paired) if paired.is_file() else [], **analyses)
    images = sorted({r["image_id"] for r in folder.per_image})
    grey_chroma = version(CURRENT_VERSION).claims["C3"].values()["grey_chroma"]
    evidence.near_grey = near_grey_shares(folder.out, evidence.adversarial(), images, grey_chroma)
    if "large_area" in (c2_rules := version(CURRENT_VERSION).claims["C2"].values()):
        evidence.c2_arms, evidence.c2_params = c2_records(folder.out, folder.run, c2_rules)
        if (ratings := folder.layout.analysis("ratings.csv")).is_file():
            evidence.c2_ratings = load_ratings(ratings)
    if crop_run:
        crop = RunFolder.load(crop_run)
        evidence.crop = crop.evidence()
        metrics = [m for m in C7_METRICS if m in folder.per_image_metrics and m in crop.per_image_metrics]
        originals = {r["image_id"]: (int(r["width"]), int(r["height"])) for r in read_csv(folder.layout.manifest)
                     if r["status"] == "ok" and r.get("width") and r.get("height")}
        models = ["gray", *(m for m in evidence.trained() if m in evidence.crop.trained())]
        size = int(folder.run["config"]["preprocess"]["size"])
        evidence.common_pixels = common_pixel_rows(folder.out, crop_run, size, originals, models, metrics)
        write_csv(folder.layout.analysis("common_pixels.csv"), COMMON_PIXEL_COLUMNS, evidence.common_pixels)
    claims = evaluate_claims(evidence)
    write_csv(folder.layout.claims, CLAIM_COLUMNS, csv_rows(claims))
    write_csv(folder.layout.analysis("claim_rules.csv"), RULE_COLUMNS, [t.as_row() for t in RULE_TABLE])
    return claims


def _no_step(name: str) -> None:
    """The ``step`` callback of :func:`analyse` when nobody watches."""


def analyse(folder: RunFolder, crop_run: Path | None = None, step: Callable[[str], None] = _no_step) -> Report:
    """Run every analysis the records allow, write their CSVs and figures, and evaluate the claims; ``step`` is
    called with each name of :data:`ANALYSIS_STEPS` once that step is done."""
    out, layout, metrics, seed = folder.out, folder.layout, folder.per_image_metrics, int(folder.run.get("seed", 0))
    curves = sweep_curves(folder.study, metrics) if folder.study else []
    sensitivity = sweep_sensitivity(folder.study, metrics) if folder.study else []
    step(ANALYSIS_STEPS[0])
    colorizer_rows = [r for r in folder.per_image if r["model"] in folder.colorizers]
    correlations = rank_correlations(colorizer_rows, metrics, seed=seed) if colorizer_rows else []
    step(ANALYSIS_STEPS[1])
    paired_figure = _paired_study(folder)
    step(ANALYSIS_STEPS[2])
    human = read_csv(layout.bapps_agreement) if layout.bapps_agreement.is_file() else []
    claims = _claims(folder, crop_run, sensitivity=sensitivity, curves=curves, correlations=correlations,
                     human=human)
    step(ANALYSIS_STEPS[3])
    report = Report(claims, sensitivity=sensitivity, human=human,
                    captions=caption_sensitivity.long_rows(folder.leaderboard, metrics),
                    reproduction=reproduction_rows(folder.leaderboard, folder.run))
    write_csv(layout.analysis("reproduction.csv"), REPRODUCTION_COLUMNS, report.reproduction)
    if report.captions:
        write_csv(layout.analysis("caption_sensitivity.csv"), caption_sensitivity.LONG_COLUMNS, report.captions)
    if curves:
        write_csv(layout.analysis("perturbation_curves.csv"), list(curves[0]), curves)
        write_csv(layout.analysis("perturbation_sensitivity.csv"), list(sensitivity[0]), sensitivity)
        for sweep in dict.fromkeys(str(c["sweep"]) for c in curves):
            _figure(report, "perturbations", plots.sweep_curves(curves, sweep, SWEEPS_BY_NAME[sweep].unit,
                                                                layout.figure(f"curves_{sweep}.png")), out)
    if paired_figure is not None:
        _figure(report, "paired", paired_figure, out)
    if correlations:
        write_csv(layout.analysis("rank_correlations.csv"), CORRELATION_COLUMNS, correlations)
        _figure(report, "correlations", plots.correlation_heatmaps(correlations, layout.figure("correlations.png")),
                out)
        for x_metric, y_metric in SCATTERS:
            if x_metric in metrics and y_metric in metrics:
                path = layout.figure(f"scatter_{y_metric}_vs_{x_metric}.png")
                _figure(report, "scatter", plots.metric_scatter(colorizer_rows, x_metric, y_metric, path,
                                                                skip=folder.references), out)
    step(ANALYSIS_STEPS[4])
    if len(folder.colorizers) >= 2:
        wins = win_rates(colorizer_rows, metrics, folder.colorizers, seed=seed)
        report.win_rates, report.metric_ranks = wins.rows, wins.metric_ranks
        write_csv(layout.analysis("win_rates.csv"), ["model", "win_rate", "win_rate_lo", "win_rate_hi"], wins.rows)
        ranks = [{"metric": m, **ranks} for m, ranks in wins.metric_ranks.items()]
        write_csv(layout.analysis("metric_ranks.csv"), ["metric", *folder.colorizers], ranks)
        _figure(report, "leaderboard", plots.win_rate_bars(wins.rows, layout.figure("win_rates.png")), out)
    step(ANALYSIS_STEPS[5])
    for model, info in folder.run["models"].items():
        logs = Path((info.get("training") or {}).get("folder", layout.train_dir(model)))
        steps, epochs = logs / STEPS_FILE, logs / EPOCHS_FILE
        if steps.is_file() and epochs.is_file():
            path = plots.training_curves(read_csv(steps), read_csv(epochs), model, info.get("training") or {},
                                         layout.figure(f"training_{model}.png"))
            _figure(report, "training", path, out)
    step(ANALYSIS_STEPS[6])
    return report
