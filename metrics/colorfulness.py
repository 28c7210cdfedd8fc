"""Colour-presence metrics: colorfulness (Hasler & Suesstrunk 2003), its absolute-value variant used by DDColor
and CT2, its difference to the ground truth, and the channel-equality fraction that paper Sec. 7.4 uses to show
near-grey output (82% of pixels with R = G = B).

Inputs are RGB batches (B, 3, H, W) in [0, data_range]; outputs are per image, shape (B,).
"""

from __future__ import annotations

import torch


def colorfulness_of(rgb: torch.Tensor, *, data_range: float = 1.0, absolute: bool = False) -> torch.Tensor:
    """Hasler-Suesstrunk colorfulness of each image, computed on 0-255 RGB with signed opponent channels:

    rg = R - G,  yb = (R + G) / 2 - B,
    CF = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)   (population std over pixels).

    ``absolute=True`` takes |rg| and |yb| first, as the evaluation code of DDColor (Kang et al. 2023) and CT2
    (Weng et al. 2022) does; that variant gives other numbers (a smaller spread, a larger mean term) and is
    not comparable with the signed definition.
    """
    scaled = rgb.double() * (255.0 / data_range)
    r, g, b = scaled.flatten(2).unbind(dim=1)
    rg, yb = r - g, 0.5 * (r + g) - b
    if absolute:
        rg, yb = rg.abs(), yb.abs()
    spread = (rg.var(dim=1, correction=0) + yb.var(dim=1, correction=0)).sqrt()
    offset = (rg.mean(dim=1).square() + yb.mean(dim=1).square()).sqrt()
    return spread + 0.3 * offset


def colorfulness(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Colorfulness of the prediction (no-reference; ``target`` is not used)."""
    return colorfulness_of(pred, data_range=data_range)


def colorfulness_abs(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Colorfulness of the prediction with absolute opponent channels |R - G|, |(R + G)/2 - B| (the DDColor/CT2
    variant, for comparison with those papers; not comparable with :func:`colorfulness`). ``target`` is not
    used."""
    return colorfulness_of(pred, data_range=data_range, absolute=True)


def delta_colorfulness(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Signed colorfulness difference, prediction minus ground truth: negative means duller than the truth."""
    return colorfulness_of(pred, data_range=data_range) - colorfulness_of(target, data_range=data_range)


def channel_equality(
    pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, tolerance: int = 2
) -> torch.Tensor:
    """Share of pixels whose 8-bit R, G, B lie within ``tolerance`` levels of each other (max - min <= tol).

    Decoded JPEGs and Lab round trips move grey pixels by a level or two, so exact equality (tolerance 0)
    undercounts grey output; the tolerance used is recorded with every result. ``target`` is not used.
    """
    levels = (pred.double() * (255.0 / data_range)).round()
    spread = levels.amax(dim=1) - levels.amin(dim=1)
    return (spread <= tolerance).double().flatten(1).mean(dim=1)
