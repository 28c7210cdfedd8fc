"""The HTML report of a run folder, rebuilt from the saved records alone (no recomputation).

Every value passes through Jinja2's autoescaping; images are referenced by relative paths inside the run
folder (or beside it for ``score`` runs), so the report is one HTML file that opens offline.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tqdm import tqdm

from colorbench.claims.manifest import CURRENT_VERSION, VERSIONS, registration, version
from colorbench.claims.table import current, plumbing_banner, verdict_changes
from colorbench.core import values
from colorbench.core.files import atomic_write_bytes
from colorbench.core.paths import text_bytes
from colorbench.metrics.registry import METRICS
from colorbench.pipeline.scoring import images_by_id
from colorbench.reports.build import ANALYSIS_STEPS, RunFolder, analyse
from colorbench.reports.leaderboard import direction_mark, leaderboard
from colorbench.reports.verdicts import anchor, summarize
from colorbench.study.perturbations import SWEEPS

TEMPLATES = Path(__file__).parent / "templates"
GALLERY_METRICS = ("psnr", "ssim", "colorfulness")
PSNR_CAP = METRICS["psnr"].params["max_db"]


@dataclass(frozen=True)
class Tile:
    """One image of a gallery row, with its caption lines."""

    label: str
    src: str
    notes: tuple[str, ...] = ()


def _number(value: object, digits: int = 4) -> str:
    """A table cell: 'n/a' for missing or NaN, '∞' / '-∞' for infinities (glossary note), else the number."""
    if value in (None, ""):
        return "n/a"
    number = values.number(value)
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    return f"{number:.{digits}g}" if abs(number) < 1e4 else f"{number:.4e}"


def _gallery_value(name: str, text: str) -> str:
    """A gallery note value; PSNR at its identity cap reads '∞ (identical)'."""
    if name == "psnr" and text not in (None, "") and float(text) >= values.number(PSNR_CAP):
        return "∞ (identical)"
    return _number(text)


def _relative(path: Path, start: Path) -> str:
    """A relative URL to a file: its path's bytes percent-encoded, so any file name (``#``, ``?``, non-UTF-8)
    links correctly and the page always encodes."""
    return quote(text_bytes(Path(os.path.relpath(path, start)).as_posix()))


def _notes(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{name} {_gallery_value(name, row[name])}" for name in GALLERY_METRICS if name in row)


def _working_size(run: dict) -> str:
    """How the originals were brought to the working size, e.g. 'resized to 224x224'."""
    preprocess = run.get("config", {}).get("preprocess", {})
    size = preprocess.get("size")
    verb = "center-cropped" if preprocess.get("mode") == "center-crop" else "resized"
    return f"{verb} to {size}x{size}" if size else verb


def _given_folders(config: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Path]]]:
    """A ``bench score`` folder's inputs as (tile label, model or None, files by image id): the ground truth, then
    each model's prediction folder (``config["predictions"]``; older folders name one, ``pred``). A folder that
    is gone gives no tiles; a run folder gives none at all."""
    if not (config.get("gt") and config.get("pred")):
        return []
    models = config.get("predictions") or {config.get("name"): config["pred"]}
    folders = [("ground truth (as given)", None, config["gt"]), *((str(m), str(m), p) for m, p in models.items())]
    return [(label, model, images_by_id(Path(path), label)[0] if Path(path).is_dir() else {})
            for label, model, path in folders]


def _gallery(folder: RunFolder, limit: int) -> list[list[Tile]]:
    """Rows of ground truth / model input / one tile per model (paper Figs. 4-6 layout), for the first ``limit``
    images; every tile says what it is (the truth and the input are at the working size, not the original)."""
    by_image: dict[str, dict[str, dict[str, str]]] = {}
    for row in folder.per_image:
        by_image.setdefault(row["image_id"], {})[row["model"]] = row
    working = _working_size(folder.run)
    verb = working.split(" ")[0]
    rows, layout = [], folder.layout
    config = folder.run["config"]
    given = _given_folders(config)
    for image_id, models in list(by_image.items())[:limit]:
        if layout.ground_truth_dir.is_dir():
            src = layout.relative
            tiles = [Tile(f"ground truth ({verb})", src(layout.ground_truth(image_id)), (f"image {image_id}", working)),
                     Tile(f"{verb} input", src(layout.gray(image_id)), ("the lightness L the models see",))]
            tiles += [Tile(model, src(layout.prediction(model, image_id)), _notes(row))
                      for model, row in models.items()]
        else:
            tiles = [Tile(label, _relative(path, folder.out), _notes(models[model]) if model in models else ())
                     for label, model, files in given if (path := files.get(image_id))]
        rows.append(tiles)
    return rows


def build_report(out: Path, *, crop_run: Path | None = None, progress: bool | None = None) -> Path:
    """Analyse the run folder ``out`` and write ``out/index.html``; returns its path. ``progress``: a progress line
    on stderr naming each step of the report stage (None: only when stderr is a terminal)."""
    bar = tqdm(total=len(ANALYSIS_STEPS) + 1, desc="report", unit="step", disable=None if progress is None else
               not progress, leave=False)

    def step(name: str) -> None:
        bar.set_postfix_str(name, refresh=False)
        bar.update()

    folder = RunFolder.load(out)
    report = analyse(folder, crop_run, step)
    bar.set_postfix_str("page")
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = _number
    env.filters["direction_mark"] = direction_mark
    examples = [(sweep, folder.layout.relative(path)) for sweep in SWEEPS
                if (path := folder.layout.figure(f"sweep_{sweep.name}.png")).is_file()]
    html = env.get_template("index.html.j2").render(
        run=folder.run,
        metrics=folder.run["metrics"],
        board=leaderboard(folder.leaderboard, list(folder.run["metrics"]), folder.references, report.win_rates),
        references=folder.references,
        report=report,
        claims=current(report.claims),
        summary=summarize(current(report.claims)),
        summary_anchor=anchor,
        rule_version=CURRENT_VERSION,
        rule_versions=VERSIONS,
        registration=registration(version(CURRENT_VERSION), str(folder.run.get("created", ""))),
        changes=verdict_changes(report.claims),
        rules=version(CURRENT_VERSION).table(),
        plumbing=plumbing_banner(folder.evidence()),
        examples=examples,
        gallery=_gallery(folder, int(folder.run["config"].get("gallery", 8))),
        provenance=json.dumps(folder.run["provenance"], indent=2),
        config=json.dumps(folder.run["config"], indent=2),
    )
    atomic_write_bytes(folder.layout.index_html, html.encode())
    bar.update()
    bar.close()
    return folder.layout.index_html
