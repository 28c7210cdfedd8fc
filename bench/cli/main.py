"""The ``python -m bench`` command line: ``run``, ``study``, ``score``, ``report``, ``table``, ``bapps``,
``throughput``, ``data prepare``, ``list``.

Exit status: 0 when everything asked for was done (images skipped with a stated reason count as done); 2 with
one line on stderr (``error: ...``) for input the command cannot use (unknown or repeated names, a numeric option
outside its range, an unavailable metric asked for by name, missing or pickled weight files, a folder of another
command or of other settings, or in use); 1 with one line when the command ran but some result is missing (a
model failed or produced non-finite values, no image could be scored, a file could not be written); 130 on
Ctrl-C and 143 on SIGTERM, with one line. Nothing finished is lost: the same command resumes where it stopped.
Messages are ``logging`` records written to stderr by colorbench.core.console (``--quiet``: warnings and errors only);
stdout holds only the command's own output.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from colorbench.cli import table as paper_table
from colorbench.cli.options import (
    BATCH,
    COUNT,
    GALLERY,
    SEED,
    SEEDS,
    SIZE,
    WORKERS,
    OneLineParser,
    check_crop_run,
    keep_option,
    metric_names,
    profile_option,
    split_names,
    weights_option,
)
from colorbench.cli.score import add_score_parser, run_score
from colorbench.core import console, provenance
from colorbench.core import device as devices
from colorbench.core.device import DEVICE_CHOICES
from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess
from colorbench.io.images import RESIZE_MODES
from colorbench.io.layout import RunLayout
from colorbench.io.weights import WEIGHTS_DIR_ENV
from colorbench.models.captions import TEXT_ENCODERS
from colorbench.models.teachers import TEACHER_CHOICES
from colorbench.pipeline.context import DEFAULT_STUDY_IMAGES

logger = logging.getLogger(__name__)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", help="comma-separated metric names (default: every per-image metric)")
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} (default auto)")
    parser.add_argument("--batch-size", type=BATCH, default=16, help="images per batch (1 to 4096, default 16)")
    parser.add_argument("--out", type=Path, help="output folder (default: a folder under results/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    _weights_dir(parser)


def _weights_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", type=Path, help="folder searched first for third-party weight files "
                        "(LPIPS backbones, FID Inception, VGG-16), before $TORCH_HOME/hub/checkpoints")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m bench", description="colorbench: colorization benchmark harness")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="fit/train, predict and score models; write tables and the report")
    picked = run.add_mutually_exclusive_group()
    picked.add_argument("--all", action="store_true", help="every registered model")
    picked.add_argument("--models", help="comma-separated model names")
    _data_options(run)
    run.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                     help="load a model's weights from a safetensors file instead of fitting/training it")
    run.add_argument("--no-study", action="store_true", help="skip the perturbation study")
    run.add_argument("--profile", type=profile_option, default="auto", metavar="{auto,smoke,paper}",
                     help="training profile of trained models: smoke (small and fast), paper (224x224, the paper's "
                          "hyper-parameters); auto = smoke on the built-in sample, paper otherwise")
    run.add_argument("--teacher", choices=TEACHER_CHOICES, default="auto",
                     help="class-distribution teacher of ChromaGAN's class head (auto: vgg16 when torchvision's "
                          "weight file exists, else efficientnet-lite0)")
    run.add_argument("--text-encoder", choices=TEXT_ENCODERS, default="bilstm",
                     help="caption encoder of model-b and model-c1: bilstm (learned word embeddings) or minilm (the "
                          "pretrained all-MiniLM-L6-v2 sentence encoder, frozen; needs the 'text' extra)")
    run.add_argument("--epochs", type=COUNT, help="training epochs (default: the profile's)")
    run.add_argument("--seeds", type=SEEDS, default=1, help="train every trained model N times with seeds seed, "
                     "seed+1, ...; replica k > 0 is the model entry NAME@seed{k} (default 1)")
    run.add_argument("--allow-overlap", action="store_true", help="allow evaluation images that are also training "
                     "images (same file sha256), for a deliberate overfitting check; recorded in run.json")
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="continue training from the last epoch checkpoint and reuse finished trainings (default)")
    run.add_argument("--keep-checkpoints", type=keep_option, default=0, metavar="N|all",
                     help="epochs whose weights are kept once a training finishes (default 0; optimizer state is "
                     "dropped), or all: every epoch checkpoint in full, so that a longer --epochs run continues it")
    run.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                     help="bf16 autocast for training and prediction on CUDA/XLA (default; the CPU runs fp32)")
    _common(run)

    study = commands.add_parser("study", help="the perturbation study alone: degrade ground truth, score, report")
    _data_options(study)
    _common(study)

    add_score_parser(commands, _common)

    report = commands.add_parser("report", help="rebuild analyses, claims and index.html from a run folder")
    report.add_argument("results", type=Path, help="a run folder written by run, study or score")
    report.add_argument("--crop-run", type=Path, help="a second run folder made with --resize-mode center-crop (C7)")

    bapps = commands.add_parser("bapps", help="agreement of every metric with BAPPS human 2AFC judgements")
    bapps.add_argument("root", type=Path, help="a BAPPS 2AFC folder, e.g. 2afc/val/color (ref/, p0/, p1/, judge/)")
    bapps.add_argument("--into", type=Path, required=True,
                       help="run folder whose report gains the agreement table (analysis/bapps_agreement.csv)")
    bapps.add_argument("--metrics", help="comma-separated per-image metric names (default: all available)")
    bapps.add_argument("--device", default="auto")
    bapps.add_argument("--batch-size", type=BATCH, default=32)
    _weights_dir(bapps)

    data = commands.add_parser("data", help="input data tools").add_subparsers(dest="data_command", required=True)
    prepare = data.add_parser("prepare", help="decode, check and resize every original of a source once into the "
                              "prepared input cache (uint8 shards) that run, training and scoring then read")
    prepare.add_argument("source", help="sample:PART, coco:ROOT:SPLIT or folder:DIR")
    prepare.add_argument("--split", default="full", help="split of the source (full, val-1k, ...)")
    prepare.add_argument("--limit", type=COUNT, help="only the first N images (in split-hash order)")
    prepare.add_argument("--size", type=SIZE, default=224, help="working resolution (11 to 4096, default 224)")
    prepare.add_argument("--resize-mode", choices=RESIZE_MODES, default="resize")
    prepare.add_argument("--no-progress", action="store_true", help="no progress bars")

    throughput = commands.add_parser("throughput", help="training and inference images/s, peak memory and MFU of a "
                                     "ChromaGAN-family model on synthetic batches (JSON)")
    from colorbench.experiments.throughput import add_arguments

    add_arguments(throughput)

    paper_table.add_arguments(commands.add_parser("table", help="a paper's table (Markdown, LaTeX, CSV) of runs"))
    commands.add_parser("list", help="list registered models and metrics")
    for leaf in [*(p for name, p in commands.choices.items() if name != "data"), prepare]:
        leaf.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr (no notes)")
    return parser


def _data_options(parser: argparse.ArgumentParser) -> None:
    """Where the images come from and how they are prepared (shared by run and study)."""
    parser.add_argument("--train", default=None, help="training source: sample:train, coco:ROOT:SPLIT or folder:DIR")
    parser.add_argument("--eval", default=None, help="evaluation source (default sample:test)")
    parser.add_argument("--coco-root", type=Path,
                        help="shorthand for --train coco:ROOT:train2017 --eval coco:ROOT:val2017")
    parser.add_argument("--train-split", default="full", help="split of the training source (full, train-10k, ...)")
    parser.add_argument("--eval-split", default="full", help="split of the evaluation source (full, val-1k, ...)")
    parser.add_argument("--size", type=SIZE, default=224,
                        help="working resolution (11 to 4096, default 224, as ChromaGAN)")
    parser.add_argument("--resize-mode", choices=RESIZE_MODES, default="resize")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--limit", type=COUNT, help="use only the first N images (in split-hash order) of each source")
    parser.add_argument("--workers", type=WORKERS, default=0, help="DataLoader worker processes (0 to 256)")
    parser.add_argument("--gallery", type=GALLERY, default=8, help="images shown in the report's gallery (0 to 1000)")
    parser.add_argument("--study-images", default=str(DEFAULT_STUDY_IMAGES),
                        help="images of the evaluation split (first N in split order) in the perturbation and paired "
                             f"study, or 'all' (default {DEFAULT_STUDY_IMAGES})")


def _training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``run`` that only concern trained models (``study`` has none of them); their values are
    argparse's, typed by the parser at run time."""
    names = ("profile", "teacher", "text_encoder", "epochs", "resume", "seeds", "allow_overlap", "keep_checkpoints")
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def default_train_source(evaluate: str, models: Sequence[str], weights: Mapping[str, Path]) -> str:
    """The training source when only ``--eval`` is given: the same COCO root's train2017 for ``coco:ROOT:SPLIT``,
    otherwise the built-in sample's training part. When that root has no train2017 and some model must be fitted
    or trained (not loaded with --weights), the run is refused with the option to add."""
    from colorbench.models.registry import get_model_spec

    kind, _, rest = evaluate.partition(":")
    if kind != "coco":
        return "sample:train"
    root = rest.rpartition(":")[0]
    if (Path(root) / "annotations" / "captions_train2017.json").is_file() and (Path(root) / "train2017").is_dir():
        return f"coco:{root}:train2017"
    learners = [m for m in models if get_model_spec(m).training != "none" and m not in weights]
    if not learners:
        return "sample:train"
    raise BenchError(f"{', '.join(learners)} must be fitted or trained, but {root} has no train2017 "
                     "(annotations/captions_train2017.json and train2017/): add --train coco:OTHER_ROOT:train2017 "
                     "(a COCO root that has it) or --train sample:train (the built-in sample)")


def _run(args: argparse.Namespace) -> int:
    from colorbench.models.registry import resolve_model_names
    from colorbench.pipeline.runner import RunConfig, execute
    from colorbench.reports.html import build_report
    from colorbench.study.run import parse_study_images

    study_only = args.command == "study"

    if args.coco_root and (args.train or args.eval):
        raise BenchError("--coco-root replaces --train/--eval; give one or the other")
    if args.coco_root and not Path(args.coco_root).is_dir():
        raise BenchError(f"COCO root {args.coco_root} does not exist or is not a folder")
    models = [] if study_only else resolve_model_names(split_names(args.models), all_models=args.all)
    weights = weights_option(vars(args).get("weights", []), models)
    evaluate = f"coco:{args.coco_root}:val2017" if args.coco_root else (args.eval or "sample:test")
    train = f"coco:{args.coco_root}:train2017" if args.coco_root else (
        args.train or default_train_source(evaluate, models, weights))
    training = _training_options(args)
    cfg = RunConfig(
        models=models,
        metrics=metric_names(args.metrics),
        eval_source=evaluate, train_source=train, eval_split=args.eval_split, train_split=args.train_split,
        preprocess=Preprocess(args.size, args.resize_mode), out=args.out, device=args.device, seed=args.seed,
        limit=args.limit, batch_size=args.batch_size, workers=args.workers,
        weights=weights, gallery=args.gallery, progress=not args.no_progress,
        study=study_only or not args.no_study, study_images=parse_study_images(args.study_images),
        bf16=getattr(args, "bf16", True), **training,
    )
    out = execute(cfg, report=functools.partial(build_report, progress=False if args.no_progress else None))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"results in {out} (open {RunLayout(out).index_html})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from colorbench.io.runfolder import lock
    from colorbench.reports.html import build_report

    if not RunLayout(args.results).run_json.is_file():
        raise BenchError(f"{args.results} is not a run folder (no run.json)")
    if args.crop_run is not None:
        check_crop_run(args.results, args.crop_run)
    with lock(args.results):
        try:
            built = build_report(args.results, crop_run=args.crop_run)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:  # a record edited or cut short
            raise BenchError(f"{args.results} holds a damaged run record or table ({type(exc).__name__}: {exc}); "
                             "rerun the command that made it (it resumes and rewrites the tables)") from exc
        print(f"report in {built}")
    return 0


def _bapps(args: argparse.Namespace) -> int:
    from colorbench.analysis.bapps import AGREEMENT_COLUMNS, BAND_PSNR_DB, agreement, agreement_by_band, load_bapps
    from colorbench.core.device import resolve_device
    from colorbench.io.runfolder import lock
    from colorbench.io.schema import write_csv
    from colorbench.metrics.registry import select_metrics
    from colorbench.reports.html import build_report

    layout = RunLayout(args.into)
    if not layout.run_json.is_file():
        raise BenchError(f"{args.into} is not a run folder (no run.json); run `python -m bench run` or `study` first")
    with lock(args.into):
        triplets, names = load_bapps(args.root), select_metrics(metric_names(args.metrics)).per_image
        device = resolve_device(args.device)
        rows = agreement(triplets, names, device=device, batch_size=args.batch_size)
        write_csv(layout.bapps_agreement, AGREEMENT_COLUMNS, rows)
        bands = agreement_by_band(triplets, names, BAND_PSNR_DB, device=device, batch_size=args.batch_size)
        write_csv(layout.analysis("bapps_bands.csv"), ("band", *AGREEMENT_COLUMNS), bands)
        print(f"agreement table in {layout.bapps_agreement} (by PSNR band: analysis/bapps_bands.csv); "
              f"report in {build_report(args.into)}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from colorbench.data.prepared import prepare
    from colorbench.data.sources import open_source
    from colorbench.data.splits import build_manifest

    manifest = build_manifest(open_source(args.source), args.split, limit=args.limit, progress=not args.no_progress)
    summary = prepare(manifest, args.size, args.resize_mode, progress=not args.no_progress)
    print(summary.line())
    return 0 if summary.unreadable == 0 else 1


def _throughput(args: argparse.Namespace) -> int:
    from colorbench.experiments.throughput import run

    return run(args)


def _list(_: argparse.Namespace) -> int:
    from colorbench.metrics.registry import METRICS
    from colorbench.models.registry import model_specs

    print("models:")
    for spec in model_specs().values():
        tags = [spec.training, "+".join(spec.inputs)] + (["reference"] if spec.reference else [])
        print(f"  {spec.name:<20} [{', '.join(tags)}] {spec.description}")
    print("metrics:")
    for metric in METRICS.values():
        print(f"  {metric.name:<20} [{metric.describe()['direction_text']}] {metric.definition}")
    return 0


COMMANDS = {"run": _run, "study": _run, "score": run_score, "report": _report, "bapps": _bapps, "data": _data,
            "throughput": _throughput, "table": paper_table.run, "list": _list}


class TerminatedError(Exception):
    """SIGTERM arrived (a scheduler or ``kill`` stopping the command)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise TerminatedError


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    with provenance.command():
        if threading.current_thread() is not threading.main_thread():  # torch-xla runs a launched worker in a thread
            return _main(args, argv)
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return _main(args, argv)
        finally:
            signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    console.configure(quiet=args.quiet)
    if getattr(args, "weights_dir", None) is not None:
        if not args.weights_dir.is_dir():
            logger.error("--weights-dir %s is not a folder", args.weights_dir)
            return 2
        os.environ[WEIGHTS_DIR_ENV] = str(args.weights_dir.resolve())
    try:
        if args.command in ("run", "study") and devices.launches_xla_processes(args.device):
            return devices.launch_xla(main, argv)
        return COMMANDS[args.command](args)
    except BenchError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        logger.error("results so far are on disk; rerun the same command to resume", extra={"prefix": "interrupted"})
        return 130
    except TerminatedError:
        logger.error("stopped by SIGTERM; results so far are on disk, rerun the same command to resume",
                     extra={"prefix": "terminated"})
        return 128 + signal.SIGTERM
    except OSError as exc:  # a file the command needed could not be read or written (the write paths say more)
        where = f" {exc.filename}" if exc.filename else ""
        logger.error("cannot use%s: %s; files already written are kept", where, exc.strerror or exc)
        return 1
    except MemoryError:
        logger.error("out of memory; rerun with a smaller --batch-size or --size (files already written are kept)")
        return 1
