"""The built-in sample: photos that ship inside scikit-image, laid out on disk as a COCO root.

The sample needs no network and no ../shared. It is written once into the cache folder
(``$COLORBENCH_CACHE``, default ``~/.cache/colorbench``) as ``annotations/captions_<part>.json`` plus
``<part>/<file>.png`` and then read by the same :class:`colorbench.data.sources.CocoSource` code as MS-COCO. Two of
the photos (``camera``, ``coins``) are greyscale originals stored as 3-channel RGB files, as COCO's few
grey photos are, so the grey-original detection runs on every default run. Captions are colorbench's own.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from colorbench.core.errors import BenchError

SAMPLE_VERSION = "v2"
SAMPLE_PARTS = ("train", "test")


@dataclass(frozen=True)
class SamplePhoto:
    """One photo of the sample: the scikit-image loader, its part, and the caption colorbench wrote."""

    image_id: int
    loader: str
    part: str
    caption: str


SAMPLE_PHOTOS = (
    SamplePhoto(1, "astronaut", "train", "An astronaut in an orange suit smiles beside a helmet and a flag."),
    SamplePhoto(2, "rocket", "test", "A white rocket stands on a launch pad between towers at dusk."),
    SamplePhoto(3, "motorcycle_left", "train", "A red motorcycle is parked in a garage full of shelves."),
    SamplePhoto(4, "hubble_deep_field", "train", "Many small colorful galaxies on a black sky."),
    SamplePhoto(5, "immunohistochemistry", "train", "Brown stained tissue cells on a pale blue background."),
    SamplePhoto(6, "coins", "train", "Rows of old coins on a dark background."),
    SamplePhoto(7, "chelsea", "test", "A tabby cat with green eyes looks to the side."),
    SamplePhoto(8, "coffee", "test", "A cup of coffee on a red saucer on a wooden table."),
    SamplePhoto(9, "motorcycle_right", "train", "A red motorcycle is parked in a garage full of shelves."),
    SamplePhoto(10, "retina", "test", "An orange photograph of the back of an eye with red blood vessels."),
    SamplePhoto(11, "camera", "test", "A man in a dark coat looks into a camera on a tripod."),
)


def _load_photo(loader: str) -> np.ndarray:
    """Load one scikit-image photo as an (H, W, 3) uint8 array."""
    import skimage.data

    if loader.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        array = left if loader.endswith("left") else right
    else:
        array = getattr(skimage.data, loader)()
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def cache_root() -> Path:
    """The folder where colorbench keeps derived files that are safe to delete (``$COLORBENCH_CACHE``, which must
    name a folder or nothing yet)."""
    root = Path(os.environ.get("COLORBENCH_CACHE", Path.home() / ".cache" / "colorbench"))
    if root.exists() and not root.is_dir():
        raise BenchError(f"the cache folder {root} (COLORBENCH_CACHE) is a file, not a folder; set COLORBENCH_CACHE "
                         "to a folder")
    return root


def _write_sample(root: Path) -> None:
    """Write every part of the sample into ``root`` in COCO's layout."""
    (root / "annotations").mkdir(parents=True)
    for part in SAMPLE_PARTS:
        (root / part).mkdir()
        images, annotations = [], []
        for photo in (p for p in SAMPLE_PHOTOS if p.part == part):
            array = _load_photo(photo.loader)
            file_name = f"{photo.image_id:012d}.png"
            Image.fromarray(array).save(root / part / file_name)
            images.append(
                {"id": photo.image_id, "file_name": file_name, "height": array.shape[0], "width": array.shape[1],
                 "source": f"skimage.data.{photo.loader}"}
            )
            annotations.append({"id": photo.image_id, "image_id": photo.image_id, "caption": photo.caption})
        captions = {
            "info": {"description": f"colorbench built-in sample {SAMPLE_VERSION}, photos from scikit-image"},
            "images": images,
            "annotations": annotations,
        }
        (root / "annotations" / f"captions_{part}.json").write_text(json.dumps(captions, indent=1))


def sample_root() -> Path:
    """Materialize the sample once (atomically, by renaming a finished folder) and return its COCO root."""
    root = cache_root() / f"sample-{SAMPLE_VERSION}"
    if (root / "annotations").is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=".sample-"))
    try:
        _write_sample(staging / "sample")
        try:
            os.replace(staging / "sample", root)
        except OSError:
            if not (root / "annotations").is_dir():  # lost a race only if another process finished it
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
