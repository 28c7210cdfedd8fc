"""The prepared input cache (``python -m bench data prepare``): every original decoded, checked, brought to the
working size and converted to uint8 RGB once, stored in fixed-shape memory-mapped numpy shards.

Layout, under ``$COLORBENCH_CACHE/prepared/<size>-<resize mode>-v1/`` (default ``~/.cache/colorbench``)::

    shard-00000.npy    uint8 array (N, 3, size, size): the preprocessed RGB of N originals
    shard-00000.json   one row per array row: pixels key of the original, image id, caption, checksum of the row
    manifests/*.csv    the split manifest of each prepared source (colorbench.data.splits.MANIFEST_COLUMNS)

Originals are keyed by their pixels key (:attr:`colorbench.data.splits.ManifestEntry.pixels_key`: the sha256 of
the file, plus the image rule's tokens where the rule changed the file), so any source or split holding the same
file shares its entry, and a changed file, or one the image rule now reads differently, is simply not found. The
row field is named ``sha256`` as in shards written before the image rule: for a file the rule leaves alone the
pixels key is its sha256, so those rows stay valid. The original is decoded from bytes checked against the
manifest's sha256. A shard is complete when its ``.json``
exists: the array is written first, each file through a temporary name and a rename, so an interrupted prepare
resumes with the originals not yet in a complete shard. Each row's checksum (CRC-32 of its bytes) is checked
when it is read; a row that fails is not used (the loader decodes the original instead and warns once) and
``prepare`` writes it again.

:class:`colorbench.data.loader.OriginalsDataset` reads from here whenever the cache for the run's size and mode holds an
image, so training, fitting, prediction and the ground truth that scoring reads get exactly the pixels the raw
path (decode + :func:`colorbench.io.images.preprocess`) gives (tests/test_prepared.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from colorbench.core.files import atomic_write, atomic_write_bytes
from colorbench.data.sample import cache_root
from colorbench.data.splits import Manifest, ManifestEntry
from colorbench.io.images import UnreadableImageError, open_rgb, preprocess, to_tensor_u8

logger = logging.getLogger(__name__)

FORMAT_VERSION = "v1"
#: Originals per shard (about 150 MB at 224x224).
SHARD_IMAGES = 1024


def store_dir(size: int, mode: str) -> Path:
    return cache_root() / "prepared" / f"{size}-{mode}-{FORMAT_VERSION}"


def checksum(pixels: np.ndarray) -> str:
    """CRC-32 of a row's bytes: catches damaged or truncated shards (not tampering) at over 1 GB/s."""
    return f"{zlib.crc32(np.ascontiguousarray(pixels).data):08x}"


@dataclass(frozen=True)
class Slot:
    """Where one original's pixels are: a shard's array file and row, and the row's checksum."""

    shard: Path
    row: int
    checksum: str


@functools.cache
def _array(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def close_shards() -> None:
    """Drop the memory maps of the shards read so far (colorbench.pipeline.outputs.per_run calls it when a run ends: a
    shard
    rewritten by a later ``data prepare`` is then mapped afresh, and no map outlives the run)."""
    _array.cache_clear()


class PreparedStore:
    """The shards of one (size, resize mode): a lookup from an original's file sha256 to its pixels."""

    def __init__(self, folder: Path) -> None:
        """Read the index of every complete shard (a row's ``sha256`` field holds its pixels key)."""
        self.folder = folder
        self.slots: dict[str, Slot] = {}
        for index in sorted(folder.glob("shard-*.json")):
            for row, item in enumerate(json.loads(index.read_text())):
                self.slots[item["sha256"]] = Slot(index.with_suffix(".npy"), row, item["checksum"])
        self._warned = False

    @classmethod
    def find(cls, size: int, mode: str) -> PreparedStore | None:
        """The store for this size and mode when one has been prepared, else None."""
        folder = store_dir(size, mode)
        return cls(folder) if any(folder.glob("shard-*.json")) else None

    def verified(self, key: str) -> np.ndarray | bool | None:
        """The row of the original with pixels key ``key`` (a copy) when present and matching its checksum, False
        when present but damaged, None when absent."""
        slot = self.slots.get(key)
        if slot is None:
            return None
        try:
            pixels = np.array(_array(slot.shard)[slot.row])
        except (OSError, ValueError, IndexError):
            return False
        return pixels if checksum(pixels) == slot.checksum else False

    def pixels(self, key: str) -> torch.Tensor | None:
        """The preprocessed uint8 RGB (3, size, size) of the original with pixels key ``key``, or None when absent
        or failing its checksum."""
        pixels = self.verified(key)
        if pixels is None:
            return None
        if pixels is False:
            slot = self.slots[key]
            if not self._warned:
                logger.warning("prepared cache %s row %d fails its checksum: decoding originals instead (run `bench "
                               "data prepare` again to mend it)", slot.shard, slot.row)
                self._warned = True
            return None
        return torch.from_numpy(pixels)

    def next_shard(self) -> Path:
        taken = [int(p.stem.split("-")[1]) for p in self.folder.glob("shard-*.json")]
        return self.folder / f"shard-{max(taken, default=-1) + 1:05d}.npy"


def _save_array(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file and a rename (large arrays: no copy in memory), with the permissions of
    a plain ``open`` (the umask decides, as for every other cache file)."""
    atomic_write(path, lambda handle: np.save(handle, array))


@dataclass
class PrepareSummary:
    folder: Path
    prepared: int = 0
    already: int = 0
    unreadable: int = 0
    not_usable: int = 0

    def line(self) -> str:
        return (f"prepared {self.prepared} originals, {self.already} already there, {self.unreadable} unreadable, "
                f"{self.not_usable} not usable (see the manifest) in {self.folder}")


def prepare(manifest: Manifest, size: int, mode: str, *, progress: bool = True,
            shard_images: int = SHARD_IMAGES) -> PrepareSummary:
    """Add every usable original of ``manifest`` that the store lacks (or holds with a bad checksum)."""
    folder = store_dir(size, mode)
    folder.mkdir(parents=True, exist_ok=True)
    manifest.write(folder / "manifests" / f"{hashlib.sha256(manifest.source.encode()).hexdigest()[:16]}-"
                   f"{manifest.split}-{manifest.limit or 'all'}.csv")
    for orphan in folder.glob("shard-*.npy"):
        if not orphan.with_suffix(".json").is_file():  # an interrupted shard: its originals are prepared again
            orphan.unlink()
    store = PreparedStore(folder)
    summary = PrepareSummary(folder, not_usable=len(manifest.entries) - len(manifest.usable))
    todo: list[ManifestEntry] = []
    for entry in manifest.usable:
        if isinstance(store.verified(entry.pixels_key), np.ndarray):
            summary.already += 1
        elif entry.pixels_key not in {e.pixels_key for e in todo}:
            todo.append(entry)
    def load(entry: ManifestEntry) -> np.ndarray | str:
        try:
            image, _ = open_rgb(entry.path, entry.sha256)
        except UnreadableImageError as exc:
            return str(exc)
        return to_tensor_u8(preprocess(image, size, mode)).numpy()

    with ThreadPoolExecutor(max_workers=4) as pool, tqdm(total=len(todo), desc=f"prepare {size}x{size} {mode}",
                                                          unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), shard_images):
            rows, arrays = [], []
            chunk = todo[start:start + shard_images]
            for entry, pixels in zip(chunk, pool.map(load, chunk), strict=True):
                bar.update(1)
                if isinstance(pixels, str):
                    logger.warning("skipped %s: %s", entry.image_id, pixels)
                    summary.unreadable += 1
                    continue
                arrays.append(pixels)
                rows.append({"sha256": entry.pixels_key, "image_id": entry.image_id, "caption": entry.caption,
                             "checksum": checksum(pixels)})
            if rows:
                shard = store.next_shard()
                _save_array(shard, np.stack(arrays))
                atomic_write_bytes(shard.with_suffix(".json"), json.dumps(rows).encode())
                summary.prepared += len(rows)
    return summary
