"""Rule version 5 (issue 21) beyond its golden rows: C1's split size, C5's validation share and its n in runs, C7's
equivalence margin on float noise, the reproduction table, the claims.csv order, every verdict change, and when
a rule may be called pre-registered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from colorbench.claims.evidence import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim
from colorbench.claims.manifest import CURRENT_VERSION, RuleVersion, registration, version
from colorbench.claims.registry import bound
from colorbench.claims.reproduction import PAPER_FIGURES, reproduction_rows
from colorbench.claims.table import csv_rows, evaluate_claims, protocol, verdict_changes
from tests.test_claims import N_IMAGES, c1_evidence, c5_evidence, c7_evidence, info, make


def test_c1_decides_only_on_a_split_of_val_1k():
    small = c1_evidence(0.93, 5.0)
    assert bound("4", "C1")(small).outcome == SUPPORTED
    found = bound("5", "C1")(small)
    assert found.outcome == INCONCLUSIVE and f"split below 1000 images ({N_IMAGES} listed)" in found.numbers
    assert "--eval-split val-1k" in found.change
    large = c1_evidence(0.93, 5.0)
    large.run["splits"] = {"eval": {"n_listed": 1000}}
    assert bound("5", "C1")(large).outcome == SUPPORTED
    colourful = c1_evidence(0.93, 35.0)
    colourful.run["splits"] = {"eval": {"n_listed": 1000}}
    assert bound("5", "C1")(colourful).outcome == NOT_SUPPORTED


def test_c1_reads_baseline0_and_never_gray():
    e = c1_evidence(0.93, 5.0)
    e.run["splits"] = {"eval": {"n_listed": 1000}}
    gray_only = make({"gray": info("none")}, [{**r, "model": "gray"} for r in e.per_image])
    gray_only.run["splits"] = e.run["splits"]
    assert bound("4", "C1")(gray_only).outcome == SUPPORTED
    assert "no baseline0" in bound("5", "C1")(gray_only).numbers


def validated(runs: list[tuple[str, bool, float, int]], n_val: int, n_train: int):
    e = c5_evidence(runs)
    for name, *_ in runs:
        e.models[name]["training"].update(n_train_images=n_train, validation_images=[f"v{i}" for i in range(n_val)])
    return e


def test_c5_counts_only_runs_validated_on_a_tenth_and_its_n_counts_runs():
    unstable, stable = ("model-a", True, 5.0, 5), ("model-a@seed1", False, 0.3, 5)
    one_image = validated([unstable, stable], 1, 77)
    assert bound("4", "C5")(one_image).outcome == SUPPORTED
    found = bound("5", "C5")(one_image)
    assert found.outcome == INCONCLUSIVE and found.n == 0 and "validation on 1 of 78" in found.numbers
    tenth = validated([unstable, stable], 7, 71)  # 7 of 78: a tenth rounded down, what split_validation holds out
    found = bound("5", "C5")(tenth)
    assert found.outcome == SUPPORTED and found.n == 2
    assert protocol(tenth, found).startswith("n 2 runs;")


def test_c7_control_equivalent_within_its_margin_passes_float_noise():
    e = c7_evidence(1.0, 0.0)
    for row in e.common_pixels:
        if row["model"] == "gray":
            row["crop"] = row["resize"] + 8e-17  # the same outputs, a last-bit difference of the two arms' scores
    assert bound("4", "C7")(e).outcome == INCONCLUSIVE  # version 2's control: an interval of [8e-17, 8e-17] moves
    assert bound("5", "C7")(e).outcome == SUPPORTED
    shifted = c7_evidence(1.0, -0.5)
    found = bound("5", "C7")(shifted)
    assert found.outcome == INCONCLUSIVE and "control outside its margin" in found.numbers


def test_reproduction_rows_compare_each_figure_with_ours():
    board = [{"model": "baseline0", "n_images": "77", "ssim": "0.904", "ssim_lo": "0.891", "ssim_hi": "0.916",
              "psnr": "24.5", "psnr_lo": "24.0", "psnr_hi": "25.0"},
             {"model": "model-a@seed1", "n_images": "77", "psnr": "22.0", "psnr_lo": "21.0", "psnr_hi": "23.0"}]
    models = {"baseline0": info("fit"), "model-a@seed1": info(replica_of="model-a", profile="smoke")}
    rows = reproduction_rows(board, {"config": {"eval_source": "coco:/data:val2017"}, "models": models})
    exp0 = {r["metric"]: r for r in rows if r["experiment"] == "exp0"}
    assert set(exp0) == {"ssim", "psnr"}  # no mse255 on the board: left out
    assert exp0["ssim"]["interval_excludes_paper"] == "yes" and exp0["ssim"]["gap"] == pytest.approx(0.904 - 0.9318)
    assert exp0["psnr"]["interval_excludes_paper"] == "no"
    assert [(r["experiment"], r["model"]) for r in rows if r["table"] == "Table 4"] == [("exp4", "model-a@seed1")]
    assert exp0["ssim"]["note"] == "" and rows[-1]["note"] == "plumbing only: smoke-profile training"
    assert all(f.table in ("Table 1", "Table 2", "Table 4") for f in PAPER_FIGURES)


def test_table_2_from_the_authors_weights_is_the_papers_network_not_plumbing():
    """A chromagan loaded from the authors' release reproduces Table 2 itself: no "trained on this run's split"
    caveat and no smoke label, whatever its profile option says; a trained chromagan keeps both."""
    board = [{"model": "chromagan", "n_images": "77", "psnr": "23.1", "psnr_lo": "22.5", "psnr_hi": "23.6"}]
    run = {"config": {"eval_source": "coco:/data:val2017"}}
    released = {**info(profile="smoke"), "weights_from": "file", "pretrained": "authors' release"}
    note = reproduction_rows(board, {**run, "models": {"chromagan": released}})[0]["note"]
    assert "released weights" in note and "plumbing" not in note and "trained on this run" not in note
    trained = reproduction_rows(board, {**run, "models": {"chromagan": info(profile="smoke")}})[0]["note"]
    assert trained.startswith("plumbing only: smoke-profile training") and "trained on this run" in trained


def claim(version_id: str, name: str, verdict: str) -> Claim:
    return Claim(name, "", "", "", verdict, rule_version=version_id, verdict=verdict)


def test_every_verdict_change_is_listed_and_the_csv_starts_with_the_current_version():
    claims = [claim("1", "C1", SUPPORTED), claim("2", "C1", INCONCLUSIVE), claim("3", "C1", INCONCLUSIVE),
              claim(CURRENT_VERSION, "C1", NOT_SUPPORTED), claim(CURRENT_VERSION, "C6-premise", SUPPORTED)]
    assert [(c["from_version"], c["to_version"], c["to_verdict"]) for c in verdict_changes(claims)] == [
        ("1", "2", INCONCLUSIVE), ("3", CURRENT_VERSION, NOT_SUPPORTED)]
    rows = csv_rows(claims)
    assert [(r["rule_version"], r["current"]) for r in rows] == [
        (CURRENT_VERSION, "yes"), (CURRENT_VERSION, "yes"), ("3", "no"), ("2", "no"), ("1", "no")]
    assert list(rows[0])[:3] == ["rule_version", "current", "claim"]


def test_pre_registered_only_for_a_rule_fixed_before_the_run():
    fixed = RuleVersion("9", "", "", {}, datetime(2026, 12, 3, 13, 20, tzinfo=UTC))
    assert registration(fixed, "2026-12-04T09:00:00+00:00").startswith("pre-registered")
    assert "after this run was made" in registration(fixed, "2026-12-01T09:00:00+00:00")
    assert "no creation time" in registration(fixed, "2026-12-04T09:00:00")
    assert "pre-registered" not in registration(version("4"), "2026-12-04T09:00:00+00:00").replace(
        "not pre-registered", "")
    assert version(CURRENT_VERSION).fixed is not None


def fade(psnr: float, ssim: float, recall: float, ratio: float, n: int = 16) -> list[dict[str, object]]:
    return [{"sweep": "object_fade", "strength": 0.0, "metric": m, "median": v, "n": n}
            for m, v in (("psnr", psnr), ("ssim", ssim), ("vivid_recall", recall), ("segment_chroma_ratio", ratio))]


def test_c6_premise_is_its_own_verdict_and_names_its_segment_source():
    def premise(curves, kind="coco"):
        e = make({}, metrics=("psnr", "ssim", "vivid_recall", "segment_chroma_ratio"), curves=curves)
        e.run["segments"] = {"kind": kind, "detail": "the test's"}
        return bound("5", "C6-premise")(e)
    held = premise(fade(31.0, 0.99, 0.67, 0.52))
    assert held.outcome == SUPPORTED and "segments coco (the test's)" in held.numbers and held.n == 16
    assert premise(fade(31.0, 0.99, 0.95, 0.93), "slic").outcome == NOT_SUPPORTED  # no segment metric registers it
    assert premise(fade(22.0, 0.85, 0.67, 0.52)).outcome == NOT_SUPPORTED  # PSNR and SSIM see the faded object
    assert premise(fade(31.0, 0.85, 0.67, 0.52)).outcome == INCONCLUSIVE  # they disagree
    assert premise(fade(31.0, 0.99, 0.67, 0.52, n=8)).outcome == INCONCLUSIVE  # fewer than the study's 16 images
    rows = [c for c in evaluate_claims(make({}, metrics=("psnr", "ssim"), curves=fade(31.0, 0.99, 0.67, 0.52)))
            if c.rule_version == "5"]
    assert rows[-1].claim == "C6-premise" and rows[-1].statement.startswith("(premise of C6")
