"""Checkpoints as safetensors files (never pickles), and content hashes of weights for provenance."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from bench.errors import BenchError


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over tensor names, dtypes, shapes and bytes, in name order: equal weights hash equal."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_state(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, object] | None = None) -> str:
    """Write ``state`` to a safetensors file atomically; returns its :func:`state_sha256`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"colorbench": json.dumps(metadata or {}, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return state_sha256(tensors)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors checkpoint, with a clear error for missing or foreign files."""
    if not Path(path).is_file():
        raise BenchError(f"checkpoint not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BenchError(f"cannot read checkpoint {path} as safetensors: {exc}") from exc


def read_metadata(path: Path) -> dict[str, object]:
    """The metadata that :func:`save_state` stored in a checkpoint."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("colorbench", "{}"))
