"""The perturbation sweeps, the analyses over records, the claims rules, BAPPS agreement and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from colorbench.analysis.bapps import agreement, agreement_by_band, load_bapps
from colorbench.analysis.tables import discrimination, rank_correlations, resampled_ranks, sweep_sensitivity, win_rates
from colorbench.claims.evidence import PLUMBING_ONLY
from colorbench.claims.registry import bound
from colorbench.claims.table import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, SUPPORTED, Evidence, current, evaluate_claims
from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.data.color import lab_to_rgb, rgb_to_lab
from colorbench.reports.check import check_report, find_chromium
from colorbench.study.perturbations import SWEEPS, blur_ab, rotate_ab, vivid_object_masks
from tests.conftest import to_batch_tensor
from tests.test_runner import read_rows

claim_c1, claim_c2, claim_c3, claim_c4, claim_c6 = (bound("1", claim) for claim in ("C1", "C2", "C3", "C4", "C6"))


@pytest.fixture(scope="module")
def lab(photos) -> torch.Tensor:
    return rgb_to_lab(to_batch_tensor(*photos[:2]).float())


def test_every_sweep_starts_at_the_identity(lab):
    segments = torch.ones(lab.shape[0], *lab.shape[2:], dtype=torch.long)
    masks = vivid_object_masks(lab[:, 1:], segments)
    for sweep in SWEEPS:
        assert sweep.regime[0] in sweep.strengths and sweep.regime[1] in sweep.strengths
        assert torch.allclose(sweep.apply(lab[:, 1:], masks, sweep.strengths[0]), lab[:, 1:], atol=1e-4), sweep.name


def test_rotation_keeps_chroma_and_full_turn_is_identity(lab):
    ab = lab[:, 1:]
    assert torch.allclose(rotate_ab(ab, 360.0), ab, atol=1e-3)
    assert torch.allclose(rotate_ab(ab, 73.0).square().sum(1), ab.square().sum(1), rtol=1e-4, atol=1e-3)
    assert torch.allclose(rotate_ab(ab, 180.0), -ab, atol=1e-3)


def test_bleeding_preserves_mean_chroma_and_smooths():
    ab = torch.zeros(1, 2, 32, 32)
    ab[:, :, :, 16:] = 40.0
    blurred = blur_ab(ab, 3.0)
    assert math.isclose(float(blurred.mean()), float(ab.mean()), rel_tol=1e-4)
    assert 0 < float(blurred[0, 0, 0, 15]) < 40 and 0 < float(blurred[0, 0, 0, 16]) < 40
    assert blur_ab(torch.rand(1, 2, 8, 8), 16.0).shape == (1, 2, 8, 8)  # sigma far larger than the image


def test_object_mask_is_the_most_vivid_large_segment():
    ab = torch.zeros(1, 2, 20, 20)
    segments = torch.ones(1, 20, 20, dtype=torch.long)
    segments[0, :10, :10] = 2  # 25% of the image, vivid
    segments[0, 0, 0] = 3  # a single vivid pixel: below the 1% area floor
    ab[0, 0, :10, :10] = 30.0
    ab[0, 0, 0, 0] = 100.0
    mask = vivid_object_masks(ab, segments)[0, 0]
    assert torch.equal(mask, segments[0] == 2)
    assert not vivid_object_masks(ab, torch.zeros(1, 20, 20, dtype=torch.long)).any()  # no segments at all


def test_discrimination_is_the_cross_image_ordering_probability():
    assert discrimination(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert discrimination(np.array([1.0, 4.0]), np.array([2.0, 3.0])) == 0.5
    assert discrimination(np.array([1.0]), np.array([1.0])) == 0.5


def study_rows(effect: float, noise: float) -> list[dict[str, str]]:
    """A synthetic desaturation study: psnr falls by ``effect`` between the regime strengths, images differ by
    ``noise``; auc_ab falls a lot with little spread; colorfulness (a diagnostic) is recorded too."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        base = 30 + noise * rng.standard_normal()
        for strength, drop, auc in ((0.9, 0.0, 0.9), (0.5, effect, 0.6)):
            rows.append({"sweep": "desaturation", "strength": str(strength), "image_id": str(i),
                         "psnr": str(base - drop), "auc_ab": str(auc + 0.01 * rng.standard_normal()),
                         "colorfulness": str(30 * auc)})
    return rows


def test_sensitivity_separates_effect_from_spread():
    weak = {r["metric"]: r for r in sweep_sensitivity(study_rows(effect=1.0, noise=10.0),
                                                      ["psnr", "auc_ab", "colorfulness"])}
    strong = {r["metric"]: r for r in sweep_sensitivity(study_rows(effect=30.0, noise=1.0), ["psnr"])}
    assert weak["psnr"]["median_drop"] == pytest.approx(1.0)
    assert abs(float(weak["psnr"]["sensitivity"])) < 0.2 < float(strong["psnr"]["sensitivity"])
    assert float(weak["psnr"]["discrimination"]) < 0.65 and float(strong["psnr"]["discrimination"]) == 1.0
    assert float(weak["auc_ab"]["discrimination"]) == 1.0
    assert "colorfulness" not in weak  # diagnostics have no direction to measure a drop in


def per_image_rows() -> list[dict[str, str]]:
    rng = np.random.default_rng(0)
    rows = []
    for model, shift in (("good", 2.0), ("bad", 0.0)):
        for i in range(30):
            psnr = 20 + shift + rng.standard_normal()
            rows.append({"model": model, "image_id": str(i), "psnr": str(psnr), "ssim": str(0.8 + psnr / 100),
                         "auc_ab": str(rng.uniform(0, 1)), "colorfulness": str(rng.uniform(0, 40))})
    return rows


def test_rank_correlations_bands_and_intervals():
    rows = per_image_rows()
    table = rank_correlations(rows, ["psnr", "ssim", "auc_ab", "colorfulness"], seed=0)
    everything = next(r for r in table if r["band"] == "all" and r["metric_a"] == "psnr" and r["metric_b"] == "ssim")
    assert everything["spearman"] == pytest.approx(1.0) and everything["kendall"] == pytest.approx(1.0)
    noise = next(r for r in table if r["band"] == "all" and r["metric_b"] == "auc_ab" and r["metric_a"] == "psnr")
    assert not any("colorfulness" in (r["metric_a"], r["metric_b"]) for r in table)  # a diagnostic
    assert noise["spearman_lo"] < noise["spearman"] < noise["spearman_hi"]
    assert {r["band"] for r in table} == {"all", "psnr < 22", "psnr >= 22", "ssim < 0.9", "ssim >= 0.9"}


def test_resampled_ranks_equal_scipy_rankdata_with_ties():
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(size=200), 1)  # about 50 distinct values: many ties, and more in every resample
    idx = rng.integers(0, values.size, size=(30, values.size))
    codes = np.unique(values, return_inverse=True)[1]
    np.testing.assert_array_equal(resampled_ranks(codes, idx), stats.rankdata(values[idx], axis=1))


def test_win_rates_rank_the_better_model_first():
    wins = win_rates(per_image_rows(), ["psnr", "ssim"], ["bad", "good"], seed=0)
    assert [r["model"] for r in wins.rows] == ["good", "bad"]
    assert wins.rows[0]["win_rate_lo"] <= wins.rows[0]["win_rate"] <= wins.rows[0]["win_rate_hi"]
    assert wins.rows[0]["win_rate"] + wins.rows[1]["win_rate"] == pytest.approx(1.0)
    assert wins.metric_ranks["psnr"] == {"good": 1, "bad": 2}


def board(model: str, ssim: float, psnr: float, cf: float, width: float = 0.01) -> dict[str, str]:
    row = {"model": model}
    for name, value, spread in (("ssim", ssim, width), ("psnr", psnr, 10 * width), ("colorfulness", cf, width)):
        row.update({name: str(value), f"{name}_lo": str(value - spread), f"{name}_hi": str(value + spread)})
    row["channel_equality"] = "0.9"
    return row


ALL_METRICS = ("mse", "psnr", "ssim", "channel_equality", "colorfulness", "delta_colorfulness", "deltae2000",
               "segment_chroma_ratio", "vivid_recall")


def evidence(boards, per_image=(), training="fit", metrics=ALL_METRICS, **analyses) -> Evidence:
    """Run evidence; trained models here are the paper's GANs, so they carry run.json's adversarial flag."""
    models = {b["model"]: {"spec": {"training": training}, "adversarial": training == "train", "error": None}
              for b in boards}
    return Evidence({"models": models, "metrics": {m: {} for m in metrics}}, boards, list(per_image), **analyses)


def truth_rows(truth_cf: float) -> list[dict[str, str]]:
    return [{"model": "baseline0", "image_id": "1", "colorfulness": "10", "delta_colorfulness": str(10 - truth_cf)}]


def test_c1_rule_version_1():
    dull = evidence([board("baseline0", 0.93, 24.7, 12.0)], truth_rows(40.0))
    assert claim_c1(dull).outcome == SUPPORTED
    vivid = evidence([board("baseline0", 0.93, 24.7, 35.0)], truth_rows(40.0))
    assert claim_c1(vivid).outcome == NOT_SUPPORTED
    borderline = evidence([board("baseline0", 0.9005, 24.7, 12.0)], truth_rows(40.0))
    assert claim_c1(borderline).outcome == INCONCLUSIVE
    assert claim_c1(evidence([board("other", 0.9, 20, 1)])).outcome == NOT_RUN


def sensitivity_rows(psnr: float, ssim: float, colour: float) -> list[dict[str, object]]:
    return [{"sweep": sweep, "metric": metric, "discrimination": value}
            for sweep in ("desaturation", "object_fade", "object_hue")
            for metric, value in (("psnr", psnr), ("ssim", ssim), ("vivid_recall", colour))]


def test_c2_rule_version_1():
    assert claim_c2(evidence([], sensitivity=sensitivity_rows(0.6, 0.55, 0.95))).outcome == SUPPORTED
    assert claim_c2(evidence([], sensitivity=sensitivity_rows(0.97, 0.9, 0.95))).outcome == NOT_SUPPORTED
    assert claim_c2(evidence([], sensitivity=sensitivity_rows(0.9, 0.9, 0.95))).outcome == INCONCLUSIVE
    strong_band = [{"band": "psnr >= 22", "metric_a": "psnr", "metric_b": "delta_colorfulness", "n": 50,
                    "spearman": 0.8, "spearman_lo": 0.7, "spearman_hi": 0.9}]
    assert claim_c2(evidence([], sensitivity=sensitivity_rows(0.6, 0.55, 0.95),
                             correlations=strong_band)).outcome == NOT_SUPPORTED
    assert claim_c2(evidence([])).outcome == NOT_RUN


def test_c3_and_c4_rules_version_1():
    grey = board("model-a", 0.92, 23.0, 5.0)
    grey["channel_equality"] = "0.82"
    stable = evidence([grey], truth_rows(40.0), training="train")
    assert claim_c3(stable).outcome == INCONCLUSIVE  # no diverged run to test the second half
    colourful = board("model-a", 0.92, 23.0, 5.0)
    colourful["channel_equality"] = "0.1"
    assert claim_c3(evidence([colourful], truth_rows(40.0), training="train")).outcome == NOT_SUPPORTED
    assert claim_c3(evidence([grey], truth_rows(40.0))).outcome == NOT_RUN  # not a trained model
    pairs = [{"model": m, "image_id": str(i), "psnr": str(22 + i % 3 + (1 if m == "chromagan-noclass" else 0)),
              "ssim": str(0.9 + (0.01 if m == "chromagan-noclass" else 0))}
             for m in ("chromagan", "chromagan-noclass") for i in range(20)]
    boards = [board("chromagan", 0.9, 22, 5), board("chromagan-noclass", 0.91, 23, 5)]
    assert claim_c4(evidence(boards, pairs, training="train")).outcome == SUPPORTED
    assert claim_c4(evidence(boards[:1], pairs, training="train")).outcome == NOT_RUN


def fade_curves(psnr: float, ssim: float, recall: float, ratio: float) -> list[dict[str, object]]:
    return [{"sweep": "object_fade", "strength": 0.0, "metric": m, "median": v}
            for m, v in (("psnr", psnr), ("ssim", ssim), ("vivid_recall", recall), ("segment_chroma_ratio", ratio))]


def test_c6_rule_version_1_tests_only_the_premise():
    assert claim_c6(evidence([], curves=fade_curves(31.0, 0.99, 0.67, 0.52))).outcome == INCONCLUSIVE
    assert claim_c6(evidence([], curves=fade_curves(24.0, 0.97, 0.67, 0.52))).outcome == NOT_SUPPORTED  # caught
    assert claim_c6(evidence([], curves=fade_curves(31.0, 0.99, 0.95, 0.9))).outcome == NOT_SUPPORTED  # not seen
    assert claim_c6(evidence([])).outcome == NOT_RUN


def test_claims_without_their_metrics_are_not_run():
    claims = evaluate_claims(evidence([board("baseline0", 0.93, 24.7, 12.0)], truth_rows(40.0), metrics=("psnr",),
                                      sensitivity=sensitivity_rows(0.6, 0.55, 0.95)))
    assert all(c.verdict == NOT_RUN for c in claims)
    assert {c.rule_version for c in claims} == {"1", "2", "3", "4", "5"}
    assert all("not computed in this run: ssim" in c.numbers for c in claims if c.claim == "C1")


def test_all_claims_have_a_verdict_even_with_no_records():
    claims = current(evaluate_claims(evidence([])))
    assert [c.claim for c in claims] == [*(f"C{i}" for i in range(1, 9)), "C6-premise"]
    assert all(c.verdict == NOT_RUN for c in claims)


def write_bapps(root, photos, judge: float, count: int = 6) -> None:
    for part in ("ref", "p0", "p1", "judge"):
        (root / part).mkdir(parents=True)
    for i in range(count):
        ref = to_batch_tensor(photos[i % len(photos)][:64, :64]).float()
        lab = rgb_to_lab(ref)
        mild = lab_to_rgb(torch.cat((lab[:, :1], lab[:, 1:] * 0.9), dim=1))
        strong = lab_to_rgb(torch.cat((lab[:, :1], lab[:, 1:] * 0.2), dim=1))
        for part, image in (("ref", ref), ("p0", mild), ("p1", strong)):
            array = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(array).save(root / part / f"{i:03d}.png")
        np.save(root / "judge" / f"{i:03d}.npy", np.array([judge], dtype=np.float32))


def test_bapps_loader_and_agreement(tmp_path, photos):
    write_bapps(tmp_path / "color", photos, judge=0.2)
    triplets = load_bapps(tmp_path / "color")
    assert len(triplets) == 6 and triplets[0].judge == pytest.approx(0.2)
    rows = {r["metric"]: r for r in agreement(triplets, ["psnr", "delta_colorfulness", "colorfulness"],
                                              device=torch.device("cpu"))}
    assert rows["psnr"]["agreement"] == pytest.approx(0.8)  # PSNR prefers the mild p0, as 80% of people do
    assert rows["delta_colorfulness"]["agreement"] == pytest.approx(0.8)
    assert "colorfulness" not in rows  # a diagnostic states no preference
    bands = agreement_by_band(triplets, ["delta_colorfulness"], 22.0, device=torch.device("cpu"))
    assert {(r["band"], r["metric"]) for r in bands} == {(b, m) for b in ("high", "low")
                                                          for m in ("delta_colorfulness", "psnr")}
    assert sum(int(r["n"]) for r in bands if r["metric"] == "psnr") == 6  # every triplet in one band
    (tmp_path / "color" / "p1" / "000.png").unlink()
    with pytest.raises(BenchError, match=r"000\.png is missing"):
        load_bapps(tmp_path / "color")


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "run"
    assert main(["run", "--models", "gray,baseline0", "--size", "64", "--out", str(out), "--no-progress"]) == 0
    return out


def test_study_records_and_claims_are_written(study_run):
    rows = read_rows(study_run / "study" / "perturbations.csv")
    assert {r["sweep"] for r in rows} == {s.name for s in SWEEPS}
    claims = read_rows(study_run / "claims.csv")
    five = [*(f"C{i}" for i in range(1, 9)), "C6-premise"]
    assert [(c["rule_version"], c["claim"]) for c in claims] == (  # the current version first, then newest first
        [("5", c) for c in five] + [("4", f"C{i}") for i in range(1, 9)]
        + [(v, f"C{i}") for v in "321" for i in range(1, 8)])
    assert [c["current"] for c in claims] == ["yes"] * len(five) + ["no"] * (len(claims) - len(five))
    assert all(c["verdict"] in (NOT_RUN, PLUMBING_ONLY) for c in claims)  # the built-in sample tests plumbing only
    c2_v1 = next(c for c in claims if (c["rule_version"], c["claim"]) == ("1", "C2"))
    assert c2_v1["verdict"] == PLUMBING_ONLY and c2_v1["outcome"] != NOT_RUN  # C2 v1 has the study
    assert claims[0]["protocol"].startswith("n ") and "64 px resize" in claims[0]["protocol"]
    premise = next(c for c in claims if c["claim"] == "C6-premise")
    assert premise["verdict"] == PLUMBING_ONLY and "segments slic" in premise["numbers"]


def test_report_rebuilds_without_recomputing(study_run):
    before = {p: p.stat().st_mtime_ns for p in (study_run / "predictions").rglob("*.png")}
    claims = (study_run / "claims.csv").read_text()
    (study_run / "index.html").unlink()
    assert main(["report", str(study_run)]) == 0
    assert (study_run / "index.html").is_file()
    assert (study_run / "claims.csv").read_text() == claims
    html = (study_run / "index.html").read_text()
    assert "Rule set version 5" in html and "Plumbing run: these numbers come from the built-in sample" in html
    assert "pre-registered: fixed 2026-12-03" in html and "Verdict changes across rule versions" in html
    assert html.count("pre-registered") == 1  # only for the current version, fixed before this run
    reproduction = read_rows(study_run / "analysis" / "reproduction.csv")
    assert {(r["experiment"], r["metric"]) for r in reproduction if r["model"] == "baseline0"} == {
        (e, m) for e in ("exp0", "exp1", "exp2") for m in ("mse255", "ssim", "psnr")}
    assert all(r["interval_excludes_paper"] in ("yes", "no") for r in reproduction)
    assert "Reproduction of the paper's Tables 1, 2 and 4" in html
    verdicts = {(r["rule_version"], r["claim"]): r["verdict"] for r in read_rows(study_run / "claims.csv")}
    assert verdicts["1", "C2"] == PLUMBING_ONLY  # the report shows the verdict of the version just before
    assert all(verdicts["4", f"C{i}"] == verdicts["3", f"C{i}"] for i in range(1, 8))  # version 4 = 3 for C1-C7
    assert all(verdicts["5", f"C{i}"] == verdicts["4", f"C{i}"] for i in (1, 3, 4, 5, 6, 7, 8))  # 5 changes C2
    assert verdicts["5", "C2"] == NOT_RUN  # the sample's SLIC segments carry no COCO classes for the C2 arms
    assert read_rows(study_run / "analysis" / "claim_rules.csv")[0]["source"].startswith("paper")
    assert before == {p: p.stat().st_mtime_ns for p in (study_run / "predictions").rglob("*.png")}
    run = json.loads((study_run / "run.json").read_text())
    assert run["segments"]["kind"] == "slic"


def test_report_renders_in_chromium_with_every_section(study_run, tmp_path):
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    found = check_report(study_run, tmp_path / "shot.png")
    assert found["broken"] == []
    assert found["images"] > 20
    assert {"claims", "leaderboard", "perturbations", "correlations", "scatter", "training", "gallery", "glossary",
            "provenance"} <= set(found["sections"])
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_bapps_command_adds_the_table_to_a_run(study_run, tmp_path, photos):
    write_bapps(tmp_path / "color", photos, judge=0.3)
    assert main(["bapps", str(tmp_path / "color"), "--into", str(study_run), "--metrics", "psnr,ssim"]) == 0
    rows = read_rows(study_run / "analysis" / "bapps_agreement.csv")
    assert [r["metric"] for r in rows] == ["psnr", "ssim"]
    assert float(rows[0]["agreement"]) == pytest.approx(0.7)
    assert "Agreement with human judgements" in (study_run / "index.html").read_text()


def test_study_command_runs_without_models(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--size", "48", "--out", str(out), "--no-progress"]) == 0
    assert read_rows(out / "leaderboard.csv") == []
    assert {r["sweep"] for r in read_rows(out / "study" / "perturbations.csv")} == {s.name for s in SWEEPS}
    claims = {(c["rule_version"], c["claim"]): c["verdict"] for c in read_rows(out / "claims.csv")}
    assert claims["1", "C1"] == claims["2", "C1"] == NOT_RUN and claims["1", "C2"] == PLUMBING_ONLY
