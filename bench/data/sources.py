"""Image sources: where originals and captions come from. Three kinds share one interface.

A source is named by a spec string on the command line:

- ``sample:train`` / ``sample:test`` - the built-in sample (:mod:`colorbench.data.sample`), read as a COCO root;
- ``coco:ROOT:SPLIT`` - an MS-COCO root (``annotations/captions_SPLIT.json``, optional
  ``annotations/instances_SPLIT.json``, images in ``SPLIT/``);
- ``folder:DIR`` - every image file directly inside DIR; the image id is the file stem; captions from an optional
  sidecar ``captions.json`` / ``captions.csv`` (:mod:`colorbench.data.sidecar`), else none.

Sources are read as untrusted input. A malformed annotation file (not a JSON object, an image without a string
``file_name``, a NUL in a name, a caption that is not a string) ends in one :class:`BenchError` naming the file.
Single originals that must not be read are kept in the list with a ``refused`` reason (the manifest records it
and nothing opens the file): a COCO id that is not an integer, a ``file_name`` that is absolute, contains
``..`` or resolves (symlinks included) outside ``ROOT/SPLIT`` (or a folder entry outside DIR), and every image
of an id listed more than once, since its captions and instances cannot be attributed. Folder stems are mapped
to safe ids by :func:`colorbench.core.paths.safe_component`; captions keep their text with lone surrogates and control
characters replaced by U+FFFD.
"""

from __future__ import annotations

import contextlib
import functools
import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from colorbench.core.errors import BenchError
from colorbench.core.paths import inside, printable, safe_component
from colorbench.core.strictjson import load_unique
from colorbench.data.sample import SAMPLE_PARTS, sample_root
from colorbench.data.sidecar import sidecar_captions

if TYPE_CHECKING:
    from typing_extensions import TypeIs

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class ImageRecord:
    """One original: a stable, path-safe id, its file, the caption chosen for it ("" when the source has none),
    the file's name as shown in tables, and why it must not be read ("" when it may)."""

    image_id: str
    path: Path
    caption: str = ""
    file: str = ""
    refused: str = ""

    @property
    def shown_file(self) -> str:
        return self.file or printable(self.path.name)


class ImageSource(Protocol):
    """What the harness needs from a source of originals."""

    spec: str

    def records(self) -> list[ImageRecord]:
        """All originals of the source, in a stable order."""
        ...

    def instances(self) -> Any | None:
        """The pycocotools ``COCO`` object with instance annotations, or None when the source has none."""
        ...


def read_json_object(path: Path) -> dict[str, Any]:
    """Parse an annotation file that must hold a JSON object; anything else is a one-line BenchError."""
    try:
        with path.open("rb") as handle:
            data = load_unique(handle)
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BenchError(f"cannot read COCO annotation file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BenchError(f"COCO annotation file {path} holds a JSON {type(data).__name__}, not an object")
    return data


def json_list(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    """``data[key]`` as a list of JSON objects (empty when absent)."""
    items = data.get(key, [])
    if not isinstance(items, list):
        raise BenchError(f"COCO annotation file {path}: {key!r} is a JSON {type(items).__name__}, not a list")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BenchError(f"COCO annotation file {path}: {key}[{index}] is a JSON {type(item).__name__}, "
                             "not an object")
    return items


def _quiet_coco(annotation_file: Path) -> Any:
    """Load a COCO annotation file into pycocotools' index, keeping its progress prints off stdout."""
    from pycocotools.coco import COCO

    data = read_json_object(annotation_file)
    for key in ("images", "annotations", "categories"):
        json_list(data, key, annotation_file)
    coco = COCO()
    coco.dataset = data  # type: ignore[assignment]  # checked above: the three lists that pycocotools indexes
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise BenchError(f"cannot index COCO annotation file {annotation_file}: missing or wrong-typed {exc}") \
            from exc
    return coco


def clean_caption(text: str) -> str:
    """Whitespace runs become one space; lone surrogates and other control characters become U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in " ".join(text.split()))


def image_id_sort_key(image_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then the others by name."""
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


def _is_integer(value: object) -> TypeIs[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def refuse_duplicates(records: list[ImageRecord]) -> list[ImageRecord]:
    """Every record whose id is claimed by another record (readable or not) is refused, naming all of them, so
    ids are unique over the manifest; the result is sorted by (id, file), so identical inputs give identical
    manifests whatever their listing order."""
    by_id: dict[str, list[ImageRecord]] = {}
    for record in records:
        by_id.setdefault(record.image_id, []).append(record)
    out = []
    for record in records:
        group = by_id[record.image_id]
        if len(group) > 1:
            files = ", ".join(sorted(r.shown_file for r in group))
            reason = (f"duplicate image id {record.image_id}: {len(group)} files ({files}) claim it, so its captions "
                      "and annotations cannot be attributed")
            record = replace(record, refused="; ".join(filter(None, (reason, record.refused))))
        out.append(record)
    return sorted(out, key=lambda r: (image_id_sort_key(r.image_id), r.shown_file))


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

    def _captions(self, annotations: list[dict[str, Any]]) -> dict[int, str]:
        """The caption with the lowest annotation id of each integer image id."""
        first: dict[int, tuple[int, str]] = {}
        for index, ann in enumerate(annotations):
            image_id, ann_id, caption = ann.get("image_id"), ann.get("id"), ann.get("caption", "")
            if not _is_integer(ann_id) or image_id is None or not isinstance(caption, str):
                raise BenchError(f"COCO annotation file {self.captions_file}: annotations[{index}] needs an integer "
                                 f"id, an image_id and a string caption (got id={ann_id!r}, image_id={image_id!r}, "
                                 f"caption of type {type(caption).__name__})")
            if _is_integer(image_id) and (image_id not in first or ann_id < first[image_id][0]):
                first[image_id] = (ann_id, clean_caption(caption))
        return {image_id: caption for image_id, (_, caption) in first.items()}

    def _record(self, index: int, info: dict[str, Any], captions: dict[int, str]) -> ImageRecord:
        raw_id, name = info.get("id"), info.get("file_name")
        if raw_id is None or not isinstance(name, str) or "\x00" in name:
            raise BenchError(f"COCO annotation file {self.captions_file}: images[{index}] needs an id and a "
                             f"file_name string without NUL (got id={raw_id!r}, file_name={name!r})")
        path, shown = self.image_dir / name, printable(name)
        if not _is_integer(raw_id):
            return ImageRecord(safe_component(str(raw_id)), path, "", shown,
                               f"image id {printable(repr(raw_id))} is not an integer (COCO ids are integers)")
        record = ImageRecord(str(raw_id), path, captions.get(raw_id, ""), shown)
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            return replace(record, refused=f"file_name {shown!r} is empty, absolute or climbs out with '..'")
        if not inside(self.image_dir, path):
            return replace(record, refused=f"file_name {shown!r} resolves outside {printable(str(self.image_dir))}")
        return record

    def records(self) -> list[ImageRecord]:
        data = read_json_object(self.captions_file)
        captions = self._captions(json_list(data, "annotations", self.captions_file))
        images = json_list(data, "images", self.captions_file)
        return refuse_duplicates([self._record(index, info, captions) for index, info in enumerate(images)])

    @cached_property
    def _instances(self) -> Any | None:
        return _quiet_coco(self.instances_file) if self.instances_file.is_file() else None

    def instances(self) -> Any | None:
        return self._instances


@dataclass
class FolderSource:
    """A plain folder of images: ids are safe forms of the file stems, captions from the sidecar file when there
    is one (else empty: caption models are then not applicable), no instance masks.

    The folder is listed, never globbed, so its path may hold any character (``**``, ``[``)."""

    folder: Path
    spec: str = field(default="")

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.spec = self.spec or f"folder:{self.folder}"
        if not self.folder.is_dir():
            raise BenchError(f"image folder {self.folder} does not exist or is not a folder")

    def records(self) -> list[ImageRecord]:
        captions = sidecar_captions(self.folder, IMAGE_SUFFIXES)
        records = [folder_record(self.folder, path) for path in image_files(self.folder)]
        return refuse_duplicates([replace(r, caption=clean_caption(captions.get(r.path.stem, ""))) for r in records])

    def instances(self) -> None:
        return None


def image_files(folder: Path) -> list[Path]:
    """Image files (by suffix) directly inside ``folder``, sorted by name; symlinks included (checked later)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_record(folder: Path, path: Path) -> ImageRecord:
    """The record of one file of an image folder: id from the stem, refused when it resolves outside."""
    record = ImageRecord(safe_component(path.stem), path, "", printable(path.name))
    if not inside(folder, path):
        return replace(record, refused=f"{record.file} resolves outside {printable(str(folder))} (symlink)")
    return record


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
    """Open a source from its spec string (see the module docstring). One object per spec while a run lasts, so the
    COCO instance annotations (hundreds of MB for train2017) are parsed once however many stages read them; the
    cache is cleared when the run ends (colorbench.pipeline.outputs.per_run)."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in SOURCE_KINDS:
        raise BenchError(f"cannot read source {spec!r}: write sample:PART, coco:ROOT:SPLIT or folder:DIR")
    return SOURCE_KINDS[kind](rest)
