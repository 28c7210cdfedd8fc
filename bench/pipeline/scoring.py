"""Per-image scoring of prediction files against ground-truth files.

``run`` and ``score`` share this code: both read the two PNG/image files of each pair, stack same-sized
pairs into batches and apply the metric registry, so scoring the PNGs that ``run`` saved reproduces its
numbers exactly. Pairs that cannot be read or differ in size are skipped with a reason, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Required, TypedDict, TypeVar, Unpack

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


#: ``--resize-pred`` policies for a prediction whose size is not its ground truth's: ``none`` skips the pair with
#: the two sizes as its reason; ``gt`` resizes the prediction to the ground truth's size (bilinear, antialiased,
#: rounded back to 8 bits), so the pair is scored at the ground truth's resolution.
RESIZE_PRED = ("none", "gt")


@dataclass
class Truth:
    """A ground-truth image read once (uint8 (3, H, W)) with its extras and the notes on them, shared by every
    prediction scored against it."""

    target: torch.Tensor
    extras: dict[str, torch.Tensor]
    notes: list[Skip]


@dataclass
class Loaded:
    pair: Pair
    pred: torch.Tensor
    truth: Truth
    resized: bool


def _load_truth(pair: Pair, extras_for: ExtrasFn | None) -> Truth | Skip:
    """Read one ground truth and its extras; a mismatched extra becomes an empty map plus a note, so only the
    metrics that need it report n/a for this image."""
    try:
        target = read_png_u8(pair.target)
    except UnreadableImageError as exc:
        return Skip(pair.image_id, "score", str(exc))
    notes: list[Skip] = []
    extras = extras_for(pair, target) if extras_for else {}
    for name, value in extras.items():
        if tuple(value.shape) != tuple(target.shape[1:]):
            notes.append(Skip(pair.image_id, name, f"{name} map is {value.shape[-1]}x{value.shape[0]}, image is "
                              f"{target.shape[2]}x{target.shape[1]}: metrics needing {name} are n/a"))
            extras[name] = torch.zeros(target.shape[1:], dtype=value.dtype)
    return Truth(target, extras, notes)


def resized_to(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A uint8 (3, H, W) image resized to ``size`` (H, W) for ``--resize-pred gt``: bilinear with antialiasing,
    rounded and clamped back to 8 bits, as a prediction saved at that size would be."""
    scaled = torch.nn.functional.interpolate(pred[None].float(), size=size, mode="bilinear", antialias=True,
                                             align_corners=False)[0]
    return scaled.round().clamp(0, 255).to(torch.uint8)


def _load_pred(pair: Pair, truth: Truth | Skip, resize_pred: str) -> tuple[Loaded | None, list[Skip]]:
    """Read one prediction against its ground truth read before; a size mismatch is skipped or resized by the
    ``resize_pred`` policy (:data:`RESIZE_PRED`)."""
    if isinstance(truth, Skip):
        return None, [truth]
    try:
        pred = read_png_u8(pair.pred)
    except UnreadableImageError as exc:
        return None, [Skip(pair.image_id, "score", str(exc))]
    resized = pred.shape != truth.target.shape
    if resized and resize_pred == "none":
        sizes = [f"{name} is {t.shape[2]}x{t.shape[1]}" for name, t in
                 ((f"prediction {pair.pred.name}", pred), (f"ground truth {pair.target.name}", truth.target))]
        return None, [Skip(pair.image_id, "score", "size mismatch: " + ", ".join(sizes))]
    if resized:
        pred = resized_to(pred, (truth.target.shape[1], truth.target.shape[2]))
    return Loaded(pair, pred, truth, resized), list(truth.notes)


def same_size_groups(items: Sequence[_T], image_of: Callable[[_T], torch.Tensor]) -> list[list[_T]]:
    """The items split into groups whose images have equal shapes (each group one batch), first seen first."""
    groups: dict[tuple[int, ...], list[_T]] = {}
    for item in items:
        groups.setdefault(tuple(image_of(item).shape), []).append(item)
    return list(groups.values())


@dataclass
class Scored:
    """One model's records and skips of one batch of ground truths; ``resized``: the ids whose prediction was
    resized to the ground truth's size (``--resize-pred gt``)."""

    model: str
    records: list[dict[str, object]]
    skips: list[Skip]
    resized: list[str]


def score_models(
    pairs_by_model: Mapping[str, Sequence[Pair]],
    metric_names: Sequence[str],
    *,
    device: torch.device,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "score",
    extras_for: ExtrasFn | None = None,
    resize_pred: str = "none",
) -> Iterator[Scored]:
    """Score every model's pairs, ground truth by ground truth: yield one :class:`Scored` per model and batch.

    The ground-truth files of all models are taken ``batch_size`` at a time; each is read once, its extras
    (segments) computed once, and each stacked ground-truth batch is built once and handed to every model
    whose predictions group the same way, so the metrics that keep the ground truth's network outputs while
    that tensor is unchanged (colorbench.metrics.semantic) compute them once. A model's records are those a
    call with that model alone gives: metrics take each image on its own (colorbench.metrics.registry.compute).

    Consecutive pairs of equal size share a batch, so a folder of mixed sizes is scored at each file's own
    resolution. The number of pairs is declared to the compile policy (:func:`colorbench.metrics.kernels.workload`).
    On fixed-shape devices (XLA) a short batch is padded with copies of its last pair to ``batch_size`` rows, so
    equal-sized images run one graph at any count (:mod:`colorbench.data.loader`'s rule for prediction).
    """
    rows_per_batch = batch_size if fixed_shapes(device) else 0
    targets = list(dict.fromkeys(p.target for pairs in pairs_by_model.values() for p in pairs))
    total = sum(len(pairs) for pairs in pairs_by_model.values())
    by_target: dict[str, dict[Path, list[Pair]]] = {model: {} for model in pairs_by_model}
    for model, pairs in pairs_by_model.items():
        for pair in pairs:
            by_target[model].setdefault(pair.target, []).append(pair)
    with ThreadPoolExecutor(max_workers=4) as pool, tqdm(total=total, desc=desc, unit="img",
                                                          disable=not progress) as bar, workload(total):
        for start in range(0, len(targets), batch_size):
            chunk = targets[start:start + batch_size]
            firsts = [next(m[t][0] for m in by_target.values() if t in m) for t in chunk]
            truths = dict(zip(chunk, pool.map(_load_truth, firsts, [extras_for] * len(firsts)), strict=True))
            stacked: dict[tuple[Path, ...], tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
            for model, of_target in by_target.items():
                mine = [pair for t in chunk for pair in of_target.get(t, [])]
                loaded = list(pool.map(_load_pred, mine, [truths[p.target] for p in mine], [resize_pred] * len(mine)))
                skips = [skip for _, notes in loaded for skip in notes]
                items = [item for item, _ in loaded if item is not None]
                records: list[dict[str, object]] = []
                for group in same_size_groups(items, lambda i: i.pred):
                    rows = repeat_last(group, rows_per_batch)  # padding: see rows_per_batch
                    key = tuple(g.pair.target for g in rows)
                    if key not in stacked:
                        stacked[key] = (torch.stack([g.truth.target for g in rows]).to(device).float() / 255,
                                        {name: torch.stack([g.truth.extras[name] for g in rows]).to(device)
                                         for name in group[0].truth.extras})
                    target, extras = stacked[key]
                    pred = torch.stack([g.pred for g in rows]).to(device).float() / 255
                    # one copy to the host per batch and metric; padding rows are never read
                    values = {k: v.cpu() for k, v in compute(metric_names, pred, target, **extras).items()}
                    for i, item in enumerate(group):
                        record: dict[str, object] = {"image_id": item.pair.image_id, "file": item.pair.file}
                        record.update({name: float(values[name][i]) for name in metric_names})
                        records.append(record)
                order = {p.image_id: k for k, p in enumerate(mine)}
                records.sort(key=lambda r: order[str(r["image_id"])])
                bar.update(len(mine))
                yield Scored(model, records, skips, [i.pair.image_id for i in items if i.resized])


class ScoringOptions(TypedDict, total=False):
    """The keyword options of :func:`score_models` that :func:`score_pairs` passes on."""

    device: Required[torch.device]
    batch_size: int
    progress: bool
    desc: str
    extras_for: ExtrasFn | None


def score_pairs(pairs: Sequence[Pair], metric_names: Sequence[str],
                **options: Unpack[ScoringOptions]) -> Iterator[tuple[list[dict[str, object]], list[Skip]]]:
    """Yield (records, skips) batch by batch for one set of pairs; a record is ``{image_id, file, <metric>:
    float}``. A size mismatch is skipped with both sizes as its reason; see :func:`score_models`."""
    for scored in score_models({"": pairs}, metric_names, **options):
        yield scored.records, scored.skips


def images_by_id(folder: Path, role: str) -> tuple[dict[str, Path], list[Skip]]:
    """The image files directly inside ``folder`` by image id (the safe form of the name stem, as for
    ``folder:`` sources); files the folder listing refuses (a symlink out of the folder, two files claiming one
    id) become skips. The folder is listed, never globbed, so its name may hold ``*`` or ``[``."""
    if not folder.is_dir():
        raise BenchError(f"{role} folder {printable(str(folder))} does not exist or is not a folder")
    records = refuse_duplicates([folder_record(folder, path) for path in image_files(folder)])
    skips = [Skip(r.image_id, "match", f"{role} {r.refused}") for r in records if r.refused]
    return {r.image_id: r.path for r in records if not r.refused}, skips


@dataclass(frozen=True)
class GroundTruth:
    """The ground-truth files of a folder by image id, the files refused or set aside (``skips``) and the ids set
    aside (their predictions are not reported as unmatched: the skip already says why they are not scored)."""

    folder: Path
    files: dict[str, Path]
    skips: list[Skip]
    set_aside: frozenset[str] = frozenset()

    @classmethod
    def listed(cls, folder: Path) -> GroundTruth:
        files, skips = images_by_id(folder, "ground-truth")
        return cls(folder, files, skips)


def match_predictions(pred_dir: Path, truth: GroundTruth) -> tuple[list[Pair], list[Skip]]:
    """Pair prediction files with ground-truth files by image id; unmatched and refused prediction files and
    ground truths without a prediction become skips (the ground truth's own skips are not repeated)."""
    preds, skips = images_by_id(pred_dir, "prediction")
    if not preds:
        raise BenchError(f"prediction folder {printable(str(pred_dir))} holds no usable image files "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    gts, gt_dir = truth.files, truth.folder
    pairs = [Pair(i, printable(preds[i].name), preds[i], gts[i])
             for i in sorted(preds.keys() & gts.keys(), key=image_id_sort_key)]
    skips += [Skip(i, "match", f"prediction {printable(preds[i].name)} has no ground truth in {printable(str(gt_dir))}")
              for i in sorted(preds.keys() - gts.keys() - truth.set_aside, key=image_id_sort_key)]
    skips += [Skip(i, "match", f"ground truth {printable(gts[i].name)} has no prediction in {printable(str(pred_dir))}")
              for i in sorted(gts.keys() - preds.keys(), key=image_id_sort_key)]
    if not pairs and not preds.keys() & truth.set_aside:  # matching only set-aside files: nothing to score, said
        raise BenchError(f"no file in {printable(str(pred_dir))} matches a file in {printable(str(gt_dir))} "
                         "by name stem")
    return pairs, skips


def match_folders(pred_dir: Path, gt_dir: Path) -> tuple[list[Pair], list[Skip]]:
    """Pair prediction and ground-truth files by image id; unmatched and refused files become skips."""
    if not pred_dir.is_dir():  # the prediction folder is named first when both are wrong
        images_by_id(pred_dir, "prediction")
    truth = GroundTruth.listed(gt_dir)
    pairs, skips = match_predictions(pred_dir, truth)
    return pairs, truth.skips + skips


class SetLevelScorer:
    """Set-level metrics (a Frechet distance, KID) of prediction sets against ground truth.

    Metrics share a feature network when they name the same extractor (``fd_effnet_lite0`` and
    ``kid_effnet_lite0``): it is built once and each image set goes through it once; ground-truth features are
    computed once per image set and reused for every model of a run.
    """

    def __init__(self, names: Sequence[str], *, device: torch.device, batch_size: int = 32, progress: bool = True):
        self.names, self.device, self.batch_size, self.progress = list(names), device, batch_size, progress
        self._extractors: dict[Callable[[], torch.nn.Module], torch.nn.Module] = {}
        self._target_features: dict[tuple[Callable[[], torch.nn.Module], tuple[Path, ...]], torch.Tensor] = {}

    def _extractor(self, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        if build not in self._extractors:
            self._extractors[build] = build().to(self.device).eval()
        return self._extractors[build]

    def features(self, build: Callable[[], torch.nn.Module], paths: Sequence[Path], desc: str) -> torch.Tensor:
        """Features (N, D) float64 of image files through the network ``build`` makes, batched by equal size (rows
        grouped by size, so their order is not the order of ``paths``: only statistics of the set are meant to be
        taken)."""
        extractor, chunks = self._extractor(build), []
        with ThreadPoolExecutor(max_workers=4) as pool, torch.no_grad(), workload(len(paths)):
            for start in tqdm(range(0, len(paths), self.batch_size), desc=desc, unit="batch",
                              disable=not self.progress):
                images = list(pool.map(read_png_u8, paths[start:start + self.batch_size]))
                for group in same_size_groups(images, lambda image: image):
                    batch = torch.stack(group).to(self.device).float() / 255
                    chunks.append(extractor(batch).double().cpu())
        return torch.cat(chunks)

    def __call__(self, pairs: Sequence[Pair], model: str) -> dict[str, float]:
        """Each metric's value for one model's pairs, and ``NAME_lo``/``NAME_hi`` for metrics with an interval."""
        values: dict[str, float] = {}
        targets = tuple(p.target for p in pairs)
        predicted: dict[Callable[[], torch.nn.Module], torch.Tensor] = {}
        for name in self.names:
            metric = DISTRIBUTION_METRICS[name]
            build = metric.extractor
            if (build, targets) not in self._target_features:
                self._target_features[(build, targets)] = self.features(build, targets, f"{name} ground truth")
            if build not in predicted:
                predicted[build] = self.features(build, [p.pred for p in pairs], f"{name} {model}")
            target = self._target_features[(build, targets)]
            values[name] = float(metric.fn(predicted[build], target, **metric.params))
            if metric.interval is not None:
                values[f"{name}_lo"], values[f"{name}_hi"] = metric.interval(predicted[build], target)
        return values
