"""The registry, the grey and ground-truth references, and baseline0's fitting (the shape, range and checkpoint
round trip of every model: tests/test_model_registry.py)."""

from __future__ import annotations

import pytest
import torch

from colorbench.core.errors import BenchError
from colorbench.data.color import luma_bt601, rgb_to_lab
from colorbench.data.loader import Batch
from colorbench.io.checkpoints import load_state
from colorbench.models.baseline0 import Baseline0, luma_levels
from colorbench.models.registry import get_model_spec, model_specs, register_model, resolve_model_names


def make_batch(rgb: torch.Tensor) -> Batch:
    lab = rgb_to_lab(rgb)
    return Batch([str(i) for i in range(len(rgb))], ["a caption"] * len(rgb), (rgb * 255).round().byte(), rgb,
                 lab[:, :1], lab[:, 1:], luma_bt601(rgb))


@pytest.fixture
def batch() -> Batch:
    generator = torch.Generator().manual_seed(0)
    return make_batch((torch.rand(3, 3, 20, 24, generator=generator) * 255).round() / 255)


def test_registry_lists_the_references_and_baselines():
    specs = model_specs()
    assert {"gray", "baseline0", "groundtruth"} <= specs.keys()
    assert specs["baseline0"].training == "fit" and specs["baseline0"].inputs == ("luma",)
    assert specs["groundtruth"].reference


def test_unknown_model_suggests_close_names():
    with pytest.raises(BenchError, match="did you mean baseline0"):
        get_model_spec("baseline")
    with pytest.raises(BenchError, match="--all"):
        resolve_model_names(None, all_models=False)


def test_only_references_may_read_ground_truth():
    with pytest.raises(ValueError, match="reference=True"):
        register_model("cheat", inputs=("ab",), training="none", description="x")


def test_models_cannot_read_undeclared_inputs(batch):
    with pytest.raises(KeyError, match="declares only"):
        get_model_spec("gray").build().colorize(batch.inputs_for(("luma",)))


def test_gray_has_no_chroma_and_groundtruth_reproduces_the_image(batch):
    grey = get_model_spec("gray").build().colorize(batch.inputs_for(("L",)))
    assert float(rgb_to_lab(grey)[:, 1:].abs().max()) < 0.01
    truth = get_model_spec("groundtruth").build().colorize(batch.inputs_for(("L", "ab")))
    assert torch.equal((truth * 255).round(), (batch.rgb * 255).round())


def test_baseline0_table_is_the_mean_colour_per_luma_level():
    # Two colours with the same luma level but different hue, in a 1:3 ratio -> the mean of the four pixels.
    red = torch.tensor([0.6, 0.3, 0.3])
    green = torch.tensor([0.3, (0.299 * 0.6 + 0.587 * 0.3 + 0.114 * 0.3 - 0.299 * 0.3 - 0.114 * 0.3) / 0.587, 0.3])
    assert int(luma_levels(luma_bt601(red.view(1, 3, 1, 1)))) == int(luma_levels(luma_bt601(green.view(1, 3, 1, 1))))
    image = torch.stack([red, green, green, green], dim=1).view(1, 3, 2, 2)
    model = Baseline0()
    model.fit([make_batch(image)])
    level = int(luma_levels(luma_bt601(red.view(1, 3, 1, 1))))
    assert torch.allclose(model.table[:, level].float(), (red + 3 * green) / 4, atol=1e-6)
    prediction = model.colorize(make_batch(image).inputs_for(("luma",)))
    assert torch.allclose(prediction, ((red + 3 * green) / 4).view(1, 3, 1, 1).expand(1, 3, 2, 2), atol=1e-6)


def test_baseline0_streaming_equals_one_pass(batch):
    whole, streamed = Baseline0(), Baseline0()
    whole.fit([batch])
    streamed.fit([make_batch(batch.rgb[i : i + 1]) for i in range(len(batch))])
    assert torch.allclose(whole.table, streamed.table, atol=1e-12)


def test_baseline0_unseen_levels_interpolate_and_empty_fit_is_identity():
    empty = Baseline0()
    empty.finish()
    assert torch.allclose(empty.table[0], torch.linspace(0, 1, 256, dtype=torch.float64))
    model = Baseline0()
    dark, bright = torch.full((1, 3, 1, 1), 0.2), torch.full((1, 3, 1, 1), 0.6)
    model.fit([make_batch(torch.cat([dark, bright], dim=3))])
    mid = (int(luma_levels(luma_bt601(dark))) + int(luma_levels(luma_bt601(bright)))) // 2
    assert 0.2 < float(model.table[0, mid]) < 0.6


def test_baseline0_loss_decreases_with_fitting(batch):
    """The 'one step lowers the loss' check for a statistics model: fitting beats the identity table."""
    model = Baseline0()
    inputs = batch.inputs_for(("luma",))
    before = torch.mean((model.colorize(inputs) - batch.rgb) ** 2)
    model.fit([batch])
    after = torch.mean((model.colorize(inputs) - batch.rgb) ** 2)
    assert after < before


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(BenchError, match="checkpoint not found"):
        load_state(tmp_path / "missing.safetensors")
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(BenchError, match=r"pickle\.pt"):
        load_state(tmp_path / "pickle.pt")
