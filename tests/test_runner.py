"""End-to-end runs through the CLI: outputs, provenance, caching, resume, `score` reproduction, bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.cli.main import main
from colorbench.io.layout import EPOCH_CHECKPOINTS, EPOCHS_FILE, STEPS_FILE, SUMMARY_FILE, RunLayout
from colorbench.io.runfolder import IDENTITY_FILE, LOCK_FILE
from colorbench.io.schema import LEADERBOARD_METRIC_COLUMNS, RUN_FIELDS, leaderboard_columns, per_image_columns
from colorbench.models import registry
from colorbench.models.base import Colorizer
from colorbench.models.registry import ModelSpec
from colorbench.pipeline import caption_sensitivity
from colorbench.pipeline.scoring import metric_set_id
from tests.conftest import REPO

SMALL = ["--size", "48", "--no-progress"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".png", ".jsonl", ".csv", ".safetensors")}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "sample"
    assert main(["run", "--all", "--out", str(out), *SMALL]) == 0
    return out


def test_run_writes_every_output(sample_run):
    for name in ("manifest.csv", "manifest_train.csv", "per_image.csv", "leaderboard.csv", "run.json", "index.html"):
        assert (sample_run / name).is_file(), name
    board = read_rows(sample_run / "leaderboard.csv")
    assert {row["model"] for row in board} >= {"gray", "groundtruth", "baseline0", "chromagan", "chromagan-noclass",
                                               "model-a", "model-a2", "chromagan-vivid", "unet-l1", "unet-l1-vivid",
                                               "zhang-eccv16", "model-b", "model-c1", "model-c2"}
    assert all(row["n_images"] == "4" for row in board)
    assert {"ssim", "ssim_lo", "ssim_hi", "psnr", "channel_equality", "delta_colorfulness"} <= board[0].keys()
    for row in board:
        assert float(row["psnr_lo"]) <= float(row["psnr"]) <= float(row["psnr_hi"])
    per_image = read_rows(sample_run / "per_image.csv")
    assert list(per_image[0])[:3] == ["model", "image_id", "file"] and len(per_image) == 4 * len(board)
    for model in ("gray", "groundtruth", "baseline0", "chromagan"):
        assert len(list((sample_run / "predictions" / model).glob("*.png"))) == 4


def test_run_json_records_provenance(sample_run):
    run = json.loads((sample_run / "run.json").read_text())
    assert run["provenance"]["versions"]["torch"]
    assert "commit" in run["provenance"]["git"]
    assert run["splits"]["eval"]["statuses"] == {"ok": 4, "grayscale": 1}
    manifest_bytes = (sample_run / "manifest.csv").read_bytes()
    assert run["splits"]["eval"]["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert run["metrics"]["channel_equality"]["params"]["tolerance"] == 2
    assert run["models"]["baseline0"]["weights_from"] == "fitted"
    assert len(run["models"]["baseline0"]["weights_sha256"]) == 64
    assert run["skipped"] == [{"image_id": "11", "stage": "manifest",
                               "reason": run["skipped"][0]["reason"]}] and "grayscale" in run["skipped"][0]["reason"]


def test_outputs_follow_the_documented_schema(sample_run):
    run = json.loads((sample_run / "run.json").read_text())
    assert list(run) == list(RUN_FIELDS)
    metrics = list(run["metrics"])
    per_image_metrics = [m for m in metrics if not run["metrics"][m].get("set_level")]
    captions = caption_sensitivity.columns(per_image_metrics)  # the caption models (model-b, model-c1) ran
    assert list(read_rows(sample_run / "leaderboard.csv")[0]) == leaderboard_columns(metrics) + captions
    assert list(read_rows(sample_run / "per_image.csv")[0]) == per_image_columns(per_image_metrics)
    assert set(LEADERBOARD_METRIC_COLUMNS) == {"{metric}", "{metric}_lo", "{metric}_hi"}


def test_run_json_times_every_stage(sample_run):
    timings = json.loads((sample_run / "run.json").read_text())["timings"]
    assert {"data", "fit", "train", "load", "predict", "score", "study", "tables", "report"} <= set(timings["stages_s"])
    assert set(timings["models_s"]["baseline0"]) == {"fit", "predict", "score"}
    assert set(timings["models_s"]["chromagan"]) == {"train", "predict", "score"}
    assert set(timings["models_s"]["model-c1"]) == {"train", "predict", "score", "caption sensitivity"}
    assert sum(timings["stages_s"].values()) <= timings["total_s"]
    assert timings["stages_s"]["train"] > 0


def test_rerun_recomputes_nothing_and_gives_identical_files(sample_run):
    before = snapshot(sample_run)
    assert main(["run", "--all", "--out", str(sample_run), *SMALL]) == 0
    after = snapshot(sample_run)
    assert before == after
    run = json.loads((sample_run / "run.json").read_text())
    assert run["models"]["baseline0"]["weights_from"] == "cached fit"


def test_score_reproduces_run_numbers(sample_run, tmp_path):
    out = tmp_path / "scored"
    code = main(["score", "--pred", str(sample_run / "predictions" / "baseline0"), "--gt",
                 str(sample_run / "ground_truth"), "--segments", str(sample_run / "segments"), "--out", str(out),
                 "--no-progress"])
    assert code == 0
    scored = {r["image_id"]: r for r in read_rows(out / "per_image.csv")}
    from_run = {r["image_id"]: r for r in read_rows(sample_run / "per_image.csv") if r["model"] == "baseline0"}
    assert scored.keys() == from_run.keys()
    for image_id, row in from_run.items():
        assert set(scored[image_id]) == set(row)
        for metric in set(row) - {"model", "file"}:
            assert scored[image_id][metric] == row[metric], (image_id, metric)
    run_board = next(r for r in read_rows(sample_run / "leaderboard.csv") if r["model"] == "baseline0")
    assert read_rows(out / "leaderboard.csv")[0]["fd_effnet_lite0"] == run_board["fd_effnet_lite0"] != ""
    assert (out / "index.html").is_file()


def test_interrupted_run_resumes(sample_run, tmp_path):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(sample_run), str(copy)], check=True)
    reference = read_rows(copy / "per_image.csv")
    for png in list((copy / "predictions" / "gray").glob("*.png"))[:2]:
        png.unlink()
    records = next((copy / "records" / "baseline0").rglob("rank-0.jsonl"))
    text = records.read_text()
    records.write_text(text[: len(text) // 2])  # a torn write
    assert main(["run", "--all", "--out", str(copy), *SMALL]) == 0
    assert read_rows(copy / "per_image.csv") == reference


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_help_and_list():
    assert "run" in run_cli("--help").stdout
    listing = run_cli("list").stdout
    assert "baseline0" in listing and "ssim" in listing


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--models", "baselin0"], "did you mean baseline0"),
    (["run", "--models", "gray", "--metrics", "ssmi"], "did you mean ssim"),
    (["run", "--all", "--coco-root", "/nonexistent/coco"], "COCO root /nonexistent/coco does not exist"),
    (["run", "--models", "gray", "--eval", "folder:/nonexistent"], "image folder /nonexistent does not exist"),
    (["run", "--models", "gray", "--weights", "gray"], "NAME=PATH"),
    (["score", "--pred", "/nonexistent", "--gt", "/tmp"], "prediction folder /nonexistent does not exist"),
])
def test_bad_input_is_one_clear_line(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_bad_input_from_the_shell_has_no_traceback():
    done = run_cli("run", "--models", "baselin0")
    assert done.returncode == 2
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]
    assert "did you mean baseline0" in done.stderr


def test_corrupt_eval_image_is_skipped_and_listed(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    (folder / "c.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    assert main(["run", "--models", "gray", "--eval", f"folder:{folder}", "--out", str(out), *SMALL]) == 0
    run = json.loads((out / "run.json").read_text())
    assert [s["image_id"] for s in run["skipped"]] == ["c"]
    assert "c.jpg" in run["skipped"][0]["reason"]
    assert len(read_rows(out / "per_image.csv")) == 2


def test_score_skips_unmatched_and_mismatched_sizes(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    rng = np.random.default_rng(0)
    def image(size: int) -> Image.Image:
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    image(32).save(pred / "same.png")
    image(32).save(gt / "same.jpg")
    image(32).save(pred / "other_size.png")
    image(24).save(gt / "other_size.png")
    image(32).save(pred / "orphan.png")
    image(32).save(gt / "lonely.png")
    out = tmp_path / "out"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--no-progress"]) == 0
    run = json.loads((out / "run.json").read_text())
    reasons = {s["image_id"]: s["reason"] for s in run["skipped"]}
    assert set(reasons) == {"other_size", "orphan", "lonely"}
    assert "size mismatch" in reasons["other_size"] and "32x32" in reasons["other_size"]
    assert [r["image_id"] for r in read_rows(out / "per_image.csv")] == ["same"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["score", "--pred", str(pred), "--gt", str(empty)]) == 2


@pytest.mark.coco
def test_coco_mini_shows_the_table1_effect(coco_mini, tmp_path):
    """Paper Table 1 / claim C1: grey and baseline0 pass SSIM 0.9 and PSNR 22 dB with little colour."""
    out = tmp_path / "coco"
    assert main(["run", "--models", "gray,baseline0,groundtruth", "--coco-root", str(coco_mini), "--out", str(out),
                 "--no-progress", "--no-study"]) == 0
    board = {row["model"]: row for row in read_rows(out / "leaderboard.csv")}
    truth_colorfulness = float(board["groundtruth"]["colorfulness"])
    for model in ("gray", "baseline0"):
        assert float(board[model]["ssim"]) > 0.9
        assert float(board[model]["psnr"]) > 22.0
        assert float(board[model]["colorfulness"]) < 0.5 * truth_colorfulness


class BrokenColorizer(Colorizer):
    """A model whose output has NaN, +Inf and out-of-range values in known places."""

    def colorize(self, inputs):
        rgb = torch.full((inputs.size, 3, *inputs.L.shape[-2:]), 0.5)
        rgb[:, 0, 0, 0] = float("nan")
        rgb[:, 1, 0, 0] = float("inf")
        rgb[:, 2, 1, 1] = 1.5
        return rgb


def test_nonfinite_predictions_are_counted_clipped_and_reported(tmp_path, monkeypatch):
    spec = ModelSpec("broken", lambda: BrokenColorizer(), ("L",), "none", "test double with NaN/Inf output")
    monkeypatch.setitem(registry._REGISTRY, "broken", spec)
    out = tmp_path / "broken"
    assert main(["run", "--models", "broken", "--out", str(out), *SMALL, "--no-study"]) == 1  # issue 22: not ranked
    broken = json.loads((out / "run.json").read_text())["models"]["broken"]
    assert broken["prediction_health"] == {"images_with_nonfinite": 4, "nonfinite_values": 8,
                                           "images_out_of_range": 4, "out_of_range_values": 4}
    assert broken["non_finite"] is True and "non-finite values (NaN or Inf) in 4 of 4 images" in broken["error"]
    pixels = np.asarray(Image.open(out / "predictions" / "broken" / "7.png"))
    assert tuple(pixels[0, 0]) == (0, 255, 128) and pixels[1, 1, 2] == 255
    assert not read_rows(out / "per_image.csv") and (out / "index.html").is_file()


def test_the_layout_names_every_file_a_run_writes(sample_run):
    """Every file of a finished run lies at a path colorbench.io.layout.RunLayout names (no module spells its own)."""
    layout = RunLayout(sample_run)
    run = json.loads(layout.run_json.read_text())
    ids = [row["image_id"] for row in read_rows(layout.manifest) if row["status"] == "ok"]
    swapped = [info["caption_sensitivity"]["records_as"] for info in run["models"].values()
               if "caption_sensitivity" in info]  # a caption model's second evaluation
    models = list(run["models"])
    metric_set = metric_set_id([n for n, m in run["metrics"].items() if not m.get("set_level")])
    named = {layout.manifest, layout.train_manifest, layout.run_json, layout.per_image, layout.leaderboard,
             layout.claims, layout.index_html, layout.study_records, layout.study_variants, layout.study_fingerprint}
    named |= {path(i) for i in ids for path in (layout.ground_truth, layout.gray, layout.segments)}
    named |= {layout.prediction(m, i) for m in models for i in ids} | {layout.set_level(m) for m in models}
    named |= {layout.prediction(m, i) for m in swapped for i in ids}
    vocabularies = set(layout.training_cache.glob("vocabulary-*.json"))  # the caption models' (models/captions.py)
    named |= {layout.checkpoint(m) for m in models if run["models"][m]["spec"]["training"] != "none"}
    named |= {layout.train_file(m, name) for m in models for name in (STEPS_FILE, EPOCHS_FILE, SUMMARY_FILE)
              if run["models"][m]["spec"]["training"] == "train"}
    folders = [layout.figures_dir, layout.analysis_dir, *(layout.records_dir(m, metric_set) for m in models + swapped),
               *(layout.train_file(m, EPOCH_CHECKPOINTS) for m in models)]
    teachers = {p for p in layout.training_cache.glob("teacher-*") if p.is_file()}
    derived = {p for p in layout.training_cache.iterdir() if p.is_file()}  # models' training-data caches
    stray = [p for p in sample_run.rglob("*") if p.is_file() and p not in named | derived
             and not any(folder in p.parents for folder in folders) and p.name not in (IDENTITY_FILE, LOCK_FILE)]
    assert not stray
    assert teachers and all(layout.prediction(m, i).is_file() for m in models for i in ids)
    assert len(vocabularies) == 1 and set(swapped) >= {"model-b.swapped-captions", "model-c1.swapped-captions"}
    assert {layout.relative(layout.gray(i)) for i in ids} == {f"gray/{i}.png" for i in ids}
