"""Parsing of the command line's values: argument types that refuse a value outside its allowed range when it is
parsed (issue 22: every numeric option has one), metric and weight options checked before anything runs, a
parser whose refusals are one line, and the check of ``report --crop-run``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from colorbench.core.errors import BenchError, unknown_name
from colorbench.io.layout import RunLayout

logger = logging.getLogger(__name__)


def weights_option(values: Sequence[str], models: Sequence[str]) -> dict[str, Path]:
    """``--weights NAME=PATH`` options, checked before anything runs: NAME must be a registered model among those
    run (a typo gets a close-match suggestion) and PATH a readable safetensors file (pickles are refused) or an
    authors' release file that fits the model (colorbench.models.releases). Release files found under their
    release names in the weights folders (``--weights-dir``) count as given for the models run without one."""
    from colorbench.models.registry import model_specs
    from colorbench.models.releases import check_weights_file, releases_found

    weights: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise BenchError(f"--weights takes NAME=PATH, not {value!r}")
        if name not in model_specs():
            raise unknown_name("model in --weights", name, model_specs())
        if name not in models:
            raise unknown_name(f"model in --weights (not among the models run: {', '.join(models) or 'none'})",
                               name, models)
        check_weights_file(name, Path(path))
        weights[name] = Path(path)
    found = releases_found(models, list(weights))
    for name, release_path in found.items():
        logger.info("%s: the authors' release %s (found in the weights folders) is its weights", name, release_path)
    return {**weights, **found}


def keep_option(value: str) -> int | None:
    """``--keep-checkpoints N|all``: how many of the last epochs keep their weights once a training has finished
    (0 allowed; None: every epoch checkpoint in full, optimizer state included)."""
    if value == "all":
        return None
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"takes a number of epochs (0 or more) or 'all', not {value!r}")
    return int(value)


def profile_option(value: str) -> str:
    """``--profile``, checked against the trainer's profiles only when ``run`` parses it (so that other commands,
    ``list`` above all, never import the trainer)."""
    from colorbench.training.profiles import PROFILE_CHOICES

    if value not in PROFILE_CHOICES:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(PROFILE_CHOICES)})")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line on stderr (``python -m bench run: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def bounded(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (no upper bound for None), refused at parse time."""
    allowed = f"from {low} to {high}" if high is not None else f"at least {low}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a whole number {allowed}, not {value!r}") from None
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"takes a whole number {allowed}, not {value}")
        return number

    return parse


#: Allowed ranges of the numeric options. The working size starts at SSIM's 11-pixel Gaussian window (below it
#: SSIM and the claims built on it have no value) and stops at 4096 (a 16-megapixel working image per batch row).
SIZE, BATCH, WORKERS, COUNT = bounded(11, 4096), bounded(1, 4096), bounded(0, 256), bounded(1)
#: Seeds seed numpy's generator, which takes 0 .. 2**32 - 1 (``--seeds`` replicas add to it).
SEED, GALLERY, SEEDS = bounded(0, 2**32 - 1 - 1000), bounded(0, 1000), bounded(1, 1000)


def split_names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


def metric_names(value: str | None) -> list[str] | None:
    """Checked metric names from ``--metrics`` (None: every registered metric available here). A name given
    twice, or a metric that cannot be computed here (its weight file is absent), is refused: the tables would
    otherwise hold a repeated column or silently lack the one asked for."""
    from colorbench.metrics.registry import get_metric

    names = split_names(value)
    if not names:
        return None
    checked = [get_metric(n).name for n in names]
    repeated = sorted({n for n in checked if checked.count(n) > 1})
    if repeated:
        raise BenchError(f"--metrics names {', '.join(repeated)} more than once; name each metric once")
    for name in checked:
        reason = get_metric(name).unavailable()
        if reason is not None:
            raise BenchError(f"metric {name} was asked for by --metrics but cannot be computed here: {reason}")
    return checked


def check_crop_run(results: Path, crop_run: Path) -> None:
    """``--crop-run`` must be another run folder, made with ``--resize-mode center-crop`` (claim C7 compares the
    two preprocessings; a run compared with itself, or with another resize run, tests nothing)."""
    from colorbench.core.strictjson import loads_unique

    if crop_run.resolve() == results.resolve():
        raise BenchError(f"--crop-run {crop_run} is the run being reported; give a second run folder made with "
                         "--resize-mode center-crop")
    run_json = RunLayout(crop_run).run_json
    try:
        config = loads_unique(run_json.read_bytes())["config"]
        mode = config["preprocess"]["mode"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"--crop-run {crop_run} is not a readable run folder ({run_json}: {exc})") from exc
    if mode != "center-crop":
        raise BenchError(f"--crop-run {crop_run} was made with --resize-mode {mode}, not center-crop; give a run "
                         "made with --resize-mode center-crop")
