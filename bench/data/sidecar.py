"""Captions for a plain image folder (``folder:DIR``): an optional sidecar file beside the images.

- ``captions.json``: one JSON object, image -> caption;
- ``captions.csv``: a header row with the columns ``image`` and ``caption``, then one row per image.

An image is named by its file stem (``beach`` for ``beach.jpg``, ``cat.v1`` for ``cat.v1.png``) or its file name.
Both files may start with a UTF-8 byte-order mark (as spreadsheet programs write them). Read as untrusted input:
a malformed sidecar, a non-string caption, a sidecar that resolves outside the folder, or both sidecars at
once end in one :class:`BenchError` naming the file. Images the sidecar does not name keep an empty caption,
which caption models treat as not applicable (the runner records why).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from colorbench.core.errors import BenchError
from colorbench.core.paths import inside
from colorbench.core.strictjson import loads_unique

SIDECAR_NAMES = ("captions.json", "captions.csv")


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = loads_unique(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BenchError(f"cannot read caption file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BenchError(f"caption file {path} holds a JSON {type(data).__name__}, not an object image -> caption")
    return data


def _read_csv(path: Path) -> dict[str, object]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
                raise BenchError(f"caption file {path} needs a header row with the columns image and caption")
            rows = list(reader)
    except (OSError, ValueError, csv.Error) as exc:
        raise BenchError(f"cannot read caption file {path}: {exc}") from exc
    out: dict[str, object] = {}
    for number, row in enumerate(rows, start=2):
        image = row["image"]
        if image in out:
            raise BenchError(f"caption file {path}: image {image!r} is captioned twice (line {number})")
        out[image] = row["caption"]
    return out


def sidecar_captions(folder: Path, image_suffixes: Sequence[str]) -> dict[str, str]:
    """Image stem -> caption from the folder's sidecar (empty when it has none). A name loses its suffix only
    when that is one of ``image_suffixes`` (any case), so ``cat.v1`` and ``cat.v2`` stay two images."""
    present = [folder / name for name in SIDECAR_NAMES if (folder / name).is_file()]
    if len(present) > 1:
        raise BenchError(f"{folder} has both {' and '.join(p.name for p in present)}: keep one caption file")
    if not present:
        return {}
    path = present[0]
    if not inside(folder, path):
        raise BenchError(f"caption file {path} resolves outside {folder} (symlink)")
    raw = _read_json(path) if path.suffix == ".json" else _read_csv(path)
    captions: dict[str, str] = {}
    for image, caption in raw.items():
        if not isinstance(caption, str):
            raise BenchError(f"caption file {path}: the caption of {image!r} is a {type(caption).__name__}, "
                             "not a string")
        stem = Path(image).stem if Path(image).suffix.lower() in image_suffixes else image
        if stem in captions:
            raise BenchError(f"caption file {path}: image {stem!r} is captioned twice")
        captions[stem] = caption
    return captions
