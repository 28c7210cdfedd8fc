"""The interface every colorizer implements: a torch module that maps a batch's grey input to RGB."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from colorbench.data.loader import Batch, ModelInputs
from colorbench.io.checkpoints import state_sha256


class Colorizer(nn.Module):
    """Base class of all models.

    Subclasses implement :meth:`colorize`; models with ``training="fit"`` also implement :meth:`fit`, models with
    ``training="train"`` the protocol of models/trainable.py (driven by bench/training/).
    :meth:`options` returns the hyper-parameters that change the output; together with the weights hash it
    forms the model's cache key, and both are written to ``run.json``.
    """

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        """Predicted sRGB, shape (B, 3, H, W), values meant to lie in [0, 1] (the runner counts and clips
        NaN, Inf and out-of-range values before scoring)."""
        raise NotImplementedError

    def fit(self, batches: Iterable[Batch], progress: bool = True) -> None:
        """Learn from one streaming pass over training batches (statistics models only); ``progress``: whether
        to draw a progress bar (the harness passes False for --no-progress and on ranks other than 0)."""
        raise NotImplementedError(f"{type(self).__name__} is not fitted from statistics")

    def options(self) -> dict[str, object]:
        return {}

    def weights_sha256(self) -> str:
        return state_sha256(self.state_dict())
