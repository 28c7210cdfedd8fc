"""Cold start, measured: README command 1 on a fresh clone, split by stage.

    python -m colorbench.experiments.cold_start --json cold_start.json                  # fresh venv + pip install -e .
    python -m colorbench.experiments.cold_start --reuse-python /work/main/.venv/bin/python --json cold_start.json

What it does: ``git clone`` of this checkout's HEAD (committed work only) into a temporary folder; a fresh venv
there with ``pip install -e .`` (timed as ``install``), or, with ``--reuse-python``, an existing interpreter that
has the dependencies and imports the clone from its working directory (``install`` then says skipped); then
``python -m bench run --all`` in the clone with an empty ``COLORBENCH_CACHE`` (so the built-in sample is laid
out again) and an empty ``TORCHINDUCTOR_CACHE_DIR`` (every kernel compiles from nothing): the *cold* figure.
Unless ``--no-warm``, the same command runs again into a new output folder with both caches kept: the *warm*
figure (everything recomputed, only compiled artifacts and the sample reused).

Stages come from the run's ``run.json["timings"]`` (:mod:`colorbench.io.timings`); ``startup`` is the command's wall
time minus the run's own total (interpreter start, imports, argument checks). The JSON records the commit, the
CPU count and the load average before and after each run: on a shared machine wall times include the other
users' load, so the figures are labelled with it. ``--docs docs/performance.md`` writes them into that page's
``colorbench:cold_start`` block.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from colorbench.core import console
from colorbench.core.errors import BenchError
from colorbench.experiments import perfdoc
from colorbench.io.schema import write_json

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PROG = "python -m colorbench.experiments.cold_start"


def _timed(command: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> float:
    """Run ``command``; its output goes to ``log``. Raises BenchError (naming the log) when it fails."""
    began = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(command)} exited with {done.returncode} after {seconds:.0f} s: see {log}")
    return seconds


def clone(source: Path, into: Path) -> str:
    """A fresh clone of ``source``'s HEAD; returns the commit."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(into)], check=True)
    return subprocess.run(["git", "-C", str(into), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def install(clone_dir: Path, logs: Path) -> tuple[str, float]:
    """README command 1's install part in the clone; returns the venv's python and the seconds it took."""
    env = dict(os.environ)
    began = _timed([sys.executable, "-m", "venv", ".venv"], cwd=clone_dir, env=env, log=logs / "venv.log")
    seconds = began + _timed([".venv/bin/pip", "install", "-e", "."], cwd=clone_dir, env=env, log=logs / "pip.log")
    return str(clone_dir / ".venv" / "bin" / "python"), seconds


def timed_run(python: str, clone_dir: Path, out: Path, *, caches: Path, extra: list[str], label: str,
              logs: Path) -> dict[str, object]:
    """``python -m bench run --all`` in the clone with the given cache folders; stages from its run.json."""
    env = {**os.environ, "COLORBENCH_CACHE": str(caches / "colorbench"),
           "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"), "PYTHONPATH": str(clone_dir)}
    command = [python, "-m", "bench", "run", "--all", "--out", str(out), "--no-progress", *extra]
    load_before = os.getloadavg()
    wall = _timed(command, cwd=clone_dir, env=env, log=logs / f"run-{label}.log")
    timings = json.loads((out / "run.json").read_text())["timings"]
    return {"label": label, "command": shlex.join(command[1:]), "wall_s": wall,
            "startup_s": wall - float(timings["total_s"]), "stages_s": timings["stages_s"],
            "models_s": timings["models_s"], "load_average_before": load_before,
            "load_average_after": os.getloadavg()}


def measure(*, reuse_python: str | None, warm: bool, extra: list[str], keep: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="colorbench-cold-") as scratch:
        root = keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        clone_dir, logs, caches = root / "clone", root / "logs", root / "caches"
        logs.mkdir(exist_ok=True)
        commit = clone(REPO, clone_dir)
        if reuse_python:
            python, install_s = reuse_python, None
        else:
            python, install_s = install(clone_dir, logs)
        runs = [timed_run(python, clone_dir, root / "run-cold", caches=caches, extra=extra, label="cold", logs=logs)]
        if warm:
            runs.append(timed_run(python, clone_dir, root / "run-warm", caches=caches, extra=extra, label="warm",
                                  logs=logs))
    return {"commit": commit, "machine": {"cpus": os.cpu_count(), "note": "wall times include any other load on "
                                          "the machine; see the load averages"},
            "install_s": install_s, "runs": runs,
            "install": f"skipped: reused {reuse_python}" if reuse_python else "pip install -e ."}


def summary(result: dict[str, Any]) -> str:
    lines = [f"commit {result['commit']}, {result['machine']['cpus']} CPUs; install: "
             + (f"{result['install_s']:.0f} s" if result["install_s"] is not None else str(result["install"]))]
    for run in result["runs"]:
        stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run["stages_s"].items())
        lines.append(f"{run['label']}: run --all {run['wall_s']:.1f} s (startup {run['startup_s']:.1f}, {stages}); "
                     f"load average {run['load_average_before'][0]:.1f} -> {run['load_average_after'][0]:.1f}")
    return "\n".join(lines)


def document(path: Path, result: dict[str, Any], command: str) -> None:
    """The ``cold_start`` block of ``path``: install seconds, then per run its wall time, start-up and stages."""
    runs = result["runs"]
    stages = perfdoc.stage_names(runs)
    rows = [[run["label"], run["wall_s"], run["startup_s"], *(run["stages_s"].get(stage) for stage in stages)]
            for run in runs]
    install = f"{result['install_s']:.0f} s" if result["install_s"] is not None else result["install"]
    loads = perfdoc.first_minute(r[k] for r in runs for k in ("load_average_before", "load_average_after"))
    perfdoc.update(path, "cold_start", columns=["run", "wall s", "start-up s", *(f"{stage} s" for stage in stages)],
                   rows=rows, command=command, loads=loads, commit=str(result["commit"])[:7],
                   notes=[f"Install (`pip install -e .` in a fresh venv): {install}. *cold*: empty sample and "
                          "compile caches; *warm*: both kept."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--reuse-python", help="an interpreter with the dependencies installed (skips the install)")
    parser.add_argument("--no-warm", action="store_true", help="only the cold run")
    parser.add_argument("--run-args", default="", help="extra options for `bench run --all`, e.g. '--no-study'")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (clone, logs, run folders)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    perfdoc.add_docs_option(parser)
    args = parser.parse_args(argv)
    console.configure()
    try:
        result = measure(reuse_python=args.reuse_python, warm=not args.no_warm, extra=shlex.split(args.run_args),
                         keep=args.keep)
    except BenchError as exc:
        logger.error("%s", exc)
        return 1
    print(summary(result))
    if args.json:
        write_json(args.json, result)
    if args.docs:
        document(args.docs, result, perfdoc.command_line(PROG, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
