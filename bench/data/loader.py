"""From manifest entries to (L, ab, caption) batches.

Decoding and resizing (or reading the prepared input cache, :mod:`colorbench.data.prepared`) run in DataLoader workers
on
the CPU and yield uint8 tensors; the colour conversion
(:func:`to_batch`) runs batched on the target device. A file that fails to decode at load time is not a crash:
it is returned in ``Batch.failed`` so the runner can record the skip.

Fixed shapes (XLA compiles one graph per input shape): a loader made with ``pad=True`` fills every short batch (the
last one, one with failed files, or a pass smaller than a batch) up to ``batch_size`` rows by repeating its last
image, so every pass at that batch size runs one graph; the padding rows carry no image id and consumers read only
the first ``len(batch)`` rows.
Training loaders drop the last partial batch instead (``drop_last``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, TypeVar, final

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from colorbench.core.device import device_loader
from colorbench.data.color import luma_bt601, rgb_to_lab
from colorbench.data.prepared import PreparedStore
from colorbench.data.splits import ManifestEntry
from colorbench.io.images import UnreadableImageError, open_rgb, preprocess, to_tensor_u8

T = TypeVar("T")


@dataclass(frozen=True)
class Preprocess:
    """Working resolution and how originals are brought to it (paper Sec. 5: resize; Sec. 7.1: crop)."""

    size: int = 224
    mode: str = "resize"

    def as_dict(self) -> dict[str, object]:
        return {"size": self.size, "mode": self.mode}


@dataclass
class Batch:
    """A batch of originals at the working size, ground truth and grey inputs together.

    Models read only the inputs they declare (``L``, ``luma``, ``caption``); ``rgb``/``ab`` are ground truth
    for training, fitting and scoring. Tensors (and ``captions``) may hold padding rows after the ``len(batch)``
    real images (a loader made with ``pad=True``); :attr:`rows` counts them all.
    """

    image_ids: list[str]
    captions: list[str]
    rgb_u8: torch.Tensor  # (B, 3, H, W) uint8, the ground truth as scored
    rgb: torch.Tensor  # (B, 3, H, W) float in [0, 1]
    L: torch.Tensor  # (B, 1, H, W) Lab lightness in [0, 100]
    ab: torch.Tensor  # (B, 2, H, W) Lab chroma, roughly [-128, 127]
    luma: torch.Tensor  # (B, 1, H, W) BT.601 luma in [0, 1]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image_id, reason) decoded badly

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def rows(self) -> int:
        """Rows of the tensors: the real images and any padding after them."""
        return len(self.rgb_u8)

    def inputs_for(self, names: tuple[str, ...]) -> ModelInputs:
        """The model's view of this batch (padding rows included): only the inputs its registry entry declares."""
        fields = {"L": self.L, "luma": self.luma, "caption": self.captions, "ab": self.ab}
        return ModelInputs({name: fields[name] for name in names}, self.rows)


class ModelInputs:
    """What a model may read at prediction time. Reading an input the model did not declare is an error, so
    a registry entry's ``inputs`` is a guarantee, not a comment."""

    def __init__(self, values: dict[str, object], size: int) -> None:
        self._values = values
        self.size = size

    def _get(self, name: str) -> object:
        if name not in self._values:
            raise KeyError(f"model read input {name!r} but declares only {sorted(self._values)} in the registry")
        return self._values[name]

    @property
    def L(self) -> torch.Tensor:  # noqa: N802  (the Lab channel's name)
        """Lab lightness, (B, 1, H, W) in [0, 100]."""
        return self._get("L")  # type: ignore[return-value]

    @property
    def luma(self) -> torch.Tensor:
        """BT.601 luma, (B, 1, H, W) in [0, 1]."""
        return self._get("luma")  # type: ignore[return-value]

    @property
    def captions(self) -> list[str]:
        return self._get("caption")  # type: ignore[return-value]

    @property
    def ab(self) -> torch.Tensor:
        """Ground-truth chroma, for reference models only."""
        return self._get("ab")  # type: ignore[return-value]


@final
class DecodedItem(TypedDict):
    """A dataset item whose original was read: its pixels at the working size, (3, H, W) uint8."""

    image_id: str
    caption: str
    rgb_u8: torch.Tensor


@final
class FailedItem(TypedDict):
    """A dataset item whose original could not be read, and why (it becomes a skip record). Both item types are
    final, so that a check for the ``error`` key tells them apart."""

    image_id: str
    error: str


class RawBatch(TypedDict):
    """What :func:`collate` makes of a list of items, on the CPU: the input of :func:`to_batch`."""

    image_ids: list[str]
    captions: list[str]
    rgb_u8: torch.Tensor
    failed: list[tuple[str, str]]


class OriginalsDataset(Dataset[DecodedItem | FailedItem]):
    """Originals listed in a manifest at the working size; items are plain dicts for collation. Pixels come from
    the prepared input cache (:mod:`colorbench.data.prepared`) when it holds the original's pixels key, else from
    decoding the file; both give the same bytes. A file whose bytes no longer hash to the manifest's sha256 fails
    (:class:`colorbench.io.images.ChangedFileError`): nothing is ever derived from bytes the manifest did not hash."""

    def __init__(self, entries: Sequence[ManifestEntry], preprocess_cfg: Preprocess) -> None:
        self.entries = list(entries)
        self.cfg = preprocess_cfg
        self.prepared = PreparedStore.find(preprocess_cfg.size, preprocess_cfg.mode)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> DecodedItem | FailedItem:
        entry = self.entries[index]
        pixels = self.prepared.pixels(entry.pixels_key) if self.prepared is not None else None
        if pixels is None:
            try:
                image, _ = open_rgb(entry.path, entry.sha256)  # refuses bytes other than the manifest's
            except UnreadableImageError as exc:
                return {"image_id": entry.image_id, "error": str(exc)}
            pixels = to_tensor_u8(preprocess(image, self.cfg.size, self.cfg.mode))
        return {"image_id": entry.image_id, "caption": entry.caption, "rgb_u8": pixels}


def repeat_last(items: Sequence[T], rows: int) -> list[T]:
    """``items`` followed by copies of the last one up to ``rows`` (the module's padding rule for fixed shapes);
    unchanged when they already fill ``rows`` or are empty."""
    return [*items, *list(items[-1:]) * (rows - len(items))]


def collate(items: list[DecodedItem | FailedItem], pad_to: int = 0) -> RawBatch:
    """Stack the decoded items; failed ones go to ``failed``. With ``pad_to``, a non-empty short batch is filled
    to ``pad_to`` rows (pixels and captions) by repeating its last image; ``image_ids`` lists the real ones."""
    good = [i for i in items if "error" not in i]
    rows = repeat_last(good, pad_to)
    return {
        "image_ids": [i["image_id"] for i in good],
        "captions": [i["caption"] for i in rows],
        # numpy's stack, a plain copy: torch.stack of uint8 images was a measurable cost per image (docs/performance.md)
        "rgb_u8": torch.from_numpy(np.stack([i["rgb_u8"].numpy() for i in rows])) if rows
        else torch.empty(0, 3, 0, 0, dtype=torch.uint8),
        "failed": [(i["image_id"], i["error"]) for i in items if "error" in i],
    }


def to_batch(raw: RawBatch, device: torch.device) -> Batch:
    """Move a collated uint8 batch to ``device`` and derive float RGB, Lab and luma there."""
    rgb_u8 = raw["rgb_u8"].to(device, non_blocking=True)
    rgb = rgb_u8.float() / 255
    lab = rgb_to_lab(rgb)
    return Batch(
        image_ids=list(raw["image_ids"]),
        captions=list(raw["captions"]),
        rgb_u8=rgb_u8, rgb=rgb, L=lab[:, :1], ab=lab[:, 1:], luma=luma_bt601(rgb),
        failed=list(raw["failed"]),
    )


def make_loader(
    entries: Sequence[ManifestEntry],
    preprocess_cfg: Preprocess,
    *,
    batch_size: int,
    workers: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
    pad: bool = False,
) -> DataLoader:
    """A DataLoader over manifest entries; with ``distributed`` each rank gets its own shard. ``pad``: every
    batch has ``batch_size`` rows (see the module's docstring), for fixed-shape devices."""
    dataset = OriginalsDataset(entries, preprocess_cfg)
    sampler: DistributedSampler[int] | None = (
        DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last) if distributed else None)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=functools.partial(collate, pad_to=batch_size if pad else 0),
        drop_last=drop_last,
        generator=generator,
        persistent_workers=workers > 0,
    )


def iterate_batches(loader: DataLoader, device: torch.device) -> Iterator[Batch]:
    """Yield device batches from a loader, including those whose every file failed (for the skip records). On
    XLA the uint8 pixels are copied to the device by torch-xla's parallel loader, ahead of the step that reads
    them (:func:`colorbench.core.device.device_loader`)."""
    for raw in device_loader(loader, device):
        yield to_batch(raw, device)
