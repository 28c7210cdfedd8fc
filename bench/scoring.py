"""Per-image scoring of prediction files against ground-truth files.

``run`` and ``score`` share this code: both read the two PNG/image files of each pair, stack same-sized
pairs into batches and apply the metric registry, so scoring the PNGs that ``run`` saved reproduces its
numbers exactly. Pairs that cannot be read or differ in size are skipped with a reason, never a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.errors import BenchError
from bench.images import UnreadableImageError, read_png_u8
from bench.sources import IMAGE_SUFFIXES, image_id_sort_key
from metrics.registry import METRICS, compute


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


def metric_set_id(metric_names: Sequence[str]) -> str:
    """Short hash of the metric definitions (names and parameters): records cached under it stay valid only
    while the definitions do."""
    described = [METRICS[n].describe() for n in metric_names]
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _load(pair: Pair) -> tuple[Pair, torch.Tensor, torch.Tensor] | Skip:
    try:
        pred, target = read_png_u8(pair.pred), read_png_u8(pair.target)
    except UnreadableImageError as exc:
        return Skip(pair.image_id, "score", str(exc))
    if pred.shape != target.shape:
        sizes = [f"{name} is {t.shape[2]}x{t.shape[1]}" for name, t in
                 ((f"prediction {pair.pred.name}", pred), (f"ground truth {pair.target.name}", target))]
        return Skip(pair.image_id, "score", "size mismatch: " + ", ".join(sizes))
    return pair, pred, target


def score_pairs(
    pairs: Sequence[Pair],
    metric_names: Sequence[str],
    *,
    device: torch.device,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "score",
) -> Iterator[tuple[list[dict[str, object]], list[Skip]]]:
    """Yield (records, skips) batch by batch; a record is ``{image_id, file, <metric>: float}``.

    Consecutive pairs of equal size share a batch, so a folder of mixed sizes is scored at each file's own
    resolution.
    """
    with ThreadPoolExecutor(max_workers=4) as pool, tqdm(total=len(pairs), desc=desc, unit="img",
                                                          disable=not progress) as bar:
        for start in range(0, len(pairs), batch_size):
            loaded = list(pool.map(_load, pairs[start:start + batch_size]))
            skips = [item for item in loaded if isinstance(item, Skip)]
            good = [item for item in loaded if not isinstance(item, Skip)]
            records: list[dict[str, object]] = []
            groups: dict[tuple[int, ...], list[tuple[Pair, torch.Tensor, torch.Tensor]]] = {}
            for item in good:
                groups.setdefault(tuple(item[1].shape), []).append(item)
            for group in groups.values():
                pred = torch.stack([g[1] for g in group]).to(device).float() / 255
                target = torch.stack([g[2] for g in group]).to(device).float() / 255
                values = compute(metric_names, pred, target)
                for i, (pair, _, _) in enumerate(group):
                    record: dict[str, object] = {"image_id": pair.image_id, "file": pair.file}
                    record.update({name: float(values[name][i]) for name in metric_names})
                    records.append(record)
            order = {p.image_id: k for k, p in enumerate(pairs[start:start + batch_size])}
            records.sort(key=lambda r: order[str(r["image_id"])])
            bar.update(len(loaded))
            yield records, skips


def _images_by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise BenchError(f"{role} folder {folder} does not exist or is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                raise BenchError(f"{role} folder {folder} has two files with the stem {path.stem!r}: "
                                 f"{found[path.stem].name} and {path.name}")
            found[path.stem] = path
    return found


def match_folders(pred_dir: Path, gt_dir: Path) -> tuple[list[Pair], list[Skip]]:
    """Pair prediction and ground-truth files by name stem; unmatched files become skips."""
    preds, gts = _images_by_stem(pred_dir, "prediction"), _images_by_stem(gt_dir, "ground-truth")
    if not preds:
        raise BenchError(f"prediction folder {pred_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    pairs = [Pair(stem, preds[stem].name, preds[stem], gts[stem])
             for stem in sorted(preds.keys() & gts.keys(), key=image_id_sort_key)]
    skips = [Skip(s, "match", f"prediction {preds[s].name} has no ground truth in {gt_dir}")
             for s in sorted(preds.keys() - gts.keys(), key=image_id_sort_key)]
    skips += [Skip(s, "match", f"ground truth {gts[s].name} has no prediction in {pred_dir}")
              for s in sorted(gts.keys() - preds.keys(), key=image_id_sort_key)]
    if not pairs:
        raise BenchError(f"no file in {pred_dir} matches a file in {gt_dir} by name stem")
    return pairs, skips
