"""Set-level values computed below their registry row's ``min_images`` are named on stderr and in run.json's
``set_level`` section (colorbench.metrics.small_sets, written by colorbench.pipeline.outputs.write_results)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbench.cli.main import main
from colorbench.io.images import write_png
from colorbench.metrics.registry import DISTRIBUTION_METRICS
from colorbench.metrics.small_sets import set_level_section, small_set_notes


def test_models_below_the_threshold_are_named_with_their_n():
    section = set_level_section(["fd_effnet_lite0", "kid_effnet_lite0"], {"gray": 79, "big": 5000})
    assert section["fd_effnet_lite0"]["below"] == {"gray": 79}
    assert section["kid_effnet_lite0"]["below"] == {}
    notes = small_set_notes(section)
    assert len(notes) == 1 and notes[0].startswith("fd_effnet_lite0 computed below 1281 images (gray N = 79)")
    assert "rank-deficient" in notes[0]


def _folder(root: Path, seed: int, count: int) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir()
    for i in range(count):
        write_png(root / f"img{i}.png", torch.from_numpy(rng.integers(0, 256, (3, 24, 24), dtype=np.uint8)))
    return root


@pytest.mark.slow
def test_score_notes_a_frechet_distance_on_three_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    if DISTRIBUTION_METRICS["fd_effnet_lite0"].unavailable():
        pytest.skip(str(DISTRIBUTION_METRICS["fd_effnet_lite0"].unavailable()))
    pred, gt = _folder(tmp_path / "pred", 0, 3), _folder(tmp_path / "gt", 1, 3)
    out = tmp_path / "out"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--no-progress",
                 "--metrics", "psnr,fd_effnet_lite0"]) == 0
    err = capsys.readouterr().err
    assert "note: fd_effnet_lite0 computed below 1281 images (pred N = 3)" in err
    section = json.loads((out / "run.json").read_text())["set_level"]
    assert section == {"fd_effnet_lite0": {"min_images": 1281, "below": {"pred": 3},
                                           "reason": DISTRIBUTION_METRICS["fd_effnet_lite0"].min_images_reason}}
