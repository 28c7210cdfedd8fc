"""LPIPS, the learned perceptual image patch similarity of Zhang, Isola, Efros, Shechtman & Wang (CVPR 2018),
through the ``lpips`` package (v0.1 linear heads, which ship inside it).

The heads sit on ImageNet-trained torchvision backbones (AlexNet or VGG-16) that the package would download;
here the backbone state dict is read from the file torchvision itself caches, found by :mod:`colorbench.io.weights`
(``--weights-dir``, then ``$TORCH_HOME/hub/checkpoints``). The network is built with a random backbone
(``pnet_rand=True``) that is overwritten, key by key and strictly, with the file's ``features.*`` weights
before any use; a missing file makes the metric unavailable (its message names the file and directories),
so no number from a random backbone is ever reported. Inputs are RGB in [0, 1], scaled to [-1, 1] as LPIPS
expects. Models are built on first use and cached per (backbone, device, weight file).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

from colorbench.core.errors import BenchError
from colorbench.io.weights import (
    cached_with_weights,
    find_weights,
    load_state_dict,
    missing_message,
    unavailable_reason,
)

#: File names of the torchvision ImageNet weights each LPIPS backbone was trained on (AlexNet_Weights and
#: VGG16_Weights.IMAGENET1K_V1; spelled out so that listing the metrics does not import torchvision, and checked
#: against torchvision in tests/test_perceptual.py).
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def backbone_file(net: str) -> str:
    """File name of the backbone weights, e.g. ``alexnet-owt-7be5be79.pth`` for ``alex``."""
    return BACKBONE_FILES[net]


def lpips_unavailable(net: str) -> str | None:
    """Why LPIPS with backbone ``net`` cannot run here, or None."""
    if importlib.util.find_spec("lpips") is None:
        return f"lpips_{net} needs the lpips package (pip install lpips)"
    return unavailable_reason(backbone_file(net), f"lpips_{net} (LPIPS with the torchvision {net} backbone)")


def slice_state(slices: torch.nn.Module, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision ``features.N.*`` keys onto the lpips backbone's ``sliceK.N.*`` modules (the slices keep
    torchvision's layer indices as module names); classifier keys are dropped."""
    owner = {index: name for name, part in slices.named_children() for index, _ in part.named_children()}
    mapped = {}
    for key, value in features.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and parts[1] in owner:
            mapped[f"{owner[parts[1]]}.{parts[1]}.{parts[2]}"] = value
    return mapped


@cached_with_weights
def _build(net: str, device: str, weights: Path) -> torch.nn.Module:
    import lpips

    with warnings.catch_warnings():  # torchvision's deprecation notice for lpips's ``pretrained=False`` call
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    try:
        model.net.load_state_dict(slice_state(model.net, load_state_dict(weights)), strict=True)
    except RuntimeError as exc:
        raise BenchError(f"{weights} does not hold the torchvision {net} backbone LPIPS needs: {exc}") from exc
    return model.eval().requires_grad_(False).to(device)


def lpips_model(net: str, device: torch.device | str) -> torch.nn.Module:
    """The LPIPS network with backbone ``net`` ('alex' or 'vgg') on ``device``, built once."""
    weights = find_weights(backbone_file(net))
    if weights is None:
        raise BenchError(missing_message(backbone_file(net), f"lpips_{net}"))
    return _build(net, str(torch.device(device)), weights.resolve())


def lpips_distance(pred: torch.Tensor, target: torch.Tensor, *, net: str) -> torch.Tensor:
    """LPIPS v0.1 distance per image, shape (B,), float64: unit-normalized backbone activations of five layers,
    squared differences weighted by the learned linear heads, spatially averaged and summed over layers.
    0 = identical; lower is more similar."""
    model = lpips_model(net, pred.device)
    with torch.inference_mode():
        distance = model(pred.float() * 2 - 1, target.float() * 2 - 1)
    return distance.flatten().double()
