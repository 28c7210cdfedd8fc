"""The ground-truth reference: the input L with the true ab. Not a colorizer, a ceiling.

It shows what the scoring pipeline itself costs (the Lab round trip and 8-bit rounding) and puts the ground
truth's own colorfulness on the leaderboard, next to what the models achieve.
"""

from __future__ import annotations

import torch

from colorbench.data.color import rgb_from_l_ab
from colorbench.data.loader import ModelInputs
from colorbench.models.base import Colorizer
from colorbench.models.registry import register_model


class GroundTruthColorizer(Colorizer):
    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        return rgb_from_l_ab(inputs.L, inputs.ab)


@register_model("groundtruth", inputs=("L", "ab"), training="none", reference=True,
                description="reference ceiling: true ab on the input L (reads ground truth)")
def build_groundtruth() -> Colorizer:
    return GroundTruthColorizer()
