"""The compiled metric kernels agree with the eager ones (and the eager ones are what the other tests check)."""

from __future__ import annotations

import pytest
import torch

from metrics import kernels
from metrics.ssim import ssim


@pytest.fixture
def compile_on(monkeypatch):
    monkeypatch.setenv("COLORBENCH_COMPILE", "1")
    if not kernels.compile_enabled():
        pytest.skip("torch.compile failed earlier in this process")


def test_compiled_ssim_equals_eager(compile_on, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(kernels.MIN_COMPILED_BATCH + 1, 3, 48, 40, generator=generator)
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=generator)).clamp(0, 1)
    compiled = ssim(pred, gt)
    assert kernels.compile_enabled(), "compilation failed and fell back to eager"
    monkeypatch.setenv("COLORBENCH_COMPILE", "0")
    eager = ssim(pred, gt)
    assert torch.allclose(compiled, eager, atol=1e-6)
