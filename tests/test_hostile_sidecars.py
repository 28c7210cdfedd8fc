"""Smaller hostile inputs (issue 22, kind 8): caption sidecars written with a UTF-8 byte-order mark, dotted file
stems, JSON objects naming a key twice (in every JSON file the harness reads from users), and a ``--segments``
folder with one unreadable or wrongly sized map - each read as stated, or refused in one line naming the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.data.sidecar import sidecar_captions
from colorbench.data.sources import IMAGE_SUFFIXES, CocoSource
from colorbench.data.splits import build_manifest
from colorbench.io.images import write_label_png
from colorbench.io.runfolder import IDENTITY_FILE
from tests.hostile_files import colour, manifest_of, one_line, tiny_folder


def captioned_folder(tmp_path: Path, stems: list[str]) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for index, stem in enumerate(stems):
        colour(20 + index, 30).save(folder / f"{stem}.png")
    return folder


def csv_sidecar(pairs: dict[str, str], bom: bool) -> bytes:
    text = "image,caption\n" + "".join(f"{image},{caption}\n" for image, caption in pairs.items())
    return ("\ufeff" if bom else "").encode() + text.encode()


@pytest.mark.parametrize("name", ["captions.csv", "captions.json"])
def test_a_sidecar_with_a_byte_order_mark_is_read(name, tmp_path):
    folder = captioned_folder(tmp_path, ["beach", "dog"])
    pairs = {"beach": "a sandy beach", "dog.png": "a brown dog"}
    data = (csv_sidecar(pairs, bom=True) if name.endswith(".csv")
            else "\ufeff".encode() + json.dumps(pairs).encode())
    (folder / name).write_bytes(data)
    captions = {e.file: e.caption for e in manifest_of(folder).entries}
    assert captions == {"beach.png": "a sandy beach", "dog.png": "a brown dog"}


@pytest.mark.parametrize("suffixed", [False, True], ids=["stem", "file-name"])
@pytest.mark.parametrize("kind", ["csv", "json"])
def test_dotted_stems_keep_their_captions_and_do_not_collide(kind, suffixed, tmp_path):
    folder = captioned_folder(tmp_path, ["cat.v1", "cat.v2", "IMG.2024.01"])
    keys = ["cat.v1", "cat.v2", "IMG.2024.01"]
    pairs = {f"{key}.PNG" if suffixed else key: f"caption {index}" for index, key in enumerate(keys)}
    data = csv_sidecar(pairs, bom=False) if kind == "csv" else json.dumps(pairs).encode()
    (folder / f"captions.{kind}").write_bytes(data)
    assert sidecar_captions(folder, IMAGE_SUFFIXES) == {key: f"caption {i}" for i, key in enumerate(keys)}
    captions = {e.file: e.caption for e in manifest_of(folder).entries}
    assert captions == {"cat.v1.png": "caption 0", "cat.v2.png": "caption 1", "IMG.2024.01.png": "caption 2"}


def test_a_captions_json_naming_an_image_twice_is_refused(tmp_path):
    folder = captioned_folder(tmp_path, ["beach"])
    (folder / "captions.json").write_text('{"beach": "first", "beach": "second"}')
    with pytest.raises(BenchError, match=r"captions\.json.*duplicate JSON key 'beach'"):
        manifest_of(folder)


DUPLICATED = {
    "top-level-images": '{"images": [], "images": [{"id": 1, "file_name": "1.png"}], "annotations": []}',
    "image-id": '{"images": [{"id": 1, "id": 2, "file_name": "1.png"}], "annotations": []}',
    "caption": ('{"images": [{"id": 1, "file_name": "1.png"}], '
                '"annotations": [{"id": 5, "image_id": 1, "caption": "a", "caption": "b"}]}'),
}


@pytest.mark.parametrize("case", DUPLICATED)
def test_a_coco_annotation_file_with_a_key_twice_is_refused(case, tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    colour().save(root / "val" / "1.png")
    (root / "annotations" / "captions_val.json").write_text(DUPLICATED[case])
    with pytest.raises(BenchError, match=r"captions_val\.json.*duplicate JSON key"):
        build_manifest(CocoSource(root, "val"), "full", progress=False)


def test_a_folder_identity_with_a_key_twice_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / IDENTITY_FILE).write_text('{"command": "score", "command": "run"}')
    folder = tiny_folder(tmp_path)
    assert main(["score", "--pred", str(folder), "--gt", str(folder), "--metrics", "psnr", "--out", str(out),
                 "--no-progress"]) == 2
    one_line(capsys.readouterr().err, IDENTITY_FILE, "duplicate JSON key 'command'")


SEGMENT_METRICS = ("segment_chroma_ratio", "vivid_recall", "vivid_precision")


@pytest.mark.parametrize("damage", ["not-a-png", "truncated", "empty"])
def test_one_unreadable_segments_map_makes_only_that_image_n_a(damage, tmp_path):
    pred, gt, segments = tmp_path / "pred", tmp_path / "gt", tmp_path / "segments"
    for folder in (pred, gt, segments):
        folder.mkdir()
    for name in ("good", "bad"):
        colour().save(gt / f"{name}.png")
        colour().rotate(180).save(pred / f"{name}.png")
        write_label_png(segments / f"{name}.png", np.repeat(np.arange(1, 4), 10)[None, :].repeat(20, 0))
    bad = segments / "bad.png"
    if damage == "not-a-png":
        bad.write_bytes(b"no picture here")
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:40])
    else:
        bad.write_bytes(b"")
    out = tmp_path / "out"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--segments", str(segments), "--out", str(out),
                 "--metrics", ",".join(("psnr", *SEGMENT_METRICS)), "--no-progress"]) == 0
    with (out / "per_image.csv").open(newline="", encoding="utf-8") as handle:
        table = {r["image_id"]: r for r in csv.DictReader(handle)}
    assert set(table) == {"good", "bad"} and table["bad"]["psnr"] == table["good"]["psnr"]
    assert all(table["bad"][m] == "" for m in SEGMENT_METRICS)
    assert any(table["good"][m] != "" for m in SEGMENT_METRICS)
