"""torchrun with two CPU processes (gloo) gives the same records and fitted weights as one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from colorbench.cli.main import main
from tests.conftest import REPO
from tests.test_runner import read_rows

#: Metrics computed by a float32 network: torchrun gives each process one thread (OMP_NUM_THREADS=1), which changes
#: the order of the convolutions' float32 sums, so these agree to rounding, not digit for digit.
NETWORK_METRICS = ("semantic_kl",)
ARGS = ["run", "--models", "gray,baseline0", "--size", "40", "--no-progress", "--no-study"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_run_equals_single_process(tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main([*ARGS, "--out", str(single)]) == 0
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "bench", *ARGS,
                           "--out", str(sharded)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    sharded_rows, single_rows = read_rows(sharded / "per_image.csv"), read_rows(single / "per_image.csv")
    for name in NETWORK_METRICS:
        assert [float(r.pop(name)) for r in sharded_rows] == pytest.approx([float(r.pop(name)) for r in single_rows],
                                                                           rel=1e-5)
    assert sharded_rows == single_rows
    assert sorted(p.name for p in (sharded / "records" / "gray").rglob("*.jsonl")) == ["rank-0.jsonl", "rank-1.jsonl"]
    weights = [json.loads((folder / "run.json").read_text())["models"]["baseline0"]["weights_sha256"]
               for folder in (single, sharded)]
    assert weights[0] == weights[1]


def test_two_process_training_scores_every_image(tmp_path):
    """DDP keeps parameters in step but not BatchNorm statistics: every rank must evaluate rank 0's weights, or
    rank 1's predictions carry another cache key and drop out of the tables."""
    out = tmp_path / "gan"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "bench", "run",
                           "--models", "chromagan-noclass", "--size", "40", "--epochs", "1", "--no-progress",
                           "--no-study", "--metrics", "psnr", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["n_images"] for r in read_rows(out / "leaderboard.csv")] == ["4"]
