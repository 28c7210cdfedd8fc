"""Metric directions (issue 12): every metric declares higher, lower, ideal or diagnostic; goodness() follows
the declaration; and no ranked metric - nor the win-rate leaderboard - prefers an oversaturated ground truth to
the exact one on real photos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from colorbench.analysis.tables import win_rates
from colorbench.data.color import lab_to_rgb, rgb_to_lab
from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS, compute, goodness, ranked, select_metrics
from tests.conftest import to_batch_tensor
from tests.metric_inputs import slic_segments, to_8bit

DIAGNOSTICS = {"colorfulness", "colorfulness_abs", "channel_equality"}


def test_every_metric_declares_a_direction():
    for metric in [*METRICS.values(), *DISTRIBUTION_METRICS.values()]:
        described = metric.describe()
        assert described["direction"] in ("higher", "lower", "ideal", "diagnostic"), metric.name
        assert described["direction_text"]
    assert {n for n, m in METRICS.items() if m.direction == "diagnostic"} >= DIAGNOSTICS
    assert (METRICS["delta_colorfulness"].ideal, METRICS["segment_chroma_ratio"].ideal) == (0.0, 1.0)


def test_goodness_follows_each_direction():
    values = np.array([-2.0, 1.0, np.nan])
    np.testing.assert_array_equal(goodness("psnr", values), values)
    np.testing.assert_array_equal(goodness("mse", values), -values)
    np.testing.assert_array_equal(goodness("fd_effnet_lite0", values), -values)
    np.testing.assert_array_equal(goodness("delta_colorfulness", values), [-2.0, -1.0, np.nan])
    ratios = goodness("segment_chroma_ratio", np.array([0.5, 1.0, 2.0, 4.0]))
    np.testing.assert_allclose(ratios, [-math.log(2), 0.0, -math.log(2), -math.log(4)], atol=1e-15)
    for name in DIAGNOSTICS:
        with pytest.raises(ValueError, match="diagnostic"):
            goodness(name, values)


def test_ranked_drops_diagnostics_and_keeps_order():
    assert ranked(["colorfulness", "ssim", "channel_equality", "psnr", "fd_effnet_lite0"]) == \
        ["ssim", "psnr", "fd_effnet_lite0"]


def oversaturated(rgb: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    """ab scaled by ``factor`` at the same L, clipped to the sRGB gamut (lab_to_rgb clips), saved as 8 bits."""
    lab = rgb_to_lab(rgb)
    lab[:, 1:] *= factor
    return to_8bit(lab_to_rgb(lab))


@pytest.fixture(scope="module")
def scored(photos) -> dict[str, dict[str, np.ndarray]]:
    """Every available per-image metric of four candidate outputs against the real photos' ground truth."""
    truth = to_batch_tensor(*photos)
    lab = rgb_to_lab(truth)
    candidates = {"exact truth": truth, "oversaturated x2": oversaturated(truth),
                  "oversaturated x1.5": oversaturated(truth, 1.5), "desaturated 50%": oversaturated(truth, 0.5),
                  "grey": to_8bit(lab_to_rgb(torch.cat((lab[:, :1], torch.zeros_like(lab[:, 1:])), dim=1)))}
    names = select_metrics(None).per_image
    segments = slic_segments(truth)
    return {model: {n: v.numpy() for n, v in compute(names, pred.float(), truth.float(), segments=segments).items()}
            for model, pred in candidates.items()}


def test_oversaturated_truth_never_ranks_above_the_truth(scored):
    truth, over = scored["exact truth"], scored["oversaturated x2"]
    assert (over["colorfulness"] > truth["colorfulness"]).all()  # a raw colour amount would have preferred it
    checked = []
    for name in ranked(truth):
        good_truth, good_over = goodness(name, truth[name]), goodness(name, over[name])
        both = np.isfinite(good_truth) & np.isfinite(good_over)
        assert (good_over[both] <= good_truth[both]).all(), (name, truth[name], over[name])
        if both.any():
            checked.append(name)
    # every ranked metric that is defined on 128x160 photos took part (ms_ssim needs 161 px, LPIPS its weights)
    assert {"psnr", "ssim", "deltae2000", "delta_colorfulness", "segment_chroma_ratio", "vivid_recall",
            "vivid_precision", "auc_ab"} <= set(checked)
    assert (goodness("vivid_precision", over["vivid_precision"]) < 1).any()  # the precision term bites
    assert (goodness("segment_chroma_ratio", over["segment_chroma_ratio"]) < -0.3).all()  # not capped away


def test_win_rate_leaderboard_puts_the_exact_truth_first(scored):
    rows = [{"model": model, "image_id": str(i), **{n: str(v[i]) for n, v in values.items()}}
            for model, values in scored.items() for i in range(4)]
    models = list(scored)
    wins = win_rates(rows, list(next(iter(scored.values()))), models, seed=0)
    assert wins.rows[0]["model"] == "exact truth"
    assert wins.rows[0]["win_rate"] > max(float(r["win_rate"]) for r in wins.rows[1:])
    assert all(ranks["exact truth"] == 1 for ranks in wins.metric_ranks.values())
    assert not DIAGNOSTICS & set(wins.metric_ranks)
