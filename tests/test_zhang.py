"""Zhang et al.'s classifier colorizer (models/zhang.py, reference.md sec. 4): the 313 bins and their provenance,
soft encoding, annealed mean, class rebalancing, shapes, loss decrease, and loading the authors' release file
through a state dict with its names and shapes (no download). The checkpoint round trip of every model:
tests/test_model_registry.py."""

from __future__ import annotations

import json

import pytest
import torch

from colorbench.core.errors import BenchError
from colorbench.data.color import rgb_to_lab
from colorbench.data.loader import ModelInputs
from colorbench.io.weights import WEIGHTS_DIR_ENV
from colorbench.models import zhang
from colorbench.models.registry import get_model_spec
from colorbench.models.zhang import (
    BINS_FILE,
    RELEASE_FILE,
    ZhangNet,
    ab_bins,
    annealed_mean,
    build,
    rebalancing_weights,
    smoothed_prior,
    soft_encode,
    soft_encode_dense,
)
from tests.training_helpers import losses_over, sample_training

TINY = {"image_size": 32, "width": 0.0625, "init": "scratch"}


def test_the_313_bins_regenerate_from_their_stored_ranges_and_cover_the_srgb_gamut():
    table = json.loads(BINS_FILE.read_text())
    bins = ab_bins()
    assert bins.shape == (313, 2) == (table["count"], 2) and len({tuple(b) for b in bins.tolist()}) == 313
    assert bool((bins % table["grid"] == 0).all()) and "pts_in_hull" in table["provenance"]
    assert bins.tolist() == sorted(bins.tolist())  # a ascending, then b: the release's channel order
    levels = torch.linspace(0, 1, 48)
    rgb = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij")).reshape(1, 3, -1, 1)
    cells = {tuple(c) for c in (rgb_to_lab(rgb)[0, 1:, :, 0].T / 10).round().mul(10).tolist()}
    assert cells <= {tuple(b) for b in bins.tolist()}  # every ab cell an sRGB colour falls in is a bin


def test_soft_encoding_sums_to_one_over_the_five_nearest_bins():
    ab = torch.rand(3, 2, 4, 5) * 160 - 80
    dense = soft_encode_dense(ab, ab_bins())
    assert dense.shape == (3, 313, 4, 5)
    assert torch.allclose(dense.sum(dim=1), torch.ones(3, 4, 5, dtype=dense.dtype))
    assert bool(((dense > 0).sum(dim=1) == 5).all()) and float(dense.min()) >= 0
    indices, weights = soft_encode(torch.tensor([[31.0, -19.0]]), ab_bins())
    assert ab_bins()[indices[0, 0]].tolist() == [30.0, -20.0] and float(weights[0, 0]) == float(weights.max())


@pytest.mark.parametrize("temperature", [0.38, 1.0])
def test_the_annealed_mean_of_a_one_hot_distribution_is_its_bin_centre(temperature):
    for q in (0, 100, 312):
        one_hot = torch.zeros(1, 313, 1, 1)
        one_hot[0, q] = 1
        assert annealed_mean(one_hot, ab_bins(), temperature)[0, :, 0, 0].tolist() == ab_bins()[q].tolist()


def test_annealing_moves_the_mean_towards_the_mode():
    probs = torch.zeros(1, 313, 1, 1)
    probs[0, 0], probs[0, 312] = 0.6, 0.4
    mean, annealed = annealed_mean(probs, ab_bins(), 1.0), annealed_mean(probs, ab_bins(), 0.38)
    gap = lambda ab: float((ab[0, :, 0, 0] - ab_bins()[0].float()).norm())  # noqa: E731
    assert gap(annealed) < gap(mean)


def test_rebalancing_weights_average_to_one_under_the_prior_and_favour_rare_bins():
    counts = torch.zeros(313, dtype=torch.float64)
    counts[150], counts[10] = 1000, 1
    prior = smoothed_prior(counts, ab_bins())
    assert float(prior.sum()) == pytest.approx(1.0) and float(prior[150]) > float(prior[149]) > 0
    weights = rebalancing_weights(prior, 0.5)
    assert float((prior * weights).sum()) == pytest.approx(1.0)
    assert float(weights[10]) > float(weights[150])
    assert torch.allclose(rebalancing_weights(prior, 1.0), torch.ones(313, dtype=torch.float64))


def test_registry_entry_and_shapes():
    spec = get_model_spec("zhang-eccv16")
    assert spec.training == "train" and spec.inputs == ("L",) and not spec.adversarial
    model = build("smoke", **TINY).eval()
    with torch.no_grad():
        assert model.net(torch.rand(2, 1, 32, 32)).shape == (2, 313, 8, 8)
        rgb = model.colorize(ModelInputs({"L": torch.rand(2, 1, 40, 52) * 100}, 2))
    assert rgb.shape == (2, 3, 40, 52) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1


def test_the_prior_is_computed_once_per_training_set_and_enters_the_options(tmp_path, monkeypatch):
    data, _ = sample_training(tmp_path, size=32)
    model = build("smoke", **TINY)
    assert model.options()["prior_sha256"] is None
    model.prepare_training(data)
    options = model.options()
    assert options["prior_sha256"] and options["temperature"] == 0.38 and options["rebalance_lambda"] == 0.5
    monkeypatch.setattr(zhang.ZhangColorizer, "bin_counts", lambda *args: pytest.fail("recounted a cached prior"))
    again = build("smoke", **TINY)
    again.prepare_training(data)
    assert again.options() == options
    assert torch.equal(again.class_weights, model.class_weights)


def test_the_rebalanced_cross_entropy_falls_over_steps(tmp_path):
    data, batch = sample_training(tmp_path, size=32)
    model = build("smoke", lr=1e-3, **TINY)
    with pytest.raises(RuntimeError, match="prepare_training"):
        losses_over(model, batch, 1)
    model.prepare_training(data)
    losses = losses_over(model, batch, 15)
    assert losses[-1]["ce"] < 0.95 * losses[0]["ce"]  # the soft targets keep it far above 0 (about 1.2 nats)


def release_state(order: torch.Tensor) -> dict[str, torch.Tensor]:
    """A state dict with the names and shapes of colorization_release_v2 (random values), its bins in ``order``."""
    state: dict[str, torch.Tensor] = {}
    blocks = {1: [64, 64], 2: [128, 128], 3: [256] * 3, 4: [512] * 3, 5: [512] * 3, 6: [512] * 3, 7: [512] * 3}
    channels = 1
    for block, widths in blocks.items():
        for index, width in enumerate(widths):
            state[f"model{block}.{2 * index}.weight"] = torch.randn(width, channels, 3, 3)
            state[f"model{block}.{2 * index}.bias"] = torch.randn(width)
            channels = width
        for name in ("weight", "bias", "running_mean", "running_var"):
            state[f"model{block}.{2 * len(widths)}.{name}"] = torch.rand(channels)
    state.update({"model8.0.weight": torch.randn(512, 256, 4, 4), "model8.0.bias": torch.randn(256),
                  "model8.2.weight": torch.randn(256, 256, 3, 3), "model8.2.bias": torch.randn(256),
                  "model8.4.weight": torch.randn(256, 256, 3, 3), "model8.4.bias": torch.randn(256),
                  "model8.6.weight": torch.randn(313, 256, 1, 1), "model8.6.bias": torch.randn(313),
                  "model_out.weight": (ab_bins()[order].T / 110).float().reshape(2, 313, 1, 1)})
    return state


def test_the_release_file_loads_through_the_weights_folder_with_its_bins_reordered(tmp_path, monkeypatch):
    order = torch.randperm(313, generator=torch.Generator().manual_seed(0))
    state = release_state(order)
    torch.save(state, tmp_path / RELEASE_FILE)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    model = build("smoke", width=1.0, image_size=32)
    assert model.options()["init"] == "release" and model.options()["release_file"] == RELEASE_FILE
    net = model.net
    assert torch.equal(net.stages[0][0].weight, state["model1.0.weight"])
    assert torch.equal(net.stages[6][6].running_var, state["model7.6.running_var"])
    assert torch.equal(net.decoder[0].weight, state["model8.0.weight"])
    # release channel j holds bin order[j]; ours hold the bins in ab_bins() order
    assert torch.equal(net.decoder[6].bias[order], state["model8.6.bias"])
    assert build("smoke", width=0.0625, image_size=32).options()["init"] == "scratch"


def test_a_foreign_or_misshapen_release_is_refused():
    model = build("smoke", width=1.0, image_size=32, init="scratch")
    state = release_state(torch.arange(313))
    state["model_out.weight"] = state["model_out.weight"] + 0.2
    with pytest.raises(BenchError, match="decoding centres"):
        model.load_release(state)
    state = release_state(torch.arange(313))
    state["model2.0.weight"] = torch.randn(128, 32, 3, 3)
    with pytest.raises(BenchError, match="does not fit"):
        model.load_release(state)
    with pytest.raises(BenchError, match="unexpected key"):
        model.load_release({**release_state(torch.arange(313)), "fc.weight": torch.zeros(1)})


def test_zhang_net_output_is_a_quarter_of_its_input():
    assert ZhangNet(0.0625)(torch.rand(1, 1, 64, 64)).shape == (1, 313, 16, 16)


def test_the_logits_layer_is_the_last_decoder_layer():
    decoder = ZhangNet(0.0625).decoder
    assert f"decoder.{len(decoder) - 1}" == zhang.LOGITS_LAYER and decoder[-1].out_channels == 313
