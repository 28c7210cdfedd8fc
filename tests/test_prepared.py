"""The prepared input cache (bench data prepare): the loader serves the same bytes as decoding the originals, a
run gives the same numbers with and without it, an interrupted or damaged cache is mended by preparing again."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

from colorbench.cli.main import main
from colorbench.data.loader import OriginalsDataset, Preprocess
from colorbench.data.prepared import PreparedStore, prepare, store_dir
from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest

SIZE = 48


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A cache folder of this test's own (the session's must not gain a prepared store other tests would read).
    Sources are opened afresh on both sides: a memoised ``sample:`` source points into the cache it was opened in,
    and this one is deleted when the test passes."""
    monkeypatch.setenv("COLORBENCH_CACHE", str(tmp_path / "cache"))
    open_source.cache_clear()
    yield tmp_path / "cache"
    open_source.cache_clear()


def items(entries, cfg: Preprocess) -> dict[str, np.ndarray]:
    dataset = OriginalsDataset(entries, cfg)
    return {item["image_id"]: item["rgb_u8"].numpy() for item in (dataset[i] for i in range(len(dataset)))}


@pytest.mark.parametrize("mode", ["resize", "center-crop"])
def test_prepared_pixels_equal_decoded_pixels(own_cache, mode):
    manifest = build_manifest(open_source("sample:train"), "full", progress=False)
    cfg = Preprocess(SIZE, mode)
    raw = items(manifest.usable, cfg)
    summary = prepare(manifest, SIZE, mode, progress=False)
    assert summary.prepared == len(manifest.usable) == len(raw) and summary.already == 0
    dataset = OriginalsDataset(manifest.usable, cfg)
    assert dataset.prepared is not None and set(dataset.prepared.slots) == {e.sha256 for e in manifest.usable}
    served = items(manifest.usable, cfg)
    assert served.keys() == raw.keys()
    for image_id, pixels in raw.items():
        assert served[image_id].dtype == np.uint8 and np.array_equal(served[image_id], pixels), image_id
    assert prepare(manifest, SIZE, mode, progress=False).already == len(raw)  # nothing done twice


def test_run_numbers_are_the_same_with_the_prepared_cache(own_cache, tmp_path):
    command = ["run", "--models", "gray,baseline0", "--no-study", "--size", str(SIZE), "--no-progress",
               "--metrics", "psnr,ssim,deltae2000,colorfulness"]
    assert main([*command, "--out", str(tmp_path / "raw")]) == 0
    for source in ("sample:train", "sample:test"):
        assert main(["data", "prepare", source, "--size", str(SIZE), "--no-progress"]) == 0
    assert PreparedStore.find(SIZE, "resize") is not None
    assert main([*command, "--out", str(tmp_path / "prepared")]) == 0
    rows = [list(csv.reader((tmp_path / run / "per_image.csv").open())) for run in ("raw", "prepared")]
    assert len(rows[0]) > 1 and rows[0] == rows[1]
    ground_truth = sorted((tmp_path / "raw" / "ground_truth").glob("*.png"))
    assert ground_truth and all(p.read_bytes() == (tmp_path / "prepared" / "ground_truth" / p.name).read_bytes()
                                for p in ground_truth)


def test_damaged_row_is_not_served_and_prepare_mends_it(own_cache, caplog):
    manifest = build_manifest(open_source("sample:test"), "full", progress=False)
    prepare(manifest, SIZE, "resize", progress=False)
    shard = store_dir(SIZE, "resize") / "shard-00000.npy"
    array = np.load(shard, mmap_mode="r+")
    array[1, 0, 0, 0] ^= 0xFF
    array.flush()
    del array
    store = PreparedStore.find(SIZE, "resize")
    damaged = manifest.usable[1]
    with caplog.at_level(logging.WARNING, logger="colorbench.data.prepared"):
        assert store.pixels(damaged.sha256) is None
        assert "fails its checksum" in caplog.text
        caplog.clear()
        cfg = Preprocess(SIZE, "resize")
        served = items([damaged], cfg)  # decoded from the original instead
        assert "fails its checksum" in caplog.text
    summary = prepare(manifest, SIZE, "resize", progress=False)
    assert (summary.prepared, summary.already) == (1, len(manifest.usable) - 1)
    assert np.array_equal(PreparedStore.find(SIZE, "resize").pixels(damaged.sha256).numpy(), served[damaged.image_id])


def test_interrupted_shard_is_ignored_and_redone(own_cache):
    manifest = build_manifest(open_source("sample:test"), "full", progress=False)
    prepare(manifest, SIZE, "resize", progress=False, shard_images=2)
    folder = store_dir(SIZE, "resize")
    last = sorted(folder.glob("shard-*.json"))[-1]
    lost = {row["sha256"] for row in json.loads(last.read_text())}
    last.unlink()  # the array was written, the index not: the shard is incomplete
    assert lost.isdisjoint(PreparedStore.find(SIZE, "resize").slots)
    summary = prepare(manifest, SIZE, "resize", progress=False, shard_images=2)
    assert summary.prepared == len(lost) and lost <= set(PreparedStore.find(SIZE, "resize").slots)


def test_prepare_rejects_bad_arguments(own_cache, capsys):
    with pytest.raises(SystemExit) as refused:  # refused when parsed (issue 22), below SSIM's 11-pixel window
        main(["data", "prepare", "sample:test", "--size", "4"])
    assert refused.value.code == 2 and "--size: takes a whole number from 11 to 4096, not 4" in capsys.readouterr().err
    assert main(["data", "prepare", "folder:/nonexistent/photos", "--no-progress"]) == 2
