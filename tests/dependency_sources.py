"""Sources for the dependency tests (issue 22, kind 1): a copy of a built-in sample part laid out as a COCO root
with an instances file of our own (one rectangle per image), and the single-input edits the tests apply to it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from colorbench.data.sample import sample_root


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data))


def coco_copy(tmp_path: Path, part: str) -> Path:
    """A COCO root holding the sample's ``part`` images and captions, one rectangular instance per image (class 1)
    and COCO's count of 80 categories (as the coco-labels teacher expects)."""
    root = tmp_path / "coco"
    shutil.copytree(sample_root() / "annotations", root / "annotations")
    shutil.copytree(sample_root() / part, root / part)
    captions = json.loads((root / "annotations" / f"captions_{part}.json").read_text())
    images, annotations = [], []
    for k, info in enumerate(captions["images"]):
        width, height = Image.open(root / part / info["file_name"]).size
        images.append({"id": info["id"], "file_name": info["file_name"], "width": width, "height": height})
        annotations.append({"id": 100 + k, "image_id": info["id"], "category_id": 1, "iscrowd": 0,
                            "area": width * height / 4, "segmentation": [[0, 0, width / 2, 0, width / 2,
                                                                          height / 2, 0, height / 2]]})
    write_json(root / "annotations" / f"instances_{part}.json",
               {"images": images, "annotations": annotations,
                "categories": [{"id": k, "name": f"class {k}"} for k in range(1, 81)]})  # COCO's 80
    return root


def edit_polygon(root: Path, part: str, image_id: str) -> None:
    """Move the instance of one image (its polygon, and its area so that coco-labels sees it too)."""
    path = root / "annotations" / f"instances_{part}.json"
    data = json.loads(path.read_text())
    annotation = next(a for a in data["annotations"] if str(a["image_id"]) == image_id)
    annotation["segmentation"], annotation["area"] = [[1, 1, 40, 1, 40, 30, 1, 30]], 39.0 * 29.0
    write_json(path, data)


def edit_caption(root: Path, part: str, image_id: str, caption: str = "A grey cat, renamed.") -> None:
    path = root / "annotations" / f"captions_{part}.json"
    data = json.loads(path.read_text())
    next(a for a in data["annotations"] if str(a["image_id"]) == image_id)["caption"] = caption
    write_json(path, data)


def edit_pixel(root: Path, part: str, image_id: str) -> None:
    """Change one pixel of one image file."""
    path = root / part / f"{int(image_id):012d}.png"
    image = Image.open(path).convert("RGB")
    image.putpixel((0, 0), tuple(255 - v for v in image.getpixel((0, 0))))
    image.save(path)


def flip(root: Path, part: str, image_id: str) -> None:
    """Mirror one image file: unlike :func:`edit_pixel`, this changes its ground truth at any working size, so
    caches keyed on ground-truth pixels (not on file bytes) must follow."""
    path = root / part / f"{int(image_id):012d}.png"
    Image.open(path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
