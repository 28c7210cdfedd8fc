"""The authors' released weight files that registry entries load as they are (``--weights NAME=FILE``, or the
file under its release name in a ``--weights-dir`` folder): evaluated like any model, never trained further,
their run.json provenance records the file's sha256 and ``pretrained: authors' release``.

- ``chromagan``: ``my_model_colorization.h5``, the authors' Keras model (models/chromagan_keras.py);
- ``zhang-eccv16``: ``colorization_release_v2-9b330a0b.pth``, a PyTorch state dict read with
  ``torch.load(weights_only=True)`` only (models/zhang_release.py);
- ``zhang-siggraph17``: ``siggraph17-df00044c.pth``, the same way, evaluated with no hints (its automatic mode,
  models/zhang_siggraph17.py).

Any other file given with ``--weights`` is one of colorbench's safetensors checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from colorbench.core.errors import BenchError
from colorbench.io.checkpoints import check_readable, is_safetensors
from colorbench.io.keras_h5 import is_hdf5
from colorbench.io.weights import find_weights
from colorbench.models import chromagan_keras, zhang, zhang_release, zhang_siggraph17
from colorbench.models.base import Colorizer


@dataclass(frozen=True)
class Release:
    """One released file: the model it fits, its file name, where the authors publish it, whether a file is in
    its format, a check that reads only what it must (run before anything else runs) and the loader."""

    model: str
    file_name: str
    urls: tuple[str, ...]
    in_format: Callable[[Path], bool]
    check: Callable[[Path], None]
    load: Callable[[Path], Colorizer]


def _torch_file(path: Path) -> bool:
    """A file that is neither safetensors nor HDF5: read as a PyTorch file, with the restricted unpickler only."""
    return not is_hdf5(path) and not is_safetensors(path)


RELEASES = {release.model: release for release in (
    Release("chromagan", chromagan_keras.RELEASE_FILE, chromagan_keras.RELEASE_URLS, is_hdf5,
            chromagan_keras.check_release, chromagan_keras.chromagan_from_release),
    Release("zhang-eccv16", zhang.RELEASE_FILE, (zhang_release.ECCV16_URL,), _torch_file,
            zhang_release.check_eccv16, zhang_release.eccv16_from_release),
    Release("zhang-siggraph17", zhang_siggraph17.RELEASE_FILE, (zhang_siggraph17.RELEASE_URL,), _torch_file,
            zhang_siggraph17.check_release, zhang_siggraph17.siggraph17_from_release),
)}


def release_for(model: str, path: Path) -> Release | None:
    """The release that ``model`` reads ``path`` as, None when the file is to be read as a safetensors checkpoint."""
    release = RELEASES.get(model)
    return release if release is not None and release.in_format(path) else None


def check_weights_file(model: str, path: Path) -> None:
    """Before a run: a release file must fit its model (one line naming the first layer that does not), any
    other file must be a readable safetensors checkpoint."""
    if not path.is_file():
        raise BenchError(f"weights file not found: {path}")
    release = release_for(model, path)
    if release is not None:
        release.check(path)
    else:
        check_readable(path)


def releases_found(models: Sequence[str], given: Sequence[str]) -> dict[str, Path]:
    """{model: path} of the models run, not given ``--weights``, whose release file is in the weights folders
    (colorbench.io.weights), each checked to fit."""
    found: dict[str, Path] = {}
    for model in models:
        release = RELEASES.get(model)
        path = find_weights(release.file_name) if release is not None and model not in given else None
        if path is not None:
            check_weights_file(model, path)
            found[model] = path
    return found
