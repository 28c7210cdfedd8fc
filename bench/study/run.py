"""The perturbation study: score every sweep of :mod:`colorbench.study.perturbations` and every variant of the
paired study (:mod:`colorbench.study.recolour`) with the run's per-image metrics, on the ground truth of a run
folder (``ground_truth/`` and ``segments/``).

Writes ``study/perturbations.csv`` (long format: sweep, strength, image_id, one column per metric),
``study/paired_variants.csv`` (variant, image_id, detail, one column per metric: the dull, recoloured and
oversaturated outputs of each image that :mod:`colorbench.analysis.paired` compares) and one example strip per
sweep under ``figures/``. The analyses of these records live in :mod:`colorbench.analysis.tables` and
:mod:`colorbench.analysis.paired`, so ``bench report`` can redraw them without rescoring. A repeated study on the
same images and metric definitions recomputes nothing.

Cost (issue 11): each distinct degraded image is scored once. The undegraded image that starts every sweep is
scored once per image and shared by all sweeps; the paired study's grey, desaturated and oversaturated outputs
are sweep points and reuse those scores; the ground truth's Lab, segments, object masks, donor descriptors and
hue pools are computed once per image. The number of images is bounded by ``--study-images`` (first N in split
order, so smaller studies are nested in larger ones).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256
from colorbench.data.color import lab_to_rgb, rgb_to_lab
from colorbench.io.images import PIXELS_TAG, quantize, read_label_png, read_png_text, read_png_u8, write_png
from colorbench.io.integrity import read_sealed_json, report_corrupt, write_sealed_json
from colorbench.io.layout import RunLayout
from colorbench.io.legacy_keys import CacheKeys, cache_keys
from colorbench.io.schema import read_csv, write_csv
from colorbench.metrics.kernels import compile_enabled, workload
from colorbench.metrics.registry import compute, metric_keys
from colorbench.study.perturbations import SWEEPS, Sweep, vivid_object_masks
from colorbench.study.recolour import (
    HueChange,
    ObjectInstance,
    ab_statistics,
    gamut_map_ab,
    mean_hue,
    nearest_donors,
    plausible_hue_change,
    recolour_object,
    segment_instances,
    tiny_image_features,
    transfer_ab,
)

logger = logging.getLogger(__name__)

STUDY_KEYS = ("sweep", "strength", "image_id")
VARIANT_KEYS = ("variant", "image_id", "detail")
EXAMPLE_SIZE = 128
#: Bumped when the way variants are made changes (gamut mapping, paired variants), so old records are redone.
STUDY_VERSION = 2
#: Paired-study outputs that are sweep points: variant -> (sweep, strength).
SWEEP_VARIANTS = {"grey": ("desaturation", 0.0), "desaturated_50": ("desaturation", 0.5),
                  "oversaturated_150": ("oversaturation", 1.5), "oversaturated_200": ("oversaturation", 2.0)}
RECOLOURINGS = ("object_hue_plausible", "colour_transfer")
#: Studies with more degraded images than this print their size and expected cost before starting.
ANNOUNCE_ABOVE = 500
#: CPU seconds per degraded 224x224 image for the default metric set, eager (COLORBENCH_COMPILE=0) and compiled
#: from an empty compile cache (compilation included): a rough coco-mini figure, used only for the announcement,
#: scaled by pixels (how it was measured: docs/performance.md).
SECONDS_PER_DEGRADED = {"eager": 2.3, "compiled": 0.8}


def parse_study_images(value: str) -> int | None:
    """``--study-images``: a positive count, or ``all`` (None) for every image of the evaluation split."""
    if value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise BenchError(f"--study-images {value!r}: give a positive number of images or 'all'")
    return count


def degraded_per_image() -> int:
    """Distinct degraded images scored per study image: one undegraded, every non-identity sweep point, and the
    two recolourings of the paired study (its other variants are sweep points)."""
    return 1 + sum(len(s.strengths) - 1 for s in SWEEPS) + len(RECOLOURINGS)


def announce(n_images: int, pixels: int, compiled: bool) -> str:
    """One line saying what the study will score and about how long it takes."""
    degraded = n_images * degraded_per_image()
    per_image = SECONDS_PER_DEGRADED["compiled" if compiled else "eager"] * pixels / 224**2
    return (f"perturbation study: {n_images} images x {degraded_per_image()} variants = {degraded} degraded images, "
            f"about {degraded * per_image / 60:.0f} CPU-minutes (--study-images N bounds it)")


def study_fingerprint(
    image_ids: Sequence[str], metric_names: Sequence[str], out: Path, categories: Mapping[str, Mapping[int, str]]
) -> CacheKeys:
    """Changes when the images, their ground truth or segment maps (the pixel hashes in their tags) or classes,
    the sweeps or the metric definitions (``Metric.key()``) change; ``legacy``: the fingerprints the code before
    ``Metric.key()`` gave the same study (colorbench.io.legacy_keys), under which existing records are current."""
    layout = RunLayout(out)
    tags = [(i, *(read_png_text(path).get(PIXELS_TAG) for path in (layout.ground_truth(i), layout.segments(i))),
             sorted((categories.get(i) or {}).items()))
            for i in image_ids]
    sweeps = [(s.name, s.strengths, s.regime) for s in SWEEPS]
    return cache_keys(lambda metrics: [STUDY_VERSION, tags, sweeps, metrics], metric_keys(metric_names), 64)


def to_rgb8(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """8-bit RGB (as a saved prediction would be) of L and ab brought into the sRGB gamut at constant L."""
    return quantize(lab_to_rgb(torch.cat((L, gamut_map_ab(L, ab)), dim=1)))


@dataclass
class _Batch:
    """The undegraded quantities of a batch of study images, computed once and shared by every variant."""

    ids: list[str]
    gt: torch.Tensor  # RGB in [0, 1]
    lab: torch.Tensor
    segments: torch.Tensor
    masks: torch.Tensor  # the most vivid object of each image

    @property
    def has_object(self) -> torch.Tensor:
        return self.masks.flatten(1).any(dim=1)


def _read_batches(out: Path, image_ids: Sequence[str], batch_size: int, device: torch.device):
    layout = RunLayout(out)
    for start in range(0, len(image_ids), batch_size):
        ids = list(image_ids[start:start + batch_size])
        gt = torch.stack([read_png_u8(layout.ground_truth(i)) for i in ids]).to(device).float() / 255
        segments = torch.stack([read_label_png(layout.segments(i)) for i in ids]).to(device)
        lab = rgb_to_lab(gt)
        yield _Batch(ids, gt, lab, segments, vivid_object_masks(lab[:, 1:], segments))


@dataclass
class _References:
    """What one image's variants need from the other study images: the colour-transfer donor's ab statistics
    and the plausible hue change of its object."""

    donor: dict[str, tuple[str, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    hue: dict[str, HueChange | None] = field(default_factory=dict)


def _references(
    out: Path, image_ids: Sequence[str], categories: Mapping[str, Mapping[int, str]], batch_size: int,
    device: torch.device,
) -> _References:
    """First pass over the study images: donor descriptors, ab statistics and class hue pools."""
    features, means, stds = [], [], []
    pool: list[ObjectInstance] = []
    objects: dict[str, tuple[tuple[float, float] | None, str | None]] = {}  # image -> (object hue, class)
    for batch in _read_batches(out, image_ids, batch_size, device):
        ab = batch.lab[:, 1:]
        features.append(tiny_image_features(batch.lab[:, :1]).cpu())
        mean, std = ab_statistics(ab)
        means.append(mean.cpu())
        stds.append(std.cpu())
        for i, image_id in enumerate(batch.ids):
            labels = categories.get(image_id) or {}
            pool += segment_instances(image_id, ab[i].cpu(), batch.segments[i].cpu(), labels)
            mask = batch.masks[i, 0].cpu()
            if mask.any():
                objects[image_id] = (mean_hue(ab[i].cpu(), mask), labels.get(int(batch.segments[i].cpu()[mask][0])))
            else:
                objects[image_id] = (None, None)
    refs = _References()
    if not image_ids:
        return refs
    mean_all, std_all = torch.cat(means), torch.cat(stds)
    for i, donor in enumerate(nearest_donors(torch.cat(features))):
        if donor >= 0:
            refs.donor[image_ids[i]] = (image_ids[donor], mean_all[donor], std_all[donor])
    for image_id, (own, category) in objects.items():
        refs.hue[image_id] = plausible_hue_change(image_id, own, category, pool)
    return refs


def _recolourings(batch: _Batch, refs: _References) -> dict[str, tuple[list[int], torch.Tensor, list[str]]]:
    """The two recolourings of the batch: variant -> (batch indices that have it, their 8-bit RGB, details)."""
    L, ab = batch.lab[:, :1], batch.lab[:, 1:]
    variants: dict[str, tuple[list[int], torch.Tensor, list[str]]] = {}
    hue_rows, hue_ab, hue_detail = [], [], []
    donor_rows, donor_ab, donor_detail = [], [], []
    for i, image_id in enumerate(batch.ids):
        change = refs.hue.get(image_id)
        if change is not None:
            hue_rows.append(i)
            hue_ab.append(recolour_object(ab[i:i + 1], batch.masks[i:i + 1], change.degrees))
            hue_detail.append(change.detail)
        if image_id in refs.donor:
            donor, mean, std = refs.donor[image_id]
            donor_rows.append(i)
            donor_ab.append(transfer_ab(ab[i:i + 1], mean.to(ab.device), std.to(ab.device)))
            donor_detail.append(f"donor image {donor} (nearest tiny-image L descriptor)")
    if hue_rows:
        variants["object_hue_plausible"] = (hue_rows, to_rgb8(L[hue_rows], torch.cat(hue_ab)), hue_detail)
    if donor_rows:
        variants["colour_transfer"] = (donor_rows, to_rgb8(L[donor_rows], torch.cat(donor_ab)), donor_detail)
    return variants


def run_study(
    out: Path, image_ids: Sequence[str], metric_names: Sequence[str], *, device: torch.device, batch_size: int = 16,
    progress: bool = True, categories: Mapping[str, Mapping[int, str]] | None = None,
) -> Path:
    """Score all sweeps and paired variants over the given images of the run folder ``out``; ``categories`` maps
    an image id to the class name of each segment label (COCO instances). Returns the records CSV path."""
    categories, layout = categories or {}, RunLayout(out)
    target = layout.study_records
    fingerprint_file = layout.study_fingerprint
    fingerprint = study_fingerprint(image_ids, metric_names, out, categories)
    if study_is_cached(layout, fingerprint):
        return target
    if len(image_ids) * degraded_per_image() > ANNOUNCE_ABOVE:
        first = read_png_u8(layout.ground_truth(image_ids[0]))
        logger.info("%s", announce(len(image_ids), first.shape[1] * first.shape[2], compile_enabled()))
    rows: list[dict[str, object]] = []
    variant_rows: list[dict[str, object]] = []
    examples: dict[str, list[torch.Tensor]] = {}

    def score(rgb8: torch.Tensor, batch: _Batch, index: list[int]) -> list[dict[str, float]]:
        whole = index == list(range(len(batch.ids)))  # the batch's own tensors, so per-truth features are reused
        gt, segments = (batch.gt, batch.segments) if whole else (batch.gt[index], batch.segments[index])
        values = compute(metric_names, rgb8.float() / 255, gt, segments=segments)
        return [{name: float(values[name][k]) for name in metric_names} for k in range(len(index))]

    total = len(image_ids) * degraded_per_image()
    with torch.no_grad(), workload(total), tqdm(total=total, desc="perturbation study", unit="img",
                                                disable=not progress) as bar:
        refs = _references(out, image_ids, categories, batch_size, device)
        for batch in _read_batches(out, image_ids, batch_size, device):
            everyone = list(range(len(batch.ids)))
            identity = score(quantize(batch.gt), batch, everyone)
            bar.update(len(everyone))
            swept: dict[tuple[str, float], list[dict[str, float]]] = {}
            for sweep in SWEEPS:
                keep = batch.has_object if sweep.needs_object else torch.ones_like(batch.has_object)
                for strength in sweep.strengths:
                    if strength == sweep.strengths[0]:
                        values, degraded = identity, quantize(batch.gt)
                    else:
                        degraded = to_rgb8(batch.lab[:, :1], sweep.apply(batch.lab[:, 1:], batch.masks, strength))
                        values = score(degraded, batch, everyone)
                        bar.update(len(everyone))
                    swept[(sweep.name, strength)] = values
                    rows += [{"sweep": sweep.name, "strength": strength, "image_id": image_id, **values[i]}
                             for i, image_id in enumerate(batch.ids) if keep[i]]
                    _keep_example(examples, sweep, degraded, keep)
            for variant, (sweep_name, strength) in SWEEP_VARIANTS.items():
                variant_rows += [{"variant": variant, "image_id": image_id, "detail": f"{sweep_name} {strength:g}",
                                  **swept[(sweep_name, strength)][i]} for i, image_id in enumerate(batch.ids)]
            for variant, (index, rgb8, details) in _recolourings(batch, refs).items():
                variant_rows += [{"variant": variant, "image_id": batch.ids[i], "detail": detail, **values}
                                 for i, detail, values in zip(index, details, score(rgb8, batch, index), strict=True)]
            bar.update(len(everyone) * len(RECOLOURINGS))
    write_csv(target, [*STUDY_KEYS, *metric_names], rows)
    variants = layout.study_variants
    write_csv(variants, [*VARIANT_KEYS, *metric_names], variant_rows)
    _write_examples(out, examples)
    write_sealed_json(fingerprint_file, {"fingerprint": fingerprint.current, "csv_sha256": file_sha256(target),
                                         "variants_sha256": file_sha256(variants)})
    return target


def _keep_example(examples: dict[str, list[torch.Tensor]], sweep: Sweep, degraded: torch.Tensor,
                  keep: torch.Tensor) -> None:
    """Collect the first image with an object at every strength of a sweep."""
    if keep.any() and len(examples.get(sweep.name, [])) < len(sweep.strengths):
        examples.setdefault(sweep.name, []).append(degraded[int(torch.nonzero(keep)[0])].cpu())


def study_is_cached(layout: RunLayout, fingerprint: CacheKeys) -> bool:
    """The study's records (perturbations.csv, paired_variants.csv) exist for this fingerprint (current or
    legacy) and are the bytes written then (the fingerprint file holds their sha256, sealed); a corrupt record
    file or fingerprint file is reported and the study redone."""
    stored = read_sealed_json(layout.study_fingerprint, "study fingerprint")
    if stored is None or not fingerprint.accepts(stored.get("fingerprint")):
        return False
    for path, key in ((layout.study_records, "csv_sha256"), (layout.study_variants, "variants_sha256")):
        if not path.is_file() or file_sha256(path) != stored.get(key):
            report_corrupt("study records", path, "missing, or its bytes do not match the sha256 stored with them")
            return False
    return True


def _write_examples(out: Path, examples: dict[str, list[torch.Tensor]]) -> None:
    """One strip per sweep: the first image with an object at every strength, side by side."""
    for name, images in examples.items():
        resized = [torch.nn.functional.interpolate(i[None].float(), size=(EXAMPLE_SIZE, EXAMPLE_SIZE), mode="area")[0]
                   for i in images]
        strip = torch.cat(resized, dim=2).round().clamp(0, 255).to(torch.uint8)
        write_png(RunLayout(out).figure(f"sweep_{name}.png"), strip)


def load_study(out: Path) -> list[dict[str, str]]:
    """The study's records of a run folder (empty when no study was run)."""
    path = RunLayout(out).study_records
    return read_csv(path) if path.is_file() else []


def load_variants(out: Path) -> list[dict[str, str]]:
    """The paired study's variant records of a run folder (empty when the study predates them or did not run)."""
    path = RunLayout(out).study_variants
    return read_csv(path) if path.is_file() else []
