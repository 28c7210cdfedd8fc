"""colorbench.core.paths: the one mapping from outside strings to path components, and the stay-under-root check, per
vector (relative ``..``, absolute, symlink out of the root, NUL, non-UTF-8 bytes), and the runner's path
functions built on them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from colorbench.core.errors import BenchError
from colorbench.core.files import WriteError, append_bytes, atomic_write_bytes
from colorbench.core.paths import child, inside, is_safe_component, printable, safe_component
from colorbench.io.layout import RunLayout
from colorbench.io.records import RecordStore
from colorbench.io.runfolder import LOCK_FILE, lock
from colorbench.training.epochs import CsvLog

HOSTILE = {
    "parent": "..",
    "dot": ".",
    "empty": "",
    "relative-up": "../../../../evil_target/pwn_rel",
    "absolute": "/etc/passwd",
    "nul": "a\x00b",
    "non-utf8": os.fsdecode(b"caf\xe9"),
    "lone-surrogate": "x\ud800y",
    "backslash": "..\\..\\win",
    "newline": "a\nb",
    "long": "y" * 400,
    "unicode": "caf\u00e9",
    "spaces": "my photo (1)",
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_strings_map_to_one_safe_component(kind, tmp_path):
    text = HOSTILE[kind]
    name = safe_component(text)
    assert is_safe_component(name) and name == safe_component(name)  # safe and a fixed point
    assert name != text and len(name) <= 128
    assert (tmp_path / name).parent == tmp_path and inside(tmp_path, tmp_path / name)


def test_mapping_is_identity_on_safe_names_and_keeps_distinct_texts_distinct():
    for name in ("397133", "chromagan-noclass", "chromagan@seed1", "IMG_0001.JPG", "a.b-c_d"):
        assert safe_component(name) == name
    mapped = {safe_component(text) for text in HOSTILE.values()}
    assert len(mapped) == len(HOSTILE)
    assert safe_component("a b") != safe_component("a_b") and safe_component("a/b") != safe_component("a b")


def test_inside_resolves_dots_and_symlinks(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere)
    (root / "ok").symlink_to(root)
    assert inside(root, root / "a" / "b.png")
    assert not inside(root, root / ".." / "x.png")
    assert not inside(root, Path("/etc/passwd"))
    assert not inside(root, root / "link" / "x.png")
    assert inside(root, root / "ok" / "x.png")
    assert not inside(root, root / "a\x00b")


def test_child_maps_names_and_refuses_symlinks_out(tmp_path):
    assert child(tmp_path, "predictions", "gray", "1.png") == tmp_path / "predictions" / "gray" / "1.png"
    escaped = child(tmp_path, "ground_truth", "../../../../evil_target/pwn_rel.png")
    assert escaped.parent == tmp_path / "ground_truth"
    (tmp_path / "segments").symlink_to(tmp_path.parent)
    with pytest.raises(BenchError, match="resolves outside"):
        child(tmp_path, "segments", "1.png")


def test_printable_is_one_encodable_line():
    for text in HOSTILE.values():
        shown = printable(text)
        shown.encode("utf-8")
        assert "\n" not in shown and "\x00" not in shown
    assert printable(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert printable("caf\u00e9.png") == "caf\u00e9.png"


@pytest.mark.parametrize("kind", ["relative-up", "absolute", "nul", "non-utf8", "parent"])
def test_runner_paths_stay_in_the_run_folder(kind, tmp_path):
    """ground truth / gray / segments / prediction / records paths for hostile ids and model names."""
    layout = RunLayout(tmp_path / "out")
    text = HOSTILE[kind]
    paths = [layout.ground_truth(text), layout.gray(text), layout.segments(text), layout.prediction(text, text),
             layout.prediction("gray", text), layout.records_dir(text, "psnr"), layout.records_dir("gray", text)]
    for path in paths:
        assert inside(tmp_path / "out", path) and "\x00" not in str(path)
        assert len(path.relative_to(tmp_path / "out").parts) == (3 if "predictions" in path.parts
                                                                 or "records" in path.parts else 2)


# -- no write follows a symlink the harness did not create (issue 22) -------------------------------------------

def linked(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """``tmp_path/folder/name`` as a symlink to ``tmp_path/victim`` (which holds b"precious")."""
    victim, folder = tmp_path / "victim", tmp_path / "folder"
    victim.write_bytes(b"precious")
    folder.mkdir()
    (folder / name).symlink_to(victim)
    return folder / name, victim


WRITERS = {
    "atomic": lambda path: atomic_write_bytes(path, b"new"),
    "append": lambda path: append_bytes(path, b"new"),
    "records": lambda path: RecordStore(path.parent, 0).append([{"image_id": "1", "psnr": 1.0}]),
    "csv-log": lambda path: CsvLog(path, ["epoch", "loss"], 0).append({"epoch": 1, "loss": 0.5}),
    "lock": lambda path: lock(path.parent).__enter__(),
}
NAMES = {"atomic": "a.csv", "append": "a.log", "records": "rank-0.jsonl", "csv-log": "steps.csv",
         "lock": LOCK_FILE}


@pytest.mark.parametrize("writer", WRITERS)
def test_no_writer_follows_a_planted_symlink(writer, tmp_path):
    path, victim = linked(tmp_path, NAMES[writer])
    with pytest.raises(WriteError, match=r"refusing to write .* symbolic link"):
        WRITERS[writer](path)
    assert victim.read_bytes() == b"precious" and path.is_symlink()


@pytest.mark.parametrize("writer", ["atomic", "append"])
def test_a_dangling_symlink_is_not_created_through(writer, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x").symlink_to(tmp_path / "created-elsewhere")
    with pytest.raises(WriteError, match="symbolic link"):
        WRITERS[writer](folder / "x")
    assert not (tmp_path / "created-elsewhere").exists()

