"""A test-only trained family: the "a new trained model is one file" check of issue 8.

``tiny-l1`` is a real two-layer CNN, L -> 3x3 conv -> ReLU -> 3x3 conv -> ab / 128, trained with an L1 loss on ab
(the loss term ``l1``) and no adversary. It declares the inputs ("L", "caption") and reads the captions at every
colorization (their count must match the batch) without using them, so a harness that hands it fewer inputs
than it declares fails loudly (ModelInputs raises). Registered with ``COLORBENCH_MODEL_FAMILIES=tests.families.
tiny_l1``; nothing in the source tree names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.data.color import rgb_from_l_ab
from colorbench.data.loader import Batch, ModelInputs
from colorbench.models.base import Colorizer
from colorbench.models.registry import register_model
from colorbench.models.trainable import LoopSettings, StepContext, TrainingData, flat_options, profile_settings

#: ab is predicted on [-1, 1] times this scale (Lab units).
AB_SCALE = 128.0


@dataclass(frozen=True)
class TinyL1Settings:
    """The loop's settings, the hidden width and Adam's learning rate."""

    loop: LoopSettings
    width: int
    lr: float


PROFILES = {
    "smoke": TinyL1Settings(LoopSettings("smoke", image_size=32, batch_size=4, epochs=3, n_val=1, log_every=1),
                            width=8, lr=1e-2),
    "paper": TinyL1Settings(LoopSettings("paper", image_size=224, batch_size=16, epochs=5), width=32, lr=1e-3),
}


class TinyL1(Colorizer):
    """Two convolutions from L to ab; ``captions_read`` counts the captions seen at colorization."""

    loss_names = ("l1",)
    adversarial_terms = None

    def __init__(self, settings: TinyL1Settings) -> None:
        super().__init__()
        self.settings = settings
        generator = torch.Generator().manual_seed(settings.loop.seed)
        self.net = nn.Sequential(nn.Conv2d(1, settings.width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(settings.width, 2, 3, padding=1), nn.Tanh())
        with torch.no_grad():
            for parameter in self.net.parameters():
                parameter.copy_((torch.rand(parameter.shape, generator=generator) - 0.5) * 0.2)
        self.captions_read = 0

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        if len(inputs.captions) != inputs.size:
            raise BenchError(f"tiny-l1 got {len(inputs.captions)} captions for {inputs.size} images")
        self.captions_read += len(inputs.captions)
        return rgb_from_l_ab(inputs.L, self.net(inputs.L / 100).float() * AB_SCALE)

    def options(self) -> dict[str, object]:
        return flat_options(self.settings)

    def loop_settings(self) -> LoopSettings:
        return self.settings.loop

    def trained_modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.Adam(self.net.parameters(), lr=self.settings.lr)}

    def prepare_training(self, data: TrainingData) -> None:
        """Nothing to derive from the training data."""

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        with step.autocast():
            predicted = step.nets["net"](batch.L / 100).float()
        loss = F.l1_loss(predicted, batch.ab / AB_SCALE)
        step.update("net", loss)
        return {"l1": loss.detach()}


@register_model("tiny-l1", inputs=("L", "caption"), training="train", description="test-only two-layer CNN, L1 loss")
def build(profile: str = "paper", seed: int = 0, epochs: int | None = None) -> TinyL1:
    return TinyL1(profile_settings(PROFILES, profile, seed=seed, epochs=epochs))
