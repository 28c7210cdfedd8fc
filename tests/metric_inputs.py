"""Real-photo inputs for the metric calibration tests and benchmarks: ground truths, predictions damaged the
way colorizers damage them (faded, hue-shifted, grey, noisy chroma; the lightness kept), quantized to 8 bits
as saved PNGs are, and segment label maps (SLIC on the ground truth, or COCO instances)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorbench.data.color import lab_to_rgb, rgb_to_lab

DAMAGE = ("faded", "hue", "grey", "noisy")


def to_8bit(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb.clamp(0, 1) * 255).round() / 255


def damaged(gt: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """A colorizer-like prediction from ground truth (B, 3, H, W) float64: L kept, ab changed."""
    lab = rgb_to_lab(gt.double())
    L, ab = lab[:, :1], lab[:, 1:]
    if kind == "faded":
        ab = 0.35 * ab
    elif kind == "hue":
        c, s = math.cos(math.radians(40)), math.sin(math.radians(40))
        ab = torch.stack((c * ab[:, 0] - s * ab[:, 1], s * ab[:, 0] + c * ab[:, 1]), dim=1)
    elif kind == "grey":
        ab = torch.zeros_like(ab)
    elif kind == "noisy":
        generator = torch.Generator().manual_seed(seed)
        ab = ab + 8 * torch.randn(ab.shape, generator=generator, dtype=torch.float64)
    else:
        raise ValueError(kind)
    return to_8bit(lab_to_rgb(torch.cat((L, ab), dim=1)))


def photo_batch(height: int = 176, width: int = 208) -> torch.Tensor:
    """Four scikit-image colour photos cropped to a common size (>= 161 for MS-SSIM), (4, 3, H, W) float64."""
    import skimage.data

    arrays = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    crops = [torch.from_numpy(a[:height, :width, :3].copy()).permute(2, 0, 1) for a in arrays]
    return torch.stack(crops).double() / 255


def slic_segments(gt: torch.Tensor, n_segments: int = 60) -> torch.Tensor:
    """SLIC superpixels of each ground truth, labels from 1, (B, H, W) int64."""
    from skimage.segmentation import slic

    maps = [slic((g.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), n_segments=n_segments,
                 compactness=10.0, start_label=1, channel_axis=-1) for g in gt]
    return torch.from_numpy(np.stack(maps)).long()


def instance_annotations(coco, image_id: int) -> list[dict]:
    """Non-crowd instances of an image, largest first: instance i gets label i + 1 in :func:`coco_batch`."""
    return sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False)), key=lambda a: -a["area"])


def coco_batch(root: Path, count: int | None = None, size: int = 224, image_ids: list[int] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` val2017 images of a COCO root (by file name), or those of ``image_ids``, resized to
    size x size, with instance label maps (painted largest first, so a small object on a large one keeps its
    pixels; crowds left out)."""
    from pycocotools.coco import COCO

    coco = COCO(str(root / "annotations" / "instances_val2017.json"))
    ids = image_ids or coco.getImgIds()
    images = sorted(coco.loadImgs(ids), key=lambda i: i["file_name"])[:count]
    rgbs, maps = [], []
    for info in images:
        rgb = Image.open(root / "val2017" / info["file_name"]).convert("RGB").resize((size, size), Image.BILINEAR)
        rgbs.append(torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1))
        labels = np.zeros((info["height"], info["width"]), dtype=np.int32)
        for label, annotation in enumerate(instance_annotations(coco, info["id"]), start=1):
            labels[coco.annToMask(annotation) > 0] = label
        maps.append(np.asarray(Image.fromarray(labels).resize((size, size), Image.NEAREST), dtype=np.int64))
    return torch.stack(rgbs).double() / 255, torch.from_numpy(np.stack(maps))
