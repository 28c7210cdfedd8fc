"""Zhang et al.'s ECCV16 release file (``colorization_release_v2-9b330a0b.pth``, published with their PyTorch
colorizers) as a ``--weights`` or ``--weights-dir`` file (models/releases.py): read with
``torch.load(weights_only=True)`` only (the file is a pickle), its keys mapped by
:func:`colorbench.models.zhang.from_release` and checked against :class:`~colorbench.models.zhang.ZhangNet` at the
release's width before anything runs; the loaded model is evaluated as it is, at the paper profile's 224 px.
"""

from __future__ import annotations

from pathlib import Path

import torch

from colorbench.core.errors import BenchError
from colorbench.io.weights import load_state_dict
from colorbench.models.trainable import profile_settings
from colorbench.models.zhang import PROFILES, ZhangColorizer, ZhangNet, ab_bins, from_release

ECCV16_URL = "https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth"


def release_key(key: str) -> str:
    """ZhangNet's state-dict key -> the release's (``stages.0.0.weight`` -> ``model1.0.weight``,
    ``decoder.6.bias`` -> ``model8.6.bias``)."""
    head, _, rest = key.partition(".")
    if head == "decoder":
        return f"model8.{rest}"
    index, _, rest = rest.partition(".")
    return f"model{int(index) + 1}.{rest}"


def checked_eccv16_state(path: Path) -> dict[str, torch.Tensor]:
    """The release's tensors under ZhangNet's names, checked: a refusal names the first release key missing or
    of another shape than the ECCV16 network's, in the network's order."""
    mapped = from_release(load_state_dict(path), ab_bins())
    with torch.device("meta"):
        wanted = {key: tuple(value.shape) for key, value in ZhangNet(1.0, len(ab_bins())).state_dict().items()
                  if not key.endswith("num_batches_tracked")}
    for key, shape in wanted.items():
        if key not in mapped:
            raise BenchError(f"{path} does not fit zhang-eccv16: it has no {release_key(key)}")
        if tuple(mapped[key].shape) != shape:
            raise BenchError(f"{path} does not fit zhang-eccv16: {release_key(key)} has shape "
                             f"{tuple(mapped[key].shape)}, the ECCV16 network needs {shape}")
    extra = sorted(set(mapped) - set(wanted) - {k for k in mapped if k.endswith("num_batches_tracked")})
    if extra:
        raise BenchError(f"{path} does not fit zhang-eccv16: {release_key(extra[0])} is not one of its layers")
    return mapped


def check_eccv16(path: Path) -> None:
    checked_eccv16_state(path)


def eccv16_from_release(path: Path) -> ZhangColorizer:
    """``zhang-eccv16`` at the paper profile with the release's weights as its final weights."""
    mapped = checked_eccv16_state(path)
    model = ZhangColorizer(profile_settings(PROFILES, "paper"), init="scratch")
    model.net.load_state_dict(mapped, strict=False)
    model.init, model.pretrained = "release", True
    return model

