"""Per-image scoring of prediction files against ground-truth files.

``run`` and ``score`` share this code: both read the two PNG/image files of each pair, stack same-sized
pairs into batches and apply the metric registry, so scoring the PNGs that ``run`` saved reproduces its
numbers exactly. Pairs that cannot be read or differ in size are skipped with a reason, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

from colorbench.core.device import fixed_shapes
from colorbench.core.errors import BenchError
from colorbench.core.paths import printable
from colorbench.data.loader import repeat_last
from colorbench.data.sources import IMAGE_SUFFIXES, folder_record, image_files, image_id_sort_key, refuse_duplicates
from colorbench.io.images import UnreadableImageError, read_png_u8
from colorbench.io.legacy_keys import CacheKeys, cache_keys
from colorbench.metrics.kernels import workload
from colorbench.metrics.registry import DISTRIBUTION_METRICS, compute, metric_keys


@dataclass(frozen=True)
class Pair:
    """A prediction file and the ground-truth file it is scored against."""

    image_id: str
    file: str
    pred: Path
    target: Path


@dataclass(frozen=True)
class Skip:
    image_id: str
    stage: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"image_id": self.image_id, "stage": self.stage, "reason": self.reason}


def metric_set_keys(metric_names: Sequence[str]) -> CacheKeys:
    """Keys of the metric definitions (names, parameters, definition versions), naming the folder of the records
    computed under them (they stay valid only while the definitions do); ``legacy``: the names the code before
    ``Metric.key()`` gave that folder (colorbench.io.legacy_keys)."""
    return cache_keys(lambda metrics: metrics, metric_keys(metric_names), 12)


def metric_set_id(metric_names: Sequence[str]) -> str:
    """The name of the records folder new records of these metrics are written to."""
    return metric_set_keys(metric_names).current


_T = TypeVar("_T")
#: Per-pair extra inputs for metrics that declare ``needs`` (e.g. ``{"segments": label map (H, W)}``).
ExtrasFn = Callable[[Pair, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class Loaded:
    pair: Pair
    pred: torch.Tensor
    target: torch.Tensor
    extras: dict[str, torch.Tensor]


def _load(pair: Pair, extras_for: ExtrasFn | None) -> tuple[Loaded | None, list[Skip]]:
    """Read one pair (and its extras); a mismatched extra becomes an empty map plus a note, so only the metrics
    that need it report n/a for this image."""
    try:
        pred, target = read_png_u8(pair.pred), read_png_u8(pair.target)
    except UnreadableImageError as exc:
        return None, [Skip(pair.image_id, "score", str(exc))]
    if pred.shape != target.shape:
        sizes = [f"{name} is {t.shape[2]}x{t.shape[1]}" for name, t in
                 ((f"prediction {pair.pred.name}", pred), (f"ground truth {pair.target.name}", target))]
        return None, [Skip(pair.image_id, "score", "size mismatch: " + ", ".join(sizes))]
    notes: list[Skip] = []
    extras = extras_for(pair, target) if extras_for else {}
    for name, value in extras.items():
        if tuple(value.shape) != tuple(target.shape[1:]):
            notes.append(Skip(pair.image_id, name, f"{name} map is {value.shape[-1]}x{value.shape[0]}, image is "
                              f"{target.shape[2]}x{target.shape[1]}: metrics needing {name} are n/a"))
            extras[name] = torch.zeros(target.shape[1:], dtype=value.dtype)
    return Loaded(pair, pred, target, extras), notes


def same_size_groups(items: Sequence[_T], image_of: Callable[[_T], torch.Tensor]) -> list[list[_T]]:
    """The items split into groups whose images have equal shapes (each group one batch), first seen first."""
    groups: dict[tuple[int, ...], list[_T]] = {}
    for item in items:
        groups.setdefault(tuple(image_of(item).shape), []).append(item)
    return list(groups.values())


def score_pairs(
    pairs: Sequence[Pair],
    metric_names: Sequence[str],
    *,
    device: torch.device,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "score",
    extras_for: ExtrasFn | None = None,
) -> Iterator[tuple[list[dict[str, object]], list[Skip]]]:
    """Yield (records, skips) batch by batch; a record is ``{image_id, file, <metric>: float}``.

    Consecutive pairs of equal size share a batch, so a folder of mixed sizes is scored at each file's own
    resolution. The number of pairs is declared to the compile policy (:func:`colorbench.metrics.kernels.workload`).
    ``extras_for`` supplies the extra inputs of metrics with ``needs``. On fixed-shape devices (XLA) a short batch
    is padded with copies of its last pair to ``batch_size`` rows, so equal-sized images run one graph at any count
    (:mod:`colorbench.data.loader`'s rule for prediction).
    """
    rows_per_batch = batch_size if fixed_shapes(device) else 0
    with ThreadPoolExecutor(max_workers=4) as pool, tqdm(total=len(pairs), desc=desc, unit="img",
                                                          disable=not progress) as bar, workload(len(pairs)):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            loaded = list(pool.map(lambda pair: _load(pair, extras_for), chunk))
            skips = [skip for _, notes in loaded for skip in notes]
            records: list[dict[str, object]] = []
            for group in same_size_groups([item for item, _ in loaded if item is not None], lambda i: i.pred):
                rows = repeat_last(group, rows_per_batch)  # padding: see rows_per_batch
                pred = torch.stack([g.pred for g in rows]).to(device).float() / 255
                target = torch.stack([g.target for g in rows]).to(device).float() / 255
                extras = {name: torch.stack([g.extras[name] for g in rows]).to(device) for name in group[0].extras}
                # one copy to the host per batch and metric; padding rows are never read
                values = {k: v.cpu() for k, v in compute(metric_names, pred, target, **extras).items()}
                for i, item in enumerate(group):
                    record: dict[str, object] = {"image_id": item.pair.image_id, "file": item.pair.file}
                    record.update({name: float(values[name][i]) for name in metric_names})
                    records.append(record)
            order = {p.image_id: k for k, p in enumerate(chunk)}
            records.sort(key=lambda r: order[str(r["image_id"])])
            bar.update(len(chunk))
            yield records, skips


def images_by_id(folder: Path, role: str) -> tuple[dict[str, Path], list[Skip]]:
    """The image files directly inside ``folder`` by image id (the safe form of the name stem, as for
    ``folder:`` sources); files the folder listing refuses (a symlink out of the folder, two files claiming one
    id) become skips. The folder is listed, never globbed, so its name may hold ``*`` or ``[``."""
    if not folder.is_dir():
        raise BenchError(f"{role} folder {printable(str(folder))} does not exist or is not a folder")
    records = refuse_duplicates([folder_record(folder, path) for path in image_files(folder)])
    skips = [Skip(r.image_id, "match", f"{role} {r.refused}") for r in records if r.refused]
    return {r.image_id: r.path for r in records if not r.refused}, skips


def match_folders(pred_dir: Path, gt_dir: Path) -> tuple[list[Pair], list[Skip]]:
    """Pair prediction and ground-truth files by image id; unmatched and refused files become skips."""
    (preds, pred_skips), (gts, gt_skips) = images_by_id(pred_dir, "prediction"), images_by_id(gt_dir, "ground-truth")
    if not preds:
        raise BenchError(f"prediction folder {printable(str(pred_dir))} holds no usable image files "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    pairs = [Pair(i, printable(preds[i].name), preds[i], gts[i])
             for i in sorted(preds.keys() & gts.keys(), key=image_id_sort_key)]
    skips = pred_skips + gt_skips
    skips += [Skip(i, "match", f"prediction {printable(preds[i].name)} has no ground truth in {printable(str(gt_dir))}")
              for i in sorted(preds.keys() - gts.keys(), key=image_id_sort_key)]
    skips += [Skip(i, "match", f"ground truth {printable(gts[i].name)} has no prediction in {printable(str(pred_dir))}")
              for i in sorted(gts.keys() - preds.keys(), key=image_id_sort_key)]
    if not pairs:
        raise BenchError(f"no file in {printable(str(pred_dir))} matches a file in {printable(str(gt_dir))} "
                         "by name stem")
    return pairs, skips


class SetLevelScorer:
    """Set-level metrics (a Frechet distance, say) of prediction sets against ground truth.

    Feature networks are built once; ground-truth features are computed once per image set and reused for
    every model of a run.
    """

    def __init__(self, names: Sequence[str], *, device: torch.device, batch_size: int = 32, progress: bool = True):
        self.names, self.device, self.batch_size, self.progress = list(names), device, batch_size, progress
        self._extractors: dict[str, torch.nn.Module] = {}
        self._target_features: dict[tuple[str, tuple[Path, ...]], torch.Tensor] = {}

    def _extractor(self, name: str) -> torch.nn.Module:
        if name not in self._extractors:
            self._extractors[name] = DISTRIBUTION_METRICS[name].extractor().to(self.device).eval()
        return self._extractors[name]

    def features(self, name: str, paths: Sequence[Path], desc: str) -> torch.Tensor:
        """Features (N, D) float64 of image files, batched by equal size (rows grouped by size, so their order
        is not the order of ``paths``: only statistics of the set are meant to be taken)."""
        extractor, chunks = self._extractor(name), []
        with ThreadPoolExecutor(max_workers=4) as pool, torch.no_grad(), workload(len(paths)):
            for start in tqdm(range(0, len(paths), self.batch_size), desc=desc, unit="batch",
                              disable=not self.progress):
                images = list(pool.map(read_png_u8, paths[start:start + self.batch_size]))
                for group in same_size_groups(images, lambda image: image):
                    batch = torch.stack(group).to(self.device).float() / 255
                    chunks.append(extractor(batch).double().cpu())
        return torch.cat(chunks)

    def __call__(self, pairs: Sequence[Pair], model: str) -> dict[str, float]:
        values = {}
        for name in self.names:
            targets = tuple(p.target for p in pairs)
            if (name, targets) not in self._target_features:
                self._target_features[(name, targets)] = self.features(name, targets, f"{name} ground truth")
            predicted = self.features(name, [p.pred for p in pairs], f"{name} {model}")
            metric = DISTRIBUTION_METRICS[name]
            values[name] = float(metric.fn(predicted, self._target_features[(name, targets)], **metric.params))
        return values
