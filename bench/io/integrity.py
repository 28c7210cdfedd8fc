"""Integrity of what a run caches on disk: checksums written with every cache entry and checked on read.

Every cache of a run folder is validated before it is trusted: per-image records carry a sha256 per line,
JSON caches (set-level values, the study's fingerprint, optimizer state) a sha256 of their payload, PNGs
written by colorbench a sha256 of their decoded pixels in a tEXt chunk (:data:`PIXELS_TAG`), and safetensors
files the sha256 of their tensors in their metadata (colorbench.io.checkpoints). An entry that fails its check is
reported (a warning on stderr, and counted in ``run.json["integrity"]``) and recomputed, never used.

The count belongs to one command: :func:`recording_corrupt` (opened per run by colorbench.pipeline.outputs.per_run)
holds the
entries reported inside it and restores the enclosing recording on exit; outside one, reports are only logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from colorbench.core.files import atomic_write_bytes, file_sha256
from colorbench.io.images import PIXELS_TAG, pixels_sha256

logger = logging.getLogger(__name__)

#: Key of the payload checksum in sealed JSON objects (records lines, JSON caches).
CHECK_KEY = "sha256"

#: The corrupt entries of the recording in progress (:func:`recording_corrupt`); None outside one.
_recording: list[dict[str, str]] | None = None


@contextlib.contextmanager
def recording_corrupt() -> Iterator[list[dict[str, str]]]:
    """Record the corrupt entries reported inside (one command's run): yields their list; on exit the enclosing
    recording (usually none) is back, so nothing carries over to the next run of the process."""
    global _recording
    outer, _recording = _recording, []
    try:
        yield _recording
    finally:
        _recording = outer


def report_corrupt(kind: str, path: Path, reason: str) -> None:
    """Warn that a cache entry failed its check and is being recomputed; counted (once) for run.json."""
    entry = {"kind": kind, "path": str(path), "reason": reason}
    if _recording is not None and entry in _recording:
        return
    logger.warning("corrupt %s %s: %s; ignored and recomputed", kind, path, reason)
    if _recording is not None:
        _recording.append(entry)


def summary() -> dict[str, object]:
    """``run.json["integrity"]``: how many cache entries failed their check in this run, and which."""
    entries = list(_recording or [])
    return {"corrupt_entries": len(entries), "entries": entries}


def payload_sha256(payload: Mapping[str, object]) -> str:
    """sha256 of a JSON object's canonical text (sorted keys), its :data:`CHECK_KEY` left out."""
    body = {k: v for k, v in payload.items() if k != CHECK_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def seal(payload: Mapping[str, object]) -> dict[str, object]:
    """``payload`` with its checksum under :data:`CHECK_KEY`."""
    return {**payload, CHECK_KEY: payload_sha256(payload)}


def unseal(data: object) -> dict[str, object] | None:
    """The payload of a sealed object, or None when ``data`` is not one or its checksum does not match."""
    if not isinstance(data, dict) or data.get(CHECK_KEY) != payload_sha256(data):
        return None
    return {k: v for k, v in data.items() if k != CHECK_KEY}


def write_sealed_json(path: Path, payload: Mapping[str, object]) -> None:
    """Write ``payload`` with its checksum, atomically."""
    atomic_write_bytes(path, (json.dumps(seal(payload), indent=2) + "\n").encode())


def read_sealed_json(path: Path, kind: str) -> dict[str, object] | None:
    """The payload of a file written by :func:`write_sealed_json`; None when it is missing, or when it is
    unreadable or fails its checksum (then reported as corrupt)."""
    if not path.is_file():
        return None
    try:
        payload = unseal(json.loads(path.read_bytes()))
    except (ValueError, UnicodeDecodeError):
        payload = None
    if payload is None:
        report_corrupt(kind, path, "not valid JSON or its checksum does not match")
    return payload


def verified_png_text(path: Path, expected: Mapping[str, str], kind: str) -> dict[str, str] | None:
    """The tEXt chunks of a PNG written by colorbench when its tags include ``expected`` and its pixels hash to
    its :data:`PIXELS_TAG`; None when it is missing or stale (made for other inputs), or corrupt (truncated,
    re-encoded, pixels changed: reported)."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            image.load()
            text = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
            pixels = np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        report_corrupt(kind, path, f"cannot be decoded ({exc})")
        return None
    if any(text.get(k) != v for k, v in expected.items()):
        return None
    if text.get(PIXELS_TAG) != pixels_sha256(pixels):
        report_corrupt(kind, path, "its pixels do not match the hash stored in its tags")
        return None
    return text


def check_tables(run: Mapping[str, object], folder: Path) -> None:
    """Raise ValueError when a table of ``folder`` is not the one its run.json says the command wrote (the
    ``tables`` field: sha256 and size per file). This catches what a parse cannot: a table edited by hand or cut at
    a line boundary. Run folders written before the field existed are not checked."""
    written = run.get("tables")
    if not isinstance(written, Mapping):
        return
    for name, expected in written.items():
        path = folder / str(name)
        if not isinstance(expected, Mapping) or file_sha256(path) != expected.get("sha256"):
            raise ValueError(f"{path} is not the table the run wrote (its sha256 differs from run.json's "
                             f"`tables` entry: edited or cut short since)")
