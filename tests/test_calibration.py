"""Calibration table (in the manner of pyiqa's): every per-image metric against its reference implementation or
a hand-computed answer, on real photos and on edge cases, with a stated absolute tolerance per row.

Inputs (``(pred, target, extras)`` triples, passed as float32 like the scorer does, the references getting the
same values in float64; predictions keep the true lightness and damage ab the way colorizers do - faded,
hue-rotated, grey, noisy - and are quantized to 8 bits):
  photos     four scikit-image photos cropped to 176x208, SLIC segments of the ground truth
  coco       four coco-mini val2017 photos resized to 224x224, COCO instance label maps (skips without data)
  identical  the photos against themselves
  constant   constant 24x24 images: grey 0.25 against the colour (0.6, 0.3, 0.2), and the colour against itself
  tiny       8x8 crops, smaller than the SSIM window (11) and the MS-SSIM minimum (161)
  stripes    the photos with 1-pixel-wide segments (every column its own segment)

References and tolerances (absolute, per image):
  mse, psnr           skimage.metrics: mse 2e-8, psnr 5e-6 dB, mse255 (= 255^2 mse) 2e-3 - room for the
                      float32 mean of float32 squares (measured at most 7e-9, 7e-7 dB, 4e-4: about 1e-6
                      relative); PSNR of identical images is the 100 dB cap
  ssim                skimage structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                      data_range=1), 1e-4 (the issue's bound; float32 filtering, typically ~1e-7)
  ms_ssim             piq.multi_scale_ssim on float64 inputs, 1e-6 (ours filters in float32; piq in float32
                      itself differs from its float64 result by up to 1e-5 at 161 px); constant images by hand
  deltae2000          mean of skimage deltaE_ciede2000(rgb2lab(gt), rgb2lab(pred)), 1e-4 (the issue's bound;
                      ours is float32 with a float64 mean, about 1e-6 relative: 2.3e-5 for the constant pair
                      with dE 26, at most 2.2e-6 on the means of all coco-mini val images)
  auc_ab              NumPy loop over the 151 thresholds + trapezoid, on skimage rgb2lab, 1e-6 (a pixel whose
                      error sits on an integer may round either way: 1/(150 N) per pixel)
  colorfulness(_abs), delta_colorfulness, channel_equality
                      NumPy transcriptions of the formulas, 1e-9
  segment_chroma_ratio, vivid_recall, vivid_precision
                      NumPy loop over segments on skimage rgb2lab, 1e-5 (ours converts in float32)
  semantic_kl, semantic_top1
                      SciPy rel_entr / argmax on the logits of the package's own EfficientNet.forward, one image at
                      a time, 1e-4 nats (float32 network, batched vs single); identical images: KL 0, top-1 1
  known answers       identical: psnr 100, ssim/ms_ssim 1 (1e-6), deltae2000 0, auc_ab 1, mse 0, segment
                      ratio 1 (1e-6), vivid_recall 1; constant images: SSIM = luminance term only, MS-SSIM =
                      mean over RGB of l^w5 (all cs terms are 1), AuC = (150.5 - ceil(|ab|)) / 150; tiny: SSIM
                      and MS-SSIM NaN.
LPIPS and the Frechet distances have no reference weights here: tests/test_perceptual.py (plumbing) and
tests/test_distribution.py cover them. CIEDE2000 is also checked against Sharma et al.'s published pairs below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from colorbench.metrics.ciede2000 import ciede2000
from colorbench.metrics.registry import METRICS
from colorbench.metrics.ssim import MS_SSIM_WEIGHTS
from tests.metric_inputs import DAMAGE, coco_batch, damaged, photo_batch, slic_segments

Extras = dict[str, np.ndarray]
Reference = Callable[[np.ndarray, np.ndarray, Extras], float]


# ---------------------------------------------------------------------------------------------- references
def ref_psnr(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    with np.errstate(divide="ignore"):  # identical images: skimage returns inf, ours the 100 dB cap
        return min(peak_signal_noise_ratio(g, p, data_range=1.0), 100.0)


def ref_ssim(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    if min(p.shape[:2]) < 11:
        return math.nan
    return structural_similarity(g, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=-1)


def ref_ms_ssim(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    import piq

    if min(p.shape[:2]) < 161:
        return math.nan
    as_tensor = (lambda a: torch.from_numpy(a).permute(2, 0, 1)[None])  # noqa: E731
    return float(piq.multi_scale_ssim(as_tensor(p), as_tensor(g), data_range=1.0, reduction="none")[0])


def ref_deltae(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    return float(deltaE_ciede2000(rgb2lab(g), rgb2lab(p)).mean())


def ref_auc(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    distance = np.linalg.norm(rgb2lab(p)[..., 1:] - rgb2lab(g)[..., 1:], axis=-1)
    shares = np.array([(distance <= t).mean() for t in range(151)])
    return float(np.sum(0.5 * (shares[1:] + shares[:-1])) / 150)


def _colorfulness(a: np.ndarray, absolute: bool) -> float:
    r, g, b = (a[..., i] * 255 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    if absolute:
        rg, yb = np.abs(rg), np.abs(yb)
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def ref_channel_equality(p: np.ndarray, _g: np.ndarray, _e: Extras) -> float:
    levels = np.round(p * 255)
    return float((levels.max(axis=-1) - levels.min(axis=-1) <= 2).mean())


def _segment_means(p: np.ndarray, g: np.ndarray, labels: np.ndarray) -> list[tuple[int, float, float]]:
    chroma_p, chroma_g = (np.hypot(*np.moveaxis(rgb2lab(a)[..., 1:], -1, 0)) for a in (p, g))
    return [(int((labels == k).sum()), float(chroma_p[labels == k].mean()), float(chroma_g[labels == k].mean()))
            for k in np.unique(labels) if k > 0]


def ref_segment_ratio(p: np.ndarray, g: np.ndarray, extras: Extras) -> float:
    rows = [(n, math.log(min(max(cp / cg, 0.1), 10.0))) for n, cp, cg in _segment_means(p, g, extras["segments"])
            if cg > 5.0]
    return math.exp(sum(n * r for n, r in rows) / sum(n for n, _ in rows)) if rows else math.nan


def ref_vivid_recall(p: np.ndarray, g: np.ndarray, extras: Extras) -> float:
    vivid = [cp > 20.0 for _, cp, cg in _segment_means(p, g, extras["segments"]) if cg > 20.0]
    return sum(vivid) / len(vivid) if vivid else math.nan


def ref_vivid_precision(p: np.ndarray, g: np.ndarray, extras: Extras) -> float:
    truly_vivid = [cg > 20.0 for _, cp, cg in _segment_means(p, g, extras["segments"]) if cp > 20.0]
    return sum(truly_vivid) / len(truly_vivid) if truly_vivid else math.nan


def ref_semantic(kind: str) -> Reference:
    """KL(p_truth || p_pred) and top-1 agreement in NumPy/SciPy on the package network's own forward pass
    (EfficientNet.forward, not our logits path), one image at a time."""
    from scipy.special import log_softmax, rel_entr

    from colorbench.metrics.semantic import _classifier

    def logits(a: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(a).permute(2, 0, 1)[None].float()
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False,
                                            antialias=True)
        with torch.inference_mode():
            return _classifier("cpu").net((x * 255 - 127) / 128)[0].double().numpy()

    def reference(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
        pred, truth = logits(p), logits(g)
        if kind == "top1":
            return float(pred.argmax() == truth.argmax())
        return float(rel_entr(np.exp(log_softmax(truth)), np.exp(log_softmax(pred))).sum())

    return reference


def known(value: float) -> Reference:
    return lambda *_: value


def constant_ssim(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    """Constant images: every local variance is 0, so cs = C2 / C2 = 1 and SSIM is the luminance term."""
    a, b = p[0, 0], g[0, 0]
    return float(np.mean((2 * a * b + 1e-4) / (a**2 + b**2 + 1e-4)))


def constant_ms_ssim(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    a, b = p[0, 0], g[0, 0]
    return float(np.mean(((2 * a * b + 1e-4) / (a**2 + b**2 + 1e-4)) ** MS_SSIM_WEIGHTS[-1]))


def constant_auc(p: np.ndarray, g: np.ndarray, _: Extras) -> float:
    distance = float(np.linalg.norm(rgb2lab(p[:1, :1])[0, 0, 1:] - rgb2lab(g[:1, :1])[0, 0, 1:]))
    return 1.0 if distance == 0 else max(150.5 - math.ceil(distance), 0) / 150


@dataclass(frozen=True)
class Case:
    metric: str
    inputs: str
    reference: Reference
    tolerance: float
    source: str


PIXEL_INPUTS = ("photos", "coco", "identical", "constant", "tiny", "stripes")
CASES = [
    *(Case("mse", i, lambda p, g, _: mean_squared_error(g, p), 2e-8, "skimage") for i in PIXEL_INPUTS),
    *(Case("mse255", i, lambda p, g, _: 255**2 * mean_squared_error(g, p), 2e-3, "skimage x 255^2")
      for i in ("photos", "identical")),
    *(Case("psnr", i, ref_psnr, 5e-6, "skimage") for i in ("photos", "coco", "constant", "tiny")),
    Case("psnr", "identical", known(100.0), 0.0, "cap for identical images"),
    *(Case("ssim", i, ref_ssim, 1e-4, "skimage gaussian") for i in ("photos", "coco", "tiny")),
    Case("ssim", "identical", known(1.0), 1e-6, "identical"),
    Case("ssim", "constant", constant_ssim, 1e-6, "hand: luminance term"),
    *(Case("ms_ssim", i, ref_ms_ssim, 1e-6, "piq float64") for i in ("photos", "coco", "tiny")),
    Case("ms_ssim", "identical", known(1.0), 1e-6, "identical"),
    Case("ms_ssim", "constant", known(math.nan), 0.0, "hand: 24x24 is below 161 px"),
    Case("ms_ssim", "constant_large", constant_ms_ssim, 1e-6, "hand: l^w5, cs = 1"),
    *(Case("deltae2000", i, ref_deltae, 1e-4, "skimage") for i in ("photos", "coco", "constant", "tiny")),
    Case("deltae2000", "identical", known(0.0), 1e-12, "identical"),
    *(Case("auc_ab", i, ref_auc, 1e-6, "numpy loop") for i in ("photos", "coco", "tiny")),
    Case("auc_ab", "identical", known(1.0), 1e-12, "identical"),
    Case("auc_ab", "constant", constant_auc, 1e-9, "hand: (150.5 - ceil(d)) / 150"),
    *(Case("colorfulness", i, lambda p, _g, _e: _colorfulness(p, False), 1e-9, "numpy") for i in PIXEL_INPUTS),
    *(Case("colorfulness_abs", i, lambda p, _g, _e: _colorfulness(p, True), 1e-9, "numpy") for i in PIXEL_INPUTS),
    *(Case("delta_colorfulness", i, lambda p, g, _: _colorfulness(p, False) - _colorfulness(g, False), 1e-9,
           "numpy") for i in PIXEL_INPUTS),
    *(Case("channel_equality", i, ref_channel_equality, 1e-9, "numpy") for i in PIXEL_INPUTS),
    *(Case("segment_chroma_ratio", i, ref_segment_ratio, 1e-5, "numpy per segment")
      for i in ("photos", "coco", "stripes", "constant")),
    Case("segment_chroma_ratio", "identical", known(1.0), 1e-6, "identical"),
    *(Case("vivid_recall", i, ref_vivid_recall, 1e-5, "numpy per segment")
      for i in ("photos", "coco", "stripes", "constant")),
    Case("vivid_recall", "identical", known(1.0), 0.0, "identical (every photo has vivid segments)"),
    *(Case("vivid_precision", i, ref_vivid_precision, 1e-5, "numpy per segment")
      for i in ("photos", "coco", "stripes", "constant")),
    Case("vivid_precision", "identical", known(1.0), 0.0, "identical (every photo has vivid segments)"),
    *(Case("semantic_kl", i, ref_semantic("kl"), 1e-4, "scipy rel_entr on EfficientNet.forward")
      for i in ("photos", "tiny")),
    Case("semantic_kl", "identical", known(0.0), 1e-6, "identical"),
    *(Case("semantic_top1", i, ref_semantic("top1"), 0.0, "numpy argmax on EfficientNet.forward")
      for i in ("photos", "tiny")),
    Case("semantic_top1", "identical", known(1.0), 0.0, "identical"),
]


# ---------------------------------------------------------------------------------------------- inputs
Triple = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def photos_triple() -> Triple:
    gt = photo_batch()
    pred = torch.cat([damaged(gt[i : i + 1], kind, seed=i) for i, kind in enumerate(DAMAGE)])
    return pred, gt, {"segments": slic_segments(gt)}


@pytest.fixture(scope="module")
def coco_triple(coco_mini) -> Triple:
    gt, segments = coco_batch(coco_mini, 4)
    pred = torch.cat([damaged(gt[i : i + 1], DAMAGE[i % len(DAMAGE)], seed=i) for i in range(len(gt))])
    return pred, gt, {"segments": segments}


def _constant(color: tuple[float, float, float], size: int) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def _constant_triple(size: int) -> Triple:
    grey, colour = _constant((0.25, 0.25, 0.25), size), _constant((0.6, 0.3, 0.2), size)
    segments = torch.ones(2, size, size, dtype=torch.int64)
    return torch.cat((grey, colour)), torch.cat((colour, colour)), {"segments": segments}


@pytest.fixture(scope="module")
def inputs(request, photos_triple) -> Callable[[str], Triple]:
    def build(name: str) -> Triple:
        pred, gt, extras = photos_triple
        if name == "photos":
            return photos_triple
        if name == "coco":
            return request.getfixturevalue("coco_triple")
        if name == "identical":
            return gt, gt.clone(), extras
        if name == "constant":
            return _constant_triple(24)
        if name == "constant_large":
            return _constant_triple(176)
        if name == "tiny":
            return pred[:, :, 40:48, 60:68], gt[:, :, 40:48, 60:68], {"segments": extras["segments"][:, 40:48, 60:68]}
        if name == "stripes":
            columns = torch.arange(1, gt.shape[-1] + 1).expand(gt.shape[0], gt.shape[-2], -1)
            return pred, gt, {"segments": columns.contiguous()}
        raise KeyError(name)

    return build


def as_arrays(batch: torch.Tensor) -> list[np.ndarray]:
    return [np.ascontiguousarray(x.permute(1, 2, 0).numpy().astype(np.float64)) for x in batch]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.metric}-{c.inputs}")
def test_calibration(case: Case, inputs):
    pred, gt, extras = inputs(case.inputs)
    pred, gt = pred.float(), gt.float()  # as the scorer passes them; the references see the same values
    ours = METRICS[case.metric](pred, gt, **extras).numpy()
    per_image_extras = [{k: v[i].numpy() for k, v in extras.items()} for i in range(len(gt))]
    expected = np.array([case.reference(p, g, e) for p, g, e in zip(as_arrays(pred), as_arrays(gt),
                                                                        per_image_extras, strict=True)])
    assert ours.shape == expected.shape and ours.dtype == np.float64
    np.testing.assert_allclose(ours, expected, rtol=0, atol=case.tolerance, equal_nan=True,
                               err_msg=f"{case.metric} on {case.inputs} vs {case.source}")


# Sharma, Wu & Dalal (2005), Table 1: Lab pairs and their CIEDE2000 (kL = kC = kH = 1), printed to 4 decimals.
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
]


def test_ciede2000_matches_sharma_pairs():
    """Published values are rounded to 4 decimals: tolerance 5e-5 plus rounding of the inputs, 1e-4."""
    lab1 = torch.tensor([p[0] for p in SHARMA_PAIRS], dtype=torch.float64).T.reshape(3, 1, -1)
    lab2 = torch.tensor([p[1] for p in SHARMA_PAIRS], dtype=torch.float64).T.reshape(3, 1, -1)
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    np.testing.assert_allclose(ciede2000(lab1, lab2).flatten().numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(ciede2000(lab2, lab1).flatten().numpy(), expected, atol=1e-4)  # symmetric
    skimage_values = deltaE_ciede2000(lab1.permute(1, 2, 0).numpy(), lab2.permute(1, 2, 0).numpy()).flatten()
    np.testing.assert_allclose(skimage_values, expected, atol=1e-4)


def test_non_finite_prediction_does_not_leak_into_other_images(photos_triple):
    """Bad input is the scorer's to count and clip; a metric must still neither raise on it nor let one image's
    NaN/Inf change another image's value."""
    pred, gt, extras = photos_triple
    bad = pred.float().clone()
    bad[0, :, :16, :16] = float("nan")
    bad[1, 0, 5, 5] = float("inf")
    for name, metric in METRICS.items():
        if metric.unavailable() is None:
            together = metric(bad, gt.float(), **extras)
            alone = metric(bad[2:], gt[2:].float(), **{k: v[2:] for k, v in extras.items()})
            np.testing.assert_allclose(together[2:].numpy(), alone.numpy(), rtol=0, atol=1e-12, equal_nan=True,
                                       err_msg=name)
