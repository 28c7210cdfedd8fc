"""The compiled metric kernels agree with the eager ones (which the calibration table checks): CIEDE2000 and
AuC to 1e-5 (float32 arithmetic, fused differently; an AuC pixel on an integer error may round either way), the
segment chroma ratio to 1e-6. MS-SSIM's only compiled kernel is ssim_means, which tests/test_kernels.py checks
through ssim; the EfficientNet-lite0 features run through the same decorator."""

from __future__ import annotations

import pytest
import torch

from colorbench.metrics import kernels
from colorbench.metrics.auc import auc_ab
from colorbench.metrics.ciede2000 import deltae2000
from colorbench.metrics.segments import segment_chroma_ratio


@pytest.fixture
def compile_on(monkeypatch):
    monkeypatch.setenv("COLORBENCH_COMPILE", "always")
    if not kernels.compile_enabled():
        pytest.skip("torch.compile failed earlier in this process")


def segment_ratio(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    stripes = torch.arange(pred.shape[-1]).div(4, rounding_mode="floor").add(1).expand(len(pred), pred.shape[-2], -1)
    return segment_chroma_ratio(pred, target, segments=stripes.contiguous())


@pytest.mark.parametrize(("metric", "tolerance"), [(deltae2000, 1e-5), (auc_ab, 1e-5), (segment_ratio, 1e-6)])
def test_compiled_equals_eager(compile_on, monkeypatch, metric, tolerance):
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 3, 24, 24, generator=generator)
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=generator)).clamp(0, 1)
    compiled = metric(pred, gt)
    assert kernels.compile_enabled(), "compilation failed and fell back to eager"
    monkeypatch.setenv("COLORBENCH_COMPILE", "0")
    assert torch.allclose(compiled, metric(pred, gt), rtol=0, atol=tolerance)
