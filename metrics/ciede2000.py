"""CIEDE2000 colour difference (CIE 142-2001), batched in torch.

Formulas as in Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes, supplementary
test data, and mathematical observations", Color Res. Appl. 30(1), 2005, eqs. (1)-(22), with the hue
conventions of their notes (hue 0 where a' = b' = 0; mean hue and hue difference taken over the shorter arc;
when one chroma is 0 the hue difference is 0 and the mean hue is the sum of the hues). scikit-image's
``deltaE_ciede2000`` follows the same notes; the calibration tests check agreement with it and with pairs of
the published test table.

Lab comes from :func:`colorbench.data.color.rgb_to_lab` (sRGB, D65, 2-degree observer, as ``skimage.color.rgb2lab``).
Precision: the conversion and the formula run in float32 and the per-image mean is summed in float64. On the 79
coco-mini val2017 images at 224x224 with four kinds of chroma damage the per-image means differ from
scikit-image's float64 by at most 2.2e-6 (float64 throughout: 1.1e-8); ``python -m
colorbench.experiments.metric_speed`` compares values and speed (docs/performance.md). Single pixels can differ
more where CIEDE2000 itself is discontinuous: where the two hues are almost opposite (|h1' - h2'| = 180 degrees)
float rounding picks one or the other branch of the mean hue (up to 0.7 on such a pixel).
"""

from __future__ import annotations

import math

import torch

from colorbench.data.color import rgb_to_lab
from colorbench.metrics.kernels import KernelCost, compiled_kernel

_POW25_7 = 25.0**7


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor, *, kL: float = 1.0, kC: float = 1.0,
              kH: float = 1.0) -> torch.Tensor:
    """Per-pixel CIEDE2000 between Lab tensors of shape (..., 3, H, W); returns (..., H, W).

    ``kL``, ``kC``, ``kH`` are the parametric weighting factors (1 under the reference conditions).
    """
    L1, a1, b1 = lab1.unbind(dim=-3)
    L2, a2, b2 = lab2.unbind(dim=-3)

    # a' = (1 + G) a, where G compensates the neutral axis of CIELAB for low chroma (eqs. 2-4).
    mean_chroma_7 = (0.5 * (torch.hypot(a1, b1) + torch.hypot(a2, b2))) ** 7
    scale = 1.5 - 0.5 * torch.sqrt(mean_chroma_7 / (mean_chroma_7 + _POW25_7))
    a1p, a2p = a1 * scale, a2 * scale
    C1, C2 = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1 = torch.remainder(torch.atan2(b1, a1p), 2 * math.pi)
    h2 = torch.remainder(torch.atan2(b2, a2p), 2 * math.pi)

    # Differences (eqs. 8-11); the hue difference takes the shorter arc and is 0 for a neutral colour.
    chroma_product = C1 * C2
    neutral = chroma_product == 0
    h_diff = h2 - h1
    dh = h_diff - 2 * math.pi * torch.sign(h_diff) * (h_diff.abs() > math.pi)
    dh = torch.where(neutral, 0.0, dh)
    dH = 2 * torch.sqrt(chroma_product) * torch.sin(0.5 * dh)

    # Means (eqs. 12-14): the mean hue also takes the shorter arc, and is h1 + h2 for a neutral colour.
    L_mean = 0.5 * (L1 + L2)
    C_mean = 0.5 * (C1 + C2)
    h_sum = h1 + h2
    wrap = (h_diff.abs() > math.pi) & ~neutral
    h_sum = h_sum + torch.where(wrap, torch.where(h_sum < 2 * math.pi, 2 * math.pi, -2 * math.pi), 0.0)
    H_mean = torch.where(neutral, h_sum, 0.5 * h_sum)

    # Weighting functions and the rotation term (eqs. 15-22).
    T = (1 - 0.17 * torch.cos(H_mean - math.radians(30)) + 0.24 * torch.cos(2 * H_mean)
         + 0.32 * torch.cos(3 * H_mean + math.radians(6)) - 0.20 * torch.cos(4 * H_mean - math.radians(63)))
    L_dev = (L_mean - 50) ** 2
    SL = 1 + 0.015 * L_dev / torch.sqrt(20 + L_dev)
    SC = 1 + 0.045 * C_mean
    SH = 1 + 0.015 * C_mean * T
    C_mean_7 = C_mean**7
    RC = 2 * torch.sqrt(C_mean_7 / (C_mean_7 + _POW25_7))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(H_mean) - 275) / 25) ** 2))
    RT = -torch.sin(2 * d_theta) * RC

    L_term = (L2 - L1) / (kL * SL)
    C_term = (C2 - C1) / (kC * SC)
    H_term = dH / (kH * SH)
    return torch.sqrt((L_term**2 + C_term**2 + H_term**2 + RT * C_term * H_term).clamp_min(0))


#: Compile-policy data (metrics/kernels.py): CPU seconds of one thread at 224x224 from
#: ``python -m colorbench.experiments.compile_cost``; the run and its break-evens: docs/performance.md.
CIEDE2000_COST = KernelCost(eager_s_per_mpx=0.208, compiled_s_per_mpx=0.0991, cold_compile_s=9.57,
                            warm_compile_s=6.73)


@compiled_kernel(CIEDE2000_COST)
def _mean_ciede2000(pred: torch.Tensor, target: torch.Tensor, *, kL: float, kC: float, kH: float) -> torch.Tensor:
    difference = ciede2000(rgb_to_lab(target.float()), rgb_to_lab(pred.float()), kL=kL, kC=kC, kH=kH)
    return difference.flatten(1).double().mean(dim=1)


def deltae2000(pred: torch.Tensor, target: torch.Tensor, *, kL: float = 1.0, kC: float = 1.0,
               kH: float = 1.0) -> torch.Tensor:
    """Mean CIEDE2000 difference per image between prediction and ground truth (sRGB in [0, 1] -> Lab D65),
    shape (B,), float64. 0 for identical images; about 2.3 is a just-noticeable difference."""
    return _mean_ciede2000(pred, target, kL=kL, kC=kC, kH=kH)
