"""The Python API (colorbench.api, exported as colorbench.score and colorbench.list_metrics): its doctests run
here, and the tensor and folder forms give the numbers ``bench score`` writes."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import colorbench
from colorbench import api
from colorbench.core.errors import BenchError
from colorbench.io.images import write_png
from colorbench.io.schema import read_csv
from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS

NAMES = ["psnr", "deltae2000", "delta_colorfulness", "segment_chroma_ratio"]


def test_doctests_pass():
    outcome = doctest.testmod(api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted >= 10 and outcome.failed == 0


def test_package_exports_the_api():
    assert colorbench.score is api.score and colorbench.list_metrics is api.list_metrics
    with pytest.raises(AttributeError, match="no attribute 'scores'"):
        _ = colorbench.scores  # type: ignore[attr-defined]


def test_list_metrics_holds_every_registry_row_with_its_metadata():
    rows = {row["name"]: row for row in colorbench.list_metrics()}
    assert list(rows) == [*METRICS, *DISTRIBUTION_METRICS]
    assert rows["delta_colorfulness"]["direction"] == "ideal" and rows["delta_colorfulness"]["ideal"] == 0.0
    assert rows["kid_effnet_lite0"]["kind"] == "set-level" and rows["kid_effnet_lite0"]["group"] == "semantic"
    assert rows["lpips_alex"]["unavailable"] == METRICS["lpips_alex"].unavailable()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, torch.Tensor, Path, Path]:
    """Three 40x40 uint8 image pairs (a smooth colour field and a noisy, duller copy) as tensors and folders."""
    root = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:40]
    gts = [np.stack([x * 6, y * 6, (x + y) * 3 + 20 * k]).clip(0, 255) for k in range(3)]
    preds = [(g * 0.7 + rng.integers(0, 30, g.shape)).clip(0, 255) for g in gts]
    tensors = []
    for folder, images in (("gt", gts), ("pred", preds)):
        (root / folder).mkdir()
        batch = torch.from_numpy(np.stack(images).astype(np.uint8))
        for i, image in enumerate(batch):
            write_png(root / folder / f"im{i}.png", image)
        tensors.append(batch.double() / 255)
    return tensors[1], tensors[0], root / "pred", root / "gt"


def test_tensor_and_folder_forms_agree_with_bench_score(pair, tmp_path):
    pred, gt, pred_dir, gt_dir = pair
    from_tensors = colorbench.score(pred, gt, NAMES, device="cpu")
    assert isinstance(from_tensors, dict)
    records = colorbench.score(pred_dir, gt_dir, NAMES, device="cpu", out=tmp_path / "run")
    assert isinstance(records, list) and [r["image_id"] for r in records] == ["im0", "im1", "im2"]
    written = read_csv(tmp_path / "run" / "per_image.csv")
    for name in NAMES:
        assert from_tensors[name].shape == (3,) and from_tensors[name].dtype == torch.float64
        np.testing.assert_allclose(from_tensors[name].numpy(), [r[name] for r in records], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose([r[name] for r in records], [float(row[name]) for row in written], rtol=1e-9)


def test_set_level_metrics_give_one_value(pair):
    if DISTRIBUTION_METRICS["kid_effnet_lite0"].unavailable():
        pytest.skip(str(DISTRIBUTION_METRICS["kid_effnet_lite0"].unavailable()))
    pred, gt, _, _ = pair
    values = colorbench.score(pred.float(), gt.float(), ["kid_effnet_lite0", "psnr"], device="cpu")
    assert isinstance(values, dict) and values["kid_effnet_lite0"].shape == () and values["psnr"].shape == (3,)
    same = colorbench.score(gt.float(), gt.float(), ["fd_effnet_lite0"], device="cpu")
    assert isinstance(same, dict) and abs(float(same["fd_effnet_lite0"])) < 1e-6
    assert math.isfinite(float(values["kid_effnet_lite0"]))


@pytest.mark.parametrize(("pred", "gt", "message"), [
    (torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 9), "one shape"),
    (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), r"\(N, 3, H, W\)"),
    (torch.full((1, 3, 8, 8), 2.0), torch.zeros(1, 3, 8, 8), r"pred must be floating-point RGB in \[0, 1\]"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8), "floating-point"),
])
def test_bad_tensors_are_refused(pred, gt, message):
    with pytest.raises(ValueError, match=message):
        colorbench.score(pred, gt, ["psnr"], device="cpu")


def test_unknown_and_unavailable_metrics_are_refused():
    images = torch.zeros(1, 3, 8, 8)
    with pytest.raises(BenchError, match="unknown metric 'psnrr'"):
        colorbench.score(images, images, ["psnrr"])
    reason = METRICS["lpips_alex"].unavailable()
    if reason is None:
        pytest.skip("the AlexNet weights are present here")
    with pytest.raises(BenchError, match="alexnet-owt"):
        colorbench.score(images, images, ["lpips_alex"])


def test_mixed_inputs_are_refused(pair):
    pred, _, _, gt_dir = pair
    with pytest.raises(ValueError, match="both be tensors or both be folders"):
        colorbench.score(pred, gt_dir, ["psnr"])
