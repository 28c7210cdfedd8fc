"""The resume cache of per-image metric records: append-only JSON-lines files, one per process rank.

Each batch of records is appended and flushed to disk as soon as it is computed, so an interrupted run loses
at most the batch in flight; a torn last line (a crash mid-write) is ignored on reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.schema import json_safe


class RecordStore:
    """Records of one model under one metric set: ``folder/rank-R.jsonl``."""

    def __init__(self, folder: Path, rank: int = 0) -> None:
        self.folder = folder
        self.path = folder / f"rank-{rank}.jsonl"

    def load(self) -> dict[str, dict[str, object]]:
        """Latest record per image id over every rank's file (None values read back as NaN)."""
        records: dict[str, dict[str, object]] = {}
        for path in sorted(self.folder.glob("rank-*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # torn final line of an interrupted write
                records[str(record["image_id"])] = {k: float("nan") if v is None else v for k, v in record.items()}
        return records

    def append(self, records: list[dict[str, object]]) -> None:
        if not records:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a torn line from an interrupted write: close it off
                    handle.write(b"\n")
            for record in records:
                handle.write((json.dumps(json_safe(record)) + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
