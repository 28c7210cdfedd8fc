# Type stub for efficientnet-lite-pytorch, which ships none: the part of its EfficientNet that colorbench uses
# (colorbench.io.weights builds it, colorbench.metrics.distribution and colorbench.models.teachers run it).
from typing import Any

import torch
from torch import nn

class EfficientNet(nn.Module):
    _fc: nn.Linear
    @classmethod
    def from_name(cls, model_name: str, in_channels: int = 3, **override_params: Any) -> EfficientNet: ...
    def extract_features(self, inputs: torch.Tensor) -> torch.Tensor: ...
