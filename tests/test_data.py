"""Sources, fixed splits, manifests, grey-original detection and odd image files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess, iterate_batches, make_loader
from colorbench.data.sample import SAMPLE_PHOTOS
from colorbench.data.sources import CocoSource, FolderSource, ImageRecord, open_source
from colorbench.data.splits import build_manifest, select, split_key, split_size
from colorbench.io.images import check_original, open_rgb, preprocess

COCO_GREY_ORIGINALS = {"val2017": {"205401", "570448"}, "train2017": {"113488"}}


def records(n: int) -> list[ImageRecord]:
    return [ImageRecord(str(i), Path(f"{i}.jpg")) for i in range(n)]


def test_split_key_is_a_fixed_hash():
    # A pinned value: changing the rule would silently change everyone's subsets.
    assert split_key("139") == int.from_bytes(hashlib.sha256(b"colorbench-split-v1:139").digest()[:8], "big")
    assert split_key("139") != split_key("140")


def test_split_sizes():
    assert split_size("full") is None
    assert split_size("val-1k") == 1000
    assert split_size("train-10k") == 10000
    assert split_size("250") == 250
    for bad in ("val-0", "val", "1m", "-5"):
        with pytest.raises(BenchError, match="unknown split"):
            split_size(bad)


def test_subsets_are_deterministic_nested_and_order_free():
    pool = records(500)
    small, large = select(pool, "val-50"), select(pool, "val-200")
    assert len(small) == 50 and len(large) == 200
    assert {r.image_id for r in small} <= {r.image_id for r in large}
    assert [r.image_id for r in select(list(reversed(pool)), "val-50")] == [r.image_id for r in reversed(small)]
    assert select(pool, "val-1k") == pool


def test_sample_is_laid_out_as_coco_and_reads_back():
    source = open_source("sample:test")
    assert isinstance(source, CocoSource)
    got = source.records()
    expected = [p for p in SAMPLE_PHOTOS if p.part == "test"]
    assert [r.image_id for r in got] == [str(p.image_id) for p in expected]
    assert [r.caption for r in got] == [p.caption for p in expected]
    assert all(r.path.is_file() for r in got)


def test_sample_manifest_marks_the_grey_photo():
    manifest = build_manifest(open_source("sample:test"), "full", progress=False)
    status = {e.image_id: e.status for e in manifest.entries}
    camera = next(p for p in SAMPLE_PHOTOS if p.loader == "camera")
    assert status.pop(str(camera.image_id)) == "grayscale"
    assert set(status.values()) == {"ok"}
    again = build_manifest(open_source("sample:test"), "full", progress=False)
    assert again.sha256 == manifest.sha256


@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_coco_mini_grey_originals_are_found(coco_mini, split):
    manifest = build_manifest(CocoSource(coco_mini, split), "full", progress=False)
    grey = {e.image_id for e in manifest.entries if e.status == "grayscale"}
    assert grey == COCO_GREY_ORIGINALS[split]
    assert all(e.caption for e in manifest.entries)
    assert len({e.sha256 for e in manifest.entries}) == len(manifest.entries)


def test_coco_caption_is_the_lowest_annotation_id(coco_mini):
    data = json.loads((coco_mini / "annotations" / "captions_val2017.json").read_text())
    first = {}
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        first.setdefault(str(ann["image_id"]), " ".join(ann["caption"].split()))
    for record in CocoSource(coco_mini, "val2017").records():
        assert record.caption == first[record.image_id]


def test_bad_sources_give_clear_errors(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        open_source(f"coco:{tmp_path / 'nowhere'}:val2017")
    with pytest.raises(BenchError, match=r"caption file missing.*captions_val2017\.json"):
        open_source(f"coco:{tmp_path}:val2017")
    with pytest.raises(BenchError, match="coco:ROOT:SPLIT"):
        open_source("coco:val2017")
    with pytest.raises(BenchError, match="cannot read source"):
        open_source("imagenet:/data")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text("{not json")
    with pytest.raises(BenchError, match="cannot read COCO annotation file"):
        CocoSource(tmp_path, "val2017").records()


def write_odd_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(colour).save(folder / "rgb.png")
    Image.fromarray(colour).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(np.dstack([colour, np.full((40, 48), 128, np.uint8)])).save(folder / "alpha.png")
    Image.fromarray((rng.integers(0, 65535, (40, 48))).astype(np.uint16)).save(folder / "grey16.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "notes.txt").write_text("not an image")


def test_folder_source_statuses_for_odd_files(tmp_path):
    write_odd_files(tmp_path)
    manifest = build_manifest(FolderSource(tmp_path), "full", progress=False)
    status = {e.image_id: e.status for e in manifest.entries}
    assert status == {"alpha": "ok", "cmyk": "ok", "corrupt": "unreadable", "grey16": "grayscale",
                      "palette": "ok", "rgb": "ok"}
    corrupt = next(e for e in manifest.entries if e.image_id == "corrupt")
    assert "corrupt.jpg" in corrupt.reason


def test_folder_source_refuses_every_file_of_a_duplicate_stem(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "b.png")
    records = FolderSource(tmp_path).records()
    assert [(r.image_id, r.file, bool(r.refused)) for r in records] == [
        ("a", "a.jpg", True), ("a", "a.png", True), ("b", "b.png", False)]
    assert "duplicate image id a: 2 files (a.jpg, a.png)" in records[0].refused


def test_sixteen_bit_decodes_to_full_range(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    rgb, mode = open_rgb(tmp_path / "ramp.png")
    array = np.asarray(rgb)
    assert mode.startswith("I") and array.min() == 0 and array.max() == 255
    assert check_original(tmp_path / "ramp.png").status == "grayscale"


def test_center_crop_keeps_aspect_and_resize_does_not():
    image = Image.new("RGB", (200, 100))
    image.paste((255, 0, 0), (0, 0, 50, 100))  # red band on the left quarter
    resized, cropped = preprocess(image, 32, "resize"), preprocess(image, 32, "center-crop")
    assert resized.size == cropped.size == (32, 32)
    assert np.asarray(resized)[16, 0, 0] > 200  # the band survives a resize
    assert np.asarray(cropped)[16, 0, 0] < 50  # and is cropped away by a center crop
    with pytest.raises(BenchError, match="unknown resize mode"):
        preprocess(image, 32, "stretch")


def test_loader_reports_files_that_fail_at_load_time(tmp_path):
    write_odd_files(tmp_path)
    manifest = build_manifest(FolderSource(tmp_path), "full", progress=False)
    usable = manifest.usable
    usable[0].path.write_bytes(b"broken after the scan")  # the file changes between scan and load
    batches = list(iterate_batches(make_loader(usable, Preprocess(16), batch_size=8), torch.device("cpu")))
    assert sum(len(b) for b in batches) == len(usable) - 1
    assert [f[0] for b in batches for f in b.failed] == [usable[0].image_id]
    batch = batches[0]
    assert batch.L.shape == (len(batch), 1, 16, 16) and batch.ab.shape == (len(batch), 2, 16, 16)
    assert float(batch.L.min()) >= 0 and float(batch.L.max()) <= 100


def test_padded_loader_keeps_one_shape_and_names_only_real_rows(tmp_path):
    write_odd_files(tmp_path)
    usable = build_manifest(FolderSource(tmp_path), "full", progress=False).usable
    assert len(usable) == 4
    usable[0].path.write_bytes(b"broken after the scan")  # a short batch from a failed file, then the last one
    batches = list(iterate_batches(make_loader(usable, Preprocess(16), batch_size=3, pad=True), torch.device("cpu")))
    assert [(len(b), b.rows) for b in batches] == [(2, 3), (1, 3)]
    assert [i for b in batches for i in b.image_ids] == [e.image_id for e in usable[1:]]
    for batch in batches:
        assert len(batch.captions) == batch.rows == len(batch.inputs_for(("L", "caption")).captions)
        assert torch.equal(batch.rgb_u8[len(batch):], batch.rgb_u8[len(batch) - 1:len(batch)].expand(
            batch.rows - len(batch), -1, -1, -1))  # padding repeats the last real image
    unpadded = list(iterate_batches(make_loader(usable[1:3], Preprocess(16), batch_size=3, pad=True),
                                    torch.device("cpu")))
    assert [(len(b), b.rows) for b in unpadded] == [(2, 3)]  # a pass smaller than a batch has the same shape
