"""Helpers shared by the families whose network predicts ab from L at one square size (``unet-l1``,
``zhang-eccv16``): Zhang et al.'s Lab normalisation (reference.md sec. 4), seeded initialization, and running the
network on images of any size (the lightness goes in resized to the network's size, the predicted ab comes back
upsampled and is combined with the full-resolution L, so the output keeps every detail of the input's
lightness)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.data.color import rgb_from_l_ab

L_CENTRE, L_SCALE, AB_SCALE = 50.0, 100.0, 110.0
M = TypeVar("M", bound=nn.Module)


def normalized_l(L: torch.Tensor) -> torch.Tensor:
    """Lab L in [0, 100] -> (L - 50) / 100."""
    return (L - L_CENTRE) / L_SCALE


def seeded(seed: int, build: Callable[..., M], *args: object) -> M:
    """``build(*args)`` with PyTorch's default initialization drawn from a generator seeded by ``seed``, leaving the
    global random state as it was (two models built with one seed and one architecture start equal)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args)


def at_network_size(L: torch.Tensor, size: int) -> torch.Tensor:
    """Lab L (B, 1, H, W) resized (bilinear, antialiased) to (B, 1, size, size); unchanged when already there."""
    if L.shape[-2:] == (size, size):
        return L
    return F.interpolate(L, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def rgb_at_input_size(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """sRGB from the full-size L (B, 1, H, W) and a network's ab (B, 2, h, w) in Lab units, upsampled bilinearly."""
    ab = ab.float()
    if ab.shape[-2:] != L.shape[-2:]:
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
    return rgb_from_l_ab(L, ab)
