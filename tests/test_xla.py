"""The XLA path (TPUs through torch-xla), run on torch-xla's CPU runtime: `tox -e xla` (its own environment,
torch 2.9 + torch-xla 2.9). Skips, saying why, in environments without torch-xla."""

from __future__ import annotations

import importlib.util
import os

import pytest

from bench.cli import main
from tests.test_runner import read_rows

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch_xla") is None,
                                reason="torch-xla is not installed (run `tox -e xla`)")


@pytest.fixture(autouse=True)
def _pjrt_cpu(monkeypatch):
    monkeypatch.setenv("PJRT_DEVICE", os.environ.get("PJRT_DEVICE", "CPU"))


def test_xla_run_matches_cpu(tmp_path):
    args = ["run", "--models", "gray,baseline0", "--size", "48", "--no-progress", "--no-study"]
    assert main([*args, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    assert main([*args, "--device", "xla", "--out", str(tmp_path / "xla")]) == 0
    cpu, xla = read_rows(tmp_path / "cpu" / "per_image.csv"), read_rows(tmp_path / "xla" / "per_image.csv")
    assert [(r["model"], r["image_id"]) for r in cpu] == [(r["model"], r["image_id"]) for r in xla]
    for a, b in zip(cpu, xla, strict=True):
        assert float(a["psnr"]) == pytest.approx(float(b["psnr"]), abs=0.05)
        assert float(a["ssim"]) == pytest.approx(float(b["ssim"]), abs=1e-3)
