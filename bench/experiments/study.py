"""The perturbation study: score every sweep of :mod:`bench.experiments.perturbations` with every per-image
metric, on the ground truth of a run folder (``ground_truth/`` and ``segments/``).

Writes ``study/perturbations.csv`` (long format: sweep, strength, image_id, one column per metric) and one
example strip per sweep under ``figures/``. The analysis of these records (curves, sensitivity) lives in
:mod:`bench.experiments.analysis`, so ``bench report`` can redraw it without rescoring. A repeated study on
the same images and metric definitions recomputes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from bench.color import lab_to_rgb, rgb_to_lab
from bench.experiments.perturbations import SWEEPS, Sweep, vivid_object_masks
from bench.images import PIXELS_TAG, file_sha256, quantize, read_label_png, read_png_text, read_png_u8, write_png
from bench.integrity import read_sealed_json, report_corrupt, write_sealed_json
from bench.schema import read_csv, write_csv
from metrics.kernels import workload
from metrics.registry import METRICS, compute

STUDY_KEYS = ("sweep", "strength", "image_id")
EXAMPLE_SIZE = 128


def study_fingerprint(image_ids: Sequence[str], metric_names: Sequence[str], out: Path) -> str:
    """Changes when the images, their ground truth or segment maps (the pixel hashes in their tags), the sweeps
    or the metric definitions change."""
    tags = [(i, *(read_png_text(out / folder / f"{i}.png").get(PIXELS_TAG) for folder in ("ground_truth", "segments")))
            for i in image_ids]
    sweeps = [(s.name, s.strengths, s.regime) for s in SWEEPS]
    metrics = [METRICS[n].describe() for n in metric_names]
    return hashlib.sha256(json.dumps([tags, sweeps, metrics], sort_keys=True, default=str).encode()).hexdigest()


def _degrade(lab: torch.Tensor, masks: torch.Tensor, sweep: Sweep, strength: float) -> torch.Tensor:
    """Apply one sweep at one strength; returns 8-bit RGB (as a saved prediction would be)."""
    ab = sweep.apply(lab[:, 1:], masks, strength)
    return quantize(lab_to_rgb(torch.cat((lab[:, :1], ab), dim=1)))


def run_study(
    out: Path, image_ids: Sequence[str], metric_names: Sequence[str], *, device: torch.device, batch_size: int = 16,
    progress: bool = True,
) -> Path:
    """Score all sweeps over the given images of the run folder ``out``; returns the records CSV path."""
    target = out / "study" / "perturbations.csv"
    fingerprint_file = out / "study" / "fingerprint.json"
    fingerprint = study_fingerprint(image_ids, metric_names, out)
    if study_is_cached(target, fingerprint_file, fingerprint):
        return target
    rows: list[dict[str, object]] = []
    examples: dict[str, list[torch.Tensor]] = {}
    steps = sum(len(s.strengths) for s in SWEEPS) * len(image_ids)
    with torch.no_grad(), workload(steps), tqdm(total=steps, desc="perturbation study", unit="img",
                                                disable=not progress) as bar:
        for start in range(0, len(image_ids), batch_size):
            ids = list(image_ids[start:start + batch_size])
            gt_u8 = torch.stack([read_png_u8(out / "ground_truth" / f"{i}.png") for i in ids]).to(device)
            segments = torch.stack([read_label_png(out / "segments" / f"{i}.png") for i in ids]).to(device)
            gt = gt_u8.float() / 255
            lab = rgb_to_lab(gt)
            masks = vivid_object_masks(lab[:, 1:], segments)
            has_object = masks.flatten(1).any(dim=1)
            for sweep in SWEEPS:
                keep = has_object if sweep.needs_object else torch.ones_like(has_object)
                for strength in sweep.strengths:
                    degraded = _degrade(lab, masks, sweep, strength)
                    values = compute(metric_names, degraded.float() / 255, gt, segments=segments)
                    for i, image_id in enumerate(ids):
                        if keep[i]:
                            rows.append({"sweep": sweep.name, "strength": strength, "image_id": image_id,
                                         **{name: float(values[name][i]) for name in metric_names}})
                    first = int(torch.nonzero(keep)[0]) if keep.any() else None
                    if first is not None and len(examples.get(sweep.name, [])) < len(sweep.strengths):
                        examples.setdefault(sweep.name, []).append(degraded[first].cpu())
                    bar.update(len(ids))
    write_csv(target, [*STUDY_KEYS, *metric_names], rows)
    _write_examples(out, examples)
    write_sealed_json(fingerprint_file, {"fingerprint": fingerprint, "csv_sha256": file_sha256(target)})
    return target


def study_is_cached(target: Path, fingerprint_file: Path, fingerprint: str) -> bool:
    """The study's records exist for this fingerprint and are the bytes written then (the fingerprint file
    holds their sha256, sealed); a corrupt record file or fingerprint file is reported and the study redone."""
    stored = read_sealed_json(fingerprint_file, "study fingerprint")
    if stored is None or stored.get("fingerprint") != fingerprint:
        return False
    if not target.is_file() or file_sha256(target) != stored.get("csv_sha256"):
        report_corrupt("study records", target, "missing, or its bytes do not match the sha256 stored with them")
        return False
    return True


def _write_examples(out: Path, examples: dict[str, list[torch.Tensor]]) -> None:
    """One strip per sweep: the first image with an object at every strength, side by side."""
    for name, images in examples.items():
        resized = [torch.nn.functional.interpolate(i[None].float(), size=(EXAMPLE_SIZE, EXAMPLE_SIZE), mode="area")[0]
                   for i in images]
        strip = torch.cat(resized, dim=2).round().clamp(0, 255).to(torch.uint8)
        write_png(out / "figures" / f"sweep_{name}.png", strip)


def load_study(out: Path) -> list[dict[str, str]]:
    """The study's records of a run folder (empty when no study was run)."""
    path = out / "study" / "perturbations.csv"
    return read_csv(path) if path.is_file() else []
