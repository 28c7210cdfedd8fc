"""``python -m colorbench.experiments.gpu_check`` works before GPU time is spent on it: its dry run goes through every
step on the CPU at tiny sizes and records every figure; a failed or timed-out step is recorded and the next one
runs; the table comparison flags exactly what leaves its tolerances; the install step picks the carried wheels a
machine lacks."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from colorbench.experiments import gpu_check, gpu_tables
from colorbench.experiments.gpu_speed import DEFAULT_SETTINGS, THROUGHPUT_SHAPES, throughput_plan
from colorbench.experiments.gpu_wheels import CARRIED, install_plan, installed_version, minimum_versions
from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS
from tests.conftest import REPO


def check(argv: list[str]) -> tuple[int, dict, str]:
    """gpu_check's exit status, its JSON and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = gpu_check.main(argv)
    json_path = Path(argv[argv.index("--json") + 1])
    return code, json.loads(json_path.read_text()), printed.getvalue()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu-check")
    code, result, printed = check(["--dry-run", "--json", str(folder / "dry.json"), "--work", str(folder / "work")])
    return code, result, printed, folder / "work"


def test_the_dry_run_goes_through_every_step_and_records_its_figures(dry_run):
    code, result, printed, _ = dry_run
    steps = result["steps"]
    assert code == 0 and result["failed_steps"] == [] and result["mode"] == "dry-run"
    assert steps["install"] == {"status": "skipped", "reason": "--dry-run"}
    assert {name: steps[name]["status"] for name in list(steps)[1:]} == dict.fromkeys(list(steps)[1:], "ok")
    tests = steps["cuda_tests"]["figures"]
    assert tests["counts"]["skipped"] == len(tests["tests"]) >= 7  # no GPU here: every CUDA test skips
    tables = steps["tables"]["figures"]
    assert tables["passed"] and tables["per_image"]["rows"] == tables["per_image"]["cpu_rows"] == 4  # 2 models x 2
    assert tables["leaderboard"]["metrics"]["psnr"]["bf16"]["max_deviation"] == 0.0  # two CPU runs: identical
    throughput = steps["throughput"]["figures"]
    assert throughput["skipped_for_time"] == [] and len(throughput["table"]) == 2
    for line, row in zip(throughput["measurements"], throughput["table"], strict=True):
        assert line["result"]["channels_last"] == line["config"]["channels_last"] == row["channels_last"]
        assert row["training_images_per_s"] > 0 and row["inference_images_per_s"] > 0 and row["finite_losses"]
        assert row["training_peak_gib"] > 0 and row["training_mfu_measured_ceiling"] is None  # no bf16 on the CPU
    assert [row["channels_last"] for row in throughput["table"]] == [True, False]
    suite = steps["metric_speed"]["figures"]["table"]
    assert [row["size"] for row in suite] == [32] and suite[0]["per_image_images_per_s"] > 0
    assert suite[0]["peak_gib"] > 0 and suite[0]["with_set_level_images_per_s"] > 0
    assert result["goals"]["default_suite_images_per_s_224"] == {"goal": 2000.0, "best": None, "met": False}
    for name in steps:
        assert name in printed
    assert "channels_last False" in printed and "suite 32px" in printed


def rewrite(path: Path, change) -> None:
    """Apply ``change(rows)`` to a CSV table in place."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    change(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def shifted(column: str, model: str, by: float):
    def change(rows: list[dict[str, str]]) -> None:
        row = next(r for r in rows if r["model"] == model)
        row[column] = repr(float(row[column]) + by)

    return change


@pytest.mark.parametrize(("table", "change", "expected"), [
    ("per_image.csv", shifted("psnr", "chromagan-noclass", 0.5), None),  # inside the bf16 tier's 1 dB
    ("per_image.csv", shifted("psnr", "chromagan-noclass", 1.5), "per_image.csv chromagan-noclass/"),
    ("per_image.csv", shifted("psnr", "gray", 0.5), "per_image.csv gray/"),  # the float32 tier allows 0.05 dB
    ("per_image.csv", shifted("mse", "gray", 0.0), None),
    ("per_image.csv", lambda rows: rows.pop(), "per_image.csv: rows differ"),
    ("per_image.csv", lambda rows: rows[0].update(ssim=""), "NaN"),
    ("leaderboard.csv", lambda rows: rows[0].update(n_images="3"), "n_images '3' != '2'"),
    ("leaderboard.csv", shifted("vivid_recall", "chromagan-noclass", 0.3), "vivid_recall"),
])
def test_the_table_comparison_flags_exactly_what_leaves_a_tolerance(dry_run, tmp_path, table, change, expected):
    cpu = dry_run[3] / "run-cpu"
    ours = tmp_path / "ours"
    ours.mkdir()
    for name in ("per_image.csv", "leaderboard.csv"):
        shutil.copy(cpu / name, ours / name)
    rewrite(ours / table, change)
    comparison = gpu_tables.compare_runs(ours, cpu)
    assert comparison["passed"] == (expected is None), comparison["failures"]
    if expected:
        assert any(expected in failure for failure in comparison["failures"]), comparison["failures"]


def test_every_metric_has_a_stated_tolerance_and_models_their_tier():
    assert set(METRICS) | set(DISTRIBUTION_METRICS) <= set(gpu_tables.TOLERANCES)
    assert [gpu_tables.tier(m) for m in ("gray", "baseline0", "groundtruth", "chromagan", "model-b@seed1")] == [
        "float32", "float32", "float32", "bf16", "bf16"]
    assert gpu_tables.metric_of("caption_sensitivity_psnr_lo") == ("psnr", 2.0)
    assert gpu_tables.metric_of("ms_ssim_hi") == ("ms_ssim", 1.0)


def test_without_a_gpu_the_gpu_steps_fail_are_recorded_and_the_next_step_runs(tmp_path):
    code, result, printed = check(["--only", "cuda_tests,metric_speed", "--json", str(tmp_path / "r.json"),
                                   "--work", str(tmp_path / "work")])
    steps = result["steps"]
    assert code == 1 and result["failed_steps"] == ["cuda_tests", "metric_speed"]
    assert "CUDA tests skipped on the GPU machine" in steps["cuda_tests"]["error"]
    assert "torch sees no CUDA GPU" in steps["metric_speed"]["error"]
    assert steps["install"]["status"] == steps["tables"]["status"] == "skipped"
    assert steps["tables"]["reason"] == "not asked for (--only)"
    assert "failed" in printed


def test_a_step_without_time_left_is_skipped_and_recorded(tmp_path):
    code, result, _ = check(["--dry-run", "--only", "metric_speed", "--budget", "3", "--json", str(tmp_path / "r.json"),
                             "--work", str(tmp_path / "work")])
    assert code == 0
    assert result["steps"]["metric_speed"] == {"status": "skipped", "reason": "no time left (3 s)",
                                               "skipped_for_time": True}


def test_a_child_past_its_deadline_is_stopped_with_its_own_children(tmp_path):
    script = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
              "time.sleep(60)']); print(child.pid, flush=True); time.sleep(60)")
    child = gpu_check.Child([sys.executable, "-c", script], tmp_path / "log")
    began = time.monotonic()
    while not (tmp_path / "log").read_text().strip() and time.monotonic() - began < 20:
        time.sleep(0.05)
    assert child.wait(time.monotonic() + 0.5) is None and child.seconds < 30
    grandchild = int((tmp_path / "log").read_text())
    for _ in range(100):  # the orphan is reaped by init shortly after the kill
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"process {grandchild} survived its parent's stop")


def test_the_install_step_picks_the_carried_wheels_this_machine_lacks(tmp_path):
    bounds = minimum_versions(REPO / "pyproject.toml")
    assert bounds["lpips"] == "0.1.4" and bounds["setuptools"] == "70.1" and bounds["torch"] == "2.4"
    for name in ("lpips-0.1.4-py3-none-any.whl", "setuptools-84.2.1-py3-none-any.whl"):
        (tmp_path / name).touch()
    chosen, kept, missing = install_plan(tmp_path, bounds)
    assert chosen == [] and missing == [] and set(kept) == set(CARRIED)  # all of them are installed here
    chosen, kept, missing = install_plan(tmp_path, {**bounds, "lpips": "99", "piq": "99"})
    assert chosen == [tmp_path / "lpips-0.1.4-py3-none-any.whl"] and missing == ["piq"]
    assert kept["pycocotools"] == installed_version("pycocotools")


def test_the_throughput_plan_measures_the_most_telling_configurations_first():
    plan = throughput_plan(dry_run=False)
    settings = [{k: c[k] for k in DEFAULT_SETTINGS} for c in plan]
    assert len(plan) == 8 * len(THROUGHPUT_SHAPES) and len({json.dumps(c, sort_keys=True) for c in plan}) == len(plan)
    assert [(c["model"], c["batch_size"]) for c in plan[:3]] == list(THROUGHPUT_SHAPES)
    assert settings[:3] == [DEFAULT_SETTINGS] * 3 and {c["size"] for c in plan} == {224}
    compiled_default = settings.index({**DEFAULT_SETTINGS, "compile_generator": True})
    two_away = min(i for i, s in enumerate(settings) if sum(s[k] != v for k, v in DEFAULT_SETTINGS.items()) == 2)
    assert compiled_default < two_away and plan[compiled_default]["batch_size"] == 64
