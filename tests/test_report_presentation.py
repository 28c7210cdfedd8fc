"""Report presentation (issue 12): the leaderboard's order, groups and best marks follow the registry's
directions; undefined correlations are drawn as n/a; PSNR curves are not squashed by the identity cap; tables
print no raw inf/nan; the gallery says what each image is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS
from colorbench.reports import html, plots
from colorbench.reports.build import RunFolder
from colorbench.reports.leaderboard import column_groups, direction_mark, leaderboard


def board_row(model: str, **values: float) -> dict[str, str]:
    return {"model": model, "n_images": "5", **{k: str(v) for k, v in values.items()}}


def test_leaderboard_sorted_grouped_and_best_by_direction():
    board = [board_row("groundtruth", psnr=45.0, delta_colorfulness=0.0, segment_chroma_ratio=1.0, colorfulness=30),
             board_row("vivid", psnr=20.0, delta_colorfulness=12.0, segment_chroma_ratio=1.3, colorfulness=42),
             board_row("dull", psnr=24.0, delta_colorfulness=-3.0, segment_chroma_ratio=0.9, colorfulness=27),
             board_row("grey", psnr=23.0, delta_colorfulness=-30.0, segment_chroma_ratio=0.1, colorfulness=0)]
    metrics = ["psnr", "colorfulness", "delta_colorfulness", "segment_chroma_ratio"]
    wins = [{"model": "dull", "win_rate": 0.7}, {"model": "grey", "win_rate": 0.4}, {"model": "vivid", "win_rate": 0.5}]
    view = leaderboard(board, metrics, {"groundtruth"}, wins)
    assert [r["model"] for r in view.rows] == ["dull", "vivid", "grey", "groundtruth"]
    assert "win rate" in view.order
    # best = closest to the ideal, not the largest; the reference is not a contender; diagnostics unmarked
    assert view.best == {"psnr": {"dull"}, "delta_colorfulness": {"dull"}, "segment_chroma_ratio": {"dull"}}
    assert [g.title for g in view.groups] == ["fidelity", "colour", "diagnostics"]
    no_wins = leaderboard(board, metrics, {"groundtruth"}, [])
    assert [r["model"] for r in no_wins.rows] == ["dull", "grey", "vivid", "groundtruth"] and "PSNR" in no_wins.order


def test_every_registered_metric_has_a_group_narrow_enough_for_the_page():
    groups = column_groups(list(METRICS))
    assert "other" not in [g.title for g in groups]
    colour = next(g for g in groups if g.title == "colour").metrics
    assert {"delta_colorfulness", "segment_chroma_ratio", "vivid_recall", "vivid_precision"} <= set(colour)
    widest = max(len(g.metrics) for g in column_groups([*METRICS, *DISTRIBUTION_METRICS]))
    assert widest <= 7  # with model and images columns: fits 1,400 px
    assert direction_mark(METRICS["segment_chroma_ratio"].describe()) == "\u21921"
    assert "not ranked" in direction_mark(METRICS["colorfulness"].describe())


def test_numbers_never_print_raw_inf_or_nan():
    assert html._number(float("inf")) == "\u221e" and html._number(float("-inf")) == "-\u221e"
    assert html._number(float("nan")) == "n/a" and html._number("") == "n/a" and html._number("0.5") == "0.5"
    assert html._gallery_value("psnr", "100.0") == "\u221e (identical)"
    assert html._gallery_value("psnr", "31.25") == "31.25"


@pytest.fixture
def captured(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure) or path)
    return figures


def test_undefined_correlations_are_na_not_colour(captured, tmp_path):
    rows = [{"band": "all", "metric_a": "psnr", "metric_b": "ssim", "n": 40, "spearman": 0.8},
            {"band": "all", "metric_a": "psnr", "metric_b": "vivid_recall", "n": 3},  # too few records
            {"band": "all", "metric_a": "ssim", "metric_b": "vivid_recall", "n": 3}]
    matrix, counts = plots.correlation_matrix(rows, "all", ["psnr", "ssim", "vivid_recall"])
    assert matrix[0, 1] == matrix[1, 0] == 0.8 and counts == [40]
    assert np.isnan(matrix[0, 2]) and np.isnan(np.diag(matrix)).all()
    plots.correlation_heatmaps(rows, tmp_path / "c.png")
    texts = [t.get_text() for t in captured[0].axes[0].texts]
    assert texts.count("n/a") == 7 and texts.count("0.80") == 2  # 3 diagonal + 4 undefined off-diagonal
    mesh = captured[0].axes[0].collections[0]
    assert np.ma.count(mesh.get_array()) == 2  # only the two defined cells are coloured


def test_psnr_curve_is_not_squashed_by_the_identity_cap(captured, tmp_path):
    curves = [{"sweep": "desaturation", "strength": s, "metric": "psnr", "median": m, "q25": m - 2, "q75": m + 2}
              for s, m in ((1.0, 100.0), (0.9, 38.0), (0.5, 27.0), (0.0, 22.0))]
    plots.sweep_curves(curves, "desaturation", "alpha", tmp_path / "s.png")
    axis = captured[0].axes[0]
    bottom, top = axis.get_ylim()
    assert 40.0 < top < 50.0 and bottom < 20.0  # the axis spans the uncapped values only
    assert any("identical" in text.get_text() for text in axis.get_legend().get_texts())


def test_gallery_labels_say_what_each_image_is(tmp_path: Path):
    (tmp_path / "ground_truth").mkdir()
    run = {"config": {"preprocess": {"size": 64, "mode": "resize"}, "gallery": 8}}
    rows = [{"model": "gray", "image_id": "7", "psnr": "100.0", "ssim": "1.0", "colorfulness": "0"}]
    tiles = html._gallery(RunFolder(tmp_path, run, [], rows, []), limit=8)[0]
    assert [t.label for t in tiles] == ["ground truth (resized)", "resized input", "gray"]
    assert "resized to 64x64" in tiles[0].notes and "psnr \u221e (identical)" in tiles[2].notes
    run["config"]["preprocess"]["mode"] = "center-crop"
    assert html._gallery(RunFolder(tmp_path, run, [], rows, []), limit=8)[0][1].label == "center-cropped input"
