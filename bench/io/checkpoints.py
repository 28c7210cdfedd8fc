"""Checkpoints as safetensors files (never pickles), and content hashes of weights for provenance.

Every file written by :func:`save_state` stores the :func:`state_sha256` of its tensors in its metadata
(:data:`HASH_KEY`); :func:`load_state` recomputes it, so flipped bytes or a truncation are detected on load
instead of being used as cached weights. Files without the hash (weights from elsewhere) are read as they are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes
from colorbench.io import integrity

#: Metadata entry holding the sha256 of the tensors (:func:`state_sha256`).
HASH_KEY = "colorbench-state-sha256"


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over tensor names, dtypes, shapes and bytes, in name order: equal weights hash equal."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_state(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, object] | None = None) -> str:
    """Write ``state`` to a safetensors file atomically, its hash in the metadata; returns its :func:`state_sha256`."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    digest = state_sha256(tensors)
    atomic_write_bytes(path, save(tensors, metadata={"colorbench": json.dumps(metadata or {}, sort_keys=True),
                                                     HASH_KEY: digest}))
    return digest


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """The tensors and the :func:`save_state` metadata of a safetensors file, the stored hash checked; a missing,
    foreign (a pickle), truncated or altered file raises :class:`BenchError` naming it."""
    if not Path(path).is_file():
        raise BenchError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
        metadata = json.loads(header.get("colorbench", "{}"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BenchError(f"cannot read checkpoint {path} as safetensors: {exc}") from exc
    stored = header.get(HASH_KEY)
    if stored is not None and stored != state_sha256(state):
        raise BenchError(f"checkpoint {path} is corrupt: its tensors do not match the sha256 stored when it was "
                         "written")
    return state, metadata if isinstance(metadata, dict) else {}


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors checkpoint (:func:`read_checkpoint`), with a clear error for missing or foreign files."""
    return read_checkpoint(path)[0]


def cached_state(path: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, object]] | None:
    """:func:`read_checkpoint` of a cache entry: None when it is missing, or corrupt (reported, to be rewritten)."""
    if not Path(path).is_file():
        return None
    try:
        return read_checkpoint(path)
    except BenchError as exc:
        integrity.report_corrupt(kind, path, str(exc))
        return None


def read_metadata(path: Path) -> dict[str, object]:
    """The metadata that :func:`save_state` stored in a checkpoint (the header only; BenchError when unreadable)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = json.loads((handle.metadata() or {}).get("colorbench", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BenchError(f"cannot read the header of checkpoint {path}: {exc}") from exc
    return metadata if isinstance(metadata, dict) else {}


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` is a file with a readable safetensors header."""
    try:
        with safe_open(str(path), framework="pt"):
            return True
    except (SafetensorError, OSError, ValueError):
        return False


def check_readable(path: Path) -> None:
    """Raise :class:`BenchError` unless ``path`` is a file with a safetensors header (checked before a run starts,
    so that a missing file or a pickle passed as weights stops the command at once)."""
    if not Path(path).is_file():
        raise BenchError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError, ValueError) as exc:
        raise BenchError(f"{path} is not a safetensors file ({exc}); pickled checkpoints are refused, convert "
                         "them with safetensors.torch.save_file") from exc
