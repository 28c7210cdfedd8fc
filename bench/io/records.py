"""The resume cache of per-image metric records: append-only JSON-lines files, one per process rank.

Each batch of records is appended and flushed to disk as soon as it is computed, so an interrupted run loses
at most the batch in flight. Every line carries the sha256 of its content (colorbench.io.integrity.seal): a torn last
line (a crash mid-write, or a truncated file) is reported and cut off by the next append; any other line that
does not parse or fails its checksum is reported as corrupt and dropped from the process's own file. The images
of lost lines are scored again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

from colorbench.core.files import atomic_write_bytes, open_appending, write_error
from colorbench.io import integrity
from colorbench.io.schema import json_safe


class RecordStore:
    """Records of one model under one metric set: ``folder/rank-R.jsonl``."""

    def __init__(self, folder: Path, rank: int = 0) -> None:
        self.folder = folder
        self.path = folder / f"rank-{rank}.jsonl"

    def load(self) -> dict[str, dict[str, object]]:
        """Latest valid record per image id over every rank's file (None values read back as NaN)."""
        records: dict[str, dict[str, object]] = {}
        for path in sorted(self.folder.glob("rank-*.jsonl")):
            data = path.read_bytes()
            lines = data.split(b"\n")
            torn = lines.pop()  # b"" after a complete last line, else a line cut short
            valid = []
            for line in lines:
                record = _parse(line)
                if record is not None:
                    valid.append(line)
                    records[str(record["image_id"])] = {k: float("nan") if v is None else v for k, v in record.items()}
            corrupt = len(lines) - len(valid)
            problems = [f"{corrupt} line(s) unreadable or failing their checksum"] if corrupt else []
            if torn:
                problems.append("last line cut short (an interrupted write or a truncated file)")
            if problems:
                integrity.report_corrupt("records", path, "; ".join(problems))
            if corrupt and path == self.path:  # this process's own file: keep only the valid lines
                atomic_write_bytes(path, b"".join(line + b"\n" for line in valid))
        return records

    def append(self, records: list[dict[str, object]]) -> None:
        if not records:
            return
        lines = b"".join((json.dumps(integrity.seal(json_safe(r))) + "\n").encode() for r in records)  # type: ignore[arg-type]
        with open_appending(self.path) as handle:
            try:
                handle.truncate(_complete_length(handle))  # drop a torn line left by an interrupted write
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise write_error(self.path, exc) from exc


def _complete_length(handle: BinaryIO, block: int = 1 << 16) -> int:
    """Length of the file up to and including its last newline (searched backwards from the end)."""
    end = handle.seek(0, os.SEEK_END)
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _parse(line: bytes) -> dict[str, object] | None:
    """A record line's content when it parses, passes its checksum and names its image; else None."""
    try:
        record = integrity.unseal(json.loads(line))
    except (ValueError, UnicodeDecodeError):
        return None
    if record is None or not isinstance(record.get("image_id"), str | int):
        return None
    return record

