"""The HTML report of a run folder, rebuilt from the saved records alone (no recomputation).

Every value passes through Jinja2's autoescaping; images are referenced by relative paths inside the run
folder (or beside it for ``score`` runs), so the report opens offline.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from bench.errors import BenchError
from bench.images import atomic_write_bytes
from bench.schema import read_csv
from reports.plots import psnr_colorfulness_scatter

TEMPLATES = Path(__file__).parent / "templates"
GALLERY_METRICS = ("psnr", "ssim", "colorfulness")


@dataclass(frozen=True)
class Tile:
    """One image of a gallery row, with its caption lines."""

    label: str
    src: str
    notes: tuple[str, ...] = ()


def _number(value: str | float | None, digits: int = 4) -> str:
    if value in (None, ""):
        return "n/a"
    number = float(value)
    if math.isnan(number):
        return "n/a"
    return f"{number:.{digits}g}" if abs(number) < 1e4 else f"{number:.4e}"


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _gallery(out: Path, run: dict, per_image: list[dict[str, str]], limit: int) -> list[list[Tile]]:
    """Rows of original / grey / one tile per model, for the first ``limit`` images."""
    by_image: dict[str, dict[str, dict[str, str]]] = {}
    for row in per_image:
        by_image.setdefault(row["image_id"], {})[row["model"]] = row
    rows = []
    for image_id, models in list(by_image.items())[:limit]:
        if (out / "ground_truth").is_dir():
            tiles = [Tile("original", f"ground_truth/{image_id}.png", (f"image {image_id}",)),
                     Tile("grey input", f"gray/{image_id}.png")]
            for model, row in models.items():
                tiles.append(Tile(model, f"predictions/{model}/{image_id}.png", _notes(row)))
        else:
            config = run["config"]
            model, row = next(iter(models.items()))
            gt = next(Path(config["gt"]).glob(f"{image_id}.*"), None)
            tiles = ([Tile("ground truth", _relative(gt, out))] if gt else [])
            tiles.append(Tile(model, _relative(Path(config["pred"]) / row["file"], out), _notes(row)))
        rows.append(tiles)
    return rows


def _notes(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{name} {_number(row[name])}" for name in GALLERY_METRICS if name in row)


def build_report(out: Path) -> Path:
    """Write ``out/index.html`` (and its figures) from ``run.json``, ``leaderboard.csv`` and ``per_image.csv``."""
    try:
        run = json.loads((out / "run.json").read_text())
        board = read_csv(out / "leaderboard.csv")
        per_image = read_csv(out / "per_image.csv")
    except (OSError, ValueError) as exc:
        raise BenchError(f"{out} is not a finished colorbench run folder: {exc}") from exc
    metrics = run["metrics"]
    figures = []
    if per_image and {"psnr", "colorfulness"} <= metrics.keys():
        references = {name for name, info in run["models"].items() if info.get("spec", {}).get("reference")}
        figures.append(psnr_colorfulness_scatter(per_image, out / "figures" / "psnr_vs_colorfulness.png",
                                                 skip=references))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = _number
    html = env.get_template("index.html.j2").render(
        run=run,
        metrics=metrics,
        board=board,
        gallery=_gallery(out, run, per_image, int(run["config"].get("gallery", 8))),
        figures=[_relative(f, out) for f in figures],
        provenance=json.dumps(run["provenance"], indent=2),
        config=json.dumps(run["config"], indent=2),
    )
    atomic_write_bytes(out / "index.html", html.encode())
    return out / "index.html"
