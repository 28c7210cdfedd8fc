"""Claim C6 under rule version 3 (issue 10): every vivid variant against its plain twin, each pair on its own,
colorfulness as context; synthetic per-image records with known effects (helpers of tests/test_claims.py)."""

from __future__ import annotations

import numpy as np

from colorbench.claims.evidence import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, SUPPORTED, Evidence
from colorbench.claims.registry import bound
from colorbench.claims.table import evaluate_claims
from tests.test_claims import arms, info, make, rows

claim_c6 = bound("3", "C6")
BASE = {"segment_chroma_ratio": 0.6, "vivid_recall": 0.5, "psnr": 23.0, "ssim": 0.9, "colorfulness": 20.0}


def effects(ratio: float, recall: float, psnr: float, colour: float = 0.0, n_seeds: int = 3) -> dict[str, list[float]]:
    return {"segment_chroma_ratio": [ratio] * n_seeds, "vivid_recall": [recall] * n_seeds, "psnr": [psnr] * n_seeds,
            "ssim": [0.0] * n_seeds, "colorfulness": [colour] * n_seeds}


def two_pairs(gan: dict[str, list[float]], unet: dict[str, list[float]], n_seeds: int = 3) -> Evidence:
    """Evidence holding both pairs: the records of two synthetic runs merged."""
    first = arms("chromagan-vivid", "chromagan", gan, BASE, n_seeds)
    second = arms("unet-l1-vivid", "unet-l1", unet, BASE, n_seeds)
    return make({**first.models, **second.models}, [*first.per_image, *second.per_image])


def test_each_pair_is_tested_and_the_verdict_needs_them_to_agree():
    both_gain = claim_c6(two_pairs(effects(0.35, 0.3, -0.1, 5.0), effects(0.3, 0.2, 0.0, 4.0)))
    assert both_gain.outcome == SUPPORTED
    assert "chromagan-vivid minus chromagan" in both_gain.numbers and "unet-l1-vivid minus unet-l1" in both_gain.numbers
    assert both_gain.numbers.count("colorfulness difference (context)") == 2
    assert claim_c6(two_pairs(effects(-0.1, -0.1, 0.0), effects(-0.2, -0.1, 0.0))).outcome == NOT_SUPPORTED
    mixed = claim_c6(two_pairs(effects(0.35, 0.3, 0.0), effects(-0.2, -0.1, 0.0)))
    assert mixed.outcome == INCONCLUSIVE and "pair supported" in mixed.numbers and "pair not supported" in mixed.numbers


def test_a_single_pair_decides_alone_and_fidelity_costs_keep_it_open():
    unet_only = arms("unet-l1-vivid", "unet-l1", effects(0.3, 0.2, 0.0), BASE, 3)
    assert claim_c6(unet_only).outcome == SUPPORTED
    costly = arms("unet-l1-vivid", "unet-l1", effects(0.3, 0.2, -2.0), BASE, 3)
    assert claim_c6(costly).outcome == INCONCLUSIVE


def test_one_seed_is_at_most_inconclusive_and_no_twin_is_not_run():
    one_seed = claim_c6(arms("unet-l1-vivid", "unet-l1", effects(0.3, 0.2, 0.0, n_seeds=1), BASE, 1))
    assert one_seed.outcome == INCONCLUSIVE and "only 1 seed" in one_seed.numbers
    alone = make({"unet-l1-vivid": info(adversarial=False)}, rows("unet-l1-vivid", np.random.default_rng(0),
                 **{m: (v, 0.01) for m, v in BASE.items()}))
    assert claim_c6(alone).outcome == NOT_RUN


def test_version_3_sits_beside_version_2_with_the_old_verdict_kept():
    e = two_pairs(effects(0.35, 0.3, -0.1), effects(-0.2, -0.1, 0.0))
    c6 = {c.rule_version: c for c in evaluate_claims(e) if c.claim == "C6"}
    assert c6["2"].outcome == SUPPORTED  # version 2 reads the ChromaGAN pair only
    assert c6["3"].outcome == INCONCLUSIVE and c6["3"].previous == SUPPORTED
