"""Helpers shared by the families whose network predicts ab from L at one square size (``unet-l1``,
``zhang-eccv16``): Zhang et al.'s Lab normalisation (reference.md sec. 4), seeded initialization, profile selection,
and running the network on images of any size (the lightness goes in resized to the network's size, the
predicted ab comes back upsampled and is combined with the full-resolution L, so the output keeps every detail of
the input's lightness)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from colorbench.core.errors import BenchError
from colorbench.data.color import rgb_from_l_ab
from colorbench.models.trainable import PROFILE_NAMES, LoopSettings
from torch import nn

L_CENTRE, L_SCALE, AB_SCALE = 50.0, 100.0, 110.0
M = TypeVar("M", bound=nn.Module)
S = TypeVar("S")


def normalized_l(L: torch.Tensor) -> torch.Tensor:
    """Lab L in [0, 100] -> (L - 50) / 100."""
    return (L - L_CENTRE) / L_SCALE


def seeded(seed: int, build: Callable[..., M], *args: object) -> M:
    """``build(*args)`` with PyTorch's default initialization drawn from a generator seeded by ``seed``, leaving the
    global random state as it was (two models built with one seed and one architecture start equal)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args)


def profile_settings(profiles: Mapping[str, S], profile: str, seed: int, epochs: int | None,
                     overrides: Mapping[str, Any]) -> S:
    """A family's settings (a dataclass with a ``loop: LoopSettings`` field) for ``profile``, with the run's seed,
    epochs (None keeps the profile's) and ``overrides`` of single loop or family settings."""
    if profile not in PROFILE_NAMES:
        raise BenchError(f"unknown training profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    base = profiles[profile]
    loop_fields = set(LoopSettings.__dataclass_fields__)
    loop = replace(base.loop, seed=seed, epochs=base.loop.epochs if epochs is None else epochs,  # type: ignore[attr-defined]
                   **{k: v for k, v in overrides.items() if k in loop_fields})
    return replace(base, loop=loop, **{k: v for k, v in overrides.items() if k not in loop_fields})  # type: ignore[type-var]


def flat_options(settings: object) -> dict[str, object]:
    """A family's settings as one flat dict for ``options()``: the loop's fields first (``profile``, ``seed``,
    ``epochs`` at the top level, where the trainer and the claims read them), then the family's own."""
    fields = asdict(settings)  # type: ignore[call-overload]
    return {**fields.pop("loop"), **fields}


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
