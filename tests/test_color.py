"""Colour conversions against scikit-image (tolerances stated per test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorbench.data.color import BT601_WEIGHTS, lab_to_rgb, luma_bt601, rgb_from_l_ab, rgb_to_lab
from tests.conftest import to_batch_tensor


def channels_last(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def test_rgb_to_lab_matches_skimage_on_photos(photos):
    rgb = to_batch_tensor(*photos)
    ours = channels_last(rgb_to_lab(rgb))
    reference = np.stack([skcolor.rgb2lab(p) for p in photos])
    np.testing.assert_allclose(ours, reference, atol=1e-9)  # float64 in both


def test_rgb_to_lab_float32_within_1e3(photos):
    rgb = to_batch_tensor(*photos).float()
    reference = np.stack([skcolor.rgb2lab(p) for p in photos])
    np.testing.assert_allclose(channels_last(rgb_to_lab(rgb)), reference, atol=1e-3)


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(0, 100, (16, 16)), rng.uniform(-128, 127, (16, 16)),
                    rng.uniform(-128, 127, (16, 16))], axis=-1)
    with pytest.warns(UserWarning):  # scikit-image warns about the negative Z values it clips
        reference = skcolor.lab2rgb(lab)
    ours = lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1)[None]).permute(0, 2, 3, 1)[0].numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_round_trip_is_exact_to_8_bits(photos):
    rgb = to_batch_tensor(*photos).float()
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert torch.equal((back * 255).round(), (rgb * 255).round())


def test_zero_ab_gives_grey_within_one_level():
    """The sRGB matrix rows do not sum exactly to the D65 white (0.950456 vs 0.95047 for X), so a = b = 0
    lands within one 8-bit level of neutral, not always on it: why channel_equality has a tolerance."""
    L = torch.linspace(0, 100, 1001, dtype=torch.float64).view(1, 1, 1, 1001)
    levels = (rgb_from_l_ab(L, torch.zeros(1, 2, 1, 1001, dtype=torch.float64)) * 255).round()
    spread = levels.amax(dim=1) - levels.amin(dim=1)
    assert spread.max() <= 1
    assert (spread == 0).double().mean() > 0.9


def test_luma_uses_bt601_not_the_paper_typo():
    assert BT601_WEIGHTS == (0.299, 0.587, 0.114)
    white = torch.ones(1, 3, 2, 2)
    assert torch.allclose(luma_bt601(white), torch.ones(1, 1, 2, 2))
    pure = torch.eye(3).view(3, 3, 1, 1)
    assert torch.allclose(luma_bt601(pure).flatten(), torch.tensor(BT601_WEIGHTS))


def test_gradients_are_finite_at_black_and_white():
    rgb = torch.tensor([0.0, 1.0, 0.5]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone().requires_grad_()
    lab_to_rgb(rgb_to_lab(rgb)).sum().backward()
    assert torch.isfinite(rgb.grad).all()


def test_lab_to_rgb_is_unchanged_under_bf16_autocast(photos):
    """CUDA/XLA runs predict under bf16 autocast (colorbench.core.device.autocast); the Lab -> RGB decoding must not
    inherit
    it. CPU autocast is the proxy: before the fix its matrix product moved the gray model's 8-bit output by up to 3
    levels. Under an active bf16 autocast the conversion gives bit-identical float32 output, and bf16 ab from a
    network is decoded in float32."""
    from colorbench.models.gray import GrayColorizer

    lab = rgb_to_lab(to_batch_tensor(*photos).float())
    L, ab = lab[:, :1], lab[:, 1:]
    plain = rgb_from_l_ab(L, ab)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        under = rgb_from_l_ab(L, ab)
        bf16_ab = rgb_from_l_ab(L, ab.bfloat16())
        grey = GrayColorizer().colorize(type("Inputs", (), {"L": L})())
    assert under.dtype == torch.float32 and torch.equal(under, plain)
    assert bf16_ab.dtype == torch.float32 and torch.equal(bf16_ab, rgb_from_l_ab(L, ab.bfloat16().float()))
    assert torch.equal(grey, rgb_from_l_ab(L, torch.zeros_like(ab)))
