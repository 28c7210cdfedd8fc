"""The vividness loss (models/vividness.py, paper Sec. 7.6): a hand-computed case, its gradients, no host
synchronisation, and the label-map table prepared once from the training data."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from colorbench.models import vividness
from colorbench.models.vividness import MAX_LABEL, VividnessTerm, chroma_deficit, soft_chroma
from tests.training_helpers import sample_training


def ab_with_chroma(chromas: list[list[float]]) -> torch.Tensor:
    """(1, 2, H, W) ab whose chroma is the given map (a = 0.6 C, b = 0.8 C)."""
    c = torch.tensor(chromas, dtype=torch.float32)
    return torch.stack((0.6 * c, 0.8 * c))[None]


def test_a_hand_computed_case():
    """Segment 1 (2 pixels): truth 10, prediction 4 -> deficit 6 each; segment 2 (1 pixel): prediction 30 against
    20 -> oversaturated, no deficit; the unlabelled pixel (truth 90, prediction 0) takes no part:
    (2 * 6 + 1 * 0) / 3 = 4."""
    segments = torch.tensor([[[1, 1], [2, 0]]])
    truth = ab_with_chroma([[10, 10], [20, 90]])
    pred = ab_with_chroma([[4, 4], [30, 0]]).requires_grad_(True)
    loss = chroma_deficit(pred, truth, segments)
    assert float(loss.detach()) == pytest.approx(4.0, abs=1e-3)
    loss.backward()
    grad_norm = pred.grad.square().sum(dim=1)[0]
    assert float(grad_norm[0, 0]) > 0 and float(grad_norm[1, 0]) == 0 and float(grad_norm[1, 1]) == 0


def test_the_deficit_is_a_per_segment_mean_not_a_per_pixel_one():
    """Within a segment an over- and an under-saturated pixel cancel: the segment's mean chroma is right."""
    segments = torch.tensor([[[1, 1]]])
    assert float(chroma_deficit(ab_with_chroma([[0, 20]]), ab_with_chroma([[10, 10]]), segments)) < 1e-3
    faded = chroma_deficit(ab_with_chroma([[0, 10]]), ab_with_chroma([[10, 10]]), segments)
    assert float(faded) == pytest.approx(5, abs=1e-3)


def test_images_without_segments_add_zero_and_the_batch_is_averaged():
    segments = torch.tensor([[[1, 1]], [[0, 0]]])
    truth, pred = torch.cat([ab_with_chroma([[10, 10]])] * 2), torch.zeros(2, 2, 1, 2)
    assert float(chroma_deficit(pred, truth, segments)) == pytest.approx(5.0, abs=1e-3)


def test_grey_predictions_have_finite_gradients():
    pred = torch.zeros(1, 2, 2, 2, requires_grad=True)
    chroma_deficit(pred, ab_with_chroma([[10, 10], [10, 10]]), torch.ones(1, 2, 2, dtype=torch.long)).backward()
    assert torch.isfinite(pred.grad).all()
    assert float(soft_chroma(torch.zeros(1, 2, 1, 1))) < 1e-2


def test_the_loss_never_synchronises_with_the_host():
    """Every call that would wait for the device (a Python number from a tensor, a data-dependent shape) is absent."""
    source = inspect.getsource(chroma_deficit) + inspect.getsource(soft_chroma)
    for pattern in (r"\.item\(", r"nonzero", r"\.tolist\(", r"\.cpu\(", r"\.numpy\(", r"(?<![.\w])(int|float|bool)\(",
                    r"\.max\(", r"\.unique\(", r"masked_select"):
        assert not re.search(pattern, source), pattern


def test_label_maps_are_prepared_once_and_looked_up_by_image_id(tmp_path, monkeypatch):
    data, batch = sample_training(tmp_path, size=32)
    term = VividnessTerm(0.5)
    term.prepare(data, 32)
    assert term.source.kind == "slic"  # the built-in sample has no instance masks
    assert term.labels.shape == (len(data.entries), 32, 32) and term.labels.dtype == torch.uint8
    assert int(term.labels.max()) <= MAX_LABEL and int(term.labels.max()) > 1
    options = term.options()
    assert options["vivid_weight"] == 0.5 and options["vivid_segments"] == "slic" and options["vivid_segments_sha256"]
    monkeypatch.setattr(vividness, "label_maps", lambda *args: pytest.fail("recomputed the cached label maps"))
    again = VividnessTerm(0.5)
    again.prepare(data, 32)
    assert torch.equal(again.labels, term.labels) and again.options() == options
    grey = torch.zeros_like(batch.ab)
    assert float(term.loss(grey, batch.ab, batch.image_ids)) > 1  # a grey prediction of colour photos has a deficit
    assert float(term.loss(batch.ab, batch.ab, batch.image_ids)) < 1e-3


def test_prepared_coco_instances_are_the_segments_of_a_coco_source(tmp_path, coco_mini):
    from colorbench.data.sources import open_source
    from colorbench.data.splits import build_manifest
    from colorbench.models.trainable import TrainingData

    entries = build_manifest(open_source(f"coco:{coco_mini}:val2017"), "full", limit=4, progress=False).usable
    term = VividnessTerm(1.0)
    term.prepare(TrainingData(entries, f"coco:{coco_mini}:val2017", "resize", tmp_path, torch.device("cpu"),
                              progress=False), 32)
    assert term.source.kind == "coco-instances" and term.labels.shape == (len(entries), 32, 32)
    assert int(term.labels.max()) >= 1


def test_padding_rows_repeat_the_last_image(tmp_path):
    """A batch padded to a fixed shape (XLA) carries fewer ids than rows: the extra rows are the last image again."""
    data, batch = sample_training(tmp_path, size=32, images=2)
    term = VividnessTerm(1.0)
    term.prepare(data, 32)
    padded = torch.cat([torch.zeros_like(batch.ab), torch.zeros_like(batch.ab[-1:])])
    truth = torch.cat([batch.ab, batch.ab[-1:]])
    three = float(term.loss(padded, truth, batch.image_ids))
    assert three == pytest.approx(float(term.loss(padded, truth, [*batch.image_ids, batch.image_ids[-1]])))
