"""The compile policy (metrics/kernels.py): compiled kernels agree with the eager ones at two image sizes through
one compiled artifact, leave it in a cache a new process finds, and are only compiled when the work pays."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from colorbench.metrics import kernels
from colorbench.metrics.kernels import Kernel, KernelCost
from colorbench.metrics.ssim import ssim, ssim_means

#: SSIM's compiled path fuses the four local moments differently; per-image means agree to float32 rounding.
TOLERANCE = 1e-6
#: Two sizes, both above 4,096 pixels: Inductor's CPU reductions guard on H x W <= 4096, so images up to 64x64 get
#: a second artifact (one more compilation, once), and every larger size shares the first.
SIZES = ((72, 64), (80, 96))
COST = KernelCost(eager_s_per_mpx=2.0, compiled_s_per_mpx=0.5, cold_compile_s=15.0, warm_compile_s=3.0)


@pytest.fixture
def compile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    return tmp_path / "inductor"


def pair(height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    gt = torch.rand(3, 3, height, width, generator=generator)
    return (gt + 0.1 * torch.randn(gt.shape, generator=generator)).clamp(0, 1), gt


def test_one_compiled_ssim_serves_two_sizes_and_equals_eager(compile_cache, monkeypatch):
    torch._dynamo.reset()
    monkeypatch.setenv("COLORBENCH_COMPILE", "always")
    graphs = []
    compiled = []
    for size in SIZES:
        pred, gt = pair(*size, seed=size[0])
        compiled.append(ssim(pred, gt))
        graphs.append(counters["stats"]["unique_graphs"])
    if not kernels.compile_enabled():
        pytest.skip("torch.compile is not usable here (no C++ compiler?); the eager path is what runs")
    assert graphs[1] == graphs[0], "a second image size compiled again"
    monkeypatch.setenv("COLORBENCH_COMPILE", "0")
    for size, values in zip(SIZES, compiled, strict=True):
        pred, gt = pair(*size, seed=size[0])
        assert torch.allclose(values, ssim(pred, gt), rtol=0, atol=TOLERANCE), size
    # what a second process finds: Inductor's artifacts and the kernel's marker in the same cache folder
    assert any((compile_cache / "fxgraph").rglob("*"))
    fresh = Kernel(ssim_means.fn, COST, ssim_means.name)
    variant = fresh.variant(pair(72, 64, 0), {"taps": (1.0,), "c1": 1e-4, "c2": 9e-4})
    assert variant == ssim_means.variant(pair(80, 96, 0), {"taps": (1.0,), "c1": 1e-4, "c2": 9e-4})
    monkeypatch.setenv("COLORBENCH_COMPILE", "auto")
    # the marker is specific to the constants the metric used
    from colorbench.metrics.ssim import gaussian_taps

    used = fresh.variant(pair(72, 64, 0), {"taps": gaussian_taps(1.5, 3.5), "c1": 0.01**2, "c2": 0.03**2})
    assert "warm cache" in fresh.decide(1, 224 * 224, used).reason
    assert "cold cache" in fresh.decide(1, 224 * 224, variant).reason


def test_policy_compiles_only_when_the_work_pays(compile_cache, monkeypatch):
    monkeypatch.setenv("COLORBENCH_COMPILE", "auto")
    kernel = Kernel(lambda x: x.sum(dim=(1, 2, 3)), COST, "test.sum")
    variant = kernel.variant((torch.zeros(1, 3, 8, 8),), {})
    pixels = 224 * 224
    cold, warm = COST.break_even_mpx(warm=False), COST.break_even_mpx(warm=True)
    assert (cold, warm) == (10.0, 2.0)  # 15 s / 1.5 s per Mpx, 3 s / 1.5 s per Mpx
    below, above = int(cold * 1e6 / pixels) - 1, int(cold * 1e6 / pixels) + 1
    assert not kernel.decide(below, pixels, variant).compiled
    assert kernel.decide(above, pixels, variant).compiled
    with kernels.workload(images=above):  # a job declares its size: each small call weighs the whole job
        assert kernel.decide(1, pixels, variant).compiled
    assert not kernel.decide(1, pixels, variant).compiled
    marker = compile_cache / "colorbench-kernels" / f"{variant}.json"
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert kernel.decide(int(warm * 1e6 / pixels) + 1, pixels, variant).compiled
    assert not kernel.decide(int(warm * 1e6 / pixels) - 1, pixels, variant).compiled
    monkeypatch.setenv("COLORBENCH_COMPILE", "0")
    assert not kernel.decide(10**6, pixels, variant).compiled
    monkeypatch.setenv("COLORBENCH_COMPILE", "always")
    assert kernel.decide(1, 64, variant).compiled


def test_a_kernel_that_does_not_save_time_is_never_compiled(compile_cache, monkeypatch):
    assert KernelCost(1.0, 1.0, 10.0, 1.0).break_even_mpx(warm=True) == float("inf")
    monkeypatch.setenv("COLORBENCH_COMPILE", "auto")
    unmeasured = kernels.compiled_kernel(lambda x: x.sum(dim=(1, 2, 3)))  # bare decorator: no cost known
    assert not unmeasured.decide(10**6, 224 * 224, "v").compiled


def test_compiled_kernel_in_this_process_is_reused_whatever_the_work(compile_cache, monkeypatch):
    monkeypatch.setenv("COLORBENCH_COMPILE", "always")
    kernel = Kernel(lambda x: (x * 2).sum(dim=(1, 2, 3)), COST, "test.double_sum")
    x = torch.rand(2, 3, 16, 16)
    kernel(x)
    if not kernels.compile_enabled():
        pytest.skip("torch.compile is not usable here")
    monkeypatch.setenv("COLORBENCH_COMPILE", "auto")
    decision = kernel.decide(1, 16 * 16, kernel.variant((x,), {}))
    assert decision.compiled and decision.reason == "already compiled in this process"
