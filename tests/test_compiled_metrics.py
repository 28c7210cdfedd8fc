"""The compiled CIEDE2000 kernel agrees with the eager one (which the calibration table checks) to 1e-5 (float32
arithmetic, fused differently). MS-SSIM's only compiled kernel is ssim_means, which tests/test_kernels.py
checks through ssim."""

from __future__ import annotations

import pytest
import torch

from metrics import kernels
from metrics.ciede2000 import deltae2000


@pytest.fixture
def compile_on(monkeypatch):
    monkeypatch.setenv("COLORBENCH_COMPILE", "1")
    if not kernels.compile_enabled():
        pytest.skip("torch.compile failed earlier in this process")


def test_compiled_ciede2000_equals_eager(compile_on, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(kernels.MIN_COMPILED_BATCH, 3, 24, 24, generator=generator)
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=generator)).clamp(0, 1)
    compiled = deltae2000(pred, gt)
    assert kernels.compile_enabled(), "compilation failed and fell back to eager"
    monkeypatch.setenv("COLORBENCH_COMPILE", "0")
    assert torch.allclose(compiled, deltae2000(pred, gt), rtol=0, atol=1e-5)
