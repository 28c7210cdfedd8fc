"""Segment saturation metrics (paper Sec. 7.6): the faded-Frisbee case that PSNR/SSIM average away, and the
n/a cases (no segments, no vivid segments, label maps of another size) that must give NaN, never raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorbench.data.color import lab_to_rgb, rgb_to_lab
from colorbench.metrics.pixel import psnr
from colorbench.metrics.segments import segment_chroma_ratio, segment_mean_chroma, vivid_precision, vivid_recall
from colorbench.metrics.ssim import ssim
from tests.metric_inputs import coco_batch, instance_annotations, photo_batch, slic_segments, to_8bit

FRISBEE_IMAGE_ID = 343803  # coco-mini val2017: a man throwing an orange Frisbee on a lawn
FRISBEE_CATEGORY = 34


def lawn_with_frisbee(lawn_ab: tuple[float, float], fade: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """224x224 textured lawn (L ~ 52 +- 6, ab ~ lawn_ab +- 1) with a saturated orange disc of radius 9 (253 px,
    0.5% of the image, Lab (65, 45, 65), chroma 79): ground truth, a prediction whose disc ab is scaled by
    ``fade`` (everything else exact), and the label map (1 = lawn, 2 = disc)."""
    generator = torch.Generator().manual_seed(3)
    rows, cols = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    disc = (rows - 140) ** 2 + (cols - 90) ** 2 <= 9**2
    noise = torch.randn(3, 224, 224, generator=generator, dtype=torch.float64)
    lab = torch.stack((52 + 6 * noise[0], lawn_ab[0] + noise[1], lawn_ab[1] + noise[2]))
    lab[:, disc] = torch.tensor([65.0, 45.0, 65.0], dtype=torch.float64).view(3, 1)
    faded = lab.clone()
    faded[1:, disc] *= fade
    segments = torch.where(disc, 2, 1).long()[None]
    return to_8bit(lab_to_rgb(faded[None])), to_8bit(lab_to_rgb(lab[None])), segments


def test_faded_frisbee_on_grey_lawn_scores_badly_while_psnr_barely_moves():
    pred, gt, segments = lawn_with_frisbee(lawn_ab=(-3.0, 3.0), fade=0.15)  # lawn chroma ~4.4: grey
    assert float(psnr(pred, gt)) > 30.0 and float(ssim(pred, gt)) > 0.99
    assert float(vivid_recall(gt, gt, segments=segments)) == 1.0
    assert float(vivid_recall(pred, gt, segments=segments)) == 0.0
    assert float(segment_chroma_ratio(gt, gt, segments=segments)) == pytest.approx(1.0)
    assert float(segment_chroma_ratio(pred, gt, segments=segments)) == pytest.approx(0.15, abs=0.01)


def test_faded_frisbee_on_green_lawn():
    """With a coloured lawn (chroma ~14, above min_chroma, below vivid) the area-weighted chroma ratio is
    dominated by the lawn and moves little; vivid_recall still drops to 0. Both numbers are documented."""
    pred, gt, segments = lawn_with_frisbee(lawn_ab=(-9.0, 11.0), fade=0.15)
    assert float(psnr(pred, gt)) > 30.0
    assert float(vivid_recall(pred, gt, segments=segments)) == 0.0
    ratio = float(segment_chroma_ratio(pred, gt, segments=segments))
    assert 0.97 < ratio < 0.999


def test_real_coco_frisbee_faded(coco_mini):
    """The real photo and its real Frisbee instance: fading only the Frisbee keeps PSNR > 30 dB while the
    Frisbee segment's chroma ratio falls to the fade factor and vivid_recall loses it."""
    from pycocotools.coco import COCO

    gt, segments = coco_batch(coco_mini, image_ids=[FRISBEE_IMAGE_ID])
    instances = instance_annotations(COCO(str(coco_mini / "annotations" / "instances_val2017.json")), FRISBEE_IMAGE_ID)
    frisbee_label = 1 + [a["category_id"] for a in instances].index(FRISBEE_CATEGORY)
    mask = segments[0] == frisbee_label
    assert 100 < int(mask.sum()) < 2000  # a small object at 224x224

    lab = rgb_to_lab(gt)
    lab[:, 1:, mask] *= 0.15
    pred = to_8bit(lab_to_rgb(lab))
    assert float(psnr(pred, gt)) > 30.0
    _, mean_pred, mean_true = segment_mean_chroma(pred, gt, segments)
    assert float(mean_true[0, frisbee_label - 1]) > 20.0  # the Frisbee is vivid in the truth
    assert float(mean_pred[0, frisbee_label - 1] / mean_true[0, frisbee_label - 1]) == pytest.approx(0.15, abs=0.03)
    assert float(vivid_recall(pred, gt, segments=segments)) < float(vivid_recall(gt, gt, segments=segments))
    assert float(segment_chroma_ratio(pred, gt, segments=segments)) < 1.0


@pytest.mark.parametrize("metric", [segment_chroma_ratio, vivid_recall, vivid_precision])
def test_not_applicable_cases_are_nan(metric):
    gt = photo_batch()[:2]
    pred = gt.mean(dim=1, keepdim=True).expand_as(gt).clone()
    no_segments = torch.zeros(2, *gt.shape[2:], dtype=torch.int64)
    assert torch.isnan(metric(pred, gt, segments=no_segments)).all()
    wrong_size = torch.ones(2, gt.shape[2] // 2, gt.shape[3], dtype=torch.int64)
    assert torch.isnan(metric(pred, gt, segments=wrong_size)).all()
    wrong_batch = torch.ones(3, *gt.shape[2:], dtype=torch.int64)
    assert torch.isnan(metric(pred, gt, segments=wrong_batch)).all()
    grey_truth = gt.mean(dim=1, keepdim=True).expand_as(gt).clone()  # no coloured, no vivid segment
    assert torch.isnan(metric(pred, grey_truth, segments=torch.ones_like(no_segments))).all()


def test_images_of_a_batch_are_independent():
    """Images with different numbers of segments (and one without any) score as they would alone."""
    gt = photo_batch()
    pred = to_8bit(0.5 * gt + 0.5 * gt.mean(dim=1, keepdim=True))
    segments = slic_segments(gt)
    segments[1] = torch.where(segments[1] > 5, 0, segments[1])  # few segments
    segments[2] = 0  # none: n/a
    for metric in (segment_chroma_ratio, vivid_recall, vivid_precision):
        together = metric(pred, gt, segments=segments)
        alone = torch.cat([metric(pred[i : i + 1], gt[i : i + 1], segments=segments[i : i + 1]) for i in range(4)])
        np.testing.assert_allclose(together.numpy(), alone.numpy(), rtol=0, atol=1e-12, equal_nan=True)
        assert torch.isnan(together[2])
        # the half-faded prediction renders few segments vivid, so vivid_precision may be n/a for some images
        assert metric is vivid_precision or torch.isfinite(together[[0, 1, 3]]).all()


def test_non_finite_prediction_is_nan_for_that_image_only():
    gt = photo_batch()[:2]
    pred = gt.clone()
    pred[0, :, :20, :20] = float("nan")
    segments = torch.ones(2, *gt.shape[2:], dtype=torch.int64)
    for metric in (segment_chroma_ratio, vivid_recall, vivid_precision):
        values = metric(pred, gt, segments=segments)
        assert torch.isnan(values[0]) and float(values[1]) == pytest.approx(1.0)


def patches(chromas: list[float], size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """One image of len(chromas) vertical stripes, stripe k of constant Lab (60, chroma_k, 0), and its label map
    (stripe k = segment k + 1); exact 8-bit RGB is not needed here, so no quantization."""
    lab = torch.zeros(1, 3, size, size * len(chromas), dtype=torch.float64)
    lab[:, 0] = 60.0
    for k, value in enumerate(chromas):
        lab[:, 1, :, k * size:(k + 1) * size] = value
    labels = (torch.arange(size * len(chromas)) // size + 1).expand(1, size, -1).contiguous()
    return lab_to_rgb(lab), labels


def test_vivid_precision_hand_computed():
    """Truth chromas (30, 30, 10, 10, 2): vivid = segments 1, 2. A prediction rendering (30, 5, 30, 30, 2) vivid
    in segments 1, 3, 4: one of its three vivid segments is vivid in the truth -> precision 1/3, recall 1/2."""
    truth, labels = patches([30.0, 30.0, 10.0, 10.0, 2.0])
    pred, _ = patches([30.0, 5.0, 30.0, 30.0, 2.0])
    assert float(vivid_precision(pred, truth, segments=labels)) == pytest.approx(1 / 3, abs=1e-12)
    assert float(vivid_recall(pred, truth, segments=labels)) == pytest.approx(1 / 2, abs=1e-12)
    assert float(vivid_precision(truth, truth, segments=labels)) == 1.0
    dull, _ = patches([15.0, 15.0, 5.0, 5.0, 1.0])  # renders nothing vivid: precision undefined
    assert torch.isnan(vivid_precision(dull, truth, segments=labels)).all()


def test_segment_ratio_is_a_clamped_geometric_mean_hand_computed():
    """Equal-area segments with truth chromas (15, 15, 3) (the last below min_chroma 5, left out): a prediction
    at half the chroma in one and double in the other gives exp((log 0.5 + log 2) / 2) = 1, and the
    goodness -|log r| treats 0.5 and 2 alike; 4x oversaturation is no longer capped at 2, and a grey segment is
    clamped to 1/10. Lab chroma after the sRGB round trip is exact to about 1e-4 here."""
    truth, labels = patches([15.0, 15.0, 3.0])
    half_double, _ = patches([7.5, 30.0, 3.0])
    assert float(segment_chroma_ratio(half_double, truth, segments=labels)) == pytest.approx(1.0, abs=1e-4)
    quadruple, _ = patches([60.0, 60.0, 3.0])  # Lab (60, 60, 0) is inside the sRGB gamut
    assert float(segment_chroma_ratio(quadruple, truth, segments=labels)) == pytest.approx(4.0, abs=1e-3)
    half, _ = patches([7.5, 7.5, 3.0])
    assert float(segment_chroma_ratio(half, truth, segments=labels)) == pytest.approx(0.5, abs=1e-4)
    one_grey, _ = patches([0.0, 15.0, 3.0])
    assert float(segment_chroma_ratio(one_grey, truth, segments=labels)) == pytest.approx(0.1**0.5, abs=1e-4)
