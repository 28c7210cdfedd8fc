"""Fixed, hashed splits and the split manifest.

A split is chosen by a deterministic rule on the image id, never by a random shuffle: every id gets the
rank key ``sha256("colorbench-split-v1:" + id)``, and a named quick subset keeps the N ids with the smallest
keys. Anyone holding the same COCO files therefore gets the same subset, subsets are nested (``val-100`` is
inside ``val-1k``), and adding images to a folder changes a subset only where the new keys rank first.

Split names: ``full`` (every image), or an optional prefix and a size, e.g. ``val-1k``, ``train-10k``, ``200``.

The manifest lists each selected original with the caption used, the sha256 of its file bytes and a status:
``ok``, or a reason it is left out of training and evaluation (``grayscale``: no colour ground truth;
``unreadable``: cannot be read or decoded; ``too_large``: more pixels than the decompression-bomb guard allows;
``missing``: the file named by the annotations does not exist; ``refused``: the source refused it unread, see
:mod:`colorbench.data.sources`: a path outside the root, an unsafe or duplicate id).

``decoding`` lists what the image rule (:mod:`colorbench.io.image_rule`: EXIF orientation, alpha over white, ICC
to sRGB) changed in the file, "" for nothing; with the sha256 it makes :attr:`ManifestEntry.pixels_key`, the key of
the pixels every derived artefact (ground truth, inputs, predictions, records, training caches) is tagged with.
The column is written only when the rule changed some file of the manifest (:attr:`Manifest.columns`).

The sha256 is always computed from the file's bytes on every run (a file rewritten with its size and mtime kept,
``cp -p`` or ``touch -r``, still gets its true hash); only the decode and grey check are cached, by that hash.
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

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes, file_sha256
from colorbench.core.paths import printable, text_bytes
from colorbench.core.values import integer
from colorbench.data.sample import cache_root
from colorbench.data.sources import ImageRecord, ImageSource
from colorbench.io.image_rule import IMAGE_RULE_VERSION
from colorbench.io.images import UnreadableImageError, check_original

SPLIT_SALT = "colorbench-split-v1:"
MANIFEST_COLUMNS = ("image_id", "file", "caption", "sha256", "status", "reason", "width", "height", "decoding")
#: The columns of manifests written before the image rule: a manifest whose files the rule leaves alone is written
#: and hashed in these only (:attr:`Manifest.columns`), so its file, its hash and the keys made from it stay as
#: they were.
LEGACY_COLUMNS = MANIFEST_COLUMNS[:-1]
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
    decoding: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def pixels_key(self) -> str:
        """The identity of the pixels this original yields: the file's sha256, followed by the image rule's
        version and tokens when the rule changed the file (so such files get keys of their own)."""
        return f"{self.sha256}+rule{IMAGE_RULE_VERSION}:{self.decoding}" if self.decoding else self.sha256


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

    def csv_bytes(self, columns: tuple[str, ...] | None = None) -> bytes:
        """The manifest as CSV, in ``columns`` (default :attr:`columns`)."""
        columns = self.columns if columns is None else columns
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for e in self.entries:
            writer.writerow([getattr(e, column) for column in columns])
        return buffer.getvalue().encode("utf-8", "backslashreplace")  # no lone surrogate can crash a write

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns written and hashed: while the image rule changed no file, the ``decoding`` column is left
        out (:data:`LEGACY_COLUMNS`), so such a manifest's file, hash and the keys made from it stay as they were."""
        return MANIFEST_COLUMNS if any(e.decoding for e in self.entries) else LEGACY_COLUMNS

    @property
    def sha256(self) -> str:
        """Hash of the manifest's CSV bytes as written (manifest.csv): equal manifests (same files, captions,
        statuses) hash equal."""
        return hashlib.sha256(self.csv_bytes()).hexdigest()

    def write(self, path: Path) -> None:
        atomic_write_bytes(path, self.csv_bytes())

    def summary(self) -> dict[str, object]:
        statuses: dict[str, int] = {}
        for e in self.entries:
            statuses[e.status] = statuses.get(e.status, 0) + 1
        return {"source": self.source, "split": self.split, "limit": self.limit, "manifest_sha256": self.sha256,
                "n_listed": len(self.entries), "n_usable": len(self.usable), "statuses": statuses}


#: Part of every scan-cache key: bump when the grey check or the size guard changes.
SCAN_VERSION = "scan-v3"
SCAN_STATUSES = ("ok", "grayscale", "unreadable", "too_large")


def _unread(status: str, reason: str, sha: str = "") -> dict[str, object]:
    return {"sha256": sha, "status": status, "reason": reason, "width": 0, "height": 0, "decoding": ""}


def _scan(record: ImageRecord, cache: ScanCache) -> tuple[str | None, dict[str, object]]:
    """Hash one original and check it, unless the cache holds the check of these exact bytes at this path;
    returns the cache key of a fresh check (None when the cached one was used or nothing was decoded)."""
    if record.refused:
        return None, _unread("refused", record.refused)
    if not record.path.is_file():
        return None, _unread("missing", f"file not found: {printable(str(record.path))}")
    try:
        sha = file_sha256(record.path)
    except OSError as exc:
        return None, _unread("unreadable", f"cannot read {printable(str(record.path))}: {exc.strerror or exc}")
    key = ScanCache.key(record.path, sha)
    if key in cache.rows:
        return None, {"sha256": sha, **cache.rows[key]}
    try:
        return key, {"sha256": sha, **asdict(check_original(record.path))}
    except UnreadableImageError as exc:
        return key, _unread(exc.status, str(exc), sha)


class ScanCache:
    """Grey-check results keyed by (scan version, absolute path, sha256 of the bytes), so a rerun decodes no
    original again while every hash in the manifest is computed from the file as it is now. Rows that do not
    have the expected fields and types (a hand-edited or damaged cache) are dropped and recomputed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):
            rows = {}
        self.rows: dict[str, dict[str, object]] = {
            key: row for key, row in (rows.items() if isinstance(rows, dict) else []) if _valid_row(row)}

    @staticmethod
    def key(path: Path, sha: str) -> str:
        return f"{SCAN_VERSION}|{path.resolve()}|{sha}"

    def save(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self.rows).encode())


def _valid_row(row: object) -> bool:
    return (isinstance(row, dict) and set(row) == {"status", "reason", "width", "height", "decoding"}
            and row["status"] in SCAN_STATUSES and isinstance(row["reason"], str) and isinstance(row["decoding"], str)
            and all(isinstance(row[k], int) and row[k] >= 0 for k in ("width", "height")))


def build_manifest(source: ImageSource, split: str, *, limit: int | None = None, progress: bool = True) -> Manifest:
    """Select ``split`` of ``source`` (then its first ``limit`` ids in hash order), hash and check each
    original, and return the manifest."""
    records = select(source.records(), split)
    if limit:
        records = select(records, str(limit))
    if not records:
        raise BenchError(f"source {source.spec} has no images")
    cache_name = hashlib.sha256(text_bytes(source.spec)).hexdigest()[:16] + ".json"
    cache = ScanCache(cache_root() / "scans" / cache_name)
    scans: list[dict[str, object]] = []
    fresh = False
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda record: _scan(record, cache), records)
        for key, scan in tqdm(results, total=len(records), desc=f"scan {printable(source.spec)}",
                              disable=not progress, unit="img"):
            scans.append(scan)
            if key is not None:
                cache.rows[key] = {k: v for k, v in scan.items() if k != "sha256"}
                fresh = True
    if fresh:
        cache.save()
    entries = [
        ManifestEntry(r.image_id, r.shown_file, r.caption, str(s["sha256"]), str(s["status"]), str(s["reason"]),
                      integer(s["width"]), integer(s["height"]), r.path, str(s["decoding"]))
        for r, s in zip(records, scans, strict=True)
    ]
    return Manifest(source.spec, split, entries, limit)
