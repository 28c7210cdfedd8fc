"""Image sources: where originals and captions come from. Three kinds share one interface.

A source is named by a spec string on the command line:

- ``sample:train`` / ``sample:test`` - the built-in sample (:mod:`bench.sample`), read as a COCO root;
- ``coco:ROOT:SPLIT`` - an MS-COCO root (``annotations/captions_SPLIT.json``, optional
  ``annotations/instances_SPLIT.json``, images in ``SPLIT/``), read with pycocotools;
- ``folder:DIR`` - every image file directly inside DIR, no captions; the image id is the file stem.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from bench.errors import BenchError
from bench.sample import SAMPLE_PARTS, sample_root

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class ImageRecord:
    """One original: a stable id, its file, and the caption chosen for it ("" when the source has none)."""

    image_id: str
    path: Path
    caption: str = ""


class ImageSource(Protocol):
    """What the harness needs from a source of originals."""

    spec: str

    def records(self) -> list[ImageRecord]:
        """All originals of the source, in a stable order."""
        ...

    def instances(self) -> Any | None:
        """The pycocotools ``COCO`` object with instance annotations, or None when the source has none."""
        ...


def _quiet_coco(annotation_file: Path) -> Any:
    """Load a COCO annotation file with pycocotools, keeping its progress prints off stdout."""
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(annotation_file))
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise BenchError(f"cannot read COCO annotation file {annotation_file}: {exc}") from exc


def image_id_sort_key(image_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then the others by name."""
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


@dataclass
class CocoSource:
    """An MS-COCO style root; the caption used is the one with the lowest annotation id (deterministic)."""

    root: Path
    split: str
    spec: str = field(default="")

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.spec = self.spec or f"coco:{self.root}:{self.split}"
        if not self.root.is_dir():
            raise BenchError(f"COCO root {self.root} does not exist or is not a folder")
        if not self.captions_file.is_file():
            raise BenchError(f"COCO caption file missing: {self.captions_file} (expected for split {self.split!r})")
        if not self.image_dir.is_dir():
            raise BenchError(f"COCO image folder missing: {self.image_dir}")

    @property
    def captions_file(self) -> Path:
        return self.root / "annotations" / f"captions_{self.split}.json"

    @property
    def instances_file(self) -> Path:
        return self.root / "annotations" / f"instances_{self.split}.json"

    @property
    def image_dir(self) -> Path:
        return self.root / self.split

    def records(self) -> list[ImageRecord]:
        coco = _quiet_coco(self.captions_file)
        first_caption: dict[int, tuple[int, str]] = {}
        for ann in coco.dataset.get("annotations", []):
            image_id, ann_id = ann["image_id"], ann["id"]
            if image_id not in first_caption or ann_id < first_caption[image_id][0]:
                first_caption[image_id] = (ann_id, " ".join(str(ann.get("caption", "")).split()))
        records = [
            ImageRecord(str(info["id"]), self.image_dir / info["file_name"], first_caption.get(info["id"], (0, ""))[1])
            for info in coco.dataset.get("images", [])
        ]
        return sorted(records, key=lambda r: image_id_sort_key(r.image_id))

    @cached_property
    def _instances(self) -> Any | None:
        return _quiet_coco(self.instances_file) if self.instances_file.is_file() else None

    def instances(self) -> Any | None:
        return self._instances


@dataclass
class FolderSource:
    """A plain folder of images: ids are file stems, captions are empty, no instance masks."""

    folder: Path
    spec: str = field(default="")

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.spec = self.spec or f"folder:{self.folder}"
        if not self.folder.is_dir():
            raise BenchError(f"image folder {self.folder} does not exist or is not a folder")

    def records(self) -> list[ImageRecord]:
        files = sorted(p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        by_stem: dict[str, Path] = {}
        for path in files:
            if path.stem in by_stem:
                raise BenchError(f"two images in {self.folder} share the name stem {path.stem!r}: "
                                 f"{by_stem[path.stem].name} and {path.name}")
            by_stem[path.stem] = path
        stems = sorted(by_stem, key=image_id_sort_key)
        return [ImageRecord(stem, by_stem[stem]) for stem in stems]

    def instances(self) -> None:
        return None


def _sample(part: str) -> CocoSource:
    if part not in SAMPLE_PARTS:
        raise BenchError(f"the built-in sample has parts {', '.join(SAMPLE_PARTS)}, not {part!r}")
    return CocoSource(sample_root(), part, spec=f"sample:{part}")


def _coco(rest: str) -> CocoSource:
    root, sep, split = rest.rpartition(":")
    if not sep or not root or not split:
        raise BenchError(f"a COCO source is written coco:ROOT:SPLIT (e.g. coco:data/coco:val2017), not coco:{rest}")
    return CocoSource(Path(root), split)


SOURCE_KINDS: dict[str, Callable[[str], ImageSource]] = {
    "sample": _sample,
    "coco": _coco,
    "folder": lambda rest: FolderSource(Path(rest)),
}


@functools.cache
def open_source(spec: str) -> ImageSource:
    """Open a source from its spec string (see the module docstring). One object per spec and process, so the
    COCO instance annotations (hundreds of MB for train2017) are parsed once however many stages read them."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in SOURCE_KINDS:
        raise BenchError(f"cannot read source {spec!r}: write sample:PART, coco:ROOT:SPLIT or folder:DIR")
    return SOURCE_KINDS[kind](rest)
