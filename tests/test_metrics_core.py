"""Core metrics against scikit-image and hand-computed answers.

Tolerances: MSE/PSNR 1e-9 (float64 in both); SSIM 1e-4 absolute against skimage (the issue's bound; our
float32 filtering is typically within 1e-6); colorfulness 1e-9 against a NumPy transcription of the formula.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from colorbench.metrics.colorfulness import channel_equality, colorfulness, colorfulness_of, delta_colorfulness
from colorbench.metrics.pixel import mse, mse255, psnr
from colorbench.metrics.registry import METRICS, compute, get_metric, select_metrics
from colorbench.metrics.ssim import ssim
from tests.conftest import to_batch_tensor

SSIM_TOL = 1e-4


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=-1)


def as_float(t: torch.Tensor) -> list[np.ndarray]:
    return [x.permute(1, 2, 0).numpy().astype(np.float64) for x in t]


@pytest.fixture(scope="module")
def pairs(photos):
    """Ground truth = photos; predictions = the same photos with chroma damaged in several ways."""
    gt = to_batch_tensor(*photos)
    grey = gt.mean(dim=1, keepdim=True).expand_as(gt)
    rng = np.random.default_rng(1)
    noisy = (gt + torch.from_numpy(rng.normal(0, 0.05, gt.shape))).clamp(0, 1)
    pred = torch.cat([grey[:2], noisy[2:]])
    return (pred * 255).round() / 255, gt


def test_mse_and_psnr_match_skimage(pairs):
    pred, gt = pairs
    for p, g, ours_mse, ours_psnr in zip(as_float(pred), as_float(gt), mse(pred, gt), psnr(pred, gt), strict=True):
        assert float(ours_mse) == pytest.approx(mean_squared_error(g, p), abs=1e-12)
        assert float(ours_psnr) == pytest.approx(peak_signal_noise_ratio(g, p, data_range=1.0), abs=1e-9)
    assert torch.allclose(mse255(pred, gt), mse(pred, gt) * 255**2)


def test_ssim_matches_skimage_gaussian_definition(pairs):
    pred, gt = pairs
    ours = ssim(pred, gt)
    for p, g, value in zip(as_float(pred), as_float(gt), ours, strict=True):
        assert float(value) == pytest.approx(skimage_ssim(p, g), abs=SSIM_TOL)


def test_ssim_differs_from_skimage_defaults(pairs):
    """The trap of reference.md section 5: skimage's default 7x7 uniform window is another number."""
    pred, gt = pairs
    p, g = as_float(pred)[2], as_float(gt)[2]
    default = structural_similarity(p, g, data_range=1.0, channel_axis=-1)
    assert abs(default - float(ssim(pred[2:3], gt[2:3])[0])) > 10 * SSIM_TOL


@pytest.mark.parametrize("shape", [(11, 11), (13, 17), (31, 12), (64, 65)])
def test_ssim_odd_and_small_sizes_match_skimage(shape):
    rng = np.random.default_rng(sum(shape))
    a, b = rng.random((*shape, 3)), rng.random((*shape, 3))
    ours = ssim(torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None])
    assert float(ours[0]) == pytest.approx(skimage_ssim(a, b), abs=SSIM_TOL)


def test_ssim_smaller_than_window_is_nan():
    tiny = torch.rand(2, 3, 10, 40)
    assert torch.isnan(ssim(tiny, tiny)).all()


def test_identical_images():
    image = torch.rand(2, 3, 32, 32)
    assert torch.equal(psnr(image, image), torch.full((2,), 100.0, dtype=torch.float64))
    assert torch.allclose(ssim(image, image), torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert torch.equal(mse(image, image), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(delta_colorfulness(image, image), torch.zeros(2, dtype=torch.float64))


def test_psnr_never_exceeds_cap():
    a = torch.zeros(1, 3, 4, 4)
    b = a.clone()
    b[0, 0, 0, 0] = 1e-9
    assert float(psnr(a, b)[0]) == 100.0


def test_constant_images_match_skimage():
    a, b = np.full((24, 24, 3), 0.25), np.full((24, 24, 3), 0.75)
    ours = ssim(torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None])
    assert float(ours[0]) == pytest.approx(skimage_ssim(a, b), abs=SSIM_TOL)
    assert float(psnr(torch.full((1, 3, 4, 4), 0.25), torch.full((1, 3, 4, 4), 0.75))[0]) == pytest.approx(
        10 * np.log10(1 / 0.25))


def test_channel_equality():
    grey = torch.rand(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert float(channel_equality(grey, grey)[0]) == 1.0
    image = torch.zeros(1, 3, 2, 2)
    image[0, 0, 0, 0] = 2 / 255  # within the default tolerance of 2 levels
    image[0, 0, 0, 1] = 3 / 255  # outside it
    image[0, 2, 1, 1] = 1.0
    assert float(channel_equality(image, image)[0]) == pytest.approx(0.5)
    assert float(channel_equality(image, image, tolerance=0)[0]) == pytest.approx(0.25)


def test_colorfulness_hand_computed():
    """Half pure red, half pure green (0-255): rg = +255 / -255, yb = 127.5 / 127.5.
    std_rg = 255, std_yb = 0, mean_rg = 0, mean_yb = 127.5 -> CF = 255 + 0.3 * 127.5 = 293.25."""
    image = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    image[0, 0, 0, :] = 1.0
    image[0, 1, 1, :] = 1.0
    assert float(colorfulness_of(image)[0]) == pytest.approx(293.25, abs=1e-9)
    assert float(colorfulness_of(torch.full((1, 3, 5, 5), 0.4))[0]) == pytest.approx(0.0, abs=1e-12)


def test_colorfulness_matches_numpy_transcription(photos):
    def reference(a: np.ndarray) -> float:
        r, g, b = (a.astype(np.float64)[..., i] for i in range(3))
        rg, yb = r - g, 0.5 * (r + g) - b
        return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))

    values = colorfulness(to_batch_tensor(*photos), None)
    for a, value in zip(photos, values, strict=True):
        assert float(value) == pytest.approx(reference(a), abs=1e-9)


def test_delta_colorfulness_is_pred_minus_truth(photos):
    gt = to_batch_tensor(*photos)
    grey = gt.mean(dim=1, keepdim=True).expand_as(gt)
    delta = delta_colorfulness(grey, gt)
    assert torch.allclose(delta, -colorfulness_of(gt), atol=1e-9)
    assert (delta < 0).all()


def test_compute_returns_one_value_per_image(pairs):
    pred, gt = pairs
    names = select_metrics(None).per_image
    segments = torch.ones(pred.shape[0], *pred.shape[2:], dtype=torch.int64)
    values = compute(names, pred.float(), gt.float(), segments=segments)
    assert set(values) == set(names) == {n for n, m in METRICS.items() if m.unavailable() is None}
    assert all(v.shape == (pred.shape[0],) and v.dtype == torch.float64 for v in values.values())


def test_unknown_metric_suggests_close_names():
    from colorbench.core.errors import BenchError

    with pytest.raises(BenchError, match="did you mean ssim"):
        get_metric("ssmi")
