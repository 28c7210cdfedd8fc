"""The CUDA path (marker ``cuda``): every test skips without a GPU, so ``pytest -m cuda`` passes on the CPU machines;
on a GPU machine ``python -m colorbench.experiments.gpu_check`` runs them (a skip there is a failure).

Tolerances: bf16 keeps 8 bits of mantissa, so a generator forward under autocast moves ChromaGAN's pre-sigmoid ab
and class logits by about 1% (relative L2; 0.9-1.6% measured with CPU bf16 autocast as the proxy, at widths 1/4 to
1): 5% is the bound, and the ab01 output (a sigmoid near 0.5) must stay within one ab unit (1/255). Float32
references run with TF32 off (cuDNN convolutions default to TF32 on CUDA). Layouts (channels_last against
contiguous) change only the order of float32 sums: 1e-5 on ab01; under bf16 that reordering is rounded to bf16 at
every layer, so it gets the bf16 bound. The compiled metric kernel agrees with the eager one to float32 rounding
(tests/test_kernels.py's TOLERANCE). The resume check is bit-for-bit under deterministic algorithms; any op that
has no deterministic CUDA kernel is named in the failure.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import tests.test_train as cpu_training
from colorbench.core.device import autocast, resolve_device
from colorbench.data.color import rgb_from_l_ab, rgb_to_lab
from colorbench.data.loader import ModelInputs, Preprocess, iterate_batches, make_loader
from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest
from colorbench.metrics import kernels
from colorbench.metrics.ssim import ssim
from colorbench.models.chromagan import build, rgb_from_ab01
from colorbench.training.loop import prepare_state
from tests.conftest import to_batch_tensor
from tests.test_kernels import TOLERANCE, pair
from tests.test_train import TINY, photo_batch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
#: Deterministic cuBLAS workspaces for the resume check: set before any test of the process starts cuBLAS.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

BF16_RELATIVE = 0.05
AB01_BF16 = 1 / 255
AB01_LAYOUT = 1e-5


@pytest.fixture(scope="module")
def gpu() -> torch.device:
    return resolve_device("cuda")


@pytest.fixture(scope="module")
def sample_manifest():
    return build_manifest(open_source("sample:train"), "full", progress=False)


@pytest.fixture
def true_float32() -> Iterator[None]:
    """cuDNN convolutions in float32, not TF32, for the float32 references."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


@pytest.fixture
def deterministic() -> Iterator[list[str]]:
    """Deterministic CUDA kernels (cuBLAS's fixed workspace, cuDNN's deterministic algorithms); ops without one
    warn instead of failing, and their warnings are collected for the failure message."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        messages: list[str] = []
        yield messages
        messages += sorted({str(w.message).split("\n")[0] for w in caught if "deterministic" in str(w.message)})
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.benchmark = before[2]


def paper_generator(device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    """ChromaGAN's generator at paper width and size (xavier trunk), in eval mode, and its input for three photos."""
    model = build("chromagan", profile="smoke", image_size=224, width=1.0, trunk_init="xavier")
    return model.generator.to(device).eval(), model.network_input(photo_batch(224).L.to(device))


def forward(generator: nn.Module, x: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, ...]:
    """(pre-sigmoid ab, ab01, class logits) in float32, the generator run under bf16 autocast or not."""
    seen: list[torch.Tensor] = []
    sigmoid = next(m for m in generator.modules() if isinstance(m, nn.Sigmoid))
    hook = sigmoid.register_forward_hook(lambda _module, inputs, _output: seen.append(inputs[0].float()))
    try:
        with torch.no_grad(), autocast(x.device, bf16):
            ab01, logits = generator(x)
    finally:
        hook.remove()
    return seen[0], ab01.float(), logits.float()


def relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / reference.norm())


def test_model_and_batch_are_placed_on_the_gpu(gpu, sample_manifest):
    """The trainer's modules (channels_last), a loader batch and one training step's losses all on the GPU."""
    assert gpu == torch.device("cuda", 0)
    model = build("chromagan-noclass", **TINY)
    state, step = prepare_state(model, gpu)
    assert step.memory_format == torch.channels_last
    for name, module in state.modules.items():
        assert {p.device for p in module.parameters()} == {gpu}, name
        kernels_4d = [p for p in module.parameters() if p.dim() == 4]
        assert kernels_4d and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels_4d), name
    batch = next(iterate_batches(make_loader(sample_manifest.usable[:3], Preprocess(64), batch_size=3), gpu))
    assert {t.device for t in (batch.rgb_u8, batch.rgb, batch.L, batch.ab, batch.luma)} == {gpu}
    losses = model.training_step(batch, step)
    assert {v.device for v in losses.values()} == {gpu} and all(bool(torch.isfinite(v)) for v in losses.values())


def test_bf16_autocast_generator_forward_agrees_with_float32(gpu, true_float32):
    generator, x = paper_generator(gpu)
    pre32, ab32, logits32 = forward(generator, x, bf16=False)
    pre16, ab16, logits16 = forward(generator, x, bf16=True)
    assert relative(pre16, pre32) <= BF16_RELATIVE
    assert relative(logits16, logits32) <= BF16_RELATIVE
    assert float((ab16 - ab32).abs().max()) <= AB01_BF16


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_channels_last_forward_equals_contiguous(gpu, true_float32, bf16):
    generator, x = paper_generator(gpu)
    pre, ab01, logits = forward(generator, x, bf16)
    last = copy.deepcopy(generator).to(memory_format=torch.channels_last)
    pre_last, ab01_last, logits_last = forward(last, x.contiguous(memory_format=torch.channels_last), bf16)
    assert relative(pre_last, pre) <= (BF16_RELATIVE if bf16 else 1e-4)
    assert relative(logits_last, logits) <= (BF16_RELATIVE if bf16 else 1e-4)
    assert float((ab01_last - ab01).abs().max()) <= (AB01_BF16 if bf16 else AB01_LAYOUT)


def test_compiled_metric_kernel_equals_eager_on_the_gpu(gpu, tmp_path, monkeypatch):
    """SSIM's kernel compiled by Inductor (Triton) against eager, two batch sizes through the dynamic batch axis."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    batches = [tuple(t.to(gpu) for t in pair(224, 224, seed)) for seed in (0, 1)]
    batches[1] = tuple(torch.cat([t, t]) for t in batches[1])
    monkeypatch.setenv("COLORBENCH_COMPILE", "always")
    compiled = [ssim(pred, gt) for pred, gt in batches]
    assert kernels.compile_enabled(), "torch.compile failed on the GPU (see the warning): metrics fell back to eager"
    monkeypatch.setenv("COLORBENCH_COMPILE", "0")
    for values, (pred, gt) in zip(compiled, batches, strict=True):
        assert values.device == gpu
        assert torch.allclose(values, ssim(pred, gt), rtol=0, atol=TOLERANCE)


def test_resume_on_the_gpu_equals_uninterrupted_training_bit_for_bit(gpu, sample_manifest, tmp_path, monkeypatch,
                                                                   deterministic):
    """tests/test_train.py's resume check (three epochs in one go == two, a torn steps.csv row, then resume),
    run with its device set to the GPU: bf16 autocast and channels_last included."""
    monkeypatch.setattr(cpu_training, "CPU", gpu)
    try:
        cpu_training.test_resume_equals_uninterrupted_training_bit_for_bit(sample_manifest, tmp_path)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nops without a deterministic CUDA kernel met: {deterministic}") from exc


def test_prediction_decode_is_float32_under_cuda_autocast(gpu, photos):
    """Lab -> sRGB runs in float32 inside a bf16 autocast region on CUDA: bit-identical to the decode outside it,
    bf16 ab01 from a network decoded as its float32 value, and a model's prediction float32 (tests/test_color.py
    has the CPU proxy)."""
    lab = rgb_to_lab(to_batch_tensor(*photos).float().to(gpu))
    L, ab = lab[:, :1], lab[:, 1:]
    ab01 = ((ab + 128) / 255).bfloat16()
    model = build("chromagan", **TINY)
    model.generator.to(gpu).eval()
    with torch.no_grad(), autocast(gpu):
        assert torch.is_autocast_enabled("cuda")
        under, from_bf16 = rgb_from_l_ab(L, ab), rgb_from_ab01(L, ab01)
        predicted = model.colorize(ModelInputs({"L": L}, len(L)))
    assert under.dtype == from_bf16.dtype == predicted.dtype == torch.float32
    assert torch.equal(under, rgb_from_l_ab(L, ab))
    assert torch.equal(from_bf16, rgb_from_ab01(L, ab01.float()))
    assert predicted.shape == (len(L), 3, *L.shape[-2:]) and bool(torch.isfinite(predicted).all())
