"""Hostile inputs on the read side (issues 13 and 14), COCO annotation files and whole runs: malformed caption and
instance files, traversal and duplicate ids, odd captions - one clear error naming the file, or a recorded
refusal - and the path-safety vectors end to end through ``bench run`` and ``bench score``: nothing is written
outside the declared roots.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest

from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.data.sources import CocoSource
from colorbench.data.splits import build_manifest
from tests.hostile_files import SMALL, colour, encoded, folder_with, png_declaring

# -- COCO annotation files ----------------------------------------------------------------------------------------

def coco_root(tmp_path: Path, images: list[dict] | None = None, annotations: list[dict] | None = None,
              *, raw: bytes | None = None) -> Path:
    """A COCO root with two photos (ids 1, 2) unless ``images`` is given; ``raw`` replaces the captions file."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val").mkdir(exist_ok=True)
    for name in ("1.png", "2.png"):
        colour().save(root / "val" / name)
    if images is None:
        images = [{"id": 1, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"}]
    if annotations is None:
        annotations = [{"id": 10 + i["id"], "image_id": i["id"], "caption": "a photo"} for i in images
                       if isinstance(i, dict) and isinstance(i.get("id"), int)]
    data = raw if raw is not None else json.dumps({"images": images, "annotations": annotations}).encode()
    (root / "annotations" / "captions_val.json").write_bytes(data)
    return root


def coco_manifest(root: Path) -> dict[str, tuple[str, str]]:
    """image_id -> (status, reason), the manifest written as a run would write it."""
    manifest = build_manifest(CocoSource(root, "val"), "full", progress=False)
    manifest.write(root.parent / "manifest.csv")
    return {e.image_id: (e.status, e.reason) for e in manifest.entries}


MALFORMED = {
    "list-not-object": (b"[1, 2, 3]", "holds a JSON list"),
    "not-json": (b"{\"images\": [", "cannot read COCO annotation file"),
    "not-utf8": (b"{\"images\": [], \"info\": \"caf\xe9\"}", "cannot read COCO annotation file"),
    "deep-nesting": (b"[" * 200_000 + b"]" * 200_000, "cannot read COCO annotation file"),
    "huge-integer": (b"{\"images\": [{\"id\": " + b"9" * 5000 + b", \"file_name\": \"1.png\"}]}",
                     "cannot read COCO annotation file"),
    "images-not-list": (json.dumps({"images": {"id": 1}}).encode(), "'images' is a JSON dict"),
    "image-not-object": (json.dumps({"images": ["1.png"]}).encode(), "images[0] is a JSON str"),
    "no-file-name": (json.dumps({"images": [{"id": 1}]}).encode(), "images[0] needs an id and a file_name"),
    "integer-file-name": (json.dumps({"images": [{"id": 1, "file_name": 7}]}).encode(), "file_name=7"),
    "nul-file-name": (json.dumps({"images": [{"id": 1, "file_name": "1.png\u0000.jpg"}]}).encode(), "without NUL"),
    "no-id": (json.dumps({"images": [{"file_name": "1.png"}]}).encode(), "needs an id"),
    "annotations-not-list": (json.dumps({"images": [], "annotations": "none"}).encode(), "'annotations' is a JSON str"),
    "caption-not-string": (json.dumps({"images": [{"id": 1, "file_name": "1.png"}],
                                       "annotations": [{"id": 1, "image_id": 1, "caption": 5}]}).encode(),
                           "string caption"),
    "annotation-without-image-id": (json.dumps({"images": [], "annotations": [{"id": 1, "caption": "x"}]}).encode(),
                                    "annotations[0]"),
    "annotation-id-string": (json.dumps({"images": [], "annotations": [
        {"id": "a", "image_id": 1, "caption": "x"}]}).encode(), "integer id"),
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_caption_file_is_one_clear_error(kind, tmp_path):
    raw, message = MALFORMED[kind]
    root = coco_root(tmp_path, raw=raw)
    with pytest.raises(BenchError, match=None) as error:
        coco_manifest(root)
    text = str(error.value)
    assert message in text and "captions_val.json" in text and "\n" not in text


def test_malformed_instances_file_is_one_clear_error(tmp_path):
    root = coco_root(tmp_path)
    (root / "annotations" / "instances_val.json").write_text("[]")
    with pytest.raises(BenchError, match=r"instances_val\.json holds a JSON list"):
        CocoSource(root, "val").instances()
    (root / "annotations" / "instances_val.json").write_text(json.dumps({"images": [], "annotations": [{"id": 1}]}))
    with pytest.raises(BenchError, match=r"cannot index COCO annotation file .*instances_val\.json"):
        CocoSource(root, "val").instances()


def test_malformed_segmentation_is_one_clear_error(tmp_path):
    from colorbench.data.segments import coco_label_map

    root = coco_root(tmp_path)
    instances = {"images": [{"id": 1, "file_name": "1.png", "width": 30, "height": 20}], "categories": [],
                 "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "area": 10, "iscrowd": 0,
                                  "segmentation": [["x", "y"]]}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(instances))
    with pytest.raises(BenchError, match="malformed instance annotation of image 1"):
        coco_label_map(CocoSource(root, "val").instances(), 1, 20, 30)


def test_path_outside_the_image_folder_is_refused_unread(tmp_path):
    """Issue 14: a file_name with ../ or an absolute path was opened, hashed into the manifest and scored."""
    secret = tmp_path / "secret.png"
    colour(21, 30).save(secret)  # bytes that no photo of the root has
    root = coco_root(tmp_path, [
        {"id": 1, "file_name": "1.png"},
        {"id": 3, "file_name": "../../secret.png"},
        {"id": 4, "file_name": str(secret)},
        {"id": 5, "file_name": "link.png"},
        {"id": 6, "file_name": "sub/../1.png"},
        {"id": 7, "file_name": ""},
    ])
    (root / "val" / "link.png").symlink_to(secret)
    rows = coco_manifest(root)
    assert rows["1"][0] == "ok"
    for image_id in ("3", "4", "5", "6", "7"):
        assert rows[image_id][0] == "refused", rows[image_id]
    assert "resolves outside" in rows["5"][1] and "climbs out" in rows["3"][1]
    manifest = (tmp_path / "manifest.csv").read_text()
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in manifest


def test_symlinked_split_folder_is_followed(tmp_path):
    """The usual layout ROOT/val2017 -> /data/val2017: files under the resolved folder are inside."""
    root = coco_root(tmp_path)
    real = tmp_path / "storage"
    (root / "val").rename(real)
    (root / "val").symlink_to(real)
    assert {s for s, _ in coco_manifest(root).values()} == {"ok"}


@pytest.mark.parametrize("bad_id", ["../../../../evil_target/pwn_rel", 1.5, True, None, [1], "7"],
                         ids=["traversal", "float", "bool", "null", "list", "digit-string"])
def test_non_integer_ids_are_refused(bad_id, tmp_path):
    root = coco_root(tmp_path, [{"id": 1, "file_name": "1.png"}, {"id": bad_id, "file_name": "2.png"}])
    if bad_id is None:  # no id at all is a malformed file
        with pytest.raises(BenchError, match=r"images\[1\] needs an id"):
            coco_manifest(root)
        return
    rows = coco_manifest(root)
    assert rows.pop("1")[0] == "ok"
    [(image_id, (status, reason))] = rows.items()
    assert status == "refused" and "not an integer" in reason
    assert "/" not in image_id and image_id not in (".", "..")


def test_duplicate_ids_are_refused_and_reruns_are_stable(tmp_path):
    """Issue 14: two images with id 397133 gave 6 usable rows but 5 scored ones, and a drifting leaderboard."""
    root = coco_root(tmp_path, [{"id": 397133, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"},
                                {"id": 397133, "file_name": "2.png"}])
    first = build_manifest(CocoSource(root, "val"), "full", progress=False)
    statuses = [(e.image_id, e.file, e.status) for e in first.entries]
    assert statuses == [("2", "2.png", "ok"), ("397133", "1.png", "refused"), ("397133", "2.png", "refused")]
    assert "duplicate image id 397133: 2 files (1.png, 2.png)" in first.entries[1].reason
    assert build_manifest(CocoSource(root, "val"), "full", progress=False).csv_bytes() == first.csv_bytes()


def test_ids_are_unique_over_the_manifest_refused_rows_included(tmp_path):
    """A row refused for its path (or a digit-string id) must not share an id with a readable row: the runner
    keys hashes and files by id."""
    root = coco_root(tmp_path, [{"id": 1, "file_name": "1.png"}, {"id": 1, "file_name": "../x.png"},
                                {"id": 2, "file_name": "2.png"}, {"id": "2", "file_name": "1.png"}])
    entries = build_manifest(CocoSource(root, "val"), "full", progress=False).entries
    assert [(e.image_id, e.status) for e in entries] == [("1", "refused")] * 2 + [("2", "refused")] * 2
    assert all("duplicate image id" in e.reason for e in entries)


CAPTIONS = {
    "lone-surrogate": ("a \ud800 cat", "a \ufffd cat"),
    "control-chars": ("a\x00b\x1bc\x7f", "a\ufffdb\ufffdc\ufffd"),
    "newlines-and-tabs": ("two\nlines\tand\r\nmore", "two lines and more"),
    "html": ("<script>alert('x')</script> & co", "<script>alert('x')</script> & co"),
    "emoji-and-rtl": ("a \U0001f431 \u202eevil", "a \U0001f431 \u202eevil"),
}


@pytest.mark.parametrize("kind", CAPTIONS)
def test_captions_are_cleaned_and_always_written(kind, tmp_path):
    text, expected = CAPTIONS[kind]
    root = coco_root(tmp_path, [{"id": 1, "file_name": "1.png"}], [{"id": 3, "image_id": 1, "caption": text}])
    coco_manifest(root)
    with (tmp_path / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["caption"] == expected


def test_surrogate_escaped_file_name_reads_the_byte_named_file(tmp_path):
    """A JSON file_name with a surrogate escape names a file whose name is not UTF-8: read, shown escaped."""
    root = coco_root(tmp_path, [{"id": 1, "file_name": "caf\udce9.png"}])
    colour().save(root / "val" / os.fsdecode(b"caf\xe9.png"))
    manifest = build_manifest(CocoSource(root, "val"), "full", progress=False)
    [entry] = manifest.entries
    assert (entry.status, entry.file) == ("ok", "caf\\xe9.png")


# -- end to end: bench run / bench score on the path-safety vectors ------------------------------------------------

def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_run_on_a_hostile_coco_root_writes_only_inside_and_reruns_identically(tmp_path):
    """The probe of issue 13 (an id of ../../../../evil_target/pwn_rel wrote a PNG outside the output folder),
    with traversal and symlinked file names, duplicate ids and odd captions in the same annotation file."""
    work = tmp_path / "a" / "b" / "c" / "d"
    work.mkdir(parents=True)
    outside = tmp_path / "outside.png"
    colour().save(outside)
    root = coco_root(work, [
        {"id": 1, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"},
        {"id": "../../../../evil_target/pwn_rel", "file_name": "1.png"},
        {"id": 3, "file_name": "../../../../../outside.png"}, {"id": 4, "file_name": "link.png"},
        {"id": 5, "file_name": "1.png"}, {"id": 5, "file_name": "2.png"},
    ], [{"id": 1, "image_id": 1, "caption": "a \ud800 <b>cat</b>"}])
    (root / "val" / "link.png").symlink_to(outside)
    out = work / "out"
    before = files_under(tmp_path)
    args = ["run", "--models", "gray", "--no-study", "--eval", f"coco:{root}:val", "--out", str(out), *SMALL]
    assert main(args) == 0
    created = files_under(tmp_path) - before
    assert created and all(out in p.parents or p == out for p in created), sorted(created - files_under(out))
    assert not (tmp_path / "evil_target").exists() and not (work / "evil_target").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["splits"]["eval"]["statuses"] == {"ok": 2, "refused": 5}
    assert len([s for s in run["skipped"] if s["reason"].startswith("refused")]) == 5
    tables = {name: (out / name).read_bytes() for name in ("per_image.csv", "leaderboard.csv", "manifest.csv")}
    assert tables["per_image.csv"].decode().count("\n") == 3
    assert main(args) == 0
    assert tables == {name: (out / name).read_bytes() for name in tables}


def test_run_refuses_output_subfolders_that_are_symlinks_out(tmp_path):
    """A symlink planted in the run folder (ground_truth -> elsewhere) does not carry writes outside it."""
    folder = folder_with(tmp_path, "x.png", encoded(colour(), "PNG"))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "ground_truth").symlink_to(elsewhere)
    assert main(["run", "--models", "gray", "--no-study", "--eval", f"folder:{folder}", "--out", str(out),
                 *SMALL]) == 2
    assert not any(elsewhere.iterdir())


def test_run_on_a_hostile_folder(tmp_path):
    folder = tmp_path / "odd ** [folder]"
    folder.mkdir()
    colour().save(folder / "plain.png")
    colour(24, 24).save(folder / os.fsdecode(b"\xff\xfe.png"))
    (folder / "bomb.png").write_bytes(png_declaring(30000, 30000))
    (folder / "empty.jpg").write_bytes(b"")
    colour().save(tmp_path / "secret.png")
    (folder / "leak.png").symlink_to(tmp_path / "secret.png")
    out = tmp_path / "out"
    assert main(["run", "--models", "gray", "--no-study", "--eval", f"folder:{folder}", "--out", str(out),
                 *SMALL]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["splits"]["eval"]["statuses"] == {"ok": 2, "too_large": 1, "unreadable": 1, "refused": 1}
    assert (out / "manifest.csv").read_text(encoding="utf-8").count("\\xff\\xfe.png") == 1


def test_score_hostile_folders(tmp_path):
    pred, gt = tmp_path / "pred [v2] **", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    odd = os.fsdecode(b"\xe9t\xe9.png")
    for name in ("plain.png", odd, "a b.png"):
        colour().save(pred / name)
        colour().save(gt / name)
    (pred / "bomb.png").write_bytes(png_declaring(30000, 30000))
    colour().save(gt / "bomb.png")
    (pred / "zero.png").write_bytes(b"")
    colour().save(gt / "zero.png")
    colour().save(tmp_path / "secret.png")
    (gt / "leak.png").symlink_to(tmp_path / "secret.png")
    colour().save(pred / "leak.png")
    out = tmp_path / "out"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--no-progress",
                 "--metrics", "psnr"]) == 0
    run = json.loads((out / "run.json").read_text())
    reasons = " | ".join(s["reason"] for s in run["skipped"])
    assert "decompression bomb" in reasons and "zero.png" in reasons and "resolves outside" in reasons
    with (out / "per_image.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["file"] for r in rows) == sorted(["plain.png", "\\xe9t\\xe9.png", "a b.png"])
    assert "index.html" in {p.name for p in out.iterdir()}
