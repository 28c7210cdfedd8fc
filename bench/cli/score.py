"""``bench score``'s command line: the prediction folders of one or many models against one ground truth.

``--pred NAME=DIR`` (repeatable) names each model; ``--pred-root DIR`` adds one model per subfolder, named after
it; the single-model form ``--pred DIR [--name N]`` names the model after its folder unless ``--name`` says.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

from colorbench.cli.options import metric_names
from colorbench.core.errors import BenchError
from colorbench.core.paths import printable, printable_name
from colorbench.io.layout import RunLayout

#: ``--resize-pred`` choices (colorbench.pipeline.scoring.RESIZE_PRED, spelled here so parsing imports no torch).
RESIZE_CHOICES = ("none", "gt")


def add_score_parser(commands: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    score = commands.add_parser("score", help="score other tools' colorizations against ground truth")
    score.add_argument("--pred", action="append", default=[], metavar="NAME=DIR",
                       help="a model's folder of predicted images (repeatable); a bare DIR names the model after "
                            "the folder (or --name)")
    score.add_argument("--pred-root", type=Path, help="a folder with one subfolder of predictions per model, each "
                       "named after its subfolder")
    score.add_argument("--gt", type=Path, required=True, help="folder of ground-truth images (matched by name stem)")
    score.add_argument("--name", help="model name of a single bare --pred DIR (default: the folder's name)")
    score.add_argument("--resize-pred", choices=RESIZE_CHOICES, default="none",
                       help="a prediction of another size than its ground truth: none = skip it with the reason "
                            "(default), gt = resize it to the ground truth's size (recorded in run.json)")
    score.add_argument("--segments", type=Path, help="folder of segment label maps named like the images (a run's "
                       "segments/); default: SLIC superpixels of each ground truth")
    common(score)


def prediction_folders(values: list[str], root: Path | None, name: str | None) -> dict[str, Path]:
    """Model name -> prediction folder from ``--pred`` values, ``--pred-root`` and ``--name``; a name given twice
    or ``--name`` beside several models is refused."""
    pairs: list[tuple[str, Path]] = []
    bare = [v for v in values if Path(v).is_dir() or "=" not in v]
    if name is not None and (len(values) != 1 or len(bare) != 1 or root is not None):
        raise BenchError("--name names the model of a single bare --pred DIR; give each model as --pred NAME=DIR")
    for value in values:
        if value in bare:
            pairs.append((name or printable_name(Path(value)), Path(value)))
            continue
        model, _, folder = value.partition("=")
        if not model or not folder:
            raise BenchError(f"--pred takes NAME=DIR or DIR, not {value!r}")
        pairs.append((model, Path(folder)))
    if root is not None:
        if not root.is_dir():
            raise BenchError(f"--pred-root {printable(str(root))} does not exist or is not a folder")
        found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise BenchError(f"--pred-root {printable(str(root))} holds no model subfolder")
        pairs += [(printable(p.name), p) for p in found]
    if not pairs:
        raise BenchError("no predictions given; pass --pred NAME=DIR (repeatable) or --pred-root DIR")
    names = [model for model, _ in pairs]
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated:
        raise BenchError(f"model {', '.join(repeated)} is given more than once; name each prediction folder once")
    return dict(pairs)


def run_score(args: argparse.Namespace) -> int:
    from colorbench.pipeline.score_folders import score_folders
    from colorbench.reports.html import build_report

    predictions = prediction_folders(args.pred, args.pred_root, args.name)
    out = score_folders(predictions, args.gt, out=args.out, metric_names=metric_names(args.metrics),
                        resize_pred=args.resize_pred, device_name=args.device, segments_dir=args.segments,
                        batch_size=args.batch_size, progress=not args.no_progress,
                        report=functools.partial(build_report, progress=False if args.no_progress else None))
    print(f"results in {out} (open {RunLayout(out).index_html})")
    return 0
