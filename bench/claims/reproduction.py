"""The reproduction table: the paper's Table 1, 2 and 4 figures beside ours for the same model, metric and scale,
with our mean's 95% bootstrap interval (the leaderboard's), the gap (ours minus theirs) and whether our interval
excludes their figure. Written to ``analysis/reproduction.csv`` and shown in the report; C1 under rule version 5
quotes its Table 1 rows as context.

Which of our models stands for which of the paper's experiments (paper Sec. 6.1-6.3, Tables 1-4):

- Table 1 (exp0-exp2): ``baseline0``, the mean colour per grey level (Sec. 4.1); MSE on the 0-255 scale
  (``mse255``), as the table reports it.
- Table 2: the reference ChromaGAN pretrained on ImageNet, run on COCO; ours is ``chromagan``: trained on this
  run's training split, so the row compares a COCO-trained network with an ImageNet-trained one (said in the note),
  unless it was loaded from the authors' released weights (``--weights chromagan=my_model_colorization.h5``):
  then it is the paper's own network and the row reproduces Table 2 as it stands.
- Table 4 (0-1 MSE, ``mse``): exp4 = Model A, 5 epochs (``model-a``); exp5 = Model A.2 (``model-a2``); exp6 =
  Model B (``model-b``). exp3 (Model A after one epoch) and exp5.d (exp6's worst epoch) have no counterpart: we
  score one set of weights per model, the last epoch's.

A row whose numbers come from the built-in sample or a ``smoke``-profile training says so in its note: such a
row tests the code path, not the paper (as the claims' "plumbing only").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from colorbench.claims.evidence import part

REPRODUCTION_COLUMNS = ("table", "experiment", "paper_model", "model", "metric", "ours", "ours_lo", "ours_hi",
                        "n_images", "paper", "gap", "interval_excludes_paper", "note")


@dataclass(frozen=True)
class PaperFigure:
    """One number of the paper's result tables and the model of ours that it is compared with."""

    table: str
    experiment: str
    paper_model: str
    model: str
    metric: str
    value: float
    note: str = ""


def _figures(table: str, experiment: str, paper_model: str, model: str, note: str = "",
             **values: float) -> tuple[PaperFigure, ...]:
    return tuple(PaperFigure(table, experiment, paper_model, model, metric, value, note)
                 for metric, value in values.items())


_IMAGENET = "the paper's network was pretrained on ImageNet; ours is trained on this run's training split"
#: The paper's figures (Tables 1, 2 and 4, read from the paper's text), in the paper's order.
PAPER_FIGURES: tuple[PaperFigure, ...] = (
    *_figures("Table 1", "exp0", "baseline (mean colours)", "baseline0", mse255=444.81, ssim=0.9318, psnr=24.73),
    *_figures("Table 1", "exp1", "baseline (mean colours)", "baseline0", mse255=454.17, ssim=0.9397, psnr=24.28),
    *_figures("Table 1", "exp2", "baseline (mean colours)", "baseline0", mse255=473.35, ssim=0.9385, psnr=24.39),
    *_figures("Table 2", "ImageNet ChromaGAN", "ChromaGAN", "chromagan", _IMAGENET, psnr=23.39, ssim=0.902),
    *_figures("Table 4", "exp4", "Model A, 5 epochs", "model-a", mse=0.0078, ssim=0.921, psnr=22.21),
    *_figures("Table 4", "exp5", "Model A.2", "model-a2", mse=0.0067, ssim=0.925, psnr=22.57),
    *_figures("Table 4", "exp6", "Model B", "model-b", mse=0.0088, ssim=0.913, psnr=23.32),
)


def _entries(models: Mapping[str, object], model: str) -> list[str]:
    """The run's entries of ``model``: itself and its seed replicas (``replica_of``)."""
    return [name for name in models if name == model or part(models, name).get("replica_of") == model]


def _number(row: Mapping[str, str], key: str) -> float | None:
    text = row.get(key)
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


_RELEASED = "the authors' released weights (model_stage: pretrained), the paper's own network"


def _plumbing(run: Mapping[str, object], info: Mapping[str, object]) -> str:
    """Why a model's numbers cannot reproduce the paper's (the built-in sample, a smoke training), or ""."""
    if str(part(run, "config").get("eval_source", "")).startswith("sample:"):
        return "plumbing only: the built-in sample"
    if not info.get("pretrained") and part(info, "options").get("profile") == "smoke":
        return "plumbing only: smoke-profile training"
    return ""


def reproduction_rows(leaderboard: Sequence[Mapping[str, str]],
                      run: Mapping[str, object]) -> list[dict[str, object]]:
    """One row per paper figure and entry of ours (a model and each of its seed replicas, from run.json's
    ``models``) that scored the metric; figures whose model this run did not score are left out."""
    boards = {row["model"]: row for row in leaderboard}
    models = part(run, "models")
    out: list[dict[str, object]] = []
    for figure in PAPER_FIGURES:
        for entry in _entries(models, figure.model):
            row, info = boards.get(entry, {}), part(models, entry)
            ours, lo, hi = (_number(row, k) for k in (figure.metric, f"{figure.metric}_lo", f"{figure.metric}_hi"))
            if ours is None:
                continue
            excludes = "" if lo is None or hi is None else "yes" if not lo <= figure.value <= hi else "no"
            out.append({"table": figure.table, "experiment": figure.experiment, "paper_model": figure.paper_model,
                        "model": entry, "metric": figure.metric, "ours": ours, "ours_lo": lo, "ours_hi": hi,
                        "n_images": row.get("n_images", ""), "paper": figure.value, "gap": ours - figure.value,
                        "interval_excludes_paper": excludes,
                        "note": "; ".join(n for n in (_plumbing(run, info), _RELEASED if info.get("pretrained")
                                                      else figure.note) if n)})
    return out
