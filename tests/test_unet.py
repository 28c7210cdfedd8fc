"""The simple-CNN control (models/unet.py, paper Sec. 7.3) and its vivid twin (Sec. 7.6): registry entries,
shapes, loss decrease through a hand-built StepContext, equal starts of the twins (the checkpoint round trip of
every model: tests/test_model_registry.py)."""

from __future__ import annotations

import pytest
import torch

from colorbench.core.errors import BenchError
from colorbench.models.registry import get_model_spec
from colorbench.models.unet import build, build_unet_l1, build_unet_l1_vivid
from tests.training_helpers import losses_over, sample_training

TINY = {"image_size": 32, "width": 0.0625, "depth": 3}
FAST = {**TINY, "lr": 1e-3}  # a visible fall within a dozen steps at this width


def test_registry_entries_are_non_adversarial_trained_grey_input_models():
    for name in ("unet-l1", "unet-l1-vivid"):
        spec = get_model_spec(name)
        assert spec.training == "train" and spec.inputs == ("L",) and not spec.adversarial and not spec.reference
    assert build_unet_l1("smoke").loss_names == ("l1",) and build_unet_l1("smoke").adversarial_terms is None
    assert build_unet_l1_vivid("smoke").loss_names == ("l1", "vivid", "total")


def test_shapes_at_the_network_size_and_at_any_input_size():
    model = build("smoke", **TINY).eval()
    with torch.no_grad():
        assert model.net(torch.rand(2, 1, 32, 32)).shape == (2, 2, 32, 32)
        from colorbench.data.loader import ModelInputs
        rgb = model.colorize(ModelInputs({"L": torch.rand(2, 1, 40, 52) * 100}, 2))
    assert rgb.shape == (2, 3, 40, 52) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    with pytest.raises(BenchError, match="multiple of 8"):
        build("smoke", image_size=36, width=0.0625, depth=3)


def test_the_paper_profile_keeps_the_papers_budget():
    settings = build("paper", seed=3, epochs=2, width=0.0625).settings
    assert settings.loop.image_size == 224 and settings.loop.epochs == 2 and settings.loop.seed == 3
    assert build("paper", width=0.0625).settings.loop.epochs == 5


def test_l1_falls_over_steps_on_real_photos(tmp_path):
    _, batch = sample_training(tmp_path, size=32)
    losses = losses_over(build("smoke", **FAST), batch, 12)
    assert losses[-1]["l1"] < 0.9 * losses[0]["l1"]


def test_the_vivid_twin_trains_both_terms_and_lowers_its_total(tmp_path):
    data, batch = sample_training(tmp_path, size=32)
    model = build("smoke", vivid=True, **FAST)
    model.prepare_training(data)
    losses = losses_over(model, batch, 12)
    assert set(losses[0]) == {"l1", "vivid", "total"}
    assert losses[0]["total"] == pytest.approx(losses[0]["l1"] + model.vivid.weight * losses[0]["vivid"], rel=1e-5)
    assert losses[-1]["total"] < 0.9 * losses[0]["total"]  # (its vivid deficit starts under 1 Lab unit here)
    assert model.options()["vivid_segments"] == "slic" and model.options()["vivid_weight"] > 0


def test_twins_start_from_the_same_weights_and_seeds_differ():
    plain, vivid, other = build("smoke", seed=1, **TINY), build("smoke", seed=1, vivid=True, **TINY), build(
        "smoke", seed=2, **TINY)
    assert plain.weights_sha256() == vivid.weights_sha256() != other.weights_sha256()
    assert plain.options() != vivid.options()


def test_options_carry_the_loop_settings_at_the_top_level():
    options = build("smoke", seed=2, epochs=3, **TINY).options()
    assert (options["profile"], options["seed"], options["epochs"], options["image_size"]) == ("smoke", 2, 3, 32)
    assert options["width"] == 0.0625 and options["vivid_weight"] == 0.0
