"""The image rule (issue 22, kind 7; colorbench.io.image_rule): EXIF orientation applied, alpha composited over
white, ICC profiles converted to sRGB, for originals and predictions alike, identically in ``run`` (the loader),
``score`` (read_png_u8) and ``data prepare`` (the prepared store); COCO label maps turned with their image; and the
keys of what the rule changes, only of that, are new.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.data.loader import OriginalsDataset, Preprocess
from colorbench.data.prepared import PreparedStore, prepare
from colorbench.data.segments import oriented_coco_map
from colorbench.data.sources import open_source
from colorbench.data.splits import LEGACY_COLUMNS
from colorbench.io.image_rule import ALPHA_BACKGROUND
from colorbench.io.images import decode, read_png_u8, to_tensor_u8, write_png
from colorbench.pipeline.scoring import match_folders, score_pairs
from tests.hostile_files import colour, encoded, exif_jpeg, hidden_rgba, manifest_of, swapped_profile

SIZE = 16
#: Files the rule changes, by what it changes, and how their displayed pixels relate to the stored ones.
RULE_FILES = {
    "turned.jpg": lambda: exif_jpeg(colour(), 6, quality=100),
    "hidden.png": lambda: hidden_rgba((0, 255, 0)),
    "profiled.png": lambda: encoded(colour(), "PNG", icc_profile=swapped_profile()),
}


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORBENCH_CACHE", str(tmp_path / "cache"))
    open_source.cache_clear()
    yield tmp_path / "cache"
    open_source.cache_clear()


def rule_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    colour().save(folder / "anchor.png")
    for name, content in RULE_FILES.items():
        (folder / name).write_bytes(content())
    return folder


def psnr_of(tmp_path, truth: bytes, truth_name: str, prediction: bytes, prediction_name: str) -> float:
    """PSNR of one prediction file against one ground-truth file through ``bench score``'s pairing and scoring."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    for folder, name, data in ((pred_dir, prediction_name, prediction), (gt_dir, truth_name, truth)):
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        (folder / name).write_bytes(data)
    pairs, _ = match_folders(pred_dir, gt_dir)
    [(records, skips)] = list(score_pairs(pairs, ["psnr"], device=torch.device("cpu"), progress=False))
    assert not skips
    return float(records[0]["psnr"])


def test_perfect_colorization_of_a_rotated_jpeg_is_perfect(tmp_path):
    """The issue's 6.5 dB: an upright colorization of a JPEG stored sideways with EXIF orientation 6."""
    ramp = np.linspace(0, 255, 24).astype(np.uint8)
    square = Image.fromarray(np.dstack([np.tile(ramp, (24, 1)), np.tile(ramp[:, None], (1, 24)),
                                        np.full((24, 24), 90, np.uint8)]))  # smooth: JPEG keeps it within a few levels
    truth = exif_jpeg(square, 6, quality=100)
    (tmp_path / "t.jpg").write_bytes(truth)
    upright = to_tensor_u8(decode(tmp_path / "t.jpg").image)
    expected = to_tensor_u8(square.transpose(Image.Transpose.ROTATE_270))
    assert (upright.int() - expected.int()).abs().max() <= 8
    buffer = io.BytesIO()
    Image.fromarray(upright.permute(1, 2, 0).numpy()).save(buffer, "PNG")
    assert psnr_of(tmp_path, truth, "x.jpg", buffer.getvalue(), "x.png") > 60
    # predictions get the rule too: the same sideways file as a prediction scores as the truth itself
    assert psnr_of(tmp_path, truth, "x.jpg", truth, "x.jpg") > 60


def test_identical_looking_rgba_files_are_one_ground_truth(tmp_path):
    """The issue's 11.2 vs 14.2 dB: two PNGs that differ only under transparent pixels."""
    prediction = encoded(colour(), "PNG")
    first = psnr_of(tmp_path, hidden_rgba((0, 255, 0)), "a.png", prediction, "a.png")
    second = psnr_of(tmp_path, hidden_rgba((255, 0, 255)), "a.png", prediction, "a.png")
    assert first == second
    (tmp_path / "h.png").write_bytes(hidden_rgba((0, 255, 0)))
    shown = np.asarray(decode(tmp_path / "h.png").image)
    assert (shown[:, :15] == ALPHA_BACKGROUND).all() and np.array_equal(shown[:, 15:], np.asarray(colour())[:, 15:])


def test_embedded_profile_is_converted_to_srgb(tmp_path):
    (tmp_path / "p.png").write_bytes(encoded(colour(), "PNG", icc_profile=swapped_profile()))
    shown = np.asarray(decode(tmp_path / "p.png").image).astype(int)
    stored = np.asarray(colour()).astype(int)
    assert np.abs(shown - stored[..., [1, 0, 2]]).max() <= 3  # red and green primaries exchanged
    assert np.abs(shown - stored).max() > 100


@pytest.mark.parametrize("mode", ["resize", "center-crop"])
def test_run_score_and_prepare_read_the_same_pixels(own_cache, tmp_path, mode):
    """``run``'s loader (decoding), ``data prepare``'s store and ``score``'s reader give one set of pixels."""
    manifest = manifest_of(rule_folder(tmp_path))
    entries = {e.file: e for e in manifest.usable}
    assert {f: e.decoding for f, e in entries.items()} == {"anchor.png": "", "turned.jpg": "orientation-6",
                                                           "hidden.png": "alpha", "profiled.png": "icc"}
    cfg = Preprocess(SIZE, mode)
    decoded = {i["image_id"]: i["rgb_u8"] for i in (OriginalsDataset(manifest.usable, cfg)[k]
                                                    for k in range(len(manifest.usable)))}
    prepare(manifest, SIZE, mode, progress=False)
    store = PreparedStore.find(SIZE, mode)
    assert store is not None
    for e in manifest.usable:
        assert torch.equal(store.pixels(e.pixels_key), decoded[e.image_id]), e.file
        assert store.pixels(e.sha256) is None or not e.decoding  # rows are keyed by what the rule did
        full = read_png_u8(e.path)  # what `score` reads, at the file's own resolution
        write_png(tmp_path / "as-scored.png", full)
        assert torch.equal(read_png_u8(tmp_path / "as-scored.png"), full)
        assert full.shape[1:] == (e.height, e.width)


def test_changed_reading_changes_keys_of_those_files_only(tmp_path):
    """A file the rule changes gets a pixels key of its own (its old caches are not hits); a manifest of files
    the rule leaves alone hashes as manifests did before the rule (its keys stay valid)."""
    manifest = manifest_of(rule_folder(tmp_path))
    assert all((e.pixels_key == e.sha256) == (not e.decoding) for e in manifest.entries)
    plain = manifest_of(tmp_path / "images")
    plain.entries = [e for e in plain.entries if not e.decoding]
    assert plain.sha256 == hashlib.sha256(plain.csv_bytes(LEGACY_COLUMNS)).hexdigest()
    assert manifest.sha256 == hashlib.sha256(manifest.csv_bytes()).hexdigest()
    assert "decoding" in manifest.csv_bytes().decode().splitlines()[0]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_coco_label_maps_turn_with_their_image(tmp_path, orientation):
    """COCO masks are drawn in the stored grid; the label map is turned exactly as the image is."""
    from pycocotools.coco import COCO

    stored = np.zeros((20, 30, 3), np.uint8)
    stored[2:8, 3:12] = (255, 0, 0)  # the annotated object, off-centre so that every turn moves it
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "width": 30, "height": 20, "file_name": "x.png"}], "categories": [
        {"id": 1, "name": "thing"}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                                      "area": 54.0, "segmentation": [[3, 2, 12, 2, 12, 8, 3, 8]]}]}
    coco.createIndex()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "x.png", exif=exif)
    shown = decode(tmp_path / "x.png")
    labels = oriented_coco_map(coco, 1, shown.image.width, shown.image.height, shown.decoding)
    red = np.asarray(shown.image)[..., 0] == 255
    assert labels.shape == red.shape
    assert np.array_equal(labels > 0, red)
