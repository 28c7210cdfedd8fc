"""Fixed, hashed splits and the split manifest.

A split is chosen by a deterministic rule on the image id, never by a random shuffle: every id gets the
rank key ``sha256("colorbench-split-v1:" + id)``, and a named quick subset keeps the N ids with the smallest
keys. Anyone holding the same COCO files therefore gets the same subset, subsets are nested (``val-100`` is
inside ``val-1k``), and adding images to a folder changes a subset only where the new keys rank first.

Split names: ``full`` (every image), or an optional prefix and a size, e.g. ``val-1k``, ``train-10k``, ``200``.

The manifest lists each selected original with the caption used, the sha256 of its file bytes and a status:
``ok``, or a reason it is left out of training and evaluation (``grayscale``: no colour ground truth;
``unreadable``: cannot be decoded; ``missing``: the file named by the annotations does not exist).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from bench.errors import BenchError
from bench.images import UnreadableImageError, atomic_write_bytes, check_original, file_sha256
from bench.sample import cache_root
from bench.sources import ImageRecord, ImageSource

SPLIT_SALT = "colorbench-split-v1:"
MANIFEST_COLUMNS = ("image_id", "file", "caption", "sha256", "status", "reason", "width", "height")
_SIZE = re.compile(r"^(?:[a-z][a-z0-9]*-)?(\d+)(k?)$")


def split_key(image_id: str) -> int:
    """The rank key of an image id: the first 8 bytes of sha256(salt + id) as an integer."""
    return int.from_bytes(hashlib.sha256((SPLIT_SALT + image_id).encode()).digest()[:8], "big")


def split_size(name: str) -> int | None:
    """Number of images a split name asks for; None for ``full``."""
    if name == "full":
        return None
    match = _SIZE.match(name)
    if not match or int(match.group(1)) == 0:
        raise BenchError(f"unknown split {name!r}: use 'full' or a size such as val-1k, train-10k or 200")
    return int(match.group(1)) * (1000 if match.group(2) else 1)


def select(records: list[ImageRecord], split: str) -> list[ImageRecord]:
    """Apply a split to a source's records; the result keeps the source's order."""
    size = split_size(split)
    if size is None or size >= len(records):
        return list(records)
    keep = {r.image_id for r in sorted(records, key=lambda r: split_key(r.image_id))[:size]}
    return [r for r in records if r.image_id in keep]


@dataclass(frozen=True)
class ManifestEntry:
    """One row of ``manifest.csv``."""

    image_id: str
    file: str
    caption: str
    sha256: str
    status: str
    reason: str
    width: int
    height: int
    path: Path

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Manifest:
    """The originals a run uses, in order, with their hashes and statuses."""

    source: str
    split: str
    entries: list[ManifestEntry]
    limit: int | None = None

    @property
    def usable(self) -> list[ManifestEntry]:
        return [e for e in self.entries if e.ok]

    @property
    def skipped(self) -> list[ManifestEntry]:
        return [e for e in self.entries if not e.ok]

    def csv_bytes(self) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for e in self.entries:
            writer.writerow([getattr(e, column) for column in MANIFEST_COLUMNS])
        return buffer.getvalue().encode()

    @property
    def sha256(self) -> str:
        """Hash of the manifest's CSV bytes: equal manifests (same files, captions, statuses) hash equal."""
        return hashlib.sha256(self.csv_bytes()).hexdigest()

    def write(self, path: Path) -> None:
        atomic_write_bytes(path, self.csv_bytes())

    def summary(self) -> dict[str, object]:
        statuses: dict[str, int] = {}
        for e in self.entries:
            statuses[e.status] = statuses.get(e.status, 0) + 1
        return {"source": self.source, "split": self.split, "limit": self.limit, "manifest_sha256": self.sha256,
                "n_listed": len(self.entries), "n_usable": len(self.usable), "statuses": statuses}


def _scan(record: ImageRecord) -> dict[str, object]:
    """Hash and check one original (the expensive part, cached by file size and mtime)."""
    if not record.path.is_file():
        return {"sha256": "", "status": "missing", "reason": f"file not found: {record.path}", "width": 0, "height": 0}
    sha = file_sha256(record.path)
    try:
        check = check_original(record.path)
    except UnreadableImageError as exc:
        return {"sha256": sha, "status": "unreadable", "reason": str(exc), "width": 0, "height": 0}
    return {"sha256": sha, **asdict(check)}


class ScanCache:
    """Scan results keyed by (absolute path, size, mtime_ns), so re-runs do not decode every original again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.rows: dict[str, dict[str, object]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.rows = {}

    @staticmethod
    def key(path: Path) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def save(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self.rows).encode())


def build_manifest(source: ImageSource, split: str, *, limit: int | None = None, progress: bool = True) -> Manifest:
    """Select ``split`` of ``source`` (then its first ``limit`` ids in hash order), hash and check each
    original, and return the manifest."""
    records = select(source.records(), split)
    if limit:
        records = select(records, str(limit))
    if not records:
        raise BenchError(f"source {source.spec} has no images")
    cache = ScanCache(cache_root() / "scans" / (hashlib.sha256(source.spec.encode()).hexdigest()[:16] + ".json"))
    keys = [ScanCache.key(r.path) for r in records]
    scans: dict[int, dict[str, object]] = {i: cache.rows[k] for i, k in enumerate(keys) if k in cache.rows}
    todo = [(i, r) for i, r in enumerate(records) if i not in scans]
    if todo:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(lambda item: _scan(item[1]), todo)
            for (i, _), scan in tqdm(zip(todo, results, strict=True), total=len(todo), desc=f"scan {source.spec}",
                                     disable=not progress, unit="img"):
                scans[i] = scan
                if keys[i] is not None and scan["status"] != "missing":
                    cache.rows[keys[i]] = scan
        cache.save()
    entries = [
        ManifestEntry(r.image_id, r.path.name, r.caption, str(s["sha256"]), str(s["status"]), str(s["reason"]),
                      int(s["width"]), int(s["height"]), r.path)  # type: ignore[call-overload]
        for r, s in ((r, scans[i]) for i, r in enumerate(records))
    ]
    return Manifest(source.spec, split, entries, limit)
