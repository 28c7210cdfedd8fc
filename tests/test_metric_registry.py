"""Conformance of every registered metric (per-image and set-level), one parametrized test per row: it is
calibrated (a row of tests/test_calibration.py's table, or a named test where no table row can be made), and it
declares a direction, a range its values keep to, a display group and a cache key of name, parameters and version.
A metric added to the registry is checked here without anyone listing it."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from colorbench.core.cachekey import cache_key
from colorbench.metrics.registry import (
    DIRECTIONS,
    DISTRIBUTION_METRICS,
    GROUPS,
    METRICS,
    DistributionMetric,
    Metric,
    compute,
)
from tests.metric_inputs import DAMAGE, damaged, photo_batch, slic_segments
from tests.test_calibration import CASES

ALL: dict[str, Metric | DistributionMetric] = {**METRICS, **DISTRIBUTION_METRICS}
#: Metrics that cannot have a row in the calibration table, with the test that stands for one and why.
CALIBRATED_ELSEWHERE = {
    "lpips_alex": ("tests.test_perceptual", "test_plumbing_with_a_saved_state_dict",
                   "no pretrained AlexNet ships here: the heads and weight plumbing only"),
    "lpips_vgg": ("tests.test_perceptual", "test_plumbing_with_a_saved_state_dict",
                  "no pretrained VGG-16 ships here: the heads and weight plumbing only"),
    "fd_effnet_lite0": ("tests.test_distribution", "test_matches_scipy_transcription",
                        "set-level: the Frechet distance against SciPy's sqrtm, the features on real photos"),
    "fid_inception": ("tests.test_distribution", "test_matches_scipy_transcription",
                      "set-level, and the TF FID Inception weights are not here: distance and plumbing only"),
    "kid_effnet_lite0": ("tests.test_kid", "test_matches_an_independent_numpy_double_loop",
                         "set-level: the unbiased MMD^2 against a numpy double loop written in the test"),
}


@pytest.fixture(scope="module")
def photo_values() -> dict[str, torch.Tensor]:
    """Every available per-image metric on damaged real photos (faded, hue-rotated, grey, noisy)."""
    gt = photo_batch()
    pred = torch.cat([damaged(gt[i : i + 1], kind, seed=i) for i, kind in enumerate(DAMAGE)])
    names = [n for n, m in METRICS.items() if m.unavailable() is None]
    return compute(names, pred.float(), gt.float(), segments=slic_segments(gt))


@pytest.mark.parametrize("name", list(ALL))
def test_every_metric_is_calibrated(name: str):
    calibrated = {case.metric for case in CASES}
    if name in calibrated:
        assert name not in CALIBRATED_ELSEWHERE, f"{name} has calibration rows: drop its exemption"
        return
    assert name in CALIBRATED_ELSEWHERE, f"{name} ships uncalibrated: add rows to tests/test_calibration.py"
    module, test, why = CALIBRATED_ELSEWHERE[name]
    assert why and callable(getattr(importlib.import_module(module), test, None)), (module, test)


def test_exemptions_name_registered_metrics():
    assert set(CALIBRATED_ELSEWHERE) <= set(ALL)


@pytest.mark.parametrize("name", list(ALL))
def test_every_metric_declares_direction_range_and_definition(name: str):
    metric = ALL[name]
    assert metric.direction in DIRECTIONS and metric.describe()["direction_text"]
    low, high = metric.range
    assert low < high and metric.definition.strip()
    if isinstance(metric, Metric) and metric.ideal is not None:
        assert low <= metric.ideal <= high
    if isinstance(metric, DistributionMetric):
        assert metric.direction in ("higher", "lower")  # one value per model: ranked or it would not be reported


@pytest.mark.parametrize("name", list(METRICS))
def test_per_image_values_keep_to_the_declared_range(name: str, photo_values):
    if name not in photo_values:
        pytest.skip(f"{name} is unavailable here: {METRICS[name].unavailable()}")
    low, high = METRICS[name].range
    values = [float(v) for v in photo_values[name] if not math.isnan(float(v))]
    assert values and all(low <= v <= high for v in values), (name, values)


@pytest.mark.parametrize("name", list(ALL))
def test_every_metric_has_a_display_group_and_column(name: str):
    metric = ALL[name]
    assert metric.group in GROUPS and metric.column >= 1
    same_place = [other for other, m in ALL.items() if (m.group, m.column) == (metric.group, metric.column)]
    assert same_place == [name], f"{name} shares its leaderboard place with {same_place}"


@pytest.mark.parametrize("name", list(ALL))
def test_every_metric_keys_by_name_parameters_and_version(name: str):
    metric = ALL[name]
    assert metric.key() == {"name": name, "params": dict(metric.params), "version": metric.version}
    assert isinstance(metric.version, int) and metric.version >= 1
    assert len(cache_key(metric.key())) == 16  # the key's parts are JSON


def test_rows_with_an_unknown_group_or_place_are_refused():
    psnr, fd = METRICS["psnr"], DISTRIBUTION_METRICS["fd_effnet_lite0"]
    row = {"name": "x", "fn": psnr.fn, "direction": "higher", "range": (0.0, 1.0), "definition": "d"}
    with pytest.raises(ValueError, match="group 'misc' is not one of fidelity"):
        Metric(**row, group="misc", column=1)
    with pytest.raises(ValueError, match="column 0"):
        Metric(**row, group="fidelity", column=0)
    with pytest.raises(ValueError, match="group 'other'"):
        DistributionMetric("y", fd.extractor, fd.fn, "lower", (0.0, 1.0), "d", group="other", column=1)
