"""Integrity of every cache of a run folder (issues 13 and 14): each carries a checksum or is validated on read;
a flipped byte or a truncation is reported (stderr and run.json) and recomputed, so the final per_image.csv and
leaderboard.csv equal a clean run's byte for byte."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes
from colorbench.data.loader import Preprocess
from colorbench.io import integrity
from colorbench.io.checkpoints import cached_state, load_state, read_checkpoint, save_state
from colorbench.io.images import PIXELS_TAG, read_png_text, write_label_png, write_png
from colorbench.io.records import RecordStore
from colorbench.pipeline.runner import RunConfig, execute

TABLES = ("per_image.csv", "leaderboard.csv")


def flip_byte(path: Path) -> None:
    """Flip the lowest bit of the byte in the middle of the file."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- unit level ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", [flip_byte, truncate])
def test_checkpoint_hash_catches_damage(tmp_path, damage):
    path = tmp_path / "w.safetensors"
    state = {"a": torch.arange(4096, dtype=torch.float32), "b": torch.ones(3, 3)}
    digest = save_state(path, state, {"note": 1})
    restored, metadata = read_checkpoint(path)
    assert metadata == {"note": 1} and all(torch.equal(restored[k], v) for k, v in state.items())
    assert len(digest) == 64
    damage(path)
    with pytest.raises(BenchError, match=r"w\.safetensors"):
        load_state(path)
    with integrity.recording_corrupt():
        assert cached_state(path, "test weights") is None
        assert integrity.summary()["corrupt_entries"] == 1
    assert integrity.summary()["corrupt_entries"] == 0  # the count belongs to the recording (one run)


def test_records_lines_are_checked(tmp_path, caplog):
    store = RecordStore(tmp_path)
    store.append([{"image_id": "1", "psnr": 20.0}, {"image_id": "2", "psnr": float("nan")},
                  {"image_id": "3", "psnr": 30.0}])
    lines = store.path.read_text().splitlines()
    edited = lines[0].replace("20.0", "25.0")  # an edited value keeps valid JSON but fails the checksum
    wrong_type = json.dumps({**json.loads(lines[1]), "image_id": ["2"]})
    store.path.write_text("\n".join([edited, wrong_type, lines[2]]) + "\n" + lines[0][:10])  # and a torn last line
    with integrity.recording_corrupt() as corrupt:
        loaded = store.load()
    assert list(loaded) == ["3"] and loaded["3"]["psnr"] == 30.0
    assert len(corrupt) == 1  # one report per file
    assert "2 line(s)" in caplog.text and "last line cut short" in corrupt[0]["reason"]
    assert store.path.read_text() == lines[2] + "\n"  # the bad lines were dropped from the file
    store.append([{"image_id": "1", "psnr": 20.0}])
    assert set(store.load()) == {"1", "3"} and store.path.read_text().count("\n") == 2


def test_png_pixel_hash_catches_re_encoding_with_tags_kept(tmp_path):
    path = tmp_path / "p.png"
    pixels = torch.randint(0, 256, (3, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    write_png(path, pixels, {"colorbench-key": "k"})
    assert integrity.verified_png_text(path, {"colorbench-key": "k"}, "test") is not None
    assert integrity.verified_png_text(path, {"colorbench-key": "other"}, "test") is None  # stale, not corrupt
    text = read_png_text(path)
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    altered = np.asarray(Image.open(path)).copy()
    altered[0, 0, 0] ^= 0x40
    Image.fromarray(altered).save(path, pnginfo=info)  # re-encoded, every tag kept
    with integrity.recording_corrupt() as corrupt:
        assert integrity.verified_png_text(path, {"colorbench-key": "k"}, "test") is None
    assert len(corrupt) == 1
    labels = np.arange(120, dtype=np.int64).reshape(12, 10) * 500
    write_label_png(tmp_path / "s.png", labels)
    assert integrity.verified_png_text(tmp_path / "s.png", {}, "test")[PIXELS_TAG]  # 16-bit maps hash alike
    truncate(tmp_path / "s.png")
    assert integrity.verified_png_text(tmp_path / "s.png", {}, "test") is None


def test_sealed_json_detects_edits(tmp_path):
    path = tmp_path / "c.json"
    integrity.write_sealed_json(path, {"values": {"fd": 1.5}, "fingerprint": "x"})
    assert integrity.read_sealed_json(path, "test") == {"values": {"fd": 1.5}, "fingerprint": "x"}
    path.write_text(path.read_text().replace("1.5", "2.5"))
    assert integrity.read_sealed_json(path, "test") is None
    assert integrity.read_sealed_json(tmp_path / "missing.json", "test") is None


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.csv", b"x")
        save_state(tmp_path / "b.safetensors", {"t": torch.zeros(2)})
        write_png(tmp_path / "c.png", torch.zeros(3, 2, 2, dtype=torch.uint8))
    finally:
        os.umask(old)
    for name in ("a.csv", "b.safetensors", "c.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# -- end to end ----------------------------------------------------------------------------------------------
def config(out: Path) -> RunConfig:
    """Every kind of cache: ground truth, grey inputs and segment maps, predictions, records, a fitted model, a
    trained model (final and epoch checkpoints, optimizer state), set-level values and the study."""
    return RunConfig(models=["gray", "baseline0", "chromagan-noclass"], metrics=["psnr", "ssim", "fd_effnet_lite0"],
                     preprocess=Preprocess(32, "resize"), out=out, epochs=2, progress=False, batch_size=8,
                     keep_checkpoints=None)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("integrity") / "clean"
    execute(config(out))
    return out


def image_ids(run: Path) -> list[str]:
    return sorted(p.stem for p in (run / "ground_truth").glob("*.png"))


def caches(run: Path) -> dict[str, Path]:
    """One file of every cache kind of a run folder."""
    train = run / "train" / "chromagan-noclass" / "checkpoints"
    latest = sorted(train.glob("epoch-*.optim.json"))[-1].name.split(".")[0]
    first, second, third = image_ids(run)[:3]
    return {
        "records": next((run / "records" / "baseline0").rglob("rank-0.jsonl")),
        "fitted model": run / "checkpoints" / "baseline0.safetensors",
        "trained weights": run / "checkpoints" / "chromagan-noclass.safetensors",
        "epoch checkpoint": train / f"{latest}.safetensors",
        "optimizer state": train / f"{latest}.optim.json",
        "set-level values": run / "records" / "gray" / "set_level.json",
        "study records": run / "study" / "perturbations.csv",
        "prediction": run / "predictions" / "baseline0" / f"{first}.png",
        "ground truth": run / "ground_truth" / f"{first}.png",
        "grey input": run / "gray" / f"{second}.png",
        "segment map": run / "segments" / f"{third}.png",
    }


@pytest.mark.slow
@pytest.mark.parametrize("damage", [flip_byte, truncate])
def test_damaged_caches_are_reported_and_recomputed(clean_run, tmp_path, damage: Callable[[Path], None]):
    """Every cache damaged at once: each is reported, none used; the tables equal the clean run's bytes."""
    run = tmp_path / "run"
    shutil.copytree(clean_run, run)
    damaged = caches(run)
    for path in damaged.values():
        damage(path)
    expected = dict(damaged)
    if damaged["records"].read_bytes().endswith(b"\n"):  # cut between lines: records missing, nothing to detect
        del expected["records"]
    execute(config(run))
    for table in TABLES:
        assert (run / table).read_bytes() == (clean_run / table).read_bytes(), table
    reported = {entry["path"] for entry in json.loads((run / "run.json").read_text())["integrity"]["entries"]}
    # The epoch checkpoint and its optimizer state are only read to resume, i.e. after the final weights failed.
    assert str(expected.pop("optimizer state")) in reported or str(expected["epoch checkpoint"]) in reported
    missing = {kind for kind, path in expected.items() if str(path) not in reported}
    assert not missing, missing
    prediction = damaged["prediction"].relative_to(run)
    assert (run / prediction).read_bytes() == (clean_run / prediction).read_bytes()


@pytest.mark.slow
def test_wrong_pixels_with_tags_kept_are_rewritten(clean_run, tmp_path):
    """Issue 14: a ground truth and a prediction re-encoded with other pixels but their tags kept."""
    run = tmp_path / "run"
    shutil.copytree(clean_run, run)
    first, second = image_ids(run)[:2]
    for path in (run / "ground_truth" / f"{first}.png", run / "predictions" / "gray" / f"{second}.png"):
        text = read_png_text(path)
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        Image.fromarray(255 - np.asarray(Image.open(path))).save(path, pnginfo=info)
    execute(config(run))
    for table in TABLES:
        assert (run / table).read_bytes() == (clean_run / table).read_bytes(), table
    assert json.loads((run / "run.json").read_text())["integrity"]["corrupt_entries"] == 2
