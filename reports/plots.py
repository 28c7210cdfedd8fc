"""Figures for the report (matplotlib, Agg backend; seaborn for the heatmaps), each saved as PNG beside the data
it shows."""

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
import seaborn
from matplotlib.layout_engine import PlaceHolderLayoutEngine

from colorbench.analysis.tables import PSNR_THRESHOLD, SSIM_THRESHOLD, column
from colorbench.core.files import atomic_write_bytes
from colorbench.core.values import integer, number, section
from colorbench.metrics.registry import METRICS

#: Markers given to models in turn beside their colours, so that beyond ten models (matplotlib's default colour
#: cycle) every model still differs from every other in colour and in marker.
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "p", "h", "d", "8", "H")


def model_styles(models: Sequence[str]) -> dict[str, tuple[tuple[float, float, float], str]]:
    """A (colour, marker) per model, in order: tab20's ten strong colours first, then its ten light ones; colours
    are distinct for up to 20 models and markers for up to 15, after which they repeat (pairs stay distinct up to
    60 models)."""
    palette = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]  # a ListedColormap
    colours = [*palette[0::2], *palette[1::2]]
    return {model: (colours[k % len(colours)], MARKERS[k % len(MARKERS)]) for k, model in enumerate(models)}


def save_figure(figure: plt.Figure, path: Path) -> Path:
    """Save a figure as PNG atomically and close it. A figure laid out by its layout engine (constrained) is saved
    as laid out; cropping it to the drawn extent again (``bbox_inches="tight"``) would draw it twice."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches=None if figure.get_layout_engine() else "tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _grid(count: int, columns: int = 4, size: float = 3.0, *, fixed_margins: bool = False
          ) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with ``count`` panels in rows of ``columns`` (unused panels hidden), laid out without overlaps:
    by constrained layout, or with ``fixed_margins`` (for panels with short titles and tick labels) by margins set
    once. Constrained layout measures every tick label before drawing, which makes the seven 16-panel sweep
    figures of every report markedly slower to draw and save (docs/performance.md)."""
    rows = math.ceil(count / columns)
    height = rows * size * 0.8
    figure, axes = plt.subplots(rows, columns, figsize=(columns * size, height), squeeze=False,
                                layout=None if fixed_margins else "constrained")
    if fixed_margins:  # inches: 0.7 left for tick labels, 0.55 top for the suptitle, 0.5 bottom for the x label
        figure.subplots_adjust(left=0.7 / (columns * size), right=0.98, top=1 - 0.55 / height, bottom=0.5 / height,
                               wspace=0.35, hspace=0.55)
        # An engine that moves nothing: save_figure saves a figure with a layout engine as placed, uncropped.
        figure.set_layout_engine(PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))
    panels = list(axes.flat)
    for axis in panels[count:]:
        axis.set_visible(False)
    return figure, panels[:count]


def _capped(metric: str) -> float | None:
    """The identity cap of a metric (PSNR's max_db), or None."""
    known = METRICS.get(metric)
    cap = known.params.get("max_db") if known else None
    return number(cap) if cap is not None else None


def sweep_curves(curves: Sequence[Mapping[str, object]], sweep: str, unit: str, path: Path) -> Path:
    """One panel per metric: median and interquartile band against the degradation strength.

    A metric with an identity cap (PSNR: 100 dB for identical images) would squash its panel; its values at the
    cap are left out of the line and band, the axis is clipped to the uncapped values, and each capped median is
    drawn as a triangle on the top edge labelled 'identical (cap)'."""
    rows = [c for c in curves if c["sweep"] == sweep]
    metrics = list(dict.fromkeys(str(c["metric"]) for c in rows))
    figure, axes = _grid(len(metrics), fixed_margins=True)
    for axis, metric in zip(axes, metrics, strict=False):
        points = [c for c in rows if c["metric"] == metric]
        x = np.array([number(c["strength"]) for c in points])
        median, q25, q75 = (np.array([number(c[key]) for c in points]) for key in ("median", "q25", "q75"))
        cap = _capped(metric)
        at_cap = median >= cap if cap is not None else np.zeros_like(median, dtype=bool)
        if cap is not None:
            median, q25, q75 = (np.where(v >= cap, np.nan, v) for v in (median, q25, q75))
        if not np.isfinite(median).any() and not at_cap.any():
            axis.text(0.5, 0.5, "n/a: undefined for these images", ha="center", va="center", fontsize=8,
                      color="#555", transform=axis.transAxes)
            axis.set_yticks([])
        axis.fill_between(x, q25, q75, alpha=0.25)
        axis.plot(x, median, marker="o", markersize=3)
        if at_cap.any() and np.isfinite(median).any():
            low, high = np.nanmin(np.fmin(q25, median)), np.nanmax(np.fmax(q75, median))
            top = high + 0.08 * max(high - low, 1.0)
            axis.set_ylim(low - 0.05 * max(high - low, 1.0), top)
            axis.plot(x[at_cap], np.full(int(at_cap.sum()), top), marker="^", linestyle="none", color="C3",
                      clip_on=False, label=f"identical ({cap:g} cap)")
            axis.legend(fontsize=6, loc="lower left")
        axis.set_title(metric, fontsize=9)
        axis.set_xlabel(unit, fontsize=8)
        axis.tick_params(labelsize=7)
    figure.suptitle(f"{sweep}: median and interquartile range over images", fontsize=11)
    return save_figure(figure, path)


def correlation_matrix(correlations: Sequence[Mapping[str, object]], band: str, names: Sequence[str]
                       ) -> tuple[np.ndarray, list[int]]:
    """Spearman's rho between every pair of ``names`` in ``band``, NaN where it is undefined (too few records, a
    constant column) and on the diagonal (self-agreement says nothing); and the record counts n of the band's
    defined pairs."""
    index = {n: i for i, n in enumerate(names)}
    matrix = np.full((len(names), len(names)), np.nan)
    counts = []
    for c in correlations:
        if c["band"] == band and "spearman" in c and np.isfinite(number(c["spearman"])):
            i, j = index[str(c["metric_a"])], index[str(c["metric_b"])]
            matrix[i, j] = matrix[j, i] = number(c["spearman"])
            counts.append(integer(c["n"]))
    return matrix, counts


def correlation_heatmaps(correlations: Sequence[Mapping[str, object]], path: Path) -> Path:
    """Spearman rank correlation (direction-aware) between metrics, one seaborn heatmap per band; undefined
    cells (n too small, constant columns, the diagonal) are grey and marked n/a, never coloured as 0 or 1."""
    bands = list(dict.fromkeys(str(c["band"]) for c in correlations))
    names = list(dict.fromkeys([str(c["metric_a"]) for c in correlations] + [str(c["metric_b"]) for c in correlations]))
    columns = 2
    figure, axes = _grid(len(bands), columns=columns, size=0.4 * len(names) + 2.0)
    for k, (axis, band) in enumerate(zip(axes, bands, strict=False)):
        matrix, counts = correlation_matrix(correlations, band, names)
        undefined = ~np.isfinite(matrix)
        labels = np.where(undefined, "n/a", np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(matrix)))
        axis.set_facecolor("#d9d9d9")
        seaborn.heatmap(matrix, mask=undefined, vmin=-1, vmax=1, cmap="RdBu_r", center=0, ax=axis, cbar=False,
                        square=True, xticklabels=names, yticklabels=names if k % columns == 0 else False,
                        linewidths=0.5, linecolor="white")
        for i, j in np.ndindex(matrix.shape):
            axis.text(j + 0.5, i + 0.5, str(labels[i, j]), ha="center", va="center", fontsize=6,
                      color="#555" if undefined[i, j] else "black")
        axis.tick_params(labelsize=7)
        span = f"n = {min(counts)}-{max(counts)}" if counts and min(counts) != max(counts) else \
            f"n = {counts[0]}" if counts else "no defined pair"
        axis.set_title(f"{band} ({span})", fontsize=9)
    figure.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(-1, 1), cmap="RdBu_r"), ax=axes, shrink=0.5,
                    label="Spearman rho (agreement on better); grey n/a = undefined")
    return save_figure(figure, path)


def metric_scatter(per_image: Sequence[Mapping[str, str]], x_metric: str, y_metric: str, path: Path, *,
                   skip: set[str]) -> Path:
    """One point per (model, image), each model with its own colour and marker (:func:`model_styles`), with the
    paper's PSNR/SSIM thresholds."""
    figure, axis = plt.subplots(figsize=(5.6, 4.0))
    models = [m for m in dict.fromkeys(r["model"] for r in per_image) if m not in skip]
    for model, (colour, marker) in model_styles(models).items():
        rows = [r for r in per_image if r["model"] == model]
        axis.scatter(column(rows, x_metric), column(rows, y_metric), s=14, alpha=0.7, color=colour, marker=marker,
                     label=model)
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
    values = np.array([number(r["win_rate"]) for r in rows][::-1])
    lo = values - np.array([number(r["win_rate_lo"]) for r in rows][::-1])
    hi = np.array([number(r["win_rate_hi"]) for r in rows][::-1]) - values
    axis.barh(names, values, xerr=[lo, hi], capsize=3)
    axis.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_xlim(0, 1)
    axis.set_xlabel("mean win rate over metrics, opponents and images")
    return save_figure(figure, path)


def loss_columns(steps: Sequence[Mapping[str, str]], epochs: Sequence[Mapping[str, str]]) -> list[str]:
    """The loss terms a training logged, in the model's column order: the ``train_*`` columns of ``epochs.csv``
    (``steps.csv``'s loss columns when it has none), without the ``*_total`` sums of the others."""
    names = [c.removeprefix("train_") for c in (epochs[0] if epochs else {}) if c.startswith("train_")]
    if not names and steps:
        names = [c for c in steps[0] if c not in ("epoch", "step")]
    return [n for n in names if not n.endswith("_total")]


def training_curves(steps: Sequence[Mapping[str, str]], epochs: Sequence[Mapping[str, str]], title: str,
                    training: Mapping[str, object], path: Path) -> Path:
    """Left: per-step loss terms, whatever the model logged (:func:`loss_columns`; ChromaGAN: mse, class_kl,
    g_adv, critic, gp). Right: per-epoch validation PSNR and colorfulness, with the best and worst epoch and the
    divergence epoch marked."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    x = column(steps, "step")
    for name in loss_columns(steps, epochs):
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
    marks = {"best": section(training, "best_epoch").get("epoch"),
             "worst": section(training, "worst_epoch").get("epoch"),
             "diverged": section(training, "divergence").get("epoch")}
    for (label, value), colour in zip(marks.items(), ("green", "red", "black"), strict=True):
        if value:
            right.axvline(number(value), color=colour, linestyle=":", linewidth=1, label=f"{label} epoch")
    right.set_xlabel("epoch")
    right.set_title("validation (held-out training images)", fontsize=10)
    right.legend(fontsize=7, loc="lower left")
    figure.suptitle(title, fontsize=11)
    return save_figure(figure, path)


def paired_preference_dots(table: pd.DataFrame, metrics: Sequence[str], path: Path) -> Path:
    """The paired study (colorbench.analysis.paired): per dull output (rows) and band (columns), the share of
    images on which each metric prefers the dull output to each alternative, with its 95% interval; 0.5 =
    indifferent, above = the metric rewards dullness."""
    data = table[table["metric"].isin(metrics)].copy()
    data["band"] = data["band"].map({"all": "all images", "high": "dull PSNR >= 22 dB, SSIM >= 0.9"})
    shown = [m for m in metrics if m in set(data["metric"])]
    alternatives = sorted(set(data["alternative"]))
    grid = seaborn.FacetGrid(data, row="dull", col="band", hue="metric", hue_order=shown,
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
