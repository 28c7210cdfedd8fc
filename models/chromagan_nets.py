"""ChromaGAN's networks (Vitoria et al., WACV 2020; paper Sec. 2, 4.2; reference.md sec. 2) and their seeded
initialization; the family, its settings and its training step are in models/chromagan.py.

Generator, for an input of S x S (S = 224 in the paper) and channel widths scaled by ``width`` (1.0 = the paper's):

- trunk: VGG-16's convolutions up to block4_conv3 (S/8 grid), laid out as torchvision's ``vgg16().features[:23]``
  so ImageNet weights load from torchvision's file when the user has it, else Xavier-initialized;
- global branch: four 3x3 convs (stride 2, 1, 2, 1; ReLU then BatchNorm, Keras order) to an S/32 grid, flattened,
  dense 1024 -> 512 -> 256 (linear, as in the original), broadcast over the S/8 grid;
- class head (optional): dense 4096 -> 4096 -> K logits from the same flattened features (K = the teacher's
  classes; softmax in the loss);
- mid-level branch: 3x3 convs 512 -> 256 with BatchNorm; fusion: concat(mid-level, global) -> 512 channels;
- decoder: 1x1 conv 256, 3x3 conv 128, up x2, conv 64, conv 64, up x2, conv 32, conv 2 + sigmoid, up x2 (nearest).

Critic: a PatchGAN on concat(L, ab), 4x4 convs with stride 2 to 64, 128, 256 channels, then stride 1 to 512 and
1, LeakyReLU (slope 0.3, Keras' default), no normalization, "same" padding as in Keras: an S/8 x S/8 map of patch
scores (28 x 28 at 224).

BatchNorm uses PyTorch's defaults (momentum 0.1), not Keras' 0.99 averaging, so that short runs have usable
running statistics at evaluation time.

The authors' released Keras weights (models/chromagan_keras.py) need the Keras geometry in one place: their
global branch's stride-2 convolutions pad "same" as TensorFlow does (on an even grid, one row and column after,
none before), where PyTorch's ``padding=1`` pads both sides and so samples the grid one pixel earlier. A generator
built with ``keras_padding=True`` uses :class:`SamePaddedConv2d` there (same parameters, same names); the trained
models keep the PyTorch padding they were defined with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.errors import BenchError

#: torchvision's VGG-16 configuration "D" up to block4_conv3 ("M" = 2x2 max pooling).
VGG16_TO_BLOCK4 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
M = TypeVar("M", bound=nn.Module)


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def vgg16_trunk(width: float) -> nn.Sequential:
    """VGG-16 convolutions to block4_conv3 with ReLU; module indices equal torchvision's ``features``."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_TO_BLOCK4:
        if isinstance(item, str):  # "M"
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, scaled(item, width), 3, padding=1), nn.ReLU(inplace=True)]
            channels = scaled(item, width)
    return nn.Sequential(*layers)


class SamePaddedConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's "same": per spatial dimension of size n, total padding
    max((ceil(n / s) - 1) s + k - n, 0), of which total // 2 before and the rest after (built with padding 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride),
                                        strict=True):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_relu_bn(c_in: int, c_out: int, stride: int = 1, keras_padding: bool = False) -> nn.Sequential:
    conv = (SamePaddedConv2d(c_in, c_out, 3, stride) if keras_padding and stride > 1
            else nn.Conv2d(c_in, c_out, 3, stride, padding=1))
    return nn.Sequential(conv, nn.ReLU(inplace=True), nn.BatchNorm2d(c_out))


def conv_relu(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(inplace=True))


def strided_size(size: int) -> int:
    """Output size of a 3x3, stride-2, padding-1 convolution."""
    return (size - 1) // 2 + 1


class Upsample2x(nn.Module):
    """Nearest-neighbour upsampling by 2 (the decoder's ``UpSampling2D``) as an expand and a reshape: the same values
    as ``nn.Upsample(scale_factor=2)``, but its gradient is a plain sum that XLA compiles into the training step,
    where ``upsample_nearest2d_backward`` falls back to the CPU (a device-to-host round trip per layer and step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class Generator(nn.Module):
    """ChromaGAN's colorization network: (B, 3, S, S) grey input -> (ab01 (B, 2, S, S), class logits or None).
    ``keras_padding``: the global branch's stride-2 convolutions pad as Keras does (the authors' release)."""

    def __init__(self, image_size: int = 224, width: float = 1.0, n_classes: int | None = 1000,
                 keras_padding: bool = False) -> None:
        super().__init__()
        if image_size % 8:
            raise BenchError(f"ChromaGAN's image size must be a multiple of 8, not {image_size}")
        w = lambda c: scaled(c, width)  # noqa: E731
        self.trunk = vgg16_trunk(width)
        self.global_convs = nn.Sequential(
            conv_relu_bn(w(512), w(512), 2, keras_padding), conv_relu_bn(w(512), w(512)),
            conv_relu_bn(w(512), w(512), 2, keras_padding), conv_relu_bn(w(512), w(512)))
        grid = strided_size(strided_size(image_size // 8))
        flat = w(512) * grid * grid
        self.global_dense = nn.Sequential(nn.Flatten(), nn.Linear(flat, w(1024)), nn.Linear(w(1024), w(512)),
                                          nn.Linear(w(512), w(256)))
        self.class_head = (nn.Sequential(nn.Flatten(), nn.Linear(flat, w(4096)), nn.Linear(w(4096), w(4096)),
                                         nn.Linear(w(4096), n_classes)) if n_classes else None)
        self.mid = nn.Sequential(conv_relu_bn(w(512), w(512)), conv_relu_bn(w(512), w(256)))
        self.decoder = nn.Sequential(
            conv_relu(2 * w(256), w(256), 1), conv_relu(w(256), w(128)), Upsample2x(),
            conv_relu(w(128), w(64)), conv_relu(w(64), w(64)), Upsample2x(),
            conv_relu(w(64), w(32)), nn.Conv2d(w(32), 2, 3, padding=1), nn.Sigmoid(), Upsample2x())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.trunk(x)
        summary = self.global_convs(features)
        global_features = self.global_dense(summary)[:, :, None, None].expand(-1, -1, *features.shape[2:])
        ab = self.decoder(torch.cat((self.mid(features), global_features), dim=1))
        return ab, self.class_head(summary) if self.class_head is not None else None


class Critic(nn.Module):
    """PatchGAN critic on concat(L, ab), both on [0, 1]: (B, 1, S, S), (B, 2, S, S) -> (B, 1, S/8, S/8) scores."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        w = lambda c: scaled(c, width)  # noqa: E731
        layers: list[nn.Module] = []
        channels = 3
        for out in (w(64), w(128), w(256)):
            layers += [nn.Conv2d(channels, out, 4, 2, padding=1), nn.LeakyReLU(0.3)]
            channels = out
        # Stride 1 with a 4x4 kernel: Keras' "same" pads one row/column before and two after.
        layers += [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(channels, w(512), 4), nn.LeakyReLU(0.3),
                   nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(w(512), 1, 4)]
        self.net = nn.Sequential(*layers)

    def forward(self, L01: torch.Tensor, ab01: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((L01, ab01), dim=1))


#: Recorded in the model's options (so in every cache key): how the weights are initialized.
INIT_SCHEME = "glorot-uniform per layer, seeded by (seed, layer name)"


def layer_seed(seed: int, name: str) -> int:
    """A 63-bit seed for one layer from the run's seed and the layer's qualified name (stable across processes)."""
    digest = hashlib.sha256(f"colorbench-init-v1:{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def xavier_init(module: nn.Module, seed: int, prefix: str) -> None:
    """Keras' defaults: Glorot-uniform weights and zero biases for every convolution and dense layer; BatchNorm
    at ones and zeros.

    Each layer draws from its own generator seeded by ``(seed, prefix.layer_name)``, so two models that share a
    layer name share that layer's initial weights at the same seed: ``chromagan`` and ``chromagan-noclass``
    (claim C4) start equal in every layer but the class head, whatever the head's size.
    """
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            generator = torch.Generator().manual_seed(layer_seed(seed, f"{prefix}.{name}"))
            with torch.no_grad():
                layer.weight.copy_(nn.init.xavier_uniform_(torch.empty(layer.weight.shape), generator=generator))
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            layer.reset_parameters()


def materialized(build: Callable[[], M], seed: int, prefix: str) -> M:
    """Build a module on the meta device (no default initialization, no draw from the global RNG), allocate it
    on the CPU and initialize every layer with :func:`xavier_init`."""
    with torch.device("meta"):
        module = build()
    module = module.to_empty(device="cpu")
    xavier_init(module, seed, prefix)
    return module
