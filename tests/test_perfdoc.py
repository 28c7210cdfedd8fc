"""The measurement scripts' writer of docs/performance.md (colorbench.experiments.perfdoc): a script's block is
replaced and nothing else, a missing block is added, a broken one is refused; and each script's own table is
written from results shaped as that script produces them (synthetic figures: the experiments are too long to run
here)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from colorbench.core.errors import BenchError
from colorbench.core.provenance import git_state
from colorbench.experiments import cold_start, compile_cost, metric_speed, perfdoc, scaling, throughput, xla_parity
from tests.conftest import REPO

PAGE = """# Performance

Prose before, kept byte for byte.

<!-- colorbench:scaling -->
old scaling table
<!-- /colorbench:scaling -->

Between the blocks | with a pipe.

<!-- colorbench:cold_start -->
old cold-start table
<!-- /colorbench:cold_start -->
trailing text
"""


def block_of(text: str, name: str) -> str:
    begin, end = perfdoc.markers(name)
    assert text.count(begin) == 1 and text.count(end) == 1, text
    return text[text.index(begin) + len(begin):text.index(end)]


def write(path: Path, name: str = "scaling") -> None:
    perfdoc.update(path, name, columns=["images", "wall s"], rows=[[100, 50.04], [1000, 448.2]],
                   command="python -m colorbench.experiments.scaling --images 100,1000", loads=[0.7, 1.3])


def test_update_replaces_only_its_block(tmp_path):
    path = tmp_path / "performance.md"
    path.write_text(PAGE)
    write(path)
    text = path.read_text()
    body = block_of(text, "scaling")
    assert "old scaling table" not in text
    assert "| images | wall s |" in body and "| 100 | 50 |" in body and "| 1000 | 448 |" in body
    assert "`python -m colorbench.experiments.scaling --images 100,1000`" in body
    assert "load average 0.7-1.3" in body
    before, after = PAGE.split("<!-- colorbench:scaling -->")[0], PAGE.split("<!-- /colorbench:scaling -->")[1]
    assert text.startswith(before) and text.endswith(after)


def test_update_adds_a_missing_block_and_rewrites_it_in_place(tmp_path):
    path = tmp_path / "performance.md"
    path.write_text(PAGE)
    write(path, "compile_cost")
    once = path.read_text()
    assert once.startswith(PAGE) and "| 1000 | 448 |" in block_of(once, "compile_cost")
    write(path, "compile_cost")
    assert path.read_text() == once
    fresh = tmp_path / "new" / "performance.md"
    write(fresh)
    assert fresh.read_text().startswith("<!-- colorbench:scaling -->\n`python")


@pytest.mark.parametrize("broken", [
    "<!-- colorbench:scaling -->\nno end\n",
    "text\n<!-- /colorbench:scaling -->\n",
    "<!-- colorbench:scaling -->\na\n<!-- /colorbench:scaling -->\n<!-- colorbench:scaling -->\nb\n"
    "<!-- /colorbench:scaling -->\n",
])
def test_a_broken_block_is_refused_and_the_file_kept(tmp_path, broken):
    path = tmp_path / "performance.md"
    path.write_text(broken)
    with pytest.raises(BenchError, match="fix the file by hand"):
        write(path)
    assert path.read_text() == broken


def test_stamp_names_date_commit_machine_and_load():
    line = perfdoc.stamp(loads=[2.04, 0.31, 5.0], today="2026-12-03")
    commit = git_state()["commit"]
    assert line.startswith("Measured 2026-12-03 at commit ")
    assert (str(commit)[:7] in line) if commit else "unknown" in line
    assert f"on {os.cpu_count()} cores (" in line and line.endswith("load average 0.3-5.0.")
    assert "load average 1.5." in perfdoc.stamp(loads=[1.5], commit="abc1234", device="NVIDIA H200")
    assert ", NVIDIA H200, " in perfdoc.stamp(loads=[1.5], commit="abc1234", device="NVIDIA H200")


def test_cells_and_tables():
    assert [perfdoc.cell(v) for v in (None, math.nan, True, 1657.4, 0.0024, 1.6e-5, 3, "a|b")] == [
        "n/a", "n/a", "yes", "1657", "0.0024", "1.6e-05", "3", "a\\|b"]
    with pytest.raises(ValueError, match="2 cells under 3 columns"):
        perfdoc.markdown_table(["a", "b", "c"], [[1, 2]])
    with pytest.raises(ValueError, match="block name"):
        perfdoc.markers("Scaling table")


def stages(data: float) -> dict[str, float]:
    return {"data": data, "train": 25.0, "predict": 34.0, "score": 280.0, "report": 13.0}


def scaling_result() -> dict:
    point = {"images": 1000, "wall_s": 448.0, "seconds_per_image": 0.448, "stages_s": stages(90.0),
             "load_average_before": [0.1, 0.2, 0.3], "load_average_after": [1.5, 1.0, 0.5], "command": "run ..."}
    return {"model": "chromagan-noclass", "run_args": scaling.DEFAULT_RUN_ARGS, "cpus": 2, "points": [point]}


def cold_start_result() -> dict:
    run = {"label": "cold", "command": "-m bench run --all", "wall_s": 85.3, "startup_s": 3.5,
           "stages_s": stages(2.3), "models_s": {}, "load_average_before": [0.3, 0, 0],
           "load_average_after": [1.2, 0, 0]}
    return {"commit": "2a201ed" + "0" * 33, "machine": {"cpus": 2}, "install_s": 68.0, "runs": [run],
            "install": "pip install -e ."}


def compile_cost_result() -> dict:
    cost = {"eager_s_per_mpx": 0.125, "compiled_s_per_mpx": 0.0264, "cold_compile_s": 10.1, "warm_compile_s": 5.47}
    kernel = {"kernel": "ssim_means", "cold": {}, "warm": {}, "cost": cost, "break_even_mpx_cold": 103.0,
              "break_even_mpx_warm": 56.0}
    return {"machine": {"cpus": 2, "threads": 1, "load_average_at_start": [0.5, 0, 0],
                        "load_average_at_end": [0.9, 0, 0]}, "size": 224, "images": 16, "repeats": 3, "threads": 1,
            "kernels": [kernel]}


def metric_speed_result(suite: bool) -> dict:
    settings = {"images": "64", "size": "224", "batch_size": "32", "device": "cpu"}
    if suite:
        return {"seconds": {"ssim": 12.5, "fd_effnet_lite0 (Frechet distance)": 0.2},
                "first_batch_seconds": {"ssim": 1.0}, "nan_counts": {"ssim": 0}, "metric_total_s": 12.7,
                "settings": settings}
    compared = {"ours_images_per_s": 957.0, "skimage_images_per_s": 504.0, "ratio": 1.9, "max_abs_difference": 2.2e-6,
                "warmup_s": 0.4, "identical_pairs": 0}
    return {**dict.fromkeys(metric_speed.COMPARED, compared), "load_average_end": 1.0, "settings": settings}


def throughput_result() -> dict:
    part = {"images_per_s": 4.2, "seconds_per_step": 2.4, "flops_per_step": 10**12, "achieved_tflops": 0.4,
            "mfu": None, "peak_memory_bytes": 3 * 2**30, "memory_kind": "process peak resident set (CPU)"}
    return {"model": "chromagan", "device": "cpu", "device_name": "cpu", "size": 224, "width": 1.0, "batch_size": 10,
            "steps": 5, "warmup": 2, "bf16_autocast": False, "channels_last": False, "compiled_generator": False,
            "threads": 2, "peak_tflops": None, "peak_source": "unknown: no MFU", "training": part, "inference": part}


def xla_result() -> dict:
    steps = [{"compiles": 20 + min(i, 1) * 4, "host_transfers": 3, "cpu_fallbacks": 0} for i in range(5)]
    return {"unet-l1": {"record_gaps": {"mse": 1.6e-5, "psnr": 0.0024, "ssim": 1.3e-4},
                        "weight_gaps": {"unet-l1": {"apart": 1.0, "moved": 600.0, "ratio": 0.0017}},
                        "compiles": {"cold_run": 24, "warm_run": 0}, "seconds": {"xla": 40.0, "cpu": 2.5, "warm": 9.0},
                        "steps": steps}}


SCRIPTS = {
    "scaling": lambda path: scaling.document(path, scaling_result(), "python -m colorbench.experiments.scaling"),
    "cold_start": lambda path: cold_start.document(path, cold_start_result(), "cold_start"),
    "compile_cost": lambda path: compile_cost.document(path, compile_cost_result(), "compile_cost"),
    "metric_speed": lambda path: metric_speed.document(path, metric_speed_result(False), suite=False,
                                                       command="metric_speed", loads=[1.0], device=None),
    "metric_speed-suite": lambda path: metric_speed.document(path, metric_speed_result(True), suite=True,
                                                             command="metric_speed --suite", loads=[1.0], device=None),
    "throughput-cpu": lambda path: throughput.document(path, throughput_result(), [0.4, 0.6]),
    "xla_parity": lambda path: xla_parity.document(path, xla_result(), "xla_parity", [3.0, 5.0]),
}
#: A row each script's table must hold for the synthetic results above.
EXPECTED_ROWS = {
    "scaling": "| 1000 | 448 | 0.448 | 90 | 25 | 34 | 280 | 13 |",
    "cold_start": "| cold | 85.3 | 3.5 | 2.3 | 25 | 34 | 280 | 13 |",
    "compile_cost": "| ssim_means | 0.125 | 0.0264 | 10.1 | 5.47 | 103 | 56 | 2053 | 1116 |",
    "metric_speed": "| deltae2000 | 957 | 504 | 1.9 | 2.2e-06 | 0.4 |",
    "metric_speed-suite": "| all metrics | 12.7 | 5.04 | n/a | n/a |",
    "throughput-cpu": "| training | 4.2 | 2.4 | 0.4 | n/a | 3072 |",
    "xla_parity": "| unet-l1 | 1.6e-05 | 0.0024 | 0.00013 | 0.0017 | 24 | 0 | 0 | 0 | 0 | 2.5 | 40 |",
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_writes_its_own_block(tmp_path, name):
    path = tmp_path / "performance.md"
    path.write_text(PAGE)
    SCRIPTS[name](path)
    text = path.read_text()
    body = block_of(text, name)
    assert EXPECTED_ROWS[name] in body.splitlines(), body
    assert "Measured " in body and " at commit " in body
    if name != "scaling":
        assert block_of(text, "scaling") == "\nold scaling table\n"
    if name == "cold_start":
        assert "at commit 2a201ed on" in body and "load average 0.3-1.2" in body and "68 s" in body
    if name == "throughput-cpu":
        assert "`python -m bench throughput --model chromagan --device cpu --batch-size 10" in body


def test_the_repository_page_has_each_scripts_block_once():
    text = (REPO / "docs" / "performance.md").read_text()
    for name in [*SCRIPTS, "throughput-cuda", "throughput-xla"]:
        assert "Not yet written by the script" in block_of(text, name) or "Measured " in block_of(text, name)
