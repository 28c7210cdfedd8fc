"""The grey reference: predicts ab = 0, i.e. returns the input lightness as a neutral grey image."""

from __future__ import annotations

import torch

from colorbench.data.color import rgb_from_l_ab
from colorbench.data.loader import ModelInputs
from colorbench.models.base import Colorizer
from colorbench.models.registry import register_model


class GrayColorizer(Colorizer):
    """ab = 0 everywhere: the "returns gray" output that paper Sec. 7.4 and Zhang et al. use as a yardstick."""

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        return rgb_from_l_ab(inputs.L, torch.zeros_like(inputs.L).expand(-1, 2, -1, -1))


@register_model("gray", inputs=("L",), training="none", description="predicts ab = 0 (neutral grey with the input's L)",
                paper="Sec. 7.4")
def build_gray() -> Colorizer:
    return GrayColorizer()
