"""Crash safety (issue 13): ``run`` is SIGKILLed during prediction, scoring, fitting, training and report writing
(colorbench.core.crashpoints), rerun after each kill, and must end with the tables and predictions of an uninterrupted
run, byte for byte, without redoing work that was finished before a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from colorbench.core.crashpoints import KILL_ENV, STAGES
from tests.conftest import REPO

ARGS = ["run", "--models", "gray,baseline0,chromagan-noclass", "--metrics", "psnr,ssim", "--epochs", "2",
        "--size", "32", "--batch-size", "2", "--no-study", "--no-progress"]
#: Kill points in the order a run reaches them, so that each rerun gets further than the one before.
KILLS = ["predict", "score", "fit", "train-epoch:1", "report"]


def run(out: Path, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run([sys.executable, "-m", "bench", *ARGS, "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def finished_work(out: Path) -> dict[str, int]:
    """Files a finished stage leaves behind that a resumed run must not write again, with their mtimes."""
    patterns = ("predictions/*/*.png", "ground_truth/*.png", "gray/*.png", "checkpoints/*.safetensors",
                "train/*/checkpoints/epoch-*")
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for pattern in patterns for p in out.glob(pattern)}


def record_lines(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.glob("records/*/*/*.jsonl")}


@pytest.mark.slow
def test_sigkill_at_every_stage_then_rerun_equals_an_uninterrupted_run(tmp_path):
    assert [k.split(":")[0] for k in KILLS] == list(STAGES)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    done = run(reference)
    assert done.returncode == 0, done.stderr
    assert "note: training chromagan-noclass for 2 epochs" in done.stderr
    for kill in KILLS:
        before, lines = finished_work(crashed), record_lines(crashed)
        done = run(crashed, kill)
        assert done.returncode == -signal.SIGKILL, (kill, done.returncode, done.stderr[-2000:])
        after = finished_work(crashed)
        redone = {name for name, mtime in before.items() if after.get(name, mtime) != mtime}
        assert not redone, (kill, redone)
        shrunk = {name for name, data in lines.items() if not record_lines(crashed)[name].startswith(data)}
        assert not shrunk, (kill, shrunk)
    before = finished_work(crashed)
    done = run(crashed)
    assert done.returncode == 0, done.stderr
    assert finished_work(crashed) == before  # the last kill came after all work: nothing is recomputed
    for table in ("per_image.csv", "leaderboard.csv"):
        assert (crashed / table).read_bytes() == (reference / table).read_bytes(), table
    predictions = sorted(p.relative_to(reference) for p in reference.glob("predictions/*/*.png"))
    assert predictions == sorted(p.relative_to(crashed) for p in crashed.glob("predictions/*/*.png"))
    assert len(predictions) == 12
    for name in predictions:
        assert (crashed / name).read_bytes() == (reference / name).read_bytes(), name
    training = json.loads((crashed / "run.json").read_text())["models"]["chromagan-noclass"]["training"]
    assert training["resumed_from_epoch"] == 1
    assert (crashed / "index.html").is_file()
