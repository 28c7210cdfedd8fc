"""The controls and the vivid variants through the generic trainer (bench/training): each trains on the built-in
sample, logs the loss terms it declares, and resumes on the CPU bit for bit (issue 10's "done when")."""

from __future__ import annotations

import pytest
import torch

from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest
from colorbench.io.checkpoints import load_state
from colorbench.models.registry import get_model_spec
from colorbench.training.loop import train
from tests.test_train import read_table

CPU = torch.device("cpu")
#: Tiny settings per model: a few seconds of training on the sample's training photos.
TINY = {
    "unet-l1": {"image_size": 32, "width": 0.0625, "depth": 3},
    "unet-l1-vivid": {"image_size": 32, "width": 0.0625, "depth": 3},
    "zhang-eccv16": {"image_size": 32, "width": 0.0625, "init": "scratch"},
    "chromagan-vivid": {"image_size": 32, "width": 0.0625, "trunk_init": "xavier", "teacher": "efficientnet-lite0"},
}


@pytest.fixture(scope="module")
def sample_manifest():
    return build_manifest(open_source("sample:train"), "full", progress=False)


def make(name: str, epochs: int):
    return get_model_spec(name).build(profile="smoke", seed=0, epochs=epochs, **TINY[name])


@pytest.mark.parametrize("name", list(TINY))
def test_resume_equals_uninterrupted_training_bit_for_bit(name, sample_manifest, tmp_path):
    """Three epochs in one go == two epochs, then a third resumed from the epoch-2 checkpoint; the logged columns
    are the model's loss terms."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    first = train(make(name, 3), name, ("L",), sample_manifest, whole, device=CPU, progress=False)
    assert first["weights_from"] == "trained" and first["training"]["epochs"] == 3
    train(make(name, 2), name, ("L",), sample_manifest, parts, device=CPU, progress=False)
    resumed = train(make(name, 3), name, ("L",), sample_manifest, parts, device=CPU, progress=False)
    assert resumed["training"]["resumed_from_epoch"] == 2
    final = f"checkpoints/{name}.safetensors"
    for key, value in load_state(whole / final).items():
        assert torch.equal(value, load_state(parts / final)[key]), key
    steps = read_table(whole / "train" / name / "steps.csv")
    assert set(make(name, 1).loss_names) <= set(steps[0]) and all(row["epoch"] for row in steps)
    if "vivid" in name:
        assert all(float(row["vivid"]) >= 0 for row in steps)
    for table in ("steps.csv", "epochs.csv"):
        assert read_table(whole / "train" / name / table) == read_table(parts / "train" / name / table)


def test_vivid_variants_are_the_plain_models_plus_one_term():
    for vivid, plain in (("chromagan-vivid", "chromagan"), ("unet-l1-vivid", "unet-l1")):
        a, b = get_model_spec(vivid), get_model_spec(plain)
        assert (a.adversarial, a.inputs, a.training) == (b.adversarial, b.inputs, b.training)
        model, twin = make(vivid, 1), get_model_spec(plain).build(profile="smoke", seed=0, epochs=1, **TINY[vivid])
        assert set(twin.loss_names) < set(model.loss_names) and "vivid" in model.loss_names
        assert model.weights_sha256() == twin.weights_sha256()  # the twins start from the same weights
        assert {k: v for k, v in model.options().items() if not k.startswith("vivid")} == {
            k: v for k, v in twin.options().items() if not k.startswith("vivid")}
    assert not get_model_spec("unet-l1").adversarial and get_model_spec("chromagan-vivid").adversarial


def test_chromagan_vivid_lowers_its_vividness_and_mse_terms(tmp_path):
    """The vivid ChromaGAN's own unit checks (its shapes are tested with every variant in tests/test_chromagan.py,
    its checkpoint round trip with every model in tests/test_model_registry.py): the generator's loss and its
    vividness term fall over steps on real photos (its MSE may rise a little: the vividness term trades it for
    chroma)."""
    from tests.training_helpers import losses_over, sample_training

    data, batch = sample_training(tmp_path, size=32)
    model = get_model_spec("chromagan-vivid").build(profile="smoke", seed=0, epochs=1, lr=1e-3,
                                                    **TINY["chromagan-vivid"])
    model.prepare_training(data)
    losses = losses_over(model, batch, 12)
    weights = model.loss_weights()
    fidelity = [row["mse"] + weights["vivid"] * row["vivid"] for row in losses]
    assert losses[-1]["vivid"] < 0.8 * losses[0]["vivid"] and fidelity[-1] < 0.9 * fidelity[0]
    assert losses[-1]["g_total"] < 0.5 * losses[0]["g_total"]
    expected = sum(weights[k] * losses[0][k] for k in weights if k in losses[0])
    assert losses[0]["g_total"] == pytest.approx(expected, rel=1e-4)
