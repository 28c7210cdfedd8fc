"""Figures for the report (matplotlib, Agg backend), each saved as PNG beside the data it shows."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.experiments.analysis import PSNR_THRESHOLD, SSIM_THRESHOLD, column
from bench.images import atomic_write_bytes


def save_figure(figure: plt.Figure, path: Path) -> Path:
    """Save a figure as PNG atomically and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _grid(count: int, columns: int = 4, size: float = 3.0) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with ``count`` panels in rows of ``columns`` (unused panels hidden), laid out without overlaps."""
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 0.8), squeeze=False,
                                layout="constrained")
    panels = list(axes.flat)
    for axis in panels[count:]:
        axis.set_visible(False)
    return figure, panels[:count]


def sweep_curves(curves: Sequence[Mapping[str, object]], sweep: str, unit: str, path: Path) -> Path:
    """One panel per metric: median and interquartile band against the degradation strength."""
    rows = [c for c in curves if c["sweep"] == sweep]
    metrics = list(dict.fromkeys(str(c["metric"]) for c in rows))
    figure, axes = _grid(len(metrics))
    for axis, metric in zip(axes, metrics, strict=False):
        points = [c for c in rows if c["metric"] == metric]
        x = [float(c["strength"]) for c in points]  # type: ignore[arg-type]
        axis.fill_between(x, [float(c["q25"]) for c in points], [float(c["q75"]) for c in points],  # type: ignore[arg-type]
                          alpha=0.25)
        axis.plot(x, [float(c["median"]) for c in points], marker="o", markersize=3)  # type: ignore[arg-type]
        axis.set_title(metric, fontsize=9)
        axis.set_xlabel(unit, fontsize=8)
        axis.tick_params(labelsize=7)
    figure.suptitle(f"{sweep}: median and interquartile range over images", fontsize=11)
    return save_figure(figure, path)


def correlation_heatmaps(correlations: Sequence[Mapping[str, object]], path: Path) -> Path:
    """Spearman rank correlation (direction-aware) between metrics, one heatmap per band."""
    bands = list(dict.fromkeys(str(c["band"]) for c in correlations))
    names = list(dict.fromkeys([str(c["metric_a"]) for c in correlations] + [str(c["metric_b"]) for c in correlations]))
    index = {n: i for i, n in enumerate(names)}
    figure, axes = _grid(len(bands), columns=3, size=5.0)
    for k, (axis, band) in enumerate(zip(axes, bands, strict=False)):
        matrix = np.full((len(names), len(names)), np.nan)
        np.fill_diagonal(matrix, 1.0)
        count = 0
        for c in correlations:
            if c["band"] == band and "spearman" in c:
                i, j = index[str(c["metric_a"])], index[str(c["metric_b"])]
                matrix[i, j] = matrix[j, i] = float(c["spearman"])  # type: ignore[arg-type]
                count = int(c["n"])  # type: ignore[arg-type]
        image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        axis.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        axis.set_yticks(range(len(names)), names if k % 3 == 0 else [], fontsize=7)
        axis.set_title(f"{band} (n={count})", fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.6, label="Spearman rho (agreement on better)")
    return save_figure(figure, path)


def metric_scatter(per_image: Sequence[Mapping[str, str]], x_metric: str, y_metric: str, path: Path, *,
                   skip: set[str]) -> Path:
    """One point per (model, image), coloured by model, with the paper's PSNR/SSIM thresholds."""
    figure, axis = plt.subplots(figsize=(5.6, 4.0))
    for model in dict.fromkeys(r["model"] for r in per_image):
        if model in skip:
            continue
        rows = [r for r in per_image if r["model"] == model]
        axis.scatter(column(rows, x_metric), column(rows, y_metric), s=10, alpha=0.6, label=model)
    threshold = {"psnr": PSNR_THRESHOLD, "ssim": SSIM_THRESHOLD}.get(y_metric)
    if threshold is not None:
        axis.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"{y_metric} {threshold:g}")
    axis.set_xlabel(x_metric)
    axis.set_ylabel(y_metric)
    axis.legend(fontsize=7, loc="best")
    return save_figure(figure, path)


def win_rate_bars(rows: Sequence[Mapping[str, object]], path: Path) -> Path:
    """Mean win rate per model with its 95% interval."""
    figure, axis = plt.subplots(figsize=(5.6, 0.4 * len(rows) + 1.2))
    names = [str(r["model"]) for r in rows][::-1]
    values = np.array([float(r["win_rate"]) for r in rows][::-1])  # type: ignore[arg-type]
    lo = values - np.array([float(r["win_rate_lo"]) for r in rows][::-1])  # type: ignore[arg-type]
    hi = np.array([float(r["win_rate_hi"]) for r in rows][::-1]) - values  # type: ignore[arg-type]
    axis.barh(names, values, xerr=[lo, hi], capsize=3)
    axis.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_xlim(0, 1)
    axis.set_xlabel("mean win rate over metrics, opponents and images")
    return save_figure(figure, path)


def training_curves(steps: Sequence[Mapping[str, str]], epochs: Sequence[Mapping[str, str]], title: str,
                    training: Mapping[str, object], path: Path) -> Path:
    """Left: per-step loss terms (generator: mse, class_kl, g_adv; critic: critic, gp). Right: per-epoch
    validation PSNR and colorfulness, with the best and worst epoch and the divergence epoch marked."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    x = column(steps, "step")
    for name in ("mse", "class_kl", "g_adv", "critic", "gp"):
        values = column(steps, name) if steps and name in steps[0] else np.array([])
        if np.isfinite(values).any():
            left.plot(x, values, linewidth=1, label=name)
    left.set_yscale("symlog", linthresh=1e-2)
    left.set_xlabel("step")
    left.set_title("training losses", fontsize=10)
    left.legend(fontsize=7)
    epoch = column(epochs, "epoch")
    right.plot(epoch, column(epochs, "val_psnr"), marker="o", markersize=3, color="C0", label="val PSNR (dB)")
    right.set_ylabel("validation PSNR (dB)")
    twin = right.twinx()
    twin.plot(epoch, column(epochs, "val_colorfulness"), marker="s", markersize=3, color="C1",
              label="val colorfulness")
    twin.set_ylabel("validation colorfulness")
    marks = {"best": (training.get("best_epoch") or {}).get("epoch"),  # type: ignore[union-attr]
             "worst": (training.get("worst_epoch") or {}).get("epoch"),  # type: ignore[union-attr]
             "diverged": (training.get("divergence") or {}).get("epoch")}  # type: ignore[union-attr]
    for (label, value), colour in zip(marks.items(), ("green", "red", "black"), strict=True):
        if value:
            right.axvline(float(value), color=colour, linestyle=":", linewidth=1, label=f"{label} epoch")
    right.set_xlabel("epoch")
    right.set_title("validation (held-out training images)", fontsize=10)
    right.legend(fontsize=7, loc="lower left")
    figure.suptitle(title, fontsize=11)
    return save_figure(figure, path)


def paired_preference_dots(table: pd.DataFrame, metrics: Sequence[str], path: Path) -> Path:
    """The paired study (bench.experiments.paired): per dull output (rows) and band (columns), the share of
    images on which each metric prefers the dull output to each alternative, with its 95% interval; 0.5 =
    indifferent, above = the metric rewards dullness."""
    data = table[table["metric"].isin(metrics)].copy()
    data["band"] = data["band"].map({"all": "all images", "high": "dull PSNR >= 22 dB, SSIM >= 0.9"})
    shown = [m for m in metrics if m in set(data["metric"])]
    alternatives = sorted(set(data["alternative"]))
    grid = sns.FacetGrid(data, row="dull", col="band", hue="metric", hue_order=shown,
                         height=0.45 * len(alternatives) + 1.6, aspect=1.6)
    grid.map_dataframe(_interval_dots, order=shown, alternatives=alternatives)
    grid.refline(x=0.5, color="grey", linestyle="--", linewidth=1)
    grid.set(xlim=(-0.02, 1.02))
    grid.set_axis_labels("share of images preferring the dull output", "")
    grid.set_titles("{row_name} vs alternatives, {col_name}", size=9)
    grid.add_legend(title="metric")
    for (dull, band), axis in grid.axes_dict.items():
        if not ((data["dull"] == dull) & (data["band"] == band) & (data["n"] > 0)).any():
            axis.text(0.5, 0.5, "no image in this band", ha="center", va="center", transform=axis.transAxes)
    return save_figure(grid.figure, path)


def _interval_dots(data: pd.DataFrame, order: Sequence[str], alternatives: Sequence[str], color: object, label: str,
                   **_: object) -> None:
    """One dot with horizontal interval per alternative, metrics offset vertically (FacetGrid map function)."""
    axis = plt.gca()
    rows = {a: k for k, a in enumerate(alternatives)}
    offset = (order.index(label) - (len(order) - 1) / 2) * 0.2
    y = data["alternative"].map(rows).to_numpy(float) + offset
    share = data["prefers_dull"].to_numpy(float)
    error = np.abs(np.vstack((share - data["prefers_dull_lo"].to_numpy(float),
                              data["prefers_dull_hi"].to_numpy(float) - share)))
    axis.errorbar(share, y, xerr=np.nan_to_num(error), fmt="o", markersize=4, capsize=2, color=color, label=label)
    axis.set_yticks(range(len(alternatives)), alternatives, fontsize=7)
