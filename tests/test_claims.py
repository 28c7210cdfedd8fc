"""The claims rules of version 2 (each outcome, not run, plumbing only), the rule-version manifests, the shared
statistics and the pixel-level evidence (near-grey share, common pixels for C7). Whole rows of every version are
pinned by tests/test_claims_golden.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

from colorbench.claims import v2 as claims_v2
from colorbench.claims.evidence import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, PLUMBING_ONLY, SUPPORTED, Evidence
from colorbench.claims.manifest import BUILT_IN, CURRENT_VERSION, RULE_TABLE, VERSIONS, version
from colorbench.claims.pixels import centre_square, common_pixel_rows, grey_share
from colorbench.claims.registry import bound
from colorbench.claims.stats import crossed_bootstrap
from colorbench.claims.table import current, evaluate_claims
from colorbench.cli.main import main
from colorbench.core.aggregate import leaderboard
from colorbench.io.images import write_label_png, write_png
from colorbench.io.schema import read_csv

METRICS = ("psnr", "ssim", "colorfulness", "delta_colorfulness", "channel_equality", "deltae2000",
           "segment_chroma_ratio", "vivid_recall", "semantic_kl")
N_IMAGES = 40


def info(training: str = "train", *, profile: str = "paper", seed: int = 0, replica_of: str | None = None,
         adversarial: bool = True, record: dict | None = None) -> dict[str, object]:
    out: dict[str, object] = {"spec": {"training": training}, "error": None,
                              "options": {"profile": profile, "teacher": "vgg16", "seed": seed}}
    if training == "train":
        out.update(seed=seed, adversarial=adversarial, training=record or {})
        if replica_of:
            out["replica_of"] = replica_of
    return out


def make(models: dict[str, dict], per_image: list[dict] = (), *, source: str = "coco:/data:val2017",
         metrics: tuple[str, ...] | None = None, **analyses) -> Evidence:
    """Synthetic evidence; the run "computed" the metrics named in the records unless ``metrics`` says."""
    computed = metrics if metrics is not None else [m for m in METRICS if any(m in r for r in per_image)]
    run = {"config": {"eval_source": source, "preprocess": {"size": 224, "mode": "resize"}}, "models": models,
           "metrics": {m: {} for m in computed}, "segments": {"kind": "coco"}}
    board = []
    for model in models:
        records = [r for r in per_image if r["model"] == model]
        names = [m for m in METRICS if records and all(m in r for r in records)]
        board += leaderboard({model: records}, names, seed=0) if records else [{"model": model, "n_images": 0}]
    return Evidence(run, board, list(per_image), **analyses)


def rows(model: str, rng: np.random.Generator, **metrics: tuple[float, float]) -> list[dict[str, str]]:
    """Per-image rows of one model: each metric drawn as mean + spread * standard normal."""
    return [{"model": model, "image_id": str(i), **{m: str(mu + sd * rng.standard_normal())
                                                    for m, (mu, sd) in metrics.items()}} for i in range(N_IMAGES)]


# -- the rule versions --------------------------------------------------------------------------------------
def thresholds(version_id: str, claim: str) -> dict[str, float]:
    return dict(version(version_id).claims[claim].values())


def test_rule_versions_are_manifests_with_sourced_thresholds():
    assert list(VERSIONS)[:4] == ["1", "2", "3", "4"] and list(VERSIONS)[-1] == CURRENT_VERSION
    assert all(t.source.startswith(("paper", "ours")) for t in RULE_TABLE)
    assert thresholds("1", "C1")["ssim"] == thresholds("2", "C1")["ssim"] == 0.9
    assert thresholds("2", "C3")["grey_chroma"] == 2.3
    assert all(thresholds("4", c) == thresholds("3", c) == thresholds("2", c)
               for c in ("C1", "C2", "C3", "C4", "C5", "C6"))
    with pytest.raises(ValueError, match="unknown rule version '9'"):
        version("9")
    assert thresholds("4", "C8")["alpha"] == 0.05 and "C8" not in version("3").claims  # version 4 adds C8
    # one function id per logic: later versions bind the earlier functions to their own thresholds
    assert {c: r.rule for c, r in version("4").claims.items()} == {
        "C1": "c1@2", "C2": "c2@2", "C3": "c3@2", "C4": "c4@2", "C5": "c5@2", "C6": "c6@3", "C7": "c7@2",
        "C8": "c8@4"}


def test_every_version_is_evaluated_and_the_old_verdict_is_kept():
    rng = np.random.default_rng(0)
    per_image = rows("gray", rng, ssim=(0.93, 0.01), psnr=(24.7, 0.5), colorfulness=(0.0, 0.0),
                     delta_colorfulness=(-30.0, 3.0))
    claims = evaluate_claims(make({"gray": info("none")}, per_image))
    shipped = [(v, f"C{i}") for v in "123" for i in range(1, 8)] + [("4", f"C{i}") for i in range(1, 9)]
    assert [(c.rule_version, c.claim) for c in claims] == [(v.id, c) for v in BUILT_IN.values() for c in v.claims]
    assert [(c.rule_version, c.claim) for c in claims][:len(shipped)] == shipped
    four = [c for c in claims if c.rule_version == "4"]
    assert four[0].verdict == SUPPORTED and four[0].previous == claims[0].verdict == SUPPORTED
    assert all(c.previous for c in four if c.claim != "C8") and not any(c.previous for c in claims[:7])
    assert four[0].protocol.startswith("n 40 images; source coco:/data:val2017; 224 px resize")
    new = current(claims)
    assert new[0].verdict == NOT_RUN and new[0].previous == SUPPORTED  # version 5 judges baseline0 alone
    overlapping = make({"gray": info("none")}, per_image)
    overlapping.run["protocol"] = {"train_eval_overlap": 2}
    assert "2 files shared by training and evaluation" in current(evaluate_claims(overlapping))[0].protocol
    assert {"rule_version", "outcome", "verdict", "what_would_change", "protocol", "n"} <= set(new[0].as_row())


# -- C1 ----------------------------------------------------------------------------------------------------
def c1_evidence(ssim: float, colour: float, source: str = "coco:/data:val2017") -> Evidence:
    rng = np.random.default_rng(1)
    per_image = rows("baseline0", rng, ssim=(ssim, 0.01), psnr=(24.7, 0.5), colorfulness=(colour, 1.0),
                     delta_colorfulness=(colour - 40.0, 1.0))
    return make({"baseline0": info("fit")}, per_image, source=source)


def test_c1_outcomes():
    assert bound("2", "C1")(c1_evidence(0.93, 5.0)).outcome == SUPPORTED
    assert bound("2", "C1")(c1_evidence(0.93, 35.0)).outcome == NOT_SUPPORTED
    inconclusive = bound("2", "C1")(c1_evidence(0.9, 5.0))  # the SSIM interval straddles 0.9
    assert inconclusive.outcome == INCONCLUSIVE and "baseline0 SSIM" in inconclusive.change
    assert bound("2", "C1")(make({}, [])).outcome == NOT_RUN


def test_sample_and_smoke_verdicts_are_plumbing_only():
    four = (version("4"),)  # whose C1 and C5 decide these small fixtures
    claims = evaluate_claims(c1_evidence(0.93, 5.0, source="sample:test"), four)
    assert claims[0].outcome == SUPPORTED and claims[0].verdict == PLUMBING_ONLY
    assert "built-in sample" in claims[0].numbers and "supported" in claims[0].change
    assert all(c.verdict in (NOT_RUN, PLUMBING_ONLY) for c in claims)
    sample_fit = c1_evidence(0.93, 5.0)
    sample_fit.run["config"]["train_source"] = "sample:train"
    fitted = evaluate_claims(sample_fit, four)[0]
    assert fitted.verdict == PLUMBING_ONLY and "training on the built-in sample (baseline0)" in fitted.numbers
    smoke = c5_evidence([("chromagan", True, 5.0, 10)], profile="smoke")
    c5 = evaluate_claims(smoke, four)[4]
    assert c5.outcome == SUPPORTED and c5.verdict == PLUMBING_ONLY and "smoke-profile training" in c5.numbers


# -- C2 ----------------------------------------------------------------------------------------------------
def study(fidelity: tuple[float, float, float], yardstick: tuple[float, float, float],
          alternatives: tuple[str, ...] = (*claims_v2.PLAUSIBLE, "oversaturated_200")) -> list[dict[str, str]]:
    """Paired-study rows (interface 2) with the same preferences for every dull output and alternative."""
    out = []
    for dull in claims_v2.DULL_OUTPUTS:
        for alternative in alternatives:
            for metric, (share, lo, hi) in (("psnr", fidelity), ("ssim", fidelity), ("semantic_kl", yardstick)):
                out.append({"dull": dull, "alternative": alternative, "metric": metric, "band": "high", "n": "30",
                            "prefers_dull": str(share), "prefers_dull_lo": str(lo), "prefers_dull_hi": str(hi)})
    return out


DULL, ALTERNATIVE, UNDECIDED = (0.9, 0.8, 0.97), (0.1, 0.03, 0.2), (0.5, 0.4, 0.6)


def test_c2_outcomes_from_the_paired_study():
    def outcome(fidelity, yardstick):
        return bound("2", "C2")(make({}, metrics=METRICS, paired_study=study(fidelity, yardstick))).outcome
    assert outcome(DULL, ALTERNATIVE) == SUPPORTED
    assert outcome(ALTERNATIVE, ALTERNATIVE) == NOT_SUPPORTED  # PSNR/SSIM prefer the recolouring
    assert outcome(DULL, DULL) == NOT_SUPPORTED  # PSNR/SSIM side with the yardstick
    assert outcome(DULL, UNDECIDED) == INCONCLUSIVE
    assert bound("2", "C2")(make({}, metrics=("psnr", "ssim"))).outcome == NOT_RUN


def test_c2_judges_each_model_alone_and_never_pools_models():
    models = {"gray": info("none"), "good": info(), "bad": info()}
    # PSNR/SSIM prefer grey over both models; the yardstick prefers "good" and rejects "bad"
    good = study(DULL, ALTERNATIVE, ("good",))
    bad = study(DULL, DULL, ("bad",))
    assert bound("2", "C2")(make(models, metrics=METRICS, paired_study=good)).outcome == SUPPORTED
    assert bound("2", "C2")(make(models, metrics=METRICS, paired_study=bad)).outcome == NOT_SUPPORTED
    mixed = bound("2", "C2")(make(models, metrics=METRICS, paired_study=good + bad))
    assert mixed.outcome == INCONCLUSIVE and mixed.models == ("good", "bad")
    assert "grey vs good (n 30)" in mixed.numbers and "grey vs bad (n 30)" in mixed.numbers
    smoke = {**models, "good": info(profile="smoke")}
    yardstick_only = ("psnr", "ssim", "semantic_kl")
    version_4 = [c for c in evaluate_claims(make(smoke, metrics=yardstick_only, paired_study=good))
                 if c.rule_version == "4"]
    assert version_4[1].verdict == PLUMBING_ONLY


# -- C3 ----------------------------------------------------------------------------------------------------
def c3_evidence(runs: list[tuple[str, bool, float, float]], adversarial: bool = True) -> Evidence:
    """runs: (name, diverged, near-grey share, colorfulness - truth's)."""
    rng = np.random.default_rng(3)
    models, per_image, grey = {}, [], {}
    for name, diverged, share, delta in runs:
        models[name] = info(adversarial=adversarial, record={"divergence": {"diverged": diverged}})
        per_image += rows(name, rng, delta_colorfulness=(delta, 2.0))
        grey[name] = {str(i): float(np.clip(share + 0.05 * rng.standard_normal(), 0, 1)) for i in range(N_IMAGES)}
    return make(models, per_image, near_grey=grey)


def test_c3_outcomes():
    stable_grey, diverged_vivid = ("model-a", False, 0.85, -30.0), ("model-a2", True, 0.1, 25.0)
    assert bound("2", "C3")(c3_evidence([stable_grey, diverged_vivid])).outcome == SUPPORTED
    assert bound("2", "C3")(c3_evidence([("model-a", False, 0.2, -10.0)])).outcome == NOT_SUPPORTED
    assert bound("2", "C3")(c3_evidence([("model-a2", True, 0.1, -10.0)])).outcome == NOT_SUPPORTED
    only_stable = bound("2", "C3")(c3_evidence([stable_grey]))
    assert only_stable.outcome == INCONCLUSIVE and only_stable.change == "a diverged run"
    assert bound("2", "C3")(c3_evidence([stable_grey], adversarial=False)).outcome == NOT_RUN


# -- C4 and C6: seeds --------------------------------------------------------------------------------------
def arms(treated: str, base: str, effects: dict[str, list[float]], base_values: dict[str, float],
         n_seeds: int) -> Evidence:
    """``effects``: metric -> per-seed shift of the treated arm over the base arm (images add noise)."""
    rng = np.random.default_rng(4)
    models, per_image = {}, []
    for k in range(n_seeds):
        for arm in (treated, base):
            name = arm if k == 0 else f"{arm}@seed{k}"
            models[name] = info(seed=k, replica_of=arm)
            shift = {m: effects[m][k] if arm == treated else 0.0 for m in effects}
            per_image += rows(name, rng, **{m: (base_values[m] + shift[m], 0.02 * abs(base_values[m]) + 1e-3)
                                            for m in effects})
    return make(models, per_image)


C4_BASE = {"psnr": 23.0, "ssim": 0.9}


def test_c4_outcomes_and_seed_requirement():
    def c4(psnr, ssim, n_seeds=3):
        return bound("2", "C4")(arms("chromagan-noclass", "chromagan", {"psnr": psnr, "ssim": ssim}, C4_BASE,
                                       n_seeds))
    assert c4([1.0] * 3, [0.02] * 3).outcome == SUPPORTED
    assert c4([-1.0] * 3, [0.02] * 3).outcome == NOT_SUPPORTED
    assert c4([2.0, -2.0, 0.5], [0.02, -0.02, 0.0]).outcome == INCONCLUSIVE  # seeds disagree
    one_seed = c4([1.0], [0.02], n_seeds=1)
    assert one_seed.outcome == INCONCLUSIVE and "only 1 seed" in one_seed.numbers
    assert one_seed.change == "at least 3 seeds"
    not_run = make({"chromagan": info()}, rows("chromagan", np.random.default_rng(0), psnr=(23, 1), ssim=(0.9, 0)))
    assert bound("2", "C4")(not_run).outcome == NOT_RUN


def test_crossed_bootstrap_carries_seed_variance():
    rng = np.random.default_rng(5)
    images = 0.05 * rng.standard_normal((1, 200))
    seeds = np.array([[2.0], [-2.0], [0.5]]) + images
    _, lo, hi = crossed_bootstrap(seeds, seed=0)
    assert lo < 0 < hi  # every seed's image interval is tight, but the seeds disagree
    mean, lo1, hi1 = crossed_bootstrap(seeds[:1], seed=0)
    assert lo1 > 1.9 and hi1 < 2.1 and mean == pytest.approx(float(seeds[0].mean()))


C6_BASE = {"segment_chroma_ratio": 0.6, "vivid_recall": 0.5, "psnr": 23.0, "ssim": 0.9}


def test_c6_outcomes():
    def c6(ratio, recall, psnr):
        effects = {"segment_chroma_ratio": [ratio] * 3, "vivid_recall": [recall] * 3, "psnr": [psnr] * 3,
                   "ssim": [0.0] * 3}
        return bound("2", "C6")(arms("chromagan-vivid", "chromagan", effects, C6_BASE, 3)).outcome
    assert c6(0.35, 0.3, -0.1) == SUPPORTED
    assert c6(-0.1, -0.1, 0.0) == NOT_SUPPORTED
    assert c6(0.35, 0.3, -2.0) == INCONCLUSIVE  # the gain costs more PSNR than the margin
    fade = [{"sweep": "object_fade", "strength": 0.0, "metric": m, "median": v}
            for m, v in (("psnr", 31.0), ("ssim", 0.99), ("vivid_recall", 0.67), ("segment_chroma_ratio", 0.52))]
    premise = bound("2", "C6")(make({}, metrics=METRICS, curves=fade))
    assert premise.outcome == NOT_RUN and "premise" in premise.numbers and "31" in premise.numbers


# -- C5 ----------------------------------------------------------------------------------------------------
def c5_evidence(runs: list[tuple[str, bool, float, int]], profile: str = "paper", adversarial: bool = True):
    """runs: (entry, diverged, best-worst validation PSNR gap, epochs)."""
    models = {name: info(profile=profile, adversarial=adversarial, record={
        "epochs": epochs, "divergence": {"diverged": diverged, "epoch": 3},
        "best_epoch": {"val_psnr": 23.0}, "worst_epoch": {"val_psnr": 23.0 - gap}})
        for name, diverged, gap, epochs in runs}
    return make(models, [])


def test_c5_outcomes():
    unstable, stable = ("model-a", True, 5.0, 5), ("model-a@seed1", False, 0.3, 5)
    assert bound("2", "C5")(c5_evidence([unstable, stable])).outcome == SUPPORTED
    assert bound("2", "C5")(c5_evidence([stable, ("model-a@seed2", False, 0.2, 6)])).outcome == NOT_SUPPORTED
    short = ("model-a@seed2", False, 0.2, 2)  # too few epochs to call stable
    assert bound("2", "C5")(c5_evidence([stable, short, ("model-a2", True, 1.0, 5)])).outcome == INCONCLUSIVE
    assert bound("2", "C5")(c5_evidence([unstable], adversarial=False)).outcome == NOT_RUN


# -- C7 ----------------------------------------------------------------------------------------------------
def c7_evidence(model_gain: float, control_gain: float) -> Evidence:
    rng = np.random.default_rng(6)
    models = {"gray": info("none"), "chromagan": info()}
    common = []
    for model, gain in (("gray", control_gain), ("chromagan", model_gain)):
        for i in range(N_IMAGES):
            for metric, base, change in (("psnr", 23.0, gain), ("deltae2000", 10.0, -gain),
                                         ("segment_chroma_ratio", 0.6, 0.1 * gain)):
                resize = base * (1 + 0.05 * rng.standard_normal())
                common.append({"model": model, "image_id": str(i), "metric": metric, "resize": resize,
                               "crop": resize + change + 0.01 * base * rng.standard_normal()})
    e = make(models, [], metrics=METRICS, common_pixels=common)
    e.crop = make(models, [], metrics=METRICS)
    return e


def test_c7_outcomes_with_the_grey_control():
    assert bound("2", "C7")(c7_evidence(1.0, 0.0)).outcome == SUPPORTED
    assert bound("2", "C7")(c7_evidence(-1.0, 0.0)).outcome == NOT_SUPPORTED
    confounded = bound("2", "C7")(c7_evidence(1.0, -0.5))
    assert confounded.outcome == INCONCLUSIVE and "control moves" in confounded.numbers
    assert "retrained for the crop arm" in confounded.numbers
    assert bound("2", "C7")(make({"chromagan": info()}, [])).outcome == NOT_RUN


# -- statistics and pixel evidence ------------------------------------------------------------------------------
def test_grey_share_matches_scikit_image_chroma():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(3, 16, 16), dtype=np.uint8)
    image[:, :8] = image[:1, :8]  # a grey half
    image[1, :2, :2] += 1  # tints below one JND
    lab = rgb2lab(image.transpose(1, 2, 0))
    expected = float((np.hypot(lab[..., 1], lab[..., 2]) < 2.3).mean())
    assert grey_share(torch.from_numpy(image), 2.3) == pytest.approx(expected, abs=1e-9)
    assert 0.5 <= expected < 1


def test_centre_square_in_a_resized_image():
    assert centre_square(640, 480, 224) == (slice(0, 224), slice(28, 196))
    assert centre_square(480, 640, 224) == (slice(28, 196), slice(0, 224))
    assert centre_square(300, 300, 64) == (slice(0, 64), slice(0, 64))


def test_common_pixel_rows_score_the_centre_region(tmp_path):
    rng = np.random.default_rng(8)
    arms_out = {arm: tmp_path / arm for arm in ("resize", "crop")}
    images = {}
    for arm, out in arms_out.items():
        truth = rng.integers(0, 256, size=(3, 32, 32), dtype=np.uint8)
        pred = np.clip(truth.astype(int) + rng.integers(-20, 21, size=truth.shape), 0, 255).astype(np.uint8)
        write_png(out / "ground_truth" / "5.png", torch.from_numpy(truth))
        write_png(out / "predictions" / "m" / "5.png", torch.from_numpy(pred))
        write_label_png(out / "segments" / "5.png", np.ones((32, 32), dtype=np.int64))
        images[arm] = truth, pred
    found = common_pixel_rows(arms_out["resize"], arms_out["crop"], 32, {"5": (64, 32)}, ["m"], ["psnr"])
    assert [(r["model"], r["image_id"], r["metric"]) for r in found] == [("m", "5", "psnr")]

    def psnr(truth, pred):
        return 10 * np.log10(1 / np.mean(((truth.astype(float) - pred) / 255) ** 2))
    truth, pred = images["resize"]
    assert found[0]["resize"] == pytest.approx(psnr(truth[:, :, 8:24], pred[:, :, 8:24]), abs=1e-4)
    assert found[0]["crop"] == pytest.approx(psnr(*images["crop"]), abs=1e-4)


def test_crop_run_is_scored_on_common_pixels(tmp_path):
    arms_out = {mode: tmp_path / mode for mode in ("resize", "center-crop")}
    for mode, out in arms_out.items():
        assert main(["run", "--models", "gray", "--size", "32", "--resize-mode", mode, "--no-study",
                     "--metrics", "psnr,ssim,deltae2000", "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(arms_out["resize"]), "--crop-run", str(arms_out["center-crop"])]) == 0
    found = read_csv(arms_out["resize"] / "analysis" / "common_pixels.csv")
    crop_records = {r["image_id"]: float(r["psnr"]) for r in read_csv(arms_out["center-crop"] / "per_image.csv")}
    psnr = {r["image_id"]: float(r["crop"]) for r in found if r["metric"] == "psnr"}
    assert psnr and psnr == pytest.approx({i: crop_records[i] for i in psnr}, abs=1e-6)  # the crop arm is whole
    claims = {(c["rule_version"], c["claim"]): c for c in read_csv(arms_out["resize"] / "claims.csv")}
    assert claims["2", "C7"]["verdict"] == NOT_RUN and "no trained model" in claims["2", "C7"]["numbers"]


C8_BASE = {"segment_chroma_ratio": 0.6, "vivid_recall": 0.5}


def test_c8_outcomes():
    """Captions improve colorization: a caption model beats chromagan-noclass on both segment metrics and (when it
    reads the caption) its caption sensitivity is positive."""
    def c8(model, shift, sensitivity=(0.05, 0.02, 0.08), n_seeds=3):
        e = arms(model, "chromagan-noclass", {m: [shift] * n_seeds for m in C8_BASE}, C8_BASE, n_seeds)
        for row in e.leaderboard:
            if row["model"].startswith(model):
                for metric in C8_BASE:
                    row.update({f"caption_sensitivity_{metric}": str(sensitivity[0]),
                                f"caption_sensitivity_{metric}_lo": str(sensitivity[1]),
                                f"caption_sensitivity_{metric}_hi": str(sensitivity[2])})
        return bound("4", "C8")(e)
    assert c8("model-c1", 0.2).outcome == SUPPORTED
    assert c8("model-c1", -0.2).outcome == NOT_SUPPORTED
    assert c8("model-c1", 0.2, (0.0, -0.01, 0.01)).outcome == INCONCLUSIVE  # better, but not through the caption
    assert c8("model-b", 0.2, (-0.05, -0.08, -0.02)).outcome == NOT_SUPPORTED  # the true caption scores worse
    assert c8("model-c2", 0.2, (float("nan"),) * 3).outcome == SUPPORTED  # reads no caption: (2) does not apply
    one_seed = c8("model-c1", 0.2, n_seeds=1)
    assert one_seed.outcome == INCONCLUSIVE and "only 1 seed" in one_seed.numbers
    alone = make({"model-c1": info()}, rows("model-c1", np.random.default_rng(0), segment_chroma_ratio=(0.6, 0.1),
                                            vivid_recall=(0.5, 0.1)))
    assert bound("4", "C8")(alone).outcome == NOT_RUN
