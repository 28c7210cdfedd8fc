"""The simple-CNN control (paper Sec. 7.3: "it might be more stable, and quicker to iterate on a simpler, deep CNN
network, than forcing this problem statement into the GAN model"): a U-Net (Ronneberger et al. 2015) that regresses
ab from L with an L1 loss and no adversary, optionally with the vividness term of Sec. 7.6
(:mod:`colorbench.models.vividness`).

Network, for an input of S x S (S divisible by 2^depth) and channel widths scaled by ``width``: ``depth`` + 1
stages of two 3x3 convolutions (BatchNorm, ReLU) at 64, 128, ... channels, 2x2 max pooling between them; the
decoder's 2x2 up-convolutions (stride 2, halving the channels; interpolation's backward runs as a CPU fallback on
XLA) are concatenated with the encoder stage of the same size, then two 3x3 convolutions;
a 1x1 convolution gives ab. Input (L - 50) / 100, output ab / 110 (the normalisation of Zhang et al., reference.md
sec. 4); the loss is L1(ab / 110), plus ``vivid_weight`` times the chroma deficit (Lab units) when the vividness
term is on. Weights start from PyTorch's default initialization drawn from a generator seeded by the run's seed,
so the plain and the vivid twin start from the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.data.loader import Batch, ModelInputs
from colorbench.models.base import Colorizer
from colorbench.models.lab_networks import AB_SCALE, at_network_size, normalized_l, rgb_at_input_size, seeded
from colorbench.models.registry import register_model
from colorbench.models.trainable import LoopSettings, StepContext, TrainingData, flat_options, profile_settings
from colorbench.models.vividness import VividnessTerm

INIT_SCHEME = "PyTorch default per layer, drawn from a generator seeded by the run's seed"


@dataclass(frozen=True)
class UNetSettings:
    """The loop's settings plus the network's width and depth and Adam's settings."""

    loop: LoopSettings
    width: float
    depth: int = 4
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


#: ``smoke``: the built-in sample in seconds on a CPU (plumbing). ``paper``: the ChromaGAN paper's budget (224 px,
#: 5 epochs, Sec. 6.4) with the usual U-Net widths; lr and batch are ours (Adam's common 1e-4, batch 16).
PROFILES = {
    "smoke": UNetSettings(LoopSettings("smoke", image_size=64, batch_size=4, epochs=10, n_val=1, log_every=1),
                          width=0.125, lr=2e-4),
    "paper": UNetSettings(LoopSettings("paper", image_size=224, batch_size=16, epochs=5), width=1.0),
}
#: The vividness term's weight: 1 / AB_SCALE puts the chroma deficit (Lab units) on the L1 term's scale.
VIVID_WEIGHT = 1 / AB_SCALE


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """(B, 1, S, S) normalized L -> (B, 2, S, S) ab / 110."""

    def __init__(self, width: float, depth: int = 4) -> None:
        super().__init__()
        widths = [max(1, round(64 * 2**i * width)) for i in range(depth + 1)]
        inputs = [1, *widths[:-1]]
        self.down = nn.ModuleList(double_conv(c_in, c_out) for c_in, c_out in zip(inputs, widths, strict=True))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                      for i in reversed(range(depth)))
        self.up = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, stage in enumerate(self.down):
            x = stage(F.max_pool2d(x, 2) if index else x)
            skips.append(x)
        for upsample, stage, skip in zip(self.upsample, self.up, reversed(skips[:-1]), strict=True):
            x = stage(torch.cat((upsample(x), skip), dim=1))
        return self.head(x)


class UNetColorizer(Colorizer):
    """The U-Net control, trained by ``colorbench.training`` through :class:`.trainable.TrainableModel`."""

    adversarial_terms = None

    def __init__(self, settings: UNetSettings, vivid: VividnessTerm | None = None) -> None:
        super().__init__()
        size = settings.loop.image_size
        if size % 2**settings.depth:
            raise BenchError(f"the U-Net's image size must be a multiple of {2**settings.depth}, not {size}")
        self.settings = settings
        self.vivid = vivid
        self.loss_names = ("l1", "vivid", "total") if vivid else ("l1",)
        self.net = seeded(settings.loop.seed, UNet, settings.width, settings.depth)

    def loop_settings(self) -> LoopSettings:
        return self.settings.loop

    def trained_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.net}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.Adam(self.net.parameters(), lr=self.settings.lr, betas=self.settings.betas)}

    def prepare_training(self, data: TrainingData) -> None:
        if self.vivid is not None:
            self.vivid.prepare(data, self.settings.loop.image_size)

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        """One Adam step on L1(ab / 110) (+ the weighted vividness term)."""
        with step.autocast():
            pred = step.nets["generator"](normalized_l(batch.L)).float()
        losses = {"l1": F.l1_loss(pred, batch.ab / AB_SCALE)}
        total = losses["l1"]
        if self.vivid is not None:
            losses["vivid"] = self.vivid.loss(pred * AB_SCALE, batch.ab, batch.image_ids)
            total = losses["total"] = total + self.vivid.weight * losses["vivid"]
        step.update("generator", total)
        return {name: value.detach() for name, value in losses.items()}

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        L = inputs.L
        ab = self.net(normalized_l(at_network_size(L, self.settings.loop.image_size))) * AB_SCALE
        return rgb_at_input_size(L, ab)

    def options(self) -> dict[str, object]:
        vivid = self.vivid.options() if self.vivid is not None else {"vivid_weight": 0.0}
        return {**flat_options(self.settings), "loss": "l1", "init": INIT_SCHEME, **vivid}


def build(profile: str = "paper", seed: int = 0, epochs: int | None = None, vivid: bool = False,
          **overrides: object) -> UNetColorizer:
    """A U-Net under a training profile; ``overrides`` replace loop settings (image_size, batch_size...) or the
    network's (width, depth, lr)."""
    settings = profile_settings(PROFILES, profile, seed=seed, epochs=epochs, **overrides)
    return UNetColorizer(settings, VividnessTerm(VIVID_WEIGHT) if vivid else None)


@register_model("unet-l1", inputs=("L",), training="train", adversarial=False, paper="Sec. 7.3 (proposal)",
                description="the simple-CNN control: a U-Net regressing ab with an L1 loss, no adversary")
def build_unet_l1(profile: str = "paper", seed: int = 0, epochs: int | None = None, **overrides: object) -> Colorizer:
    return build(profile, seed, epochs, vivid=False, **overrides)


@register_model("unet-l1-vivid", inputs=("L",), training="train", adversarial=False, paper="Sec. 7.3 + 7.6 (proposals)",
                description="unet-l1 plus the vividness loss (per-segment chroma deficit against the truth)")
def build_unet_l1_vivid(profile: str = "paper", seed: int = 0, epochs: int | None = None,
                        **overrides: object) -> Colorizer:
    return build(profile, seed, epochs, True, **overrides)
