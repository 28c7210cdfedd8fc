"""Metric speed, measured: colorbench's batched metrics against scikit-image's per-image reference loops, and the
cost of the whole per-image suite on many images.

    python -m colorbench.experiments.metric_speed                    # 64 images at 224x224: SSIM, PSNR, CIEDE2000
    python -m colorbench.experiments.metric_speed --suite --images 5000 --size 224

Compare mode scores the same N images (coco-mini val2017 resized to SIZE when present, else scikit-image's
photos) with both paths in one process and prints images/s, the ratio and the largest per-image difference.
Predictions keep the true lightness and damage ab (faded, hue-rotated, grey, noisy), quantized to 8 bits.
Both paths get float arrays that are already decoded (ours float32 tensors (B, 3, H, W), scikit-image float64
(H, W, 3)); the reference CIEDE2000 includes its two rgb2lab conversions as ours does. Ours runs as a run would
(colorbench.metrics.kernels' compile policy; COLORBENCH_COMPILE=always times the compiled kernels). The first batch of
ours
(compilation, where it happens) is timed apart as warm-up; then each path runs --repeats
times, alternating, and the median is reported (the machine may be shared: the load average is printed).

Suite mode builds N inputs by cycling the coco-mini originals (train2017 and val2017) with a different random
crop (60-100% of each side), flip and ab damage per pass, scales them to SIZE, and times every available
per-image metric (through colorbench.metrics.registry.compute, as the scorer calls it; segments are the COCO instance
maps
carried through the same crop) and the set-level metrics' feature extraction and Frechet distance. Nothing is
extrapolated: every image is scored. Input generation is timed apart and not counted as metric time.

``--docs docs/performance.md`` writes the table into that page's ``colorbench:metric_speed`` block (compare mode)
or ``colorbench:metric_speed-suite`` block (suite mode).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from colorbench.core import console
from colorbench.data.color import lab_to_rgb, rgb_to_lab
from colorbench.experiments import perfdoc
from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS, compute

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_COCO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco-mini"
PROG = "python -m colorbench.experiments.metric_speed"
COMPARED = ("ssim", "psnr", "deltae2000")


# ------------------------------------------------------------------------------------------------- inputs
def damage(gt: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor, noise: torch.Tensor,
           generator: torch.Generator) -> torch.Tensor:
    """Per image: ab scaled by ``scale``, rotated by ``angle`` (radians), plus Gaussian noise of std ``noise``;
    L kept; quantized to 8 bits. All (B,) tensors."""
    lab = rgb_to_lab(gt.double())
    a, b = lab[:, 1], lab[:, 2]
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    ab = torch.stack((cos * a - sin * b, sin * a + cos * b), dim=1) * scale.view(-1, 1, 1, 1)
    ab = ab + noise.view(-1, 1, 1, 1) * torch.randn(ab.shape, generator=generator, dtype=torch.float64)
    rgb = lab_to_rgb(torch.cat((lab[:, :1], ab), dim=1))
    return (rgb * 255).round() / 255


def photo_arrays(coco_root: Path | None, count: int, size: int) -> list[np.ndarray]:
    """``count`` real photos as uint8 (size, size, 3): coco-mini val2017 (cycled) or scikit-image's."""
    if coco_root is not None and (coco_root / "val2017").is_dir():
        files = sorted((coco_root / "val2017").glob("*.jpg"))
        images = [Image.open(f).convert("RGB").resize((size, size), Image.Resampling.BILINEAR) for f in files]
    else:
        import skimage.data

        images = [Image.fromarray(getattr(skimage.data, n)()).convert("RGB").resize((size, size),
                                                                                    Image.Resampling.BILINEAR)
                  for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel")]
    return [np.asarray(images[i % len(images)]).copy() for i in range(count)]


def compare_inputs(coco_root: Path | None, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    gt = torch.from_numpy(np.stack(photo_arrays(coco_root, count, size))).permute(0, 3, 1, 2).double() / 255
    generator = torch.Generator().manual_seed(0)
    kind = torch.arange(count) % 4  # faded, hue-rotated, grey, noisy
    scale = torch.where(kind == 0, 0.35, torch.where(kind == 2, 0.0, 1.0)).double()
    angle = torch.where(kind == 1, math.radians(40), 0.0).double()
    noise = torch.where(kind == 3, 8.0, 0.0).double()
    return damage(gt, scale, angle, noise, generator), gt


class SuiteInputs:
    """Cycles the coco-mini originals with a different random crop, flip and damage per pass."""

    def __init__(self, coco_root: Path, size: int, seed: int = 0) -> None:
        from pycocotools.coco import COCO

        self.size, self.seed, self.originals = size, seed, []
        for split in ("train2017", "val2017"):
            coco = COCO(str(coco_root / "annotations" / f"instances_{split}.json"))
            for info in sorted(coco.loadImgs(coco.getImgIds()), key=lambda i: i["file_name"]):
                rgb = Image.open(coco_root / split / info["file_name"]).convert("RGB")
                labels = np.zeros((info["height"], info["width"]), dtype=np.int32)
                annotations = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]], iscrowd=False))
                for label, annotation in enumerate(sorted(annotations, key=lambda a: -a["area"]), start=1):
                    labels[coco.annToMask(annotation) > 0] = label
                self.originals.append((rgb, Image.fromarray(labels)))

    def batch(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs start .. start + count - 1: (pred, gt) float32 (B, 3, S, S) and segments (B, S, S)."""
        rgbs, maps = [], []
        for index in range(start, start + count):
            rng = np.random.default_rng((self.seed, index))
            rgb, labels = self.originals[index % len(self.originals)]
            width, height = rgb.size
            crop_w, crop_h = (int(side * rng.uniform(0.6, 1.0)) for side in (width, height))
            left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
            box, shape = (left, top, left + crop_w, top + crop_h), (self.size, self.size)
            image = np.asarray(rgb.resize(shape, Image.Resampling.BILINEAR, box=box))
            label = np.asarray(labels.resize(shape, Image.Resampling.NEAREST, box=box))
            if index // len(self.originals) % 2:
                image, label = image[:, ::-1], label[:, ::-1]
            rgbs.append(torch.from_numpy(image.copy()).permute(2, 0, 1))
            maps.append(torch.from_numpy(label.astype(np.int64)))
        gt = torch.stack(rgbs).double() / 255
        return random_damage(gt, self.seed, start).float(), gt.float(), torch.stack(maps)


def random_damage(gt: torch.Tensor, seed: int, start: int) -> torch.Tensor:
    """The suite's predictions of a batch of float64 ground truths that starts at input ``start``: per image an ab
    scale in [0, 1.2], a hue rotation within +-30 degrees and noise of std up to 6 (:func:`damage`), drawn from a
    generator seeded by (seed, start)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + start)
    uniform = torch.rand(3, len(gt), generator=generator, dtype=torch.float64)
    return damage(gt, 1.2 * uniform[0], math.radians(60) * (uniform[1] - 0.5), 6 * uniform[2], generator)


# ------------------------------------------------------------------------------------------------- timing
def skimage_reference(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    return {
        "ssim": lambda p, g: structural_similarity(g, p, gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False, data_range=1.0, channel_axis=-1),
        "psnr": lambda p, g: peak_signal_noise_ratio(g, p, data_range=1.0),
        "deltae2000": lambda p, g: float(deltaE_ciede2000(rgb2lab(g), rgb2lab(p)).mean()),
    }[name]


def batches(pred: torch.Tensor, gt: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(pred), size):
        yield pred[start : start + size], gt[start : start + size]


def timed(device: torch.device, fn: Callable[..., T], *args: object, **kwargs: object) -> tuple[float, T]:
    """Seconds that ``fn(*args, **kwargs)`` takes (device work included), and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def extract(extractor: torch.nn.Module, pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        return extractor(pred).double().cpu(), extractor(gt).double().cpu()


def run_compare(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    np.seterr(divide="ignore")  # skimage's PSNR of identical images
    pred64, gt64 = compare_inputs(args.coco_root, args.images, args.size)
    pred, gt = pred64.float().to(device), gt64.float().to(device)
    arrays = [(p.permute(1, 2, 0).numpy(), g.permute(1, 2, 0).numpy()) for p, g in
              zip(pred.cpu().double(), gt.cpu().double(), strict=True)]
    print(f"{args.images} images {args.size}x{args.size} ({'coco-mini val2017' if args.coco_root else 'skimage'}),"
          f" batch {args.batch_size}, device {device}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    results: dict[str, object] = {}
    for name in COMPARED:
        metric, reference = METRICS[name], skimage_reference(name)

        def ours(metric=metric) -> torch.Tensor:
            return torch.cat([metric(p, g) for p, g in batches(pred, gt, args.batch_size)])

        def theirs(reference=reference) -> np.ndarray:
            return np.array([reference(p, g) for p, g in arrays])

        warm, _ = timed(device, metric, pred[: args.batch_size], gt[: args.batch_size])
        ours_times, theirs_times = [], []
        for _ in range(args.repeats):
            elapsed, ours_values = timed(device, ours)
            ours_times.append(elapsed)
            elapsed, theirs_values = timed(device, theirs)
            theirs_times.append(elapsed)
        ours_rate = args.images / statistics.median(ours_times)
        theirs_rate = args.images / statistics.median(theirs_times)
        finite = np.isfinite(theirs_values)  # PSNR of identical images: skimage inf, ours the 100 dB cap
        difference = float(np.max(np.abs(ours_values.cpu().numpy()[finite] - theirs_values[finite])))
        results[name] = {"ours_images_per_s": ours_rate, "skimage_images_per_s": theirs_rate,
                         "ratio": ours_rate / theirs_rate, "max_abs_difference": difference, "warmup_s": warm,
                         "identical_pairs": int((~finite).sum())}
        note = f", {int((~finite).sum())} identical pairs left out" if not finite.all() else ""
        print(f"{name:11s} ours {ours_rate:8.1f} img/s   scikit-image {theirs_rate:8.1f} img/s   "
              f"ratio {ours_rate / theirs_rate:5.2f}x   max |diff| {difference:.2e}{note}   (first batch {warm:.1f} s)")
    results["load_average_end"] = os.getloadavg()[0]
    return results


@dataclass
class SuiteTimes:
    """Seconds spent in each metric of the suite over ``images`` inputs (set-level metrics: feature extraction and
    Frechet distance apart), the first batch's share (compilation, where it happens), NaN counts, the set-level
    values, and the input generation time (not metric time)."""

    images: int
    first_batch_images: int
    seconds: dict[str, float]
    first_batch: dict[str, float]
    nan_counts: dict[str, int]
    set_level_values: dict[str, float]
    generation_s: float

    @property
    def metric_total_s(self) -> float:
        return sum(self.seconds.values())


def default_suite() -> tuple[list[str], list[str], dict[str, str]]:
    """What a run scores by default: every available per-image metric, every available set-level metric, and the
    unavailable ones with the reason."""
    reasons = {n: m.unavailable() for n, m in METRICS.items()}
    reasons |= {n: m.unavailable() for n, m in DISTRIBUTION_METRICS.items()}
    names = [n for n in METRICS if reasons[n] is None]
    sets = [n for n in DISTRIBUTION_METRICS if reasons[n] is None]
    skipped = {n: reason for n, reason in reasons.items() if reason is not None}
    return names, sets, skipped


def time_suite(make_batch: Callable[[int, int], tuple[torch.Tensor, ...]], images: int, batch_size: int,
               device: torch.device, names: list[str], extractors: dict[str, torch.nn.Module]) -> SuiteTimes:
    """Score ``images`` inputs from ``make_batch(start, count)`` -> (pred, gt, segments) in batches of
    ``batch_size`` with every metric of ``names`` (through :func:`colorbench.metrics.registry.compute`, as the
    scorer calls it) and the set-level metrics of ``extractors`` (their feature networks on ``device``: features
    per batch, one Frechet distance)."""
    sets = list(extractors)
    features: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {n: ([], []) for n in sets}
    seconds = dict.fromkeys([*names, *(f"{n} (features)" for n in sets)], 0.0)
    first_batch = dict.fromkeys(seconds, 0.0)
    generation, nan_counts = 0.0, dict.fromkeys(names, 0)
    wall = time.perf_counter()
    for start in range(0, images, batch_size):
        count = min(batch_size, images - start)
        began = time.perf_counter()
        pred, gt, segments = (t.to(device) for t in make_batch(start, count))
        generation += time.perf_counter() - began
        for name in names:
            elapsed, computed = timed(device, compute, [name], pred, gt, segments=segments)
            seconds[name] += elapsed
            first_batch[name] += elapsed if start == 0 else 0.0
            nan_counts[name] += int(computed[name].isnan().sum())
        for name in sets:
            elapsed, (pred_features, gt_features) = timed(device, extract, extractors[name], pred, gt)
            seconds[f"{name} (features)"] += elapsed
            first_batch[f"{name} (features)"] += elapsed if start == 0 else 0.0
            features[name][0].append(pred_features)
            features[name][1].append(gt_features)
        done = start + count
        if done % (10 * batch_size) == 0 or done == images:
            logger.info("%d/%d images, %.0f s", done, images, time.perf_counter() - wall)
    values: dict[str, float] = {}
    for name in sets:
        metric = DISTRIBUTION_METRICS[name]
        elapsed, values[name] = timed(device, metric.fn, torch.cat(features[name][0]), torch.cat(features[name][1]),
                                      **metric.params)
        seconds[f"{name} (Frechet distance)"] = elapsed
    return SuiteTimes(images, min(batch_size, images), seconds, first_batch, nan_counts, values, generation)


def run_suite(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    if args.coco_root is None:
        raise SystemExit("--suite needs coco-mini (pass --coco-root)")
    inputs = SuiteInputs(args.coco_root, args.size)
    names, sets, skipped = default_suite()
    print(f"suite: {args.images} inputs {args.size}x{args.size} from {len(inputs.originals)} coco-mini originals, "
          f"batch {args.batch_size}, device {device}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; metrics {', '.join(names + sets)}")
    wall = time.perf_counter()
    extractors = {n: DISTRIBUTION_METRICS[n].extractor().to(device) for n in sets}
    times = time_suite(inputs.batch, args.images, args.batch_size, device, names, extractors)
    wall = time.perf_counter() - wall
    metric_total = times.metric_total_s
    print(f"\n{'metric':32s} {'seconds':>9s} {'images/s':>9s} {'first batch s':>14s} {'NaN':>5s}")
    for name, elapsed in times.seconds.items():
        rate = f"{args.images / elapsed:9.1f}" if "Frechet" not in name else " " * 9
        nans = str(times.nan_counts.get(name, "")).rjust(5)
        print(f"{name:32s} {elapsed:9.1f} {rate} {times.first_batch.get(name, 0.0):14.1f} {nans}")
    print(f"{'all metrics':32s} {metric_total:9.1f} {args.images / metric_total:9.1f}")
    print(f"input generation (not metric time): {times.generation_s:.1f} s; wall clock {wall:.1f} s; "
          f"load average at end {os.getloadavg()[0]:.1f}")
    for name, value in times.set_level_values.items():
        print(f"{name} over {args.images} images: {value:.4f}")
    if skipped:
        print("unavailable, not timed: " + "; ".join(f"{n}: {r}" for n, r in skipped.items()))
    return {"seconds": times.seconds, "first_batch_seconds": times.first_batch, "metric_total_s": metric_total,
            "generation_s": times.generation_s, "wall_s": wall, "nan_counts": times.nan_counts,
            "set_level_values": times.set_level_values, "unavailable": skipped}


def document(path: Path, results: dict[str, Any], *, suite: bool, command: str, loads: list[float],
             device: str | None) -> None:
    """Compare mode's rates and differences, or suite mode's seconds per metric, as their block of ``path``."""
    settings = results["settings"]
    if suite:
        images = int(settings["images"])
        rows = [[name, seconds, None if "Frechet" in name else images / seconds,
                 results["first_batch_seconds"].get(name), results["nan_counts"].get(name)]
                for name, seconds in results["seconds"].items()]
        rows.append(["all metrics", results["metric_total_s"], images / results["metric_total_s"], None, None])
        name, columns = "metric_speed-suite", ["metric", "seconds", "images/s", "first batch s", "NaN"]
    else:
        rows = [[metric, results[metric]["ours_images_per_s"], results[metric]["skimage_images_per_s"],
                 results[metric]["ratio"], results[metric]["max_abs_difference"], results[metric]["warmup_s"]]
                for metric in COMPARED]
        name = "metric_speed"
        columns = ["metric", "colorbench images/s", "scikit-image images/s", "ratio", "max abs difference",
                   "first batch s"]
    perfdoc.update(path, name, columns=columns, rows=rows, command=command, loads=loads, device=device,
                   notes=[f"{settings['images']} images at {settings['size']}x{settings['size']}, batch "
                          f"{settings['batch_size']}, device {settings['device']}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--coco-root", type=Path, default=DEFAULT_COCO if DEFAULT_COCO.is_dir() else None)
    parser.add_argument("--suite", action="store_true", help="time every metric on --images generated inputs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    perfdoc.add_docs_option(parser)
    args = parser.parse_args(argv)
    console.configure()
    device = torch.device(args.device)
    load_before = os.getloadavg()[0]
    results = run_suite(args, device) if args.suite else run_compare(args, device)
    results["settings"] = {k: str(v) for k, v in vars(args).items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.docs:
        document(args.docs, results, suite=args.suite, command=perfdoc.command_line(PROG, argv),
                 loads=[load_before, os.getloadavg()[0]],
                 device=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
