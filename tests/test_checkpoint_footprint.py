"""What a training leaves on disk (issue 23): while it runs, the latest complete epoch checkpoint (weights and
optimizer state) that a resume needs; once it has finished, only the final weights in ``checkpoints/`` and the last
``--keep-checkpoints N`` epochs' weights, no optimizer state, so that the demo run folder stays small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from colorbench.cli.main import main
from colorbench.core.crashpoints import KILL_ENV
from colorbench.training.epochs import Checkpoints
from tests.conftest import REPO

ARGS = ["run", "--models", "chromagan-noclass", "--epochs", "3", "--size", "32", "--metrics", "psnr", "--no-study",
        "--no-progress"]
SUFFIXES = ("optim.json", "optim.safetensors", "safetensors")


def epoch_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("epoch-*"))


def write_epochs(checkpoints: Checkpoints, epochs: range) -> list[dict[str, object]]:
    for epoch in epochs:
        for path in checkpoints.paths(epoch):
            path.write_bytes(b"x")
    return [{"epoch": e} for e in epochs]


@pytest.mark.parametrize(("keep", "during", "after"), [(0, [4], []), (2, [3, 4], [3, 4]), (None, [1, 2, 3, 4], None)])
def test_training_keeps_the_latest_then_finishing_drops_optimizer_state(tmp_path, keep, during, after):
    checkpoints = Checkpoints(tmp_path, keep_last=keep)
    checkpoints.prune(write_epochs(checkpoints, range(1, 5)))
    assert epoch_files(tmp_path) == [f"epoch-{e:03d}.{s}" for e in during for s in SUFFIXES]
    checkpoints.finish()
    kept = epoch_files(tmp_path) if after is None else [f"epoch-{e:03d}.safetensors" for e in after]
    assert epoch_files(tmp_path) == kept


def run_command(out: Path, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run([sys.executable, "-m", "bench", *ARGS, *extra, "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def training_record(out: Path) -> dict[str, object]:
    return json.loads((out / "run.json").read_text())["models"]["chromagan-noclass"]


def test_finished_training_keeps_final_weights_and_the_asked_epochs(tmp_path):
    """``--keep-checkpoints 2`` keeps two epochs' weights; a rerun with the default reuses the training (nothing
    is retrained) and drops them, the final weights staying where ``--weights`` and scoring find them."""
    out = tmp_path / "run"
    folder = out / "train" / "chromagan-noclass" / "checkpoints"
    assert main([*ARGS, "--out", str(out), "--keep-checkpoints", "2"]) == 0
    assert training_record(out)["weights_from"] == "trained"
    assert epoch_files(folder) == ["epoch-002.safetensors", "epoch-003.safetensors"]
    assert main([*ARGS, "--out", str(out)]) == 0
    assert training_record(out)["weights_from"] == "cached training"
    assert epoch_files(folder) == []
    assert (out / "checkpoints" / "chromagan-noclass.safetensors").is_file()


@pytest.mark.slow
def test_a_crash_mid_training_resumes_and_the_finished_folder_is_small(tmp_path):
    out = tmp_path / "run"
    folder = out / "train" / "chromagan-noclass" / "checkpoints"
    crashed = run_command(out, kill="train-epoch:2")
    assert crashed.returncode < 0, crashed.stderr[-2000:]
    assert epoch_files(folder) == [f"epoch-002.{s}" for s in SUFFIXES]  # what the resume needs, no more
    done = run_command(out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert training_record(out)["training"]["resumed_from_epoch"] == 2  # type: ignore[index]
    assert epoch_files(folder) == []
