"""Hostile command lines (issue 22, kinds 5, 6 and 8): every numeric option is range-checked when it is parsed,
repeated or unavailable metrics and a crop run that cannot serve claim C7 are refused, a cache path naming a file
and SIGTERM end in one line - exit 2 for input the command cannot use, 143 for SIGTERM, never a traceback."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from colorbench.cli.main import build_parser, main
from colorbench.io.weights import WEIGHTS_DIR_ENV
from tests.conftest import REPO
from tests.hostile_files import one_line, tiny_folder

RUN = ["run", "--models", "gray", "--no-study", "--no-progress"]
#: (command line, option named in the refusal): each value outside the option's range.
OUT_OF_RANGE = {
    "batch-size-0": ([*RUN, "--batch-size", "0"], "--batch-size"),
    "batch-size-negative": ([*RUN, "--batch-size", "-4"], "--batch-size"),
    "workers-negative": ([*RUN, "--workers", "-1"], "--workers"),
    "size-below-ssim-window": ([*RUN, "--size", "10"], "--size"),
    "size-8": ([*RUN, "--size", "8"], "--size"),
    "size-absurd": ([*RUN, "--size", "100000"], "--size"),
    "size-not-a-number": ([*RUN, "--size", "big"], "--size"),
    "limit-0": ([*RUN, "--limit", "0"], "--limit"),
    "limit-negative": ([*RUN, "--limit", "-2"], "--limit"),
    "gallery-negative": ([*RUN, "--gallery", "-5"], "--gallery"),
    "seed-negative": ([*RUN, "--seed", "-1"], "--seed"),
    "seeds-0": ([*RUN, "--seeds", "0"], "--seeds"),
    "epochs-0": ([*RUN, "--epochs", "0"], "--epochs"),
    "study-batch-size-0": (["study", "--batch-size", "0"], "--batch-size"),
    "study-size-9": (["study", "--size", "9"], "--size"),
    "score-batch-size-0": (["score", "--pred", "p", "--gt", "g", "--batch-size", "0"], "--batch-size"),
    "bapps-batch-size-negative": (["bapps", "root", "--into", "r", "--batch-size", "-1"], "--batch-size"),
    "prepare-size-10": (["data", "prepare", "sample:test", "--size", "10"], "--size"),
    "prepare-limit-0": (["data", "prepare", "sample:test", "--limit", "0"], "--limit"),
}


@pytest.mark.parametrize("case", OUT_OF_RANGE)
def test_numeric_options_are_range_checked_at_parse_time(case, capsys):
    argv, option = OUT_OF_RANGE[case]
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 2
    one_line(capsys.readouterr().err, option, "takes a whole number")


def test_range_boundaries_parse():
    args = build_parser().parse_args([*RUN, "--size", "11", "--batch-size", "1", "--workers", "0", "--limit", "1",
                                      "--gallery", "0", "--seeds", "1", "--epochs", "1"])
    assert (args.size, args.batch_size, args.workers, args.limit, args.gallery) == (11, 1, 0, 1, 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*RUN, "--size", "4097"])


@pytest.fixture
def no_weight_files(tmp_path, monkeypatch) -> None:
    """No third-party weight file anywhere: LPIPS backbones and the FID Inception are unavailable."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)


@pytest.mark.parametrize("metric", ["lpips_alex", "lpips_vgg", "fid_inception"])
@pytest.mark.parametrize("command", ["score", "run"])
def test_an_unavailable_metric_asked_for_by_name_is_refused(command, metric, tmp_path, no_weight_files, capsys):
    folder, out = tiny_folder(tmp_path), tmp_path / "out"
    argv = (["score", "--pred", str(folder), "--gt", str(folder)] if command == "score"
            else [*RUN, "--eval", f"folder:{folder}", "--size", "32"])
    assert main([*argv, "--metrics", f"psnr,{metric}", "--out", str(out), "--no-progress"]) == 2
    one_line(capsys.readouterr().err, metric, "cannot be computed here", "weight file")
    assert not out.exists()


@pytest.mark.parametrize("metrics", ["psnr,psnr", "psnr,ssim,psnr", "ssim, ssim"])
def test_a_metric_named_twice_is_refused(metrics, tmp_path, capsys):
    folder, out = tiny_folder(tmp_path), tmp_path / "out"
    assert main(["score", "--pred", str(folder), "--gt", str(folder), "--metrics", metrics, "--out", str(out)]) == 2
    one_line(capsys.readouterr().err, "more than once")
    assert not out.exists()


@pytest.fixture(scope="module")
def resize_run(tmp_path_factory) -> Path:
    """A finished gray run made with --resize-mode resize (module-wide; tests copy it before changing it)."""
    root = tmp_path_factory.mktemp("resize-run")
    out = root / "run"
    assert main([*RUN, "--eval", f"folder:{tiny_folder(root)}", "--size", "32", "--metrics", "psnr,ssim",
                 "--out", str(out)]) == 0
    return out


def test_report_refuses_a_run_as_its_own_crop_run(resize_run, capsys):
    assert main(["report", str(resize_run), "--crop-run", str(resize_run)]) == 2
    one_line(capsys.readouterr().err, "--crop-run", "is the run being reported")


def test_report_refuses_a_crop_run_that_is_not_center_crop(resize_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(resize_run, other)
    assert main(["report", str(resize_run), "--crop-run", str(other)]) == 2
    one_line(capsys.readouterr().err, "--crop-run", "--resize-mode resize, not center-crop")


def test_report_refuses_a_crop_run_without_a_readable_run_json(resize_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(resize_run, other)
    (other / "run.json").write_text(json.dumps({"config": {"preprocess": "center-crop"}}))
    assert main(["report", str(resize_run), "--crop-run", str(other)]) == 2
    one_line(capsys.readouterr().err, "--crop-run", "not a readable run folder")


def test_cache_path_naming_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("COLORBENCH_CACHE", str(cache))
    assert main([*RUN, "--size", "32", "--metrics", "psnr", "--out", str(tmp_path / "out")]) == 2
    one_line(capsys.readouterr().err, "COLORBENCH_CACHE", "is a file, not a folder")
    assert cache.read_text() == "not a folder"


def test_cache_path_below_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "blocker").write_text("x")
    monkeypatch.setenv("COLORBENCH_CACHE", str(tmp_path / "blocker" / "cache"))
    assert main([*RUN, "--size", "32", "--metrics", "psnr", "--out", str(tmp_path / "out")]) != 0
    one_line(capsys.readouterr().err, "blocker")


def test_sigterm_exits_143_with_one_line(tmp_path):
    """SIGTERM during a run (a scheduler stopping it): exit 143 and one line saying the results so far are kept."""
    folder = tiny_folder(tmp_path, 12)
    process = subprocess.Popen([sys.executable, "-m", "bench", *RUN, "--eval", f"folder:{folder}", "--size", "64",
                                "--batch-size", "1", "--metrics", "psnr,ssim", "--out", str(tmp_path / "out")],
                               cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / ".colorbench.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    one_line(err, "SIGTERM", "resume")
