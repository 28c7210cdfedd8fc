"""The XLA path (TPUs through torch-xla), run on torch-xla's CPU runtime: `tox -e xla` (its own environment,
torch 2.9 + torch-xla 2.9). Skips, saying why, in environments without torch-xla.

What is checked (tolerances fixed before measuring on XLA; the measured values are in docs/performance.md):

- every registry model with ``training="train"`` trains (``smoke`` profile, 2 epochs) and evaluates with
  ``--device xla --no-bf16``, each model in a process of its own, and its per-image records and trained weights
  match the CPU run's;
- fixed shapes: after that warm-up run, a second run in the same process (one epoch more, an evaluation set of
  another size, so the last prediction and scoring batches are short) compiles no new graph;
- no host synchronisation in a training step: a few steps move nothing from the device to the host and fall back
  to no CPU kernel (torch-xla's ``TransferFromDeviceTime`` metric and ``aten::`` fallback counters);
- ``run`` goes through torch-xla's launcher (processes, exit status); two processes on the CPU runtime are refused
  with a clear error, since that runtime gives each process its own one-device world.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorbench.cli.main import main
from colorbench.core.device import resolve_device
from colorbench.experiments.xla_parity import measure_each, trained_models
from tests.test_runner import read_rows

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch_xla") is None,
                                reason="torch-xla is not installed (run `tox -e xla`)")

TRAINED = trained_models()
#: Per-image record tolerances, CPU vs XLA, bf16 off (8-bit PNG predictions; measured maxima in docs/performance.md).
RECORD_TOLERANCE = {"mse": 1e-4, "psnr": 0.05, "ssim": 1e-3}
#: Trained parameters: ||w_xla - w_cpu|| is at most this share of the training's own update ||w_cpu - w_init||.
WEIGHT_TOLERANCE = 0.05
EPOCHS = 2


@pytest.fixture(scope="module", autouse=True)
def _xla_runtime():
    """torch-xla's CPU runtime, started before this process's first backward pass: autograd sizes its per-device
    queues then, and a later XLA backward fails an internal assert (CPU and XLA runs share this test process)."""
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    torch.zeros(1, device=resolve_device("xla")).cpu()


@pytest.fixture(scope="module", params=TRAINED)
def parity(request, tmp_path_factory) -> dict[str, object]:
    """colorbench.experiments.xla_parity for one trained model, in a process of its own (one process for all of them ran
    out of memory mappings, see that module): CPU and XLA runs (bf16 off, the sample's 4 usable test images in
    batches of 3, so the last batch is padded on XLA), a warm XLA run, per-step counters."""
    name, out = request.param, tmp_path_factory.mktemp(f"parity-{request.param}")
    figures = measure_each(out, [name], EPOCHS, steps=5)[name]
    return {"model": name, **figures}


def test_xla_run_matches_cpu(tmp_path):
    args = ["run", "--models", "gray,baseline0", "--size", "48", "--no-progress", "--no-study"]
    assert main([*args, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    assert main([*args, "--device", "xla", "--out", str(tmp_path / "xla")]) == 0
    cpu, xla = read_rows(tmp_path / "cpu" / "per_image.csv"), read_rows(tmp_path / "xla" / "per_image.csv")
    assert [(r["model"], r["image_id"]) for r in cpu] == [(r["model"], r["image_id"]) for r in xla]
    for a, b in zip(cpu, xla, strict=True):
        assert float(a["psnr"]) == pytest.approx(float(b["psnr"]), abs=0.05)
        assert float(a["ssim"]) == pytest.approx(float(b["ssim"]), abs=1e-3)


def test_trained_model_records_match_cpu(parity):
    xla = read_rows(Path(parity["runs"]["xla"]) / "per_image.csv")
    assert {r["model"] for r in xla} == {parity["model"]} and len(xla) == 4
    for metric, tolerance in RECORD_TOLERANCE.items():
        assert parity["record_gaps"][metric] <= tolerance, metric


def test_trained_weights_match_cpu(parity):
    gap = parity["weight_gaps"][parity["model"]]
    assert gap["moved"] > 0 and gap["ratio"] <= WEIGHT_TOLERANCE, gap


def test_warm_run_compiles_no_new_graph(parity):
    """After the cold runs, a run with one more epoch and 2 evaluation images (one short batch in prediction and
    scoring) compiles nothing: the training step, validation, prediction and scoring graphs are all reused."""
    assert len(read_rows(Path(parity["runs"]["warm"]) / "per_image.csv")) == 2
    assert parity["compiles"]["warm_run"] == 0


def test_training_step_stays_on_the_device(parity):
    """The model's training step, driven as the trainer drives it: after two warm-up steps (the first creates the
    optimisers' state), further steps compile nothing, copy nothing to the host (no ``.item()``, no branch on a
    tensor value) and run no operation as a CPU fallback."""
    counts = parity["steps"][parity["model"]]
    assert counts[2:] == [counts[1]] * (len(counts) - 2), counts


LAUNCH = ("import sys; import colorbench.core.device as d; d.launches_xla_processes = lambda name: True; "
          "from colorbench.cli.main import main; sys.exit(main(sys.argv[1:]))")


def run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` in a fresh process (torch-xla's launcher refuses a runtime already started), with
    the launcher forced on: on the CPU runtime it starts one process per device, as on a TPU VM."""
    return subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PJRT_DEVICE": "CPU", "OMP_NUM_THREADS": "1", **env})


GRAY_ARGS = ["run", "--models", "gray", "--size", "32", "--metrics", "mse,psnr", "--no-study", "--no-progress",
             "--device", "xla"]


def test_run_goes_through_the_torch_xla_launcher(tmp_path):
    done = run_cli([*GRAY_ARGS, "--out", str(tmp_path / "ok")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"results in {tmp_path / 'ok'}" in done.stdout
    assert len(read_rows(tmp_path / "ok" / "per_image.csv")) == 4
    failed = run_cli([*GRAY_ARGS, "--out", str(tmp_path / "bad"), "--weights", f"gray={tmp_path / 'missing.pt'}"])
    assert failed.returncode == 2 and "missing.pt" in failed.stderr  # the worker's exit status and one-line error
    threads = run_cli([*GRAY_ARGS, "--out", str(tmp_path / "threads")], CPU_NUM_DEVICES="2")
    assert threads.returncode == 2 and "devices in threads" in threads.stderr


def test_two_processes_on_the_cpu_runtime_are_refused(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--nproc-per-node", "2", "-m", "bench", *GRAY_ARGS, "--out",
                           str(tmp_path / "two")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PJRT_DEVICE": "CPU", "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0 and "cannot run multi-process jobs" in done.stderr
    assert not (tmp_path / "two").exists()
