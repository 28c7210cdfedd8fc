"""Segment label maps: COCO instances (smaller on top, crowd left out), working-size transform, SLIC."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import torch
from pycocotools.coco import COCO

from colorbench.data.loader import Preprocess
from colorbench.data.segments import coco_label_map, slic_label_map, to_working_size
from colorbench.data.sources import CocoSource


def test_to_working_size_is_nearest_neighbour():
    labels = np.zeros((40, 80), dtype=np.int32)
    labels[:, 60:] = 7
    resized = to_working_size(labels, Preprocess(20, "resize"))
    cropped = to_working_size(labels, Preprocess(20, "center-crop"))
    assert resized.shape == cropped.shape == (20, 20)
    assert set(np.unique(resized)) == {0, 7}  # no interpolated labels
    assert set(np.unique(cropped)) == {0}  # the right quarter is cropped away


def test_slic_labels_start_at_one_and_cover_the_image(photos):
    labels = slic_label_map(torch.from_numpy(photos[0]).permute(2, 0, 1))
    assert labels.shape == photos[0].shape[:2]
    assert labels.min() == 1 and 20 <= labels.max() <= 200


def test_coco_instances_smaller_on_top(coco_mini):
    source = CocoSource(coco_mini, "val2017")
    coco = source.instances()
    checked = 0
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False)) if a["area"] > 0]
        if len(anns) < 2:
            continue
        labels = coco_label_map(coco, image_id, info["height"], info["width"])
        smallest = min(anns, key=lambda a: a["area"])
        mask = coco.annToMask(smallest) > 0
        assert (labels[mask] == labels.max()).all()  # painted last, so nothing covers it
        assert labels.max() == len(anns)
        checked += 1
    assert checked > 10


def test_handmade_coco_file_crowd_left_out_and_empty_image(tmp_path):
    """A two-image instances file: image 1 has a large box, a small box on top and a crowd region; image 2 none."""
    boxes = {"large": [0, 0, 20, 20], "small": [5, 5, 4, 4], "crowd": [12, 12, 6, 6]}

    def polygon(x, y, w, h):
        return [[x, y, x + w, y, x + w, y + h, x, y + h]]

    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": polygon(*boxes["large"]), "area": 400,
         "bbox": boxes["large"], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "segmentation": polygon(*boxes["small"]), "area": 16,
         "bbox": boxes["small"], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": polygon(*boxes["crowd"]), "area": 36,
         "bbox": boxes["crowd"], "iscrowd": 1},
    ]
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 24, "width": 24},
                       {"id": 2, "file_name": "b.png", "height": 24, "width": 24}],
            "annotations": annotations, "categories": [{"id": 1, "name": "lawn"}, {"id": 2, "name": "frisbee"}]}
    (tmp_path / "instances.json").write_text(json.dumps(data))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "instances.json"))
    labels = coco_label_map(coco, 1, 24, 24)
    assert labels[7, 7] == 2  # the small box lies on the large one and keeps its own label
    assert labels[2, 2] == 1
    assert labels.max() == 2  # the crowd region gets no label
    assert not coco_label_map(coco, 2, 24, 24).any()
