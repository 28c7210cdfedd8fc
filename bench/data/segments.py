"""Segment label maps (paper Sec. 7.6): COCO instance masks, or SLIC superpixels, at the working size.

A label map is an integer image at the working size: 0 = no segment, 1..K = the segments of that image.
COCO instances overlap; they are painted largest first, so where a small object (the Frisbee) lies on a large
one (the lawn), its pixels belong to the small object. Crowd annotations are left out. Maps are carried to
the working size with the same resize or center crop as the image, by nearest neighbour. Sources without
instance annotations get SLIC superpixels computed on the ground truth at the working size.

The scoring extras that hand each image's map to the segment metrics (:func:`segments_from`, :func:`slic_segments`)
are here too, so the harness, ``bench score`` and the vividness loss of the models (:mod:`colorbench.models.vividness`)
all take their maps from this one module. Which source a run used is recorded in run.json.

A map's key (:func:`segments_key`) holds everything that shapes it besides the image's pixels: for COCO the
image's own annotation entries (its ``images`` row and every instance annotation of it, so an edit to one image's
polygons remakes only that image's map) and the painting rule; for SLIC its parameters. Maps drawn in a file's
stored grid are turned by the image rule's orientation (:func:`colorbench.io.image_rule.orient_labels`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from colorbench.core.cachekey import cache_key
from colorbench.core.errors import BenchError
from colorbench.core.paths import inside, printable, safe_component
from colorbench.data.loader import Preprocess
from colorbench.io.image_rule import QUARTER_TURNS, orient_labels, orientation_of
from colorbench.io.images import UnreadableImageError, read_label_png

logger = logging.getLogger(__name__)

SLIC_PARAMS = {"n_segments": 100, "compactness": 10.0, "start_label": 1}
#: Version of how COCO instances are painted into a map (largest first, crowd and empty areas left out).
PAINTING_VERSION = 1


@dataclass(frozen=True)
class SegmentSource:
    """How a run's label maps are made; ``describe`` goes into run.json."""

    kind: str  # "coco-instances" | "slic"
    detail: str

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


def slic_source() -> SegmentSource:
    params = ", ".join(f"{k}={v}" for k, v in SLIC_PARAMS.items())
    return SegmentSource("slic", f"skimage.segmentation.slic({params}) on the ground truth at the working size")


def _labelled_instances(coco: Any, image_id: int) -> list[dict[str, Any]]:
    """The non-crowd instances of an image in label order (label k is the k-th): largest first."""
    annotations = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False))
                   if isinstance(a.get("area", 0), int | float) and a.get("area", 0) > 0]
    return sorted(annotations, key=lambda a: -a["area"])


def coco_label_categories(coco: Any, image_id: int) -> dict[int, str]:
    """Class name of each label of :func:`coco_label_map` (used by the paired study's class hue pools); labels
    whose category id is not in the file's categories are left out."""
    names = {label: coco.cats.get(annotation.get("category_id"), {}).get("name")
             for label, annotation in enumerate(_labelled_instances(coco, image_id), start=1)}
    return {label: name for label, name in names.items() if isinstance(name, str)}


def coco_label_map(coco: Any, image_id: int, height: int, width: int) -> np.ndarray:
    """Instance label map at the original resolution (int32, 0 = background)."""
    try:
        masks = [coco.annToMask(a) for a in _labelled_instances(coco, image_id)]
    except Exception as exc:  # pycocotools raises a bare Exception on a malformed segmentation
        raise BenchError(f"malformed instance annotation of image {image_id}: {type(exc).__name__}: {exc}") from exc
    labels = np.zeros((height, width), dtype=np.int32)
    for label, mask in enumerate(masks, start=1):
        if mask.shape != labels.shape:
            raise BenchError(f"instance mask of image {image_id} is {mask.shape[1]}x{mask.shape[0]}, "
                             f"the image is {width}x{height}")
        labels[mask > 0] = label
    return labels


def coco_annotations_key(coco: Any, image_id: int) -> str:
    """Key of what shapes an image's COCO label map and label classes: its ``images`` row, every annotation of it
    (crowd ones too: a change of ``iscrowd`` moves an instance in or out) and the painting version."""
    annotations = sorted(coco.imgToAnns.get(image_id, []), key=lambda a: str(a.get("id")))
    return cache_key({"image": coco.imgs.get(image_id), "annotations": annotations, "painting": PAINTING_VERSION})


def segments_key(kind: str, coco: Any | None, image_id: str) -> str:
    """What a label map depends on besides the image's pixels (module text): the annotation key for COCO
    instances, the bare kind for SLIC (whose parameters are fixed in code, :data:`SLIC_PARAMS`)."""
    if kind == "coco-instances":
        return f"{kind}|{coco_annotations_key(coco, int(image_id))}"
    return kind


def oriented_coco_map(coco: Any, image_id: int, width: int, height: int, decoding: str) -> np.ndarray:
    """The COCO label map of an image whose displayed size is ``width`` x ``height``, drawn in the file's stored
    grid and turned upright as the image rule turned the image (``decoding``: the manifest's column)."""
    stored = (width, height) if orientation_of(decoding) in QUARTER_TURNS else (height, width)
    return orient_labels(coco_label_map(coco, image_id, *stored), decoding)


def to_working_size(labels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Apply the image preprocessing (resize or center crop) to a label map, nearest neighbour."""
    image = Image.fromarray(labels.astype(np.int32), mode="I")
    size = (preprocess.size, preprocess.size)
    if preprocess.mode == "center-crop":
        image = ImageOps.fit(image, size, Image.Resampling.NEAREST)
    else:
        image = image.resize(size, Image.Resampling.NEAREST)
    return np.asarray(image, dtype=np.int64)


def slic_label_map(rgb_u8: torch.Tensor) -> np.ndarray:
    """SLIC superpixels of a ground-truth image (3, H, W) uint8; labels start at 1."""
    from skimage.segmentation import slic

    return slic(rgb_u8.permute(1, 2, 0).cpu().numpy(), channel_axis=-1, **SLIC_PARAMS).astype(np.int64)


def slic_segments(_: object, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scoring extras for sources without instances: SLIC segments of the ground truth (3, H, W) uint8."""
    return {"segments": torch.from_numpy(slic_label_map(target))}


def segments_from(folder: Path) -> Callable[[object, torch.Tensor], dict[str, torch.Tensor]]:
    """Scoring extras read from label-map PNGs named by image id (a run's ``segments/``); a missing map (or a
    symlink out of the folder), an undecodable one or one of another size than the image gives an empty map (with
    a warning for the last two), so only the segment metrics of that image are n/a."""

    def extras(pair: object, target: torch.Tensor) -> dict[str, torch.Tensor]:
        path = folder / safe_component(f"{pair.image_id}.png")  # type: ignore[attr-defined]
        empty = torch.zeros(target.shape[1:], dtype=torch.int64)
        if not (path.is_file() and inside(folder, path)):
            return {"segments": empty}
        try:
            labels = read_label_png(path)
        except UnreadableImageError as exc:
            logger.warning("segment metrics of %s are n/a: %s", printable(path.name), exc)
            return {"segments": empty}
        if labels.shape != empty.shape:
            logger.warning("segment metrics of %s are n/a: its label map is %s, the image %s", printable(path.name),
                           "x".join(map(str, labels.shape[::-1])), "x".join(map(str, empty.shape[::-1])))
            return {"segments": empty}
        return {"segments": labels}

    return extras
