"""Agreement of each metric with human judgements on BAPPS 2AFC colorization triplets (Zhang et al. 2018, the
LPIPS paper; reference.md sec. 6). BAPPS cannot be downloaded here; users who have it point colorbench at it.

Layout of a 2AFC folder (e.g. ``2afc/val/color``): ``ref/NAME.png``, ``p0/NAME.png``, ``p1/NAME.png`` and
``judge/NAME.npy`` holding the share of people who judged p1 closer to ref.

For a metric, each triplet scores ``judge`` if the metric prefers p1 (better value against ref), ``1 - judge``
if it prefers p0, and 0.5 on a tie; the agreement is the mean over triplets (the LPIPS paper's 2AFC score;
humans agreeing with themselves reach about 0.8 on these sets), with a bootstrap 95% interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from colorbench.core.aggregate import mean_and_interval
from colorbench.core.errors import BenchError
from colorbench.core.values import number
from colorbench.data.segments import slic_segments
from colorbench.metrics.registry import goodness, needs_segments, ranked
from colorbench.pipeline.scoring import Pair, score_pairs

PARTS = ("ref", "p0", "p1", "judge")
AGREEMENT_COLUMNS = ("metric", "agreement", "agreement_lo", "agreement_hi", "n")
#: The PSNR band of :func:`agreement_by_band` (paper Sec. 6.2 and 7.5: '22+dB for PSNR').
BAND_PSNR_DB = 22.0


@dataclass(frozen=True)
class Triplet:
    name: str
    ref: Path
    p0: Path
    p1: Path
    judge: float  # share of people preferring p1


def load_bapps(root: Path) -> list[Triplet]:
    """Read a BAPPS 2AFC folder; missing parts or unreadable judgements are errors naming the file."""
    for part in PARTS:
        if not (root / part).is_dir():
            raise BenchError(f"{root} is not a BAPPS 2AFC folder: {root / part} is missing")
    triplets = []
    for judge_file in sorted((root / "judge").glob("*.npy")):
        name = judge_file.stem
        paths = [root / part / f"{name}.png" for part in ("ref", "p0", "p1")]
        for path in paths:
            if not path.is_file():
                raise BenchError(f"BAPPS triplet {name}: {path} is missing")
        try:
            judge = float(np.load(judge_file, allow_pickle=False).reshape(-1)[0])
        except (OSError, ValueError, IndexError) as exc:
            raise BenchError(f"cannot read BAPPS judgement {judge_file}: {exc}") from exc
        triplets.append(Triplet(name, paths[0], paths[1], paths[2], judge))
    if not triplets:
        raise BenchError(f"no judgements (*.npy) in {root / 'judge'}")
    return triplets


def _metric_values(triplets: Sequence[Triplet], which: str, names: Sequence[str], device: torch.device,
                   batch_size: int) -> dict[str, dict[str, float]]:
    pairs = [Pair(t.name, t.name, getattr(t, which), t.ref) for t in triplets]
    values: dict[str, dict[str, float]] = {}
    extras_for = slic_segments if needs_segments(names) else None
    for records, _ in score_pairs(pairs, names, device=device, batch_size=batch_size, progress=False,
                                  extras_for=extras_for):
        for record in records:
            values[str(record["image_id"])] = {n: number(record[n]) for n in names}
    return values


def _agreement_rows(triplets: Sequence[Triplet], names: Sequence[str], first: dict[str, dict[str, float]],
                    second: dict[str, dict[str, float]], seed: int) -> list[dict[str, object]]:
    rows = []
    for name in names:
        scores = []
        for t in triplets:
            if t.name not in first or t.name not in second:
                continue
            g0, g1 = goodness(name, np.array([first[t.name][name], second[t.name][name]]))
            if np.isfinite(g0) and np.isfinite(g1):
                scores.append(t.judge if g1 > g0 else 1 - t.judge if g0 > g1 else 0.5)
        mean, lo, hi = mean_and_interval(scores, seed=seed)
        rows.append({"metric": name, "agreement": mean, "agreement_lo": lo, "agreement_hi": hi, "n": len(scores)})
    return rows


def agreement(triplets: Sequence[Triplet], names: Sequence[str], *, device: torch.device, batch_size: int = 32,
              seed: int = 0) -> list[dict[str, object]]:
    """2AFC agreement with people for every named per-image metric that ranks (diagnostics have no preference)."""
    names = ranked(names)
    first, second = (_metric_values(triplets, which, names, device, batch_size) for which in ("p0", "p1"))
    return _agreement_rows(triplets, names, first, second, seed)


def agreement_by_band(triplets: Sequence[Triplet], names: Sequence[str], band_db: float, *, device: torch.device,
                      batch_size: int = 32, seed: int = 0) -> list[dict[str, object]]:
    """:func:`agreement` apart for the triplets whose two distortions both score PSNR > ``band_db`` against the
    reference (band ``high``, the paper's regime of claim C2, Sec. 1 and 7) and the others (``low``); rows carry
    a ``band`` column before AGREEMENT_COLUMNS. People here see the reference, so this is context for C2, not a
    judge its gate can admit (BAPPS has no grey or twin pairs)."""
    names = ranked(list(dict.fromkeys([*names, "psnr"])))
    first, second = (_metric_values(triplets, which, names, device, batch_size) for which in ("p0", "p1"))
    rows = []
    for band in ("high", "low"):
        chosen = [t for t in triplets if t.name in first and t.name in second
                  and (min(first[t.name]["psnr"], second[t.name]["psnr"]) > band_db) == (band == "high")]
        rows += [{"band": band, **row} for row in _agreement_rows(chosen, names, first, second, seed)]
    return rows
