"""Rule c2@5's arms, judges and gate (issue 21) on a synthetic set where plausibility is known by construction:
yellow "bananas" in the training split, so a yellow banana is plausible and a blue one is not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbench.analysis.c2_study import c2_arm_rows
from colorbench.analysis.ratings import RATING_COLUMNS, load_ratings, rating_pairs, write_rating_page
from colorbench.claims.c2gate import (
    gate_shares,
    holm,
    images_needed,
    rating_preferences,
    score_preferences,
    twin_psnr_gap,
)
from colorbench.claims.evidence import INCONCLUSIVE, NOT_TESTED, PLUMBING_ONLY, Evidence
from colorbench.claims.manifest import version
from colorbench.claims.registry import bound
from colorbench.claims.table import evaluate_claims
from colorbench.core.errors import BenchError
from colorbench.data.color import lab_to_rgb
from colorbench.io.images import quantize, write_label_png, write_png
from colorbench.io.layout import RunLayout
from colorbench.study.c2_arms import ARM_PARAMETERS, twin_shifts
from colorbench.study.class_colours import ClassColours, add_instances

RULES = version("5").claims["C2"].values()
PARAMS = {k: RULES[k] for k in ARM_PARAMETERS}
SIZE = 24
FIXTURE = Path(__file__).parent / "c2_ratings_fixture.csv"


def _image(colour: tuple[float, float], seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Lab (3, SIZE, SIZE): a darker grey ground with a little colour noise, an object of mean ab ``colour`` in
    the top-left quarter (label 1)."""
    rng = np.random.default_rng(seed)
    lab = torch.zeros(3, SIZE, SIZE, dtype=torch.float32)
    lab[0] = 40.0
    lab[1:] = torch.from_numpy(rng.normal(0, 3, (2, SIZE, SIZE)).astype(np.float32))
    labels = np.zeros((SIZE, SIZE), dtype=np.int32)
    labels[: SIZE // 2, : SIZE // 2] = 1
    lab[0, : SIZE // 2, : SIZE // 2] = 60.0
    for channel, value in enumerate(colour, start=1):
        lab[channel, : SIZE // 2, : SIZE // 2] += value
    return lab, labels


@pytest.fixture(scope="module")
def fit() -> ClassColours:
    found = ClassColours("synthetic", RULES["large_area"])
    for k, colour in enumerate([(-1.0, 38.0), (2.0, 45.0), (0.0, 40.0), (3.0, 42.0), (-2.0, 36.0)]):
        lab, labels = _image(colour, k)
        add_instances(found, lab, labels, {1: "banana"})
    return found


@pytest.fixture(scope="module")
def arm_rows(tmp_path_factory, fit) -> list[dict[str, object]]:
    out = tmp_path_factory.mktemp("c2") / "run"
    layout, ids = RunLayout(out), [str(k) for k in range(8)]
    for k, image_id in enumerate(ids):
        lab, labels = _image((2.0 - 0.5 * k, 12.0 + k), 100 + k)  # a pale banana: twins can leave the class
        write_png(layout.ground_truth(image_id), quantize(lab_to_rgb(lab[None]))[0])
        write_label_png(layout.segments(image_id), labels)
    return c2_arm_rows(out, ids, {i: {1: "banana"} for i in ids}, fit, RULES, models=[], seed=0)


def _evidence(rows, ratings=()) -> Evidence:
    return Evidence({"models": {}, "config": {"eval_source": "coco:/data:val2017"}}, [], [], c2_arms=rows,
                    c2_ratings=ratings, c2_params=PARAMS)


def test_twins_shift_by_the_same_length_and_one_leaves_the_class(fit):
    found = twin_shifts(np.array([2.0, 12.0]), fit, "banana", RULES)
    assert found is not None
    plausible, candidates = found
    assert np.linalg.norm(plausible) >= RULES["twin_min_shift"]
    assert np.allclose(np.linalg.norm(candidates, axis=1), np.linalg.norm(plausible))
    centre = fit.circular("banana")[0]
    hues = np.degrees(np.arctan2(*(np.array([2.0, 12.0]) + candidates)[:, ::-1].T))
    assert np.all(np.abs((hues - centre + 180) % 360 - 180) >= RULES["twin_outside_deg"])


def test_a_judge_that_knows_plausibility_passes_the_gate_and_fidelity_fails_it(arm_rows):
    roles = {r["role"] for r in arm_rows}
    assert {"truth", "dull", "alternative", "plausible_twin", "implausible_twin"} <= roles
    assert max(twin_psnr_gap(arm_rows)) < 1.0  # the twins are (nearly) equal in fidelity
    judge = gate_shares(score_preferences(arm_rows, "colour_likelihood"), arm_rows)
    assert min(judge[0]) == 1.0 and min(judge[1]) == 1.0  # truth over grey, plausible over implausible: always
    claim = bound("5", "C2")(_evidence(arm_rows))
    assert "control -MSE" in claim.numbers and "plausible > implausible twin" in claim.numbers
    controls = dict(part.split(" (sees the truth", 1) for part in claim.numbers.split("; ") if "sees" in part)
    assert controls["control -MSE"].endswith("-> fails")
    assert controls["control semantic_kl"].endswith("-> fails")
    assert "judge used: colour_likelihood, gate passed" in claim.numbers
    assert claim.outcome == INCONCLUSIVE and "n below the power requirement" in claim.numbers  # 8 images


def test_a_verdict_from_a_smoke_training_carries_the_plumbing_label(arm_rows):
    with_model = [*arm_rows, *({**r, "arm": "chromagan"} for r in arm_rows if r["arm"] == "recolour1")]
    e = _evidence(with_model)
    e.models = {"chromagan": {"spec": {"training": "train"}, "options": {"profile": "smoke"}, "error": None}}
    row = next(c for c in evaluate_claims(e, (version("5"),)) if c.claim == "C2")
    assert row.outcome == INCONCLUSIVE and row.verdict == PLUMBING_ONLY and "smoke-profile training" in row.numbers


def test_without_a_passing_judge_c2_is_not_tested(arm_rows):
    flipped = [{**r, "colour_likelihood": -float(r["colour_likelihood"])} for r in arm_rows]  # prefers grey
    claim = bound("5", "C2")(_evidence(flipped))
    assert claim.outcome == NOT_TESTED and "no judge passed the gate" in claim.numbers
    assert "failed, not used" in claim.numbers


def test_the_rating_page_serves_the_gate_pairs_first_and_its_csv_is_a_judge(tmp_path, arm_rows):
    pairs = rating_pairs(arm_rows, "arms/{image}/{arm}.png")
    first = [p for p in pairs if p["image_id"] == "0"]
    assert (first[0]["arm_a"], first[0]["arm_b"]) == ("truth", "grey")
    assert first[1]["arm_a"].startswith("plausible_twin:") and first[1]["b"].startswith("arms/0/implausible_twin_")
    page = write_rating_page(tmp_path / "ratings", pairs).read_text()
    assert '"pair_id": "0"' in page and json.dumps(list(RATING_COLUMNS)) in page and "Download CSV" in page
    ratings = load_ratings(FIXTURE)
    prefs = rating_preferences(ratings)
    assert prefs["0"][("truth", "grey")] == 1.0 and prefs["0"][("grey", "truth")] == -1.0
    gate_rows = [r for r in arm_rows if r["role"] != "alternative"]
    claim = bound("5", "C2")(_evidence(gate_rows, ratings))
    assert "judge ratings (people" in claim.numbers and "-> passed" in claim.numbers.split("judge ratings")[1]
    bad = tmp_path / "bad.csv"
    bad.write_text(FIXTURE.read_text().replace(",a\n", ",left\n", 1))
    with pytest.raises(BenchError, match="choice 'left'"):
        load_ratings(bad)


def test_power_and_holm():
    assert images_needed(0.5, 0.2, 0.05, 0.8) == 50  # ((1.96 + 0.84) * 0.5 / 0.2)^2 = 49.05
    assert images_needed(0.6, 0.2, 0.05, 0.8) == math.ceil((2.8016 * 3) ** 2)
    assert holm({"psnr": 0.01, "ssim": 0.04}, 0.05) == {"psnr": True, "ssim": True}
    assert holm({"psnr": 0.03, "ssim": 0.04}, 0.05) == {"psnr": False, "ssim": False}
