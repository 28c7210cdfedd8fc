"""The paired within-image study: its statistics on hand-made rows, the recolourings and oversaturation (L kept,
chroma as intended), donor and hue rules, and the bounding of the study's size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from colorbench.analysis.paired import PAIRED_COLUMNS, outputs_table, paired_preferences
from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.data.color import chroma, rgb_to_lab
from colorbench.pipeline.context import study_subset
from colorbench.study.perturbations import SWEEPS_BY_NAME
from colorbench.study.recolour import (
    FALLBACK_HUE_SHIFT,
    ObjectInstance,
    ab_statistics,
    gamut_map_ab,
    hue_difference,
    in_srgb_gamut,
    mean_hue,
    nearest_donors,
    plausible_hue_change,
    recolour_object,
    tiny_image_features,
    transfer_ab,
)
from colorbench.study.run import announce, degraded_per_image, parse_study_images, to_rgb8
from tests.conftest import to_batch_tensor
from tests.test_runner import read_rows


@pytest.fixture(scope="module")
def lab(photos) -> torch.Tensor:
    return rgb_to_lab(to_batch_tensor(*photos).float())


def _outputs(psnr_dull, psnr_alt, ssim_dull=None, ssim_alt=None) -> pd.DataFrame:
    n = len(psnr_dull)
    ssim_dull = [0.95] * n if ssim_dull is None else ssim_dull
    ssim_alt = [0.9] * n if ssim_alt is None else ssim_alt
    rows = [{"output": "grey", "image_id": str(i), "psnr": psnr_dull[i], "ssim": ssim_dull[i]} for i in range(n)]
    rows += [{"output": "colour_transfer", "image_id": str(i), "psnr": psnr_alt[i], "ssim": ssim_alt[i]}
             for i in range(n)]
    return pd.DataFrame(rows)


def test_dull_always_preferred_gives_one_with_an_interval_excluding_half():
    rng = np.random.default_rng(1)
    alt = rng.uniform(15, 25, 40)
    table = paired_preferences(_outputs(alt + rng.uniform(0.5, 3, 40), alt), ["psnr", "ssim"])
    assert list(table.columns) == list(PAIRED_COLUMNS)
    row = table[(table.metric == "psnr") & (table.band == "all")].iloc[0]
    assert row.n == 40 and row.prefers_dull == 1.0
    assert row.prefers_dull_lo > 0.5 and row.prefers_dull_hi == 1.0
    assert row.mean_diff_lo > 0 and row.mean_diff_lo <= row.mean_diff <= row.mean_diff_hi


def test_half_and_half_gives_an_interval_containing_half():
    alt = np.full(40, 20.0)
    dull = alt + np.tile([1.0, -1.0], 20)
    row = paired_preferences(_outputs(dull, alt), ["psnr"]).query("band == 'all'").iloc[0]
    assert row.prefers_dull == 0.5 and row.prefers_dull_lo < 0.5 < row.prefers_dull_hi
    assert row.mean_diff_lo < 0 < row.mean_diff_hi


def test_ties_count_half_and_lower_is_better_metrics_are_turned():
    rows = [{"output": o, "image_id": str(i), "deltae2000": v} for i in range(6)
            for o, v in (("grey", 5.0 if i < 3 else 2.0), ("oversaturated_150", 5.0 if i < 3 else 4.0))]
    row = paired_preferences(pd.DataFrame(rows), ["deltae2000"]).query("band == 'all'").iloc[0]
    assert row.prefers_dull == pytest.approx(0.75)  # three ties (half each) and three wins of the smaller error
    assert row.mean_diff == pytest.approx(1.0)  # goodness = -deltae: dull is better by 2 on half the images


def test_high_band_keeps_images_whose_dull_output_passes_both_thresholds():
    dull = np.array([25.0, 25.0, 18.0, 30.0])
    table = paired_preferences(_outputs(dull, dull - 1, ssim_dull=[0.95, 0.85, 0.95, 0.92]), ["psnr", "ssim"])
    high = table[(table.metric == "psnr") & (table.band == "high")].iloc[0]
    assert high.n == 2  # image 1 fails SSIM 0.9, image 2 fails PSNR 22 dB
    assert np.isnan(paired_preferences(_outputs(dull[:1], dull[:1]), ["psnr"]).prefers_dull_lo).all()


def test_absent_metrics_are_skipped_not_fatal():
    table = paired_preferences(_outputs([30.0, 31.0], [29.0, 28.0]), ["psnr", "semantic_kl", "semantic_top1"])
    assert set(table.metric) == {"psnr"}


def test_recolourings_and_oversaturation_keep_lightness(lab):
    L, ab = lab[:, :1], lab[:, 1:]
    mask = torch.zeros_like(L, dtype=torch.bool)
    mask[..., 20:80, 30:100] = True
    donor_mean, donor_std = ab_statistics(ab.flip(0))
    variants = {"oversaturated_200": ab * 2, "object_hue": recolour_object(ab, mask, 120.0),
                "transfer": transfer_ab(ab, donor_mean, donor_std)}
    for name, new_ab in variants.items():
        rgb8 = to_rgb8(L, new_ab)
        lightness = rgb_to_lab(rgb8.float() / 255)[:, :1]
        error = (lightness - L).abs()
        assert float(error.max()) < 1.5 and float(error.mean()) < 0.3, name  # 8-bit quantization only


def test_gamut_mapping_keeps_hue_and_only_reduces_chroma(lab):
    L, ab = lab[:, :1], lab[:, 1:] * 2
    mapped = gamut_map_ab(L, ab)
    assert bool(in_srgb_gamut(torch.cat((L, mapped), dim=1)).float().mean() > 0.999)
    scale = chroma(mapped) / chroma(ab).clamp_min(1e-6)
    assert float(scale.max()) <= 1 + 1e-6
    coloured = chroma(ab)[:, 0] > 5
    cross = ab[:, 0] * mapped[:, 1] - ab[:, 1] * mapped[:, 0]  # parallel vectors: same hue
    assert float((cross.abs() / chroma(ab)[:, 0].clamp_min(1) ** 2)[coloured].max()) < 1e-4


def test_oversaturation_increases_chroma(lab):
    sweep = SWEEPS_BY_NAME["oversaturation"]
    L, ab = lab[:, :1], lab[:, 1:]
    identity = previous = chroma(ab).mean(dim=(1, 2, 3))
    for strength in sweep.strengths[1:]:
        rgb8 = to_rgb8(L, sweep.apply(ab, None, strength))
        current = chroma(rgb_to_lab(rgb8.float() / 255)[:, 1:]).mean(dim=(1, 2, 3))
        assert bool((current >= previous - 0.1).all()), strength  # the gamut bounds the growth, never reverses it
        if strength <= 2.0:
            assert bool((current > identity * (1 + (strength - 1) / 4)).all()), strength
        previous = current


def test_hue_change_keeps_chroma(lab):
    L, ab = lab[:, :1], lab[:, 1:]
    mask = chroma(ab) > 15
    rotated = recolour_object(ab, mask, 90.0)
    assert torch.allclose(chroma(rotated), chroma(ab), atol=1e-3)
    assert torch.equal(rotated[~mask.expand_as(ab)], ab[~mask.expand_as(ab)])
    rgb8 = to_rgb8(L, rotated)  # after gamut mapping and 8-bit rounding the median object chroma stays
    kept = chroma(rgb_to_lab(rgb8.float() / 255)[:, 1:])[mask] / chroma(ab)[mask]
    assert abs(float(kept.median()) - 1) < 0.05


def test_colour_transfer_matches_the_donors_ab_statistics(lab):
    ab = lab[:, 1:]
    donor_mean, donor_std = ab_statistics(ab.flip(0))
    moved_mean, moved_std = ab_statistics(transfer_ab(ab, donor_mean, donor_std))
    assert torch.allclose(moved_mean, donor_mean, atol=1e-3) and torch.allclose(moved_std, donor_std, atol=1e-3)
    grey = transfer_ab(torch.zeros_like(ab), donor_mean, donor_std)  # no spread: takes the donor's mean
    assert torch.allclose(ab_statistics(grey)[0], donor_mean)


def test_donor_is_the_nearest_other_image_by_lightness_layout():
    L = torch.zeros(3, 1, 32, 32)
    L[0, :, :16] = 80
    L[1, :, :14] = 70  # nearly the same layout as image 0
    L[2, :, :, :16] = 80  # the transposed layout
    assert nearest_donors(tiny_image_features(L)) == [1, 0, 0]
    assert nearest_donors(tiny_image_features(L[:1])) == [-1]


def test_plausible_hue_is_the_farthest_hue_of_the_same_class_elsewhere():
    ab = torch.zeros(2, 8, 8)
    ab[:] = 30.0  # hue 45 degrees, chroma 42
    mask = torch.ones(8, 8, dtype=torch.bool)
    pool = [ObjectInstance("a", "car", 45.0), ObjectInstance("b", "car", 100.0), ObjectInstance("c", "car", -90.0),
            ObjectInstance("d", "dog", -135.0)]
    own = mean_hue(ab, mask)
    assert own[0] == pytest.approx(45.0) and own[1] == pytest.approx(30.0 * 2**0.5)
    change = plausible_hue_change("a", own, "car", pool)
    assert change is not None and change.degrees == pytest.approx(-135.0) and "image c" in change.detail
    fallback = plausible_hue_change("a", own, None, pool)
    assert fallback is not None and fallback.degrees == FALLBACK_HUE_SHIFT
    assert plausible_hue_change("a", mean_hue(torch.zeros(2, 8, 8), mask), "car", pool) is None  # no hue
    assert plausible_hue_change("a", None, "car", pool) is None  # no object
    assert hue_difference(-170.0, 170.0) == pytest.approx(20.0)


def test_study_size_is_bounded_and_parsed():
    ids = [str(i) for i in range(100)]
    assert study_subset(ids, 10) == ids[:10] and study_subset(ids, None) == ids and study_subset(ids[:5], 10) == ids[:5]
    assert study_subset(ids, 20)[:10] == study_subset(ids, 10)  # nested
    assert parse_study_images("all") is None and parse_study_images("25") == 25
    for bad in ("0", "-3", "many"):
        with pytest.raises(BenchError, match="--study-images"):
            parse_study_images(bad)
    expected = 1 + sum(len(s.strengths) - 1 for s in SWEEPS_BY_NAME.values()) + 2
    assert degraded_per_image() == expected


def test_trained_models_join_the_variants_as_alternatives():
    variants = [{"variant": "grey", "image_id": str(i), "detail": "desaturation 0", "psnr": "30", "ssim": "0.95"}
                for i in range(4)]
    per_image = [{"model": m, "image_id": str(i), "psnr": p, "ssim": "0.9"}
                 for i in range(4) for m, p in (("chromagan", "28"), ("baseline0", "35"))]
    outputs = outputs_table(variants, per_image, ["chromagan"], ["psnr", "ssim", "semantic_kl"])
    assert set(outputs["output"]) == {"grey", "chromagan"} and "semantic_kl" not in outputs.columns
    row = paired_preferences(outputs, ["psnr", "ssim"]).query("metric == 'psnr' and band == 'high'").iloc[0]
    assert row.alternative == "chromagan" and row.n == 4 and row.prefers_dull == 1.0


def test_coco_segment_labels_carry_their_class(coco_mini):
    from colorbench.data.segments import coco_label_categories, coco_label_map
    from colorbench.data.sources import open_source

    coco = open_source(f"coco:{coco_mini}:val2017").instances()
    image_id = next(i for i in coco.getImgIds() if coco.getAnnIds(imgIds=[i], iscrowd=False))
    info = coco.loadImgs(image_id)[0]
    labels = coco_label_map(coco, image_id, info["height"], info["width"])
    names = coco_label_categories(coco, image_id)
    assert set(names) >= set(np.unique(labels[labels > 0]).tolist())
    assert set(names.values()) <= {c["name"] for c in coco.loadCats(coco.getCatIds())}


def test_study_command_writes_the_paired_table_and_figure(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--size", "48", "--out", str(out), "--no-progress", "--study-images", "4",
                 "--metrics", "psnr,ssim"]) == 0
    rows = read_rows(out / "study" / "perturbations.csv")
    assert len({r["image_id"] for r in rows}) == 4
    variants = read_rows(out / "study" / "paired_variants.csv")
    assert {"grey", "desaturated_50", "oversaturated_150", "oversaturated_200", "colour_transfer"} <= {
        v["variant"] for v in variants}
    grey = {v["image_id"]: v["psnr"] for v in variants if v["variant"] == "grey"}
    assert grey == {r["image_id"]: r["psnr"] for r in rows if r["sweep"] == "desaturation" and r["strength"] == "0"}
    table = read_rows(out / "analysis" / "paired_study.csv")
    assert list(table[0]) == list(PAIRED_COLUMNS) and {t["dull"] for t in table} == {"grey", "desaturated_50"}
    assert (out / "figures" / "paired_study.png").is_file()
    assert 'id="paired"' in (out / "index.html").read_text()
    stamp = (out / "study" / "perturbations.csv").stat().st_mtime_ns
    assert main(["study", "--size", "48", "--out", str(out), "--no-progress", "--study-images", "4",
                 "--metrics", "psnr,ssim"]) == 0
    assert (out / "study" / "perturbations.csv").stat().st_mtime_ns == stamp  # nothing rescored


def test_large_studies_announce_their_size_and_cost():
    line = announce(100, 224 * 224, compiled=False)
    assert f"100 images x {degraded_per_image()} variants = {100 * degraded_per_image()} degraded images" in line
    assert "--study-images" in line
    eager, compiled = (float(announce(100, 224 * 224, c).split("about ")[1].split(" CPU-minutes")[0])
                       for c in (False, True))
    assert eager > compiled > 0
