"""A metric's value must not depend on the batch it was computed in (issue 22, kind 8): a record recomputed alone,
after its cache line was lost, must equal the one computed beside other images, bit for bit, or "byte-identical
tables" breaks. Every available per-image metric is checked on real photos, alone and in a batch, through the
scoring path that ``run`` and ``score`` share (colorbench.pipeline.scoring.score_pairs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.data.segments import slic_segments
from colorbench.metrics.registry import compute, select_metrics
from colorbench.pipeline.scoring import Pair, score_pairs
from tests.metric_inputs import damaged, photo_batch
from tests.metric_inputs import slic_segments as slic_label_maps

PER_IMAGE = list(select_metrics(None).per_image)


def as_scored(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb.clamp(0, 1) * 255).round().float() / 255


@pytest.mark.parametrize("name", PER_IMAGE)
def test_a_metric_of_one_image_is_the_same_alone_and_in_a_batch(name):
    truth = photo_batch()
    gt, pred = as_scored(truth), as_scored(damaged(truth, "faded"))  # float32 of 8-bit values, as scoring reads
    extras = {"segments": slic_label_maps(truth)}
    together = compute([name], pred, gt, **extras)[name]
    alone = torch.cat([compute([name], pred[i:i + 1], gt[i:i + 1],
                               **{k: v[i:i + 1] for k, v in extras.items()})[name] for i in range(len(gt))])
    assert torch.equal(together.isnan(), alone.isnan())
    assert torch.equal(together.nan_to_num(), alone.nan_to_num()), (together - alone).abs().max()


def test_score_pairs_gives_one_record_alone_and_in_a_batch(tmp_path):
    """The issue's case: semantic_kl of one sample image recomputed alone differed from its batched value."""
    pairs = []
    for i, (truth, pred) in enumerate(zip(photo_batch(), damaged(photo_batch(), "grey"), strict=True)):
        for role, image in (("gt", truth), ("pred", pred)):
            array = (image.clamp(0, 1) * 255).round().byte()
            Image.fromarray(array.permute(1, 2, 0).numpy()).save(tmp_path / f"{role}{i}.png")
        pairs.append(Pair(str(i), f"{i}.png", tmp_path / f"pred{i}.png", tmp_path / f"gt{i}.png"))

    def records(chunk, batch_size):  # type: ignore[no-untyped-def]
        return {r["image_id"]: r for rs, _ in score_pairs(chunk, PER_IMAGE, device=torch.device("cpu"),
                                                          batch_size=batch_size, progress=False,
                                                          extras_for=slic_segments) for r in rs}

    batched = records(pairs, 16)
    for pair in pairs:
        alone = records([pair], 1)[pair.image_id]
        assert np.array_equal(np.array([alone[n] for n in PER_IMAGE], dtype=float),
                              np.array([batched[pair.image_id][n] for n in PER_IMAGE], dtype=float),
                              equal_nan=True), pair.image_id
