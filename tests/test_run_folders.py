"""One run folder is one run (identity, lock, clean-up) and exit codes that tell the truth (issues 13 and 14)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess
from colorbench.io.checkpoints import save_state
from colorbench.io.runfolder import IDENTITY_FILE, lock
from colorbench.io.weights import load_state_dict
from colorbench.models.registry import get_model_spec
from colorbench.pipeline.runner import RunConfig
from colorbench.training.epochs import Checkpoints
from colorbench.training.loop import disk_note, prepare_state
from tests.conftest import REPO

FAST = ["--size", "32", "--no-progress", "--no-study", "--metrics", "psnr"]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("folders") / "gray"
    assert main(["run", "--models", "gray", "--out", str(out), *FAST]) == 0
    return out


def test_default_folder_names_say_what_was_run():
    names = {RunConfig(models=models).resolved_out() for models in (["gray"], ["baseline0"], ["gray", "baseline0"])}
    study = RunConfig(models=[]).resolved_out()
    assert len(names) == 3 and study not in names and "-study-" in study.name
    assert RunConfig(models=["gray"]).resolved_out() == RunConfig(models=["gray"]).resolved_out()
    other_data = RunConfig(models=["gray"], preprocess=Preprocess(64, "resize")).resolved_out()
    assert other_data != RunConfig(models=["gray"]).resolved_out()


@pytest.mark.parametrize(("args", "message"), [
    (["study", "--size", "32", "--no-progress"], "holds the results of another command (run of gray"),
    (["run", "--models", "baseline0", *FAST], "holds the results of another command (run of gray"),
])
def test_another_command_is_refused_and_changes_nothing(gray_run, args, message, capsys):
    before = {p: p.read_bytes() for p in gray_run.rglob("*") if p.is_file()}
    assert main([*args, "--out", str(gray_run)]) == 2
    err = capsys.readouterr().err
    assert message in err and "--out" in err
    assert before == {p: p.read_bytes() for p in gray_run.rglob("*") if p.is_file()}


def test_score_never_writes_into_a_run(gray_run, capsys):
    board = (gray_run / "leaderboard.csv").read_bytes()
    code = main(["score", "--pred", str(gray_run / "predictions" / "gray"), "--gt", str(gray_run / "ground_truth"),
                 "--out", str(gray_run), "--no-progress", "--metrics", "psnr"])
    assert code == 2 and "holds the results of another command" in capsys.readouterr().err
    assert (gray_run / "leaderboard.csv").read_bytes() == board


def test_a_foreign_folder_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("not colorbench's")
    assert main(["run", "--models", "gray", "--out", str(tmp_path), *FAST]) == 2
    assert "did not write" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_lock_stops_a_second_writer(gray_run, capsys):
    with lock(gray_run):
        assert main(["run", "--models", "gray", "--out", str(gray_run), *FAST]) == 2
        assert main(["report", str(gray_run)]) == 2
    err = capsys.readouterr().err
    assert err.count("is being written by another colorbench process") == 2 and "--out" in err


def test_failed_command_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", "--models", "gray", "--eval", f"folder:{tmp_path / 'missing'}", "--out", str(out), *FAST]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def weights_file(tmp_path) -> Path:
    path = tmp_path / "good.safetensors"
    save_state(path, {"unrelated": torch.zeros(2)})
    return path


@pytest.mark.parametrize(("option", "message"), [
    ("chromagan_noclass={good}", "unknown model in --weights 'chromagan_noclass'; did you mean chromagan-noclass"),
    ("chromagan={good}", "not among the models run"),
    ("chromagan-noclass=/missing.safetensors", "weights file not found: /missing.safetensors"),
    ("chromagan-noclass={pickle}", "is not a safetensors file"),
])
def test_bad_weights_options_stop_before_anything_runs(tmp_path, weights_file, option, message, capsys):
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    out = tmp_path / "out"
    value = option.format(good=weights_file, pickle=pickled)
    assert main(["run", "--models", "chromagan-noclass", "--weights", value, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_failed_model_exits_non_zero_after_writing_the_others(tmp_path, weights_file):
    out = tmp_path / "out"
    done = run_cli("run", "--models", "gray,baseline0", "--weights", f"baseline0={weights_file}", "--out", str(out),
                   *FAST)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: a model failed (baseline0: weights in") and "do not fit" in last
    assert "Traceback" not in done.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["models"]["baseline0"]["error"] and run["models"]["gray"]["error"] is None
    assert (out / "index.html").is_file()


def test_score_with_nothing_scored_exits_non_zero(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for folder, size in ((pred, 32), (gt, 24)):
        folder.mkdir()
        Image.fromarray(np.full((size, size, 3), (100, 150, 200), dtype=np.uint8)).save(folder / "a.png")
    out = tmp_path / "out"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--no-progress",
                 "--metrics", "psnr"]) == 1
    assert "no image was scored: 1 matched pairs, 1 skipped" in capsys.readouterr().err
    assert (out / "run.json").is_file() and (out / IDENTITY_FILE).is_file()


class Payload:
    """A pickle that would create a file when unpickled (the attack ``weights_only`` must stop)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_with_one_line(tmp_path):
    marker = tmp_path / "pwned"
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    with (weights_dir / "alexnet-owt-7be5be79.pth").open("wb") as handle:
        pickle.dump({"features.0.weight": Payload(marker)}, handle)
    with pytest.raises(BenchError, match=r"refused to load weight file .*alexnet-owt-7be5be79\.pth"):
        load_state_dict(weights_dir / "alexnet-owt-7be5be79.pth")
    done = run_cli("run", "--models", "gray", "--weights-dir", str(weights_dir), "--out", str(tmp_path / "out"),
                   "--size", "32", "--no-progress", "--no-study", "--metrics", "psnr,lpips_alex")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: refused to load weight file")
    assert not marker.exists()


def test_disk_note_states_the_expected_use(tmp_path):
    model = get_model_spec("chromagan-noclass").build(profile="smoke", teacher="auto", seed=0, epochs=3)
    state, _ = prepare_state(model, torch.device("cpu"))
    note = disk_note("chromagan-noclass", Checkpoints(tmp_path, keep_last=2), state, 3)
    each = state.size_bytes()
    params = sum(p.numel() for m in state.modules.values() for p in m.parameters())
    assert each >= 3 * 4 * params  # weights and Adam's two moments, float32
    assert f"{each / 2**20:.1f} MiB" in note and f"{2 * each / 2**20:.1f} MiB" in note
    assert "the last 2 while training, then the weights of the last 2 once finished" in note
