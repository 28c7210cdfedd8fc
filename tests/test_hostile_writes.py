"""Hostile disks and damaged run folders (issue 22, kinds 3 and 6): a full or read-only output or cache disk, a
run-folder file swapped for a folder or the reverse, a damaged run.json or per_image.csv read by ``report``, and
symlinks planted where the harness writes - one line naming the path (and that what was written is kept) with a
non-zero exit, never a traceback, never a write through the link; ``data prepare`` shards follow the umask."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import pytest

from colorbench.cli.main import main
from colorbench.io.runfolder import LOCK_FILE
from tests.hostile_files import failing_opens, one_line, tiny_folder

RUN = ["run", "--models", "gray,baseline0", "--no-study", "--no-progress", "--size", "32", "--metrics", "psnr,ssim"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return tiny_folder(tmp_path_factory.mktemp("writes"), 3)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, images) -> Path:
    """A finished run (module-wide; tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*RUN, "--eval", f"folder:{images}", "--out", str(out)]) == 0
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target, symlinks=True)
    return target


# -- a full or read-only disk --------------------------------------------------------------------------------------

@pytest.mark.parametrize("after", [0, 3, 12, 24])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_output_disk_full_or_read_only_is_one_line_and_resumes(code, after, images, finished, tmp_path, monkeypatch,
                                                              capsys):
    """The write number ``after`` in the run folder fails; the rerun on a working disk ends as a clean run."""
    out = tmp_path / "out"
    failing_opens(monkeypatch, out, code, after)
    assert main([*RUN, "--eval", f"folder:{images}", "--out", str(out)]) == 1
    line = one_line(capsys.readouterr().err, "cannot write", str(out), "kept")
    assert ("disk is full" in line) == (code == errno.ENOSPC)
    monkeypatch.undo()
    assert main([*RUN, "--eval", f"folder:{images}", "--out", str(out)]) == 0
    assert (out / "per_image.csv").read_bytes() == (finished / "per_image.csv").read_bytes()


@pytest.mark.parametrize("source", ["sample", "folder"])
def test_cache_disk_full_is_one_line(source, images, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLORBENCH_CACHE", str(cache))
    failing_opens(monkeypatch, cache, errno.ENOSPC)
    data = [] if source == "sample" else ["--eval", f"folder:{images}"]
    assert main([*RUN, *data, "--out", str(tmp_path / "out")]) == 1
    one_line(capsys.readouterr().err, str(cache), "disk is full")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_report_on_a_full_or_read_only_run_folder_is_one_line(code, finished, tmp_path, monkeypatch, capsys):
    run = copy_of(finished, tmp_path)
    before = (run / "index.html").read_bytes()
    failing_opens(monkeypatch, run, code)
    assert main(["report", str(run)]) == 1
    one_line(capsys.readouterr().err, "cannot write", str(run))
    assert (run / "index.html").read_bytes() == before


def test_prepare_on_a_full_cache_disk_is_one_line(tmp_path, monkeypatch, images, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLORBENCH_CACHE", str(cache))
    failing_opens(monkeypatch, cache, errno.ENOSPC, after=1)
    assert main(["data", "prepare", f"folder:{images}", "--size", "32", "--no-progress"]) == 1
    one_line(capsys.readouterr().err, str(cache), "disk is full")


# -- files swapped for folders and the reverse -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["index.html", "claims.csv", "analysis/win_rates.csv", "figures/win_rates.png"])
def test_a_run_folder_file_swapped_for_a_folder(name, finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    (run / name).unlink()
    (run / name).mkdir()
    assert main(["report", str(run)]) in (1, 2)
    one_line(capsys.readouterr().err, name)
    assert (run / name).is_dir()


@pytest.mark.parametrize("name", ["predictions", "records", "ground_truth", "figures"])
def test_a_run_folder_folder_swapped_for_a_file(name, finished, images, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    shutil.rmtree(run / name)
    (run / name).write_text("in the way")
    assert main([*RUN, "--eval", f"folder:{images}", "--out", str(run)]) in (1, 2)
    one_line(capsys.readouterr().err, name)
    assert (run / name).read_text() == "in the way"


# -- damaged tables read by report ---------------------------------------------------------------------------------

DAMAGED = {
    "run.json-a-list": ("run.json", lambda data: b"[1, 2]"),
    "run.json-no-config": ("run.json", lambda data: b'{"models": {}}'),
    "run.json-config-a-string": ("run.json", lambda data: data.replace(b'"config": {', b'"config": "x", "c": {', 1)),
    "run.json-duplicate-key": ("run.json", lambda data: data.replace(b"{", b'{"seed": 1, "seed": 2, ', 1)),
    "run.json-models-a-list": ("run.json", lambda data: data.replace(b'"models": {', b'"models": [], "m": {', 1)),
    "per_image.csv-truncated": ("per_image.csv", lambda data: data[: len(data) * 2 // 3]),
    "per_image.csv-extra-field": ("per_image.csv", lambda data: data.rstrip(b"\n") + b",9,9\n"),
    "per_image.csv-short-row": ("per_image.csv", lambda data: data.rstrip(b"\n").rsplit(b",", 1)[0] + b"\n"),
    "leaderboard.csv-no-header": ("leaderboard.csv", lambda data: data.split(b"\n", 1)[1]),
    "per_image.csv-no-header": ("per_image.csv", lambda data: data.split(b"\n", 1)[1]),
    "leaderboard.csv-truncated": ("leaderboard.csv", lambda data: data[: len(data) // 2]),
    "per_image.csv-cut-at-a-line": ("per_image.csv", lambda data: b"".join(data.splitlines(keepends=True)[:-1])),
    "per_image.csv-value-edited": ("per_image.csv", lambda data: data[:-1] + b"1\n"),
    "leaderboard.csv-cut-at-a-line": ("leaderboard.csv", lambda data: b"".join(data.splitlines(keepends=True)[:-1])),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_report_on_a_damaged_run_is_one_line(case, finished, tmp_path, capsys):
    name, damage = DAMAGED[case]
    run = copy_of(finished, tmp_path)
    (run / name).write_bytes(damage((run / name).read_bytes()))
    assert main(["report", str(run)]) == 2
    one_line(capsys.readouterr().err, str(run))


# -- symlinks planted where the harness writes ------------------------------------------------------------------

WRITTEN = [("run", name) for name in ("run.json", "per_image.csv", "index.html", "claims.csv", "leaderboard.csv")] + [
    ("report", name) for name in ("index.html", "claims.csv", "analysis/win_rates.csv")]


@pytest.mark.parametrize(("command", "name"), [*WRITTEN, ("run", LOCK_FILE), ("report", LOCK_FILE)])
def test_a_planted_symlink_is_never_written_through(command, name, finished, images, tmp_path, capsys):
    """The lock links out of the folder (it is no layout path: nothing but ``O_NOFOLLOW`` stops the write); the
    other files link to a file of the folder (so the stay-under-root check passes them) and are neither written
    through nor silently replaced."""
    run = copy_of(finished, tmp_path)
    victim = (tmp_path if name == LOCK_FILE else run) / "victim.txt"
    victim.write_text("precious")
    (run / name).unlink()
    (run / name).symlink_to(victim)
    argv = ["report", str(run)] if command == "report" else [*RUN, "--eval", f"folder:{images}", "--out", str(run)]
    assert main(argv) == 1
    one_line(capsys.readouterr().err, "refusing to write", name, "symbolic link")
    assert victim.read_text() == "precious" and (run / name).is_symlink()


def test_a_planted_symlink_in_place_of_a_record_file_is_not_appended_to(finished, images, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    victim = tmp_path / "victim.jsonl"
    victim.write_text("precious\n")
    records = next((run / "records" / "gray").glob("*/rank-0.jsonl"))
    records.unlink()
    records.symlink_to(victim)
    assert main([*RUN, "--eval", f"folder:{images}", "--out", str(run)]) == 1
    one_line(capsys.readouterr().err, "refusing to write", "rank-0.jsonl")
    assert victim.read_text() == "precious\n"


# -- permissions -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o027])
def test_prepared_shards_follow_the_umask(umask, images, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORBENCH_CACHE", str(tmp_path / "cache"))
    previous = os.umask(umask)
    try:
        assert main(["data", "prepare", f"folder:{images}", "--size", "32", "--no-progress"]) == 0
    finally:
        os.umask(previous)
    shards = list((tmp_path / "cache").rglob("shard-*.npy"))
    assert shards
    assert {stat.S_IMODE(p.stat().st_mode) for p in shards} == {0o666 & ~umask}
