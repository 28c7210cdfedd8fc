"""Batched colour-space conversions in torch: sRGB <-> CIE Lab (D65, 2-degree observer) and BT.601 luma.

All functions take channel-first tensors ``(..., 3, H, W)`` and work on any device and float dtype. The
constants and piecewise formulas are those of scikit-image's ``rgb2lab`` / ``lab2rgb`` (sRGB primaries,
D65 white (0.95047, 1.0, 1.08883), CIE 1976 L*a*b*), so results agree with it to float precision; the
tests check this. OpenCV's 8-bit Lab is a different encoding and is not used anywhere in colorbench.
"""

from __future__ import annotations

import torch

XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
LAB_EPSILON = 0.008856  # (6/29)^3, rounded as in scikit-image
LAB_KAPPA = 7.787  # (29/6)^2 / 3, rounded as in scikit-image

#: BT.601 luma weights. The paper (Sec. 4.1) prints 0.144 for blue; the standard is 0.114.
BT601_WEIGHTS = (0.299, 0.587, 0.114)


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix over the channel axis (dim -3)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x), x)


def _xyz_from_rgb_matrix() -> torch.Tensor:
    return torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)


def _white(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(D65_WHITE, dtype=x.dtype, device=x.device).view(3, 1, 1)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse sRGB transfer function (IEC 61966-2-1) on values in [0, 1]."""
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4, rgb / 12.92)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """sRGB transfer function (IEC 61966-2-1); the result is clipped to [0, 1]."""
    encoded = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return encoded.clamp(0.0, 1.0)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (..., 3, H, W) -> Lab with L in [0, 100] and a, b roughly in [-128, 127]."""
    xyz = _mix(_xyz_from_rgb_matrix(), srgb_to_linear(rgb)) / _white(rgb)
    f = torch.where(xyz > LAB_EPSILON, xyz.clamp_min(LAB_EPSILON) ** (1 / 3), LAB_KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab, shape (..., 3, H, W) -> sRGB in [0, 1].

    Colours outside the sRGB gamut are clipped, as scikit-image's ``lab2rgb`` does (negative Z is set to 0
    before the cube, then RGB is clipped to [0, 1]). The conversion runs outside any autocast region and at
    least in float32 (bf16 or fp16 input is upcast): under bf16 autocast the matrix product alone moved 8-bit
    output by up to 3 levels, so a model's prediction is decoded at full precision whatever its network ran in.
    """
    with torch.autocast(lab.device.type, enabled=False):
        return linear_to_srgb(lab_to_linear_rgb(lab if lab.dtype in (torch.float32, torch.float64) else lab.float()))


def lab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab (..., 3, H, W) -> linear sRGB before any clipping to [0, 1] (negative Z set to 0, as in lab_to_rgb);
    values outside [0, 1] mark colours outside the sRGB gamut."""
    L, a, b = lab.unbind(dim=-3)
    fy = (L + 16) / 116
    f = torch.stack((fy + a / 500, fy, (fy - b / 200).clamp_min(0)), dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16 / 116) / LAB_KAPPA) * _white(lab)
    return _mix(torch.linalg.inv(_xyz_from_rgb_matrix()), xyz)


def lab_from_parts(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Concatenate lightness (..., 1, H, W) and chroma (..., 2, H, W) into Lab (..., 3, H, W)."""
    return torch.cat((L, ab), dim=-3)


def rgb_from_l_ab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Reconstruct sRGB from lightness and predicted ab, as ChromaGAN's evaluation does."""
    return lab_to_rgb(lab_from_parts(L, ab))


def luma_bt601(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma Y' = 0.299 R' + 0.587 G' + 0.114 B' on gamma-encoded RGB, shape (..., 1, H, W).

    This is the grey conversion of the paper's baseline0 (Sec. 4.1). The paper prints 0.144 for the blue
    weight, a typo: with 0.144 the weights sum to 1.03 and white maps above white. BT.601 uses 0.114.
    """
    weights = torch.tensor(BT601_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(dim=-3, keepdim=True)


def chroma(ab: torch.Tensor) -> torch.Tensor:
    """Lab chroma C*ab = sqrt(a^2 + b^2), shape (..., 1, H, W)."""
    return ab.square().sum(dim=-3, keepdim=True).sqrt()
