"""The tables of a CUDA run against those of a CPU run of the same command: ``per_image.csv`` and ``leaderboard.csv``
(step ``tables`` of ``python -m colorbench.experiments.gpu_check``).

    python -m colorbench.experiments.gpu_tables CUDA_RUN CPU_RUN [--json comparison.json]   # exit 1: a check failed

Exact: the set of rows (model, image id), the columns, each row's file and the leaderboard's image counts. Within a
stated tolerance per metric: every value. The tolerance depends on how the model's pixels are made on the GPU:

- ``float32`` tier: models that run no network (``training`` none or fit: gray, baseline0, groundtruth). Their
  predictions are the same float32 arithmetic on both devices (Lab -> sRGB decoding runs in float32 even under
  autocast, colorbench.data.color.lab_to_rgb); CUDA and CPU round a few pixels to neighbouring 8-bit levels, and
  the metrics' networks (EfficientNet-lite0, LPIPS) run their CUDA convolutions in TF32. Tolerances admit that.
- ``bf16`` tier: models whose predictions come from a network trained and run under bf16 autocast on the GPU.
  bf16 keeps 8 bits of mantissa: a generator forward under autocast moves ChromaGAN's pre-sigmoid ab by about 1%
  (relative L2, measured on the CPU with bf16 autocast as a proxy), and the training itself follows another
  trajectory. For an image whose error is e levels RMS, noise of d levels RMS moves PSNR by 10 log10(1 + d^2/e^2):
  under 0.2 dB for the smoke-trained models (PSNR about 22 dB, e about 20) with d about 3; 1 dB leaves room for a
  better-trained model while a wrong channel order or a bf16 decoding costs several dB. The other continuous
  metrics get the same allowance in their units (see :data:`TOLERANCES`).

Metrics that count things past a threshold (channel_equality's grey pixels, vivid segments, top-1 agreement) jump
when a value crosses it, so only their per-model means (leaderboard) are compared, with tolerances of about one
image's jump out of the sample's four evaluation images. Relative tolerances (MSE, chroma ratio, Frechet
distances) are fractions of the CPU value. ``_lo``/``_hi`` bootstrap bounds resample the same images (fixed seed),
so they get the tolerance of their metric; caption-sensitivity columns (a difference of two scores) twice it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from colorbench.models.registry import get_model_spec
from colorbench.pipeline.caption_sensitivity import PREFIX


@dataclass(frozen=True)
class Tolerance:
    """Largest admitted |CUDA - CPU| of one metric's values, by tier; ``relative``: as a fraction of |CPU value|;
    ``per_image`` False: a threshold count, compared through its per-model mean only."""

    float32: float
    bf16: float
    relative: bool = False
    per_image: bool = True


TOLERANCES: dict[str, Tolerance] = {
    "mse": Tolerance(0.01, 0.25, relative=True),  # 1% and 25% of MSE: 0.04 dB and 1 dB of PSNR
    "mse255": Tolerance(0.01, 0.25, relative=True),
    "psnr": Tolerance(0.05, 1.0),
    "ssim": Tolerance(1e-3, 0.02),
    "ms_ssim": Tolerance(1e-3, 0.02),
    "deltae2000": Tolerance(0.01, 1.0),  # CIEDE2000 units; 1 is about a just-noticeable difference
    "auc_ab": Tolerance(1e-3, 0.02),
    "colorfulness": Tolerance(0.05, 2.0),  # Hasler-Suesstrunk units on 0-255 RGB: 3 levels of noise move it ~2
    "colorfulness_abs": Tolerance(0.05, 2.0),
    "delta_colorfulness": Tolerance(0.05, 2.0),
    "segment_chroma_ratio": Tolerance(0.01, 0.25, relative=True),  # near-grey outputs: small chroma, large ratios
    "lpips_alex": Tolerance(1e-3, 0.02),
    "lpips_vgg": Tolerance(1e-3, 0.02),
    "semantic_kl": Tolerance(0.05, 0.25),  # nats; TF32 EfficientNet logits on CUDA
    "channel_equality": Tolerance(1e-3, 0.15, per_image=False),  # near-grey outputs sit at the grey threshold
    "vivid_recall": Tolerance(0.05, 0.25, per_image=False),
    "vivid_precision": Tolerance(0.05, 0.25, per_image=False),
    "semantic_top1": Tolerance(0.25, 0.5, per_image=False),  # one (two) of four images changing its top-1 class
    "fd_effnet_lite0": Tolerance(0.05, 0.25, relative=True),
    "fid_inception": Tolerance(0.05, 0.25, relative=True),
    "kid_effnet_lite0": Tolerance(0.05, 0.25, relative=True),  # same features as fd_effnet_lite0
}
#: Columns compared exactly, besides the row keys.
EXACT_COLUMNS = ("file", "n_images", f"{PREFIX}_n")


def tier(model: str) -> str:
    """``float32`` for models that run no network (training none or fit), ``bf16`` for trained ones."""
    return "bf16" if get_model_spec(model.partition("@")[0]).training == "train" else "float32"


def metric_of(column: str) -> tuple[str, float]:
    """The metric a value column holds and the factor on its tolerance (2 for caption-sensitivity differences)."""
    factor = 1.0
    if column.startswith(f"{PREFIX}_"):
        column, factor = column.removeprefix(f"{PREFIX}_"), 2.0
    for suffix in ("_lo", "_hi"):
        if column.endswith(suffix) and column.removesuffix(suffix) in TOLERANCES:
            return column.removesuffix(suffix), factor
    return column, factor


def _number(cell: str) -> float:
    return float(cell) if cell else math.nan


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@dataclass
class Worst:
    """The largest deviation of one (metric, tier) over a table, where it was, and the tolerance."""

    tolerance: float
    deviation: float = 0.0
    where: str = ""
    values: int = 0

    def record(self, deviation: float, where: str) -> None:
        self.values += 1
        if self.values == 1 or deviation > self.deviation or math.isnan(deviation):
            self.deviation, self.where = (math.inf if math.isnan(deviation) else deviation), where

    def describe(self) -> dict[str, object]:
        return {"max_deviation": self.deviation, "tolerance": self.tolerance, "where": self.where,
                "values": self.values, "passed": self.deviation <= self.tolerance}


def deviation(ours: float, reference: float, relative: bool) -> float:
    """|ours - reference| (a fraction of |reference| when relative); 0 when both are NaN, NaN when one is."""
    if math.isnan(ours) and math.isnan(reference):
        return 0.0
    if math.isnan(ours) or math.isnan(reference):
        return math.nan
    difference = abs(ours - reference)
    return difference / max(abs(reference), 1e-12) if relative else difference


def compare_rows(name: str, ours: list[dict[str, str]], reference: dict[tuple[str, ...], dict[str, str]],
                 keys: Sequence[str], wanted: Callable[[Tolerance], bool]) -> tuple[dict[tuple[str, str], Worst],
                                                                                   list[str]]:
    """Every value of the rows found in both tables: exact columns equal, the others within their tolerance."""
    failures: list[str] = []
    worst: dict[tuple[str, str], Worst] = {}
    for row in ours:
        key = tuple(row[k] for k in keys)
        if key not in reference:
            continue
        theirs, where = reference[key], "/".join(key)
        for column in (c for c in row if c not in keys and c in theirs):
            if column in EXACT_COLUMNS:
                if row[column] != theirs[column]:
                    failures.append(f"{name} {where}: {column} {row[column]!r} != {theirs[column]!r}")
                continue
            metric, factor = metric_of(column)
            tolerance = TOLERANCES.get(metric)
            if tolerance is None:
                failures.append(f"{name}: no tolerance stated for column {column!r} (add {metric} to TOLERANCES)")
            elif wanted(tolerance):
                model_tier = tier(row["model"])
                limit = factor * getattr(tolerance, model_tier)
                label = metric if factor == 1 else f"{PREFIX}_{metric}"
                slot = worst.setdefault((label, model_tier), Worst(limit))
                found = deviation(_number(row[column]), _number(theirs[column]), tolerance.relative)
                slot.record(found, f"{where} {column}")
                if not found <= limit:
                    failures.append(f"{name} {where} {column}: {row[column] or 'NaN'} against "
                                    f"{theirs[column] or 'NaN'} on the CPU, deviation {found:.4g} > {limit:.4g}")
    return worst, failures


def compare_table(name: str, ours: Path, reference: Path, keys: Sequence[str],
                  wanted: Callable[[Tolerance], bool]) -> tuple[dict[str, object], list[str]]:
    """One table of the CUDA run (``ours``) against the CPU run's: the same columns and row keys, then
    :func:`compare_rows`; the worst deviation per (metric, tier) of the metrics ``wanted`` selects, and the
    failures."""
    our_columns, our_rows = read_table(ours)
    ref_columns, ref_rows = read_table(reference)
    failures: list[str] = []
    if our_columns != ref_columns:
        failures.append(f"{name}: columns differ: {sorted(set(our_columns) ^ set(ref_columns))}")
    our_keys = sorted(tuple(row[k] for k in keys) for row in our_rows)
    ref_keys = sorted(tuple(row[k] for k in keys) for row in ref_rows)
    if our_keys != ref_keys:
        only_here, only_there = sorted(set(our_keys) - set(ref_keys)), sorted(set(ref_keys) - set(our_keys))
        failures.append(f"{name}: rows differ: {len(our_keys)} against {len(ref_keys)} on the CPU; only here "
                        f"{only_here[:5]}, only there {only_there[:5]}")
    worst, more = compare_rows(name, our_rows, {tuple(row[k] for k in keys): row for row in ref_rows}, keys, wanted)
    metrics: dict[str, dict[str, object]] = {}
    for (metric, model_tier), slot in sorted(worst.items()):
        metrics.setdefault(metric, {})[model_tier] = slot.describe()
    return {"rows": len(our_rows), "cpu_rows": len(ref_rows), "columns": len(our_columns), "metrics": metrics}, [
        *failures, *more]


def compare_runs(cuda_run: Path, cpu_run: Path) -> dict[str, object]:
    """Both tables of two run folders; ``passed`` when no check failed (``failures`` lists the first 50)."""
    per_image, failures = compare_table("per_image.csv", cuda_run / "per_image.csv", cpu_run / "per_image.csv",
                                        ("model", "image_id"), lambda tolerance: tolerance.per_image)
    leaderboard, more = compare_table("leaderboard.csv", cuda_run / "leaderboard.csv", cpu_run / "leaderboard.csv",
                                      ("model",), lambda tolerance: True)
    failures += more
    return {"passed": not failures, "failure_count": len(failures), "failures": failures[:50],
            "per_image": per_image, "leaderboard": leaderboard}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.experiments.gpu_tables",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("cuda_run", type=Path)
    parser.add_argument("cpu_run", type=Path)
    parser.add_argument("--json", type=Path, help="write the comparison to this file")
    args = parser.parse_args(argv)
    comparison = compare_runs(args.cuda_run, args.cpu_run)
    text = json.dumps(comparison, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0 if comparison["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
