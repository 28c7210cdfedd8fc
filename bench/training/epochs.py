"""What a training keeps on disk as it goes: epoch checkpoints of every trained module and optimiser, and the
append-only CSV logs (``steps.csv``, ``epochs.csv``) that a resumed run truncates to its last complete epoch."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.core.files import append_bytes, atomic_write_bytes
from colorbench.core.values import integer
from colorbench.io import integrity
from colorbench.io.checkpoints import load_state, read_metadata, save_state


@dataclass
class TrainState:
    """The trained state of a model: its modules and optimisers by name (models/trainable.py), on ``device``."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    device: torch.device

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, object]]:
        """(weights, optimizer tensors, optimizer scalars) for an epoch checkpoint."""
        weights = {f"{name}.{k}": v for name, module in self.modules.items() for k, v in module.state_dict().items()}
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, object] = {}
        for name, optimizer in self.optimizers.items():
            state = optimizer.state_dict()
            scalars[name] = {"param_groups": state["param_groups"], "scalars": {}}
            for index, slots in state["state"].items():
                for slot, value in slots.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"{name}.{index}.{slot}"] = value
                    else:
                        scalars[name]["scalars"][f"{index}.{slot}"] = value  # type: ignore[index]
        return weights, tensors, scalars

    def load(self, weights: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor],
             scalars: dict[str, object]) -> None:
        for name, module in self.modules.items():
            module.load_state_dict({k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(f"{name}.")})
        for name, optimizer in self.optimizers.items():
            saved = scalars[name]
            state: dict[int, dict[str, object]] = {}
            for key, value in tensors.items():
                owner, index, slot = key.split(".", 2)
                if owner == name:
                    state.setdefault(int(index), {})[slot] = value.to(self.device)
            for key, value in saved["scalars"].items():  # type: ignore[index]
                index, slot = key.split(".", 1)
                state.setdefault(int(index), {})[slot] = value
            groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
                      for group in saved["param_groups"]]  # type: ignore[index]  # JSON turned tuples into lists
            optimizer.load_state_dict({"state": state, "param_groups": groups})

    def size_bytes(self) -> int:
        """Expected size of one epoch checkpoint: the weights, plus Adam's two moments of every parameter."""
        weights = sum(t.numel() * t.element_size() for m in self.modules.values() for t in m.state_dict().values())
        moments = sum(2 * p.numel() * p.element_size() for m in self.modules.values() for p in m.parameters())
        return weights + moments


class CsvLog:
    """An append-only CSV whose rows carry an ``epoch``; opening it drops rows of epochs not yet completed
    (a resumed run rewrites them)."""

    def __init__(self, path: Path, columns: Sequence[str], completed_epochs: int, enabled: bool = True) -> None:
        self.path, self.columns, self.enabled = path, list(columns), enabled
        if not enabled:
            return
        kept: list[dict[str, str]] = []
        if path.is_file() and completed_epochs:
            with path.open(newline="") as handle:
                kept = [r for r in csv.DictReader(handle) if int(r["epoch"]) <= completed_epochs]
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, text.getvalue().encode())

    def append(self, row: dict[str, object]) -> None:
        if self.enabled:
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(["" if row.get(c) is None else row[c] for c in self.columns])
            append_bytes(self.path, text.getvalue().encode())


@dataclass
class Checkpoints:
    """Epoch checkpoints of one training folder: ``epoch-NNN.safetensors`` (weights, written last, so its presence
    marks a complete checkpoint) + ``epoch-NNN.optim.safetensors`` + ``epoch-NNN.optim.json`` (with a checksum).

    ``key``: the resume key (colorbench.core.cachekey) a checkpoint must carry to be resumed from. ``keep_last``
    (``--keep-checkpoints``): how many of the last epochs keep their weights once the training has finished. While
    it runs, the last ``max(keep_last, 1)`` complete checkpoints stay (the latest is what a resume needs); once the
    final weights are written, :meth:`finish` deletes every optimizer state and all but the last ``keep_last``
    epochs' weights (a ``paper`` ChromaGAN epoch is 2 GB, its optimizer state twice its weights). None keeps every
    epoch's checkpoint in full, so that a longer ``--epochs`` run can continue a finished one."""

    folder: Path
    key: str = ""
    keep_last: int | None = None

    def paths(self, epoch: int) -> tuple[Path, Path, Path]:
        stem = self.folder / f"epoch-{epoch:03d}"
        return stem.with_suffix(".safetensors"), stem.with_suffix(".optim.safetensors"), stem.with_suffix(".optim.json")

    def save(self, epoch: int, state: TrainState, extra: dict[str, object]) -> None:
        weights_path, tensors_path, json_path = self.paths(epoch)
        weights, tensors, scalars = state.state()
        save_state(tensors_path, tensors, {"epoch": epoch})
        integrity.write_sealed_json(json_path, {"epoch": epoch, "optimizers": scalars, **extra})
        save_state(weights_path, weights, {"key": self.key, "epoch": epoch})

    def epochs(self) -> list[int]:
        """Epochs with a complete checkpoint written under this key, latest first."""
        found = []
        for path in sorted(self.folder.glob("epoch-[0-9][0-9][0-9].safetensors"), reverse=True):
            epoch = int(path.stem.split("-")[1])
            if not all(p.is_file() for p in self.paths(epoch)):
                continue
            try:
                if read_metadata(path).get("key") == self.key:
                    found.append(epoch)
            except BenchError as exc:
                integrity.report_corrupt("epoch checkpoint", path, str(exc))
                self.remove(epoch)
        return found

    def latest(self) -> int:
        """The last complete epoch checkpoint written under this key (0 when none)."""
        return next(iter(self.epochs()), 0)

    def load(self, epoch: int, state: TrainState) -> dict[str, object]:
        """Restore ``state`` from an epoch checkpoint; a corrupt one raises BenchError."""
        weights_path, tensors_path, json_path = self.paths(epoch)
        extra = integrity.read_sealed_json(json_path, "optimizer state")
        if extra is None:
            raise BenchError(f"optimizer state {json_path} is corrupt")
        state.load(load_state(weights_path), load_state(tensors_path), extra.pop("optimizers"))  # type: ignore[arg-type]
        return extra

    def restore(self, state: TrainState) -> tuple[int, list[dict[str, object]]]:
        """Resume from the latest intact checkpoint (a corrupt one is reported, deleted and the one before
        tried); returns (its epoch, the history so far), or (0, []) to start over."""
        for epoch in self.epochs():
            try:
                return epoch, list(self.load(epoch, state)["history"])  # type: ignore[call-overload]
            except BenchError as exc:
                integrity.report_corrupt("epoch checkpoint", self.paths(epoch)[0], str(exc))
                self.remove(epoch)
        return 0, []

    def remove(self, epoch: int) -> None:
        for path in self.paths(epoch):
            path.unlink(missing_ok=True)

    def prune(self, history: Sequence[dict[str, object]]) -> None:
        """During training: delete the checkpoints older than the last ``max(keep_last, 1)`` epochs of ``history``."""
        if self.keep_last is None:
            return
        finished = [integer(r["epoch"]) for r in history]
        for epoch in finished[:-max(self.keep_last, 1)]:
            self.remove(epoch)

    def finish(self) -> None:
        """Once the final weights are written: delete every optimizer state, and the weights of all but the last
        ``keep_last`` epochs (nothing when ``keep_last`` is None). Also run when a finished training is reused, so
        that a folder written with a larger ``keep_last`` shrinks to this one."""
        if self.keep_last is None:
            return
        weights = sorted(self.folder.glob("epoch-[0-9][0-9][0-9].safetensors"))
        for path in weights[:len(weights) - self.keep_last]:
            path.unlink()
        for path in self.folder.glob("epoch-[0-9][0-9][0-9].optim.*"):
            path.unlink()

    def clear(self) -> None:
        for path in self.folder.glob("epoch-*"):
            path.unlink()
