"""How the wall time of ``bench run`` grows with the number of images, for one trained model.

    python -m colorbench.experiments.scaling --images 100,1000,5000 --json scaling.json

For each N a folder of N images is made by repeating the coco-mini originals (train2017 and val2017; hard links,
or copies across file systems), and ``python -m bench run --models MODEL --train folder:DIR --eval folder:DIR``
runs on it (``--allow-overlap``: training and evaluation on the same files is deliberate here, this is a timing)
in a fresh process with empty run, sample and compile caches (``--run-args`` adds options; the
default trains the smoke profile for one epoch and skips the perturbation study, whose size ``--study-images``
bounds apart). Repeated images are distinct files with equal bytes: every stage does its full work per file,
only the images' content repeats. Wall time, the stages of ``run.json["timings"]`` and the load average are
recorded per N; on a shared machine the load average says how far other users inflated the figures.
``--docs docs/performance.md`` writes the table into that page's ``colorbench:scaling`` block.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import shlex
import shutil
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
COCO_MINI = REPO.parent / "shared" / "data" / "coco-mini"
DEFAULT_RUN_ARGS = "--profile smoke --epochs 1 --no-study"
PROG = "python -m colorbench.experiments.scaling"


def originals(root: Path) -> list[Path]:
    found = sorted(p for split in ("train2017", "val2017") for p in (root / split).glob("*.jpg"))
    if not found:
        raise BenchError(f"no coco-mini originals under {root} (train2017/, val2017/)")
    return found


def repeated_folder(sources: list[Path], count: int, folder: Path) -> Path:
    """``count`` files cycling through ``sources``, named 000000.jpg, 000001.jpg, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, source in zip(range(count), itertools.cycle(sources)):
        target = folder / f"{index:06d}.jpg"
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return folder


def time_run(count: int, *, model: str, sources: list[Path], scratch: Path, run_args: list[str]) -> dict[str, Any]:
    folder = repeated_folder(sources, count, scratch / f"images-{count}")
    out = scratch / f"run-{count}"
    env = {**os.environ, "COLORBENCH_CACHE": str(scratch / f"cache-{count}"),
           "TORCHINDUCTOR_CACHE_DIR": str(scratch / f"inductor-{count}"), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bench", "run", "--models", model, "--train", f"folder:{folder}", "--eval",
               f"folder:{folder}", "--allow-overlap", "--out", str(out), "--no-progress", *run_args]
    load_before, began = os.getloadavg(), time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(command)} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    timings = json.loads((out / "run.json").read_text())["timings"]
    return {"images": count, "wall_s": wall, "seconds_per_image": wall / count, "stages_s": timings["stages_s"],
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "command": shlex.join(command[1:])}


def document(path: Path, result: dict[str, Any], command: str) -> None:
    """The points measured so far as the ``scaling`` block of ``path``: wall time and stages per image count."""
    points = result["points"]
    stages = perfdoc.stage_names(points)
    rows = [[point["images"], point["wall_s"], point["seconds_per_image"],
             *(point["stages_s"].get(stage) for stage in stages)] for point in points]
    loads = perfdoc.first_minute(p[k] for p in points for k in ("load_average_before", "load_average_after"))
    perfdoc.update(path, "scaling", columns=["images", "wall s", "s/image", *(f"{stage} s" for stage in stages)],
                   rows=rows, command=command, loads=loads,
                   notes=[f"Model `{result['model']}`, run options `{result['run_args']}`; stages from "
                          "`run.json[\"timings\"]`."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--images", default="100,1000,5000", help="comma-separated image counts")
    parser.add_argument("--model", default="chromagan-noclass", help="the trained model (default chromagan-noclass)")
    parser.add_argument("--coco-mini", type=Path, default=COCO_MINI, help="where the originals come from")
    parser.add_argument("--run-args", default=DEFAULT_RUN_ARGS, help=f"options for run (default {DEFAULT_RUN_ARGS!r})")
    parser.add_argument("--json", type=Path, help="write the figures to this file (after each N)")
    perfdoc.add_docs_option(parser)
    args = parser.parse_args(argv)
    console.configure()
    result: dict[str, Any] = {"model": args.model, "run_args": args.run_args, "cpus": os.cpu_count(),
                                 "note": "wall times include any other load on the machine (load averages)",
                                 "points": []}
    try:
        sources = originals(args.coco_mini)
        with tempfile.TemporaryDirectory(prefix="colorbench-scaling-") as scratch:
            for count in (int(n) for n in args.images.split(",")):
                point = time_run(count, model=args.model, sources=sources, scratch=Path(scratch),
                                 run_args=shlex.split(args.run_args))
                result["points"].append(point)
                print(f"{count} images: {point['wall_s']:.1f} s ({point['seconds_per_image']:.3f} s/image); stages "
                      + ", ".join(f"{k} {v:.1f}" for k, v in point["stages_s"].items()), flush=True)
                if args.json:
                    write_json(args.json, result)
                if args.docs:
                    document(args.docs, result, perfdoc.command_line(PROG, argv))
    except BenchError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
