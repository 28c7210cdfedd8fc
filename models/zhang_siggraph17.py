"""Zhang, Zhu, Isola, Geng, Lin, Yu and Efros, Real-Time User-Guided Image Colorization with Learned Deep Priors
(SIGGRAPH 2017), in its automatic mode: the local-hints network of their Sec. 3 given no hints, i.e. the ab-hint
input and its mask are all zeros (their Sec. 3.1: with no points revealed the network predicts a plausible
colorization from L alone).

- Network: the layout of the authors' PyTorch release (``siggraph17-df00044c.pth``): input L normalised as the
  release does, (L - 50) / 100, concatenated with the hints ab / 110 and the mask (4 channels); seven conv blocks
  (BatchNorm closing each; dilation 2 in blocks 5-6), subsampled by taking every second pixel after blocks 1-3;
  three transposed convolutions back to full size, each added to a 3x3 convolution of the matching encoder block
  (blocks 3, 2, 1: the U-Net shortcuts); a 1x1 convolution and tanh, times 110, gives ab. The release's
  classification head (``model_class``, 529 bins, the global-hints distribution output) does not feed ab and
  is dropped. Channels scale with ``width`` (1.0 = the release's).
- Training from scratch: the regression loss of their Sec. 3.1, smooth-l1 (Huber, delta = 1) between predicted
  and true ab in Lab units, Adam; no hints are simulated (automatic mode only), so this is the no-hint arm only.
- A release file given with ``--weights zhang-siggraph17=FILE`` or found under its name in a weights folder is
  read with ``torch.load(weights_only=True)`` only, its keys mapped by :func:`from_release` and checked against
  :class:`Siggraph17Net` at width 1.0 before anything runs (:func:`checked_release_state`), then evaluated as it
  is at the paper profile's size (models/releases.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.data.loader import Batch, ModelInputs
from colorbench.io.weights import load_state_dict
from colorbench.models.base import Colorizer
from colorbench.models.lab_networks import AB_SCALE, at_network_size, normalized_l, rgb_at_input_size, seeded
from colorbench.models.registry import register_model
from colorbench.models.trainable import LoopSettings, StepContext, TrainingData, flat_options, profile_settings

RELEASE_FILE = "siggraph17-df00044c.pth"
RELEASE_URL = "https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth"
#: (output channels, convolutions, dilation) of encoder blocks 1-7 (the release's ``model1`` ... ``model7``).
ENCODER = ((64, 2, 1), (128, 2, 1), (256, 3, 1), (512, 3, 1), (512, 3, 2), (512, 3, 2), (512, 3, 1))
#: Decoder stages 8-10: (output channels, 3x3 convolutions after the sum, encoder block of the shortcut, 0-based).
DECODER = ((256, 2, 2), (128, 1, 1), (128, 1, 0))
#: The release's top-level module names -> :class:`Siggraph17Net`'s; the rest of each key is the same.
RELEASE_MODULES = {**{f"model{i + 1}": f"encoder.{i}" for i in range(7)},
                   "model8up": "upsample.0", "model9up": "upsample.1", "model10up": "upsample.2",
                   "model3short8": "shortcuts.0", "model2short9": "shortcuts.1", "model1short10": "shortcuts.2",
                   "model8": "decoder.0", "model9": "decoder.1", "model10": "decoder.2", "model_out": "ab_head"}
#: The release's classification head, read and dropped: automatic-mode ab comes from the regression head.
DROPPED_MODULES = ("model_class",)
#: Blocks after which the encoder keeps every second row and column.
SUBSAMPLED = (0, 1, 2)


class Siggraph17Net(nn.Module):
    """(B, 1, S, S) normalized L, (B, 2, S, S) hint ab / 110, (B, 1, S, S) mask -> (B, 2, S, S) ab / 110 in
    [-1, 1]; S a multiple of 8."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        w = lambda c: max(1, round(c * width))  # noqa: E731
        blocks, channels, widths = [], 4, []
        for out, convs, dilation in ENCODER:
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [nn.Conv2d(channels, w(out), 3, 1, dilation, dilation), nn.ReLU(inplace=True)]
                channels = w(out)
            blocks.append(nn.Sequential(*layers, nn.BatchNorm2d(channels)))
            widths.append(channels)
        self.encoder = nn.Sequential(*blocks)
        upsample, shortcuts, decoder = [], [], []
        for index, (out, convs, source) in enumerate(DECODER):
            upsample.append(nn.Sequential(nn.ConvTranspose2d(channels, w(out), 4, 2, 1)))
            shortcuts.append(nn.Sequential(nn.Conv2d(widths[source], w(out), 3, 1, 1)))
            layers = [nn.ReLU(inplace=True)]
            for _ in range(convs):
                layers += [nn.Conv2d(w(out), w(out), 3, 1, 1), nn.ReLU(inplace=True)]
            last = index == len(DECODER) - 1
            layers[-1:] = [nn.LeakyReLU(0.2, inplace=True)] if last else [nn.ReLU(inplace=True), nn.BatchNorm2d(w(out))]
            decoder.append(nn.Sequential(*layers))
            channels = w(out)
        self.upsample, self.shortcuts, self.decoder = nn.ModuleList(upsample), nn.ModuleList(shortcuts), \
            nn.ModuleList(decoder)
        self.ab_head = nn.Sequential(nn.Conv2d(channels, 2, 1), nn.Tanh())

    def forward(self, L: torch.Tensor, hints: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x, features = torch.cat((L, hints, mask), dim=1), []
        for index, block in enumerate(self.encoder):
            x = block(x)
            features.append(x)
            if index in SUBSAMPLED:
                x = x[:, :, ::2, ::2]
        for (_, _, source), up, shortcut, stage in zip(DECODER, self.upsample, self.shortcuts, self.decoder,
                                                       strict=True):
            x = stage(up(x) + shortcut(features[source]))
        return self.ab_head(x)


def automatic_ab(net: nn.Module, L: torch.Tensor) -> torch.Tensor:
    """ab in Lab units from L (B, 1, S, S) in [0, 100] with no hints: zero hint ab, zero mask."""
    zeros = torch.zeros_like(L)
    return net(normalized_l(L), torch.cat((zeros, zeros), dim=1), zeros) * AB_SCALE


def from_release(state: Mapping[str, torch.Tensor], source: str = RELEASE_FILE) -> dict[str, torch.Tensor]:
    """The release's state dict under :class:`Siggraph17Net`'s names (``model3short8.0.weight`` ->
    ``shortcuts.0.0.weight``), its classification head dropped; a key of no release module raises BenchError."""
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in DROPPED_MODULES:
            continue
        if head not in RELEASE_MODULES:
            raise BenchError(f"{source} does not fit zhang-siggraph17: {key} is not one of its layers")
        mapped[f"{RELEASE_MODULES[head]}.{rest}"] = value
    return mapped


def release_key(key: str) -> str:
    """Siggraph17Net's key -> the release's (``encoder.0.0.weight`` -> ``model1.0.weight``)."""
    for release, ours in RELEASE_MODULES.items():
        if key.startswith(f"{ours}."):
            return f"{release}.{key.removeprefix(ours + '.')}"
    raise KeyError(key)


def checked_release_state(path: Path) -> dict[str, torch.Tensor]:
    """The release's tensors under Siggraph17Net's names; a refusal names the first release key, in the network's
    order, that is missing or of another shape than width 1.0 needs."""
    mapped = from_release(load_state_dict(path), str(path))
    with torch.device("meta"):
        wanted = {key: tuple(value.shape) for key, value in Siggraph17Net(1.0).state_dict().items()
                  if not key.endswith("num_batches_tracked")}
    for key, shape in wanted.items():
        found = mapped.get(key)
        if found is None:
            raise BenchError(f"{path} does not fit zhang-siggraph17: it has no {release_key(key)}")
        if tuple(found.shape) != shape:
            raise BenchError(f"{path} does not fit zhang-siggraph17: {release_key(key)} has shape "
                             f"{tuple(found.shape)}, the SIGGRAPH17 network needs {shape}")
    extra = [key for key in mapped if key not in wanted and not key.endswith("num_batches_tracked")]
    if extra:
        raise BenchError(f"{path} does not fit zhang-siggraph17: {release_key(extra[0])} is not one of its layers")
    return mapped


@dataclass(frozen=True)
class Siggraph17Settings:
    """The loop's settings, the network width, Adam's settings and the Huber loss's delta (their Sec. 3.1)."""

    loop: LoopSettings
    width: float
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.99)
    huber_delta: float = 1.0


#: ``paper``: the release's widths at colorbench's 224 px, the 5-epoch budget of the other Zhang entry; Adam lr
#: 1e-5, betas (0.9, 0.99) as recalled from the authors' training scripts (UNVERIFIED: not in reference.md).
#: ``smoke``: the built-in sample in seconds on a CPU (plumbing).
PROFILES = {
    "smoke": Siggraph17Settings(LoopSettings("smoke", image_size=32, batch_size=4, epochs=10, n_val=1, log_every=1),
                                width=0.0625, lr=1e-3),
    "paper": Siggraph17Settings(LoopSettings("paper", image_size=224, batch_size=40, epochs=5), width=1.0),
}


class Siggraph17Colorizer(Colorizer):
    """The SIGGRAPH17 network in automatic mode, trained by ``colorbench.training`` or loaded from the release."""

    loss_names = ("huber",)
    adversarial_terms = None

    def __init__(self, settings: Siggraph17Settings) -> None:
        super().__init__()
        if settings.loop.image_size % 8:
            raise BenchError(f"zhang-siggraph17's image size must be a multiple of 8, not {settings.loop.image_size}")
        self.settings = settings
        self.net = seeded(settings.loop.seed, Siggraph17Net, settings.width)
        #: True when the release file is the model's final weights, not a start.
        self.pretrained = False

    def loop_settings(self) -> LoopSettings:
        return self.settings.loop

    def trained_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.net}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.Adam(self.net.parameters(), lr=self.settings.lr, betas=self.settings.betas)}

    def prepare_training(self, data: TrainingData) -> None:
        """Nothing to precompute: the regression loss needs no prior."""

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        """One Adam step on the Huber loss between the no-hint prediction and the true ab (Lab units)."""
        with step.autocast():
            ab = automatic_ab(step.nets["generator"], batch.L).float()
        loss = F.smooth_l1_loss(ab, batch.ab.float(), beta=self.settings.huber_delta)
        step.update("generator", loss)
        return {"huber": loss.detach()}

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        L = inputs.L
        return rgb_at_input_size(L, automatic_ab(self.net, at_network_size(L, self.settings.loop.image_size)))

    def options(self) -> dict[str, object]:
        release = {"release_file": RELEASE_FILE, "pretrained": "authors' release"} if self.pretrained else {}
        return {**flat_options(self.settings), "hints": "none (automatic mode)", **release}


def check_release(path: Path) -> None:
    checked_release_state(path)


def siggraph17_from_release(path: Path) -> Siggraph17Colorizer:
    """``zhang-siggraph17`` at the paper profile with the release's weights as its final weights."""
    mapped = checked_release_state(path)
    model = Siggraph17Colorizer(profile_settings(PROFILES, "paper"))
    model.net.load_state_dict(mapped, strict=False)
    model.pretrained = True
    return model


@register_model("zhang-siggraph17", inputs=("L",), training="train", adversarial=False,
                paper="Zhang et al. 2017, Sec. 3.1 (automatic mode)",
                description="Zhang et al. 2017: U-Net with shortcuts, no hints given (automatic mode), Huber on ab")
def build(profile: str = "paper", seed: int = 0, epochs: int | None = None,
          **overrides: object) -> Siggraph17Colorizer:
    """zhang-siggraph17 under a training profile; ``overrides`` replace loop or method settings."""
    return Siggraph17Colorizer(profile_settings(PROFILES, profile, seed=seed, epochs=epochs, **overrides))
