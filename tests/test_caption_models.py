"""The caption models (issue 9): tokenizer and vocabulary determinism, FiLM identity at initialisation, shapes,
a loss decrease in one step, checkpoint round trip and bit-for-bit CPU resume for model-b, model-c1 and model-c2,
folder sidecar captions, and the pretrained sentence encoder where its package is installed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from colorbench.core.errors import BenchError
from colorbench.data.color import luma_bt601, rgb_to_lab
from colorbench.data.loader import Batch
from colorbench.data.sources import open_source
from colorbench.data.splits import ManifestEntry, build_manifest
from colorbench.io.checkpoints import load_state, save_state, state_sha256
from colorbench.models.caption_gan import build
from colorbench.models.captions import (
    SPECIALS,
    TOKEN_SLOTS,
    VOCAB_CAPACITY,
    BiLSTMEncoder,
    PretrainedSentenceEncoder,
    Vocabulary,
    build_vocabulary,
    pretrained_available,
    tokenize,
)
from colorbench.models.chromagan import build as build_chromagan
from colorbench.models.registry import get_model_spec
from colorbench.models.trainable import TrainingData
from colorbench.training.loop import prepare_state, train
from tests.test_train import one_step_effect

CPU = torch.device("cpu")
TINY = {"profile": "smoke", "image_size": 64, "width": 0.0625, "trunk_init": "xavier"}
CAPTIONS = ["A woman in a space suit.", "A cat sitting on a chair", "A cup of coffee on a saucer"]
NAMES = ("model-b", "model-c1", "model-c2")


def photo_batch(captions: list[str] = CAPTIONS, size: int = 64) -> Batch:
    import skimage.data

    photos = [getattr(skimage.data, name)()[:256, :256, :3].copy() for name in ("astronaut", "chelsea", "coffee")]
    rgb = torch.stack([torch.from_numpy(p) for p in photos]).permute(0, 3, 1, 2).float() / 255
    rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="area")
    lab = rgb_to_lab(rgb)
    return Batch(["1", "2", "3"], list(captions), (rgb * 255).round().byte(), rgb, lab[:, :1], lab[:, 1:],
                 luma_bt601(rgb))


def with_vocabulary(model, cache: Path, captions=CAPTIONS):  # type: ignore[no-untyped-def]
    """Prepare ``model`` for training on entries with ``captions`` (the vocabulary step of prepare_training)."""
    entries = [ManifestEntry(str(i), f"{i}.png", c, "0" * 64, "ok", "", 64, 64, Path(f"{i}.png"))
               for i, c in enumerate(captions)]
    model.prepare_training(TrainingData(entries, "test", "resize", cache, CPU, progress=False))
    return model


# -- text --------------------------------------------------------------------------------------------------
def test_tokenizer_lower_cases_and_strips_punctuation():
    assert tokenize("A man's RED-and-white Frisbee, flying!") == ["a", "mans", "red", "and", "white", "frisbee",
                                                                  "flying"]
    assert tokenize("  ...  ") == [] and tokenize("Two\tdogs\n") == ["two", "dogs"]


def test_vocabulary_is_deterministic_frequency_then_alphabetical(tmp_path):
    captions = ["the red bus", "A blue bus.", "the dog", "zebra apple"]
    vocabulary = build_vocabulary(captions, size=4)
    # bus and the occur twice; a, apple, blue, dog, red, zebra once: ties alphabetical, cut at four words.
    assert vocabulary.words == (*SPECIALS, "bus", "the", "a", "apple")
    assert build_vocabulary(list(reversed(captions)), size=4) == vocabulary
    vocabulary.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == vocabulary and loaded.sha256 == vocabulary.sha256
    assert vocabulary.encode("The zebra", bos=True, eos=True) == [2, 5, 1, 3]
    assert build_vocabulary(captions, size=5).sha256 != vocabulary.sha256
    (tmp_path / "bad.json").write_text(json.dumps({"words": ["x"]}))
    with pytest.raises(BenchError, match=r"bad.json"):
        Vocabulary.load(tmp_path / "bad.json")


def test_default_vocabulary_keeps_1500_words():
    captions = [f"word{i} " * (1 + i % 3) for i in range(2000)]
    assert len(build_vocabulary(captions)) == 1500 + len(SPECIALS) == VOCAB_CAPACITY


def test_bilstm_on_padded_tokens_equals_the_packed_sequence_lstm():
    """The encoder reads fixed-shape padded tokens (for XLA); its h must be the two final states of the same LSTM
    over packed sequences (independent reference: torch's pack_padded_sequence), to float32 rounding (1e-5)."""
    captions = ["two dogs", "a red square on the table", " ".join(f"w{i}" for i in range(40))]
    encoder = BiLSTMEncoder(hidden=16)
    encoder.set_vocabulary(build_vocabulary(captions))
    torch.manual_seed(0)
    for parameter in encoder.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    tokens, lengths = encoder.vocabulary.batch(captions, torch.device("cpu"))
    assert tokens.shape == (3, TOKEN_SLOTS) and lengths.tolist() == [2, 6, 30]
    packed = pack_padded_sequence(encoder.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
    _, (final, _) = encoder.lstm(packed)
    torch.testing.assert_close(encoder(captions), torch.cat((final[0], final[1]), dim=1), atol=1e-5, rtol=0)


# -- networks ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_at_initialisation_every_caption_model_is_its_unconditioned_generator(name, tmp_path):
    """Same seed: model-b (zero caption-channel weights), model-c1 (zero FiLM) and model-c2 (a decoder beside)
    colorize exactly as chromagan-noclass, whatever the caption; once FiLM or the caption channel moves, the
    caption changes the output (the identity is a property of the initialisation, not of a dead input)."""
    model = with_vocabulary(build(name, **TINY), tmp_path).eval()
    base = build_chromagan("chromagan-noclass", **TINY).eval()
    batch = photo_batch()
    expected = base.colorize(batch.inputs_for(("L",)))
    inputs = get_model_spec(name).inputs
    swapped = replace(batch, captions=list(reversed(batch.captions)))
    with torch.no_grad():
        assert torch.equal(model.colorize(batch.inputs_for(inputs)), expected)
        assert torch.equal(model.colorize(swapped.inputs_for(inputs)), expected)
        if name == "model-c2":
            return
        for parameter in (model.generator.film.parameters() if name == "model-c1"
                          else [model.generator.generator.trunk[0].weight]):
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(3)) * 0.5)
        assert not torch.equal(model.colorize(batch.inputs_for(inputs)), model.colorize(swapped.inputs_for(inputs)))


def test_film_modulates_every_convolution_block():
    model = build("model-c1", **TINY)
    widths = [layer.out_features // 2 for layer in model.generator.film]
    assert len(widths) == 10 + 4 + 2 + 5  # trunk convolutions, global, mid-level and decoder blocks
    assert all(not layer.weight.count_nonzero() and not layer.bias.count_nonzero() for layer in model.generator.film)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_registry(name, tmp_path):
    spec = get_model_spec(name)
    assert spec.training == "train" and spec.adversarial
    assert ("caption" in spec.inputs) == (name != "model-c2")
    model = with_vocabulary(build(name, **TINY), tmp_path).eval()
    L = torch.rand(2, 1, 50, 70) * 100
    from colorbench.data.loader import ModelInputs

    values = {"L": L, "caption": CAPTIONS[:2]}
    with torch.no_grad():
        rgb = model.colorize(ModelInputs({k: values[k] for k in spec.inputs}, 2))
    assert rgb.shape == (2, 3, 50, 70) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    options = model.options()
    assert options["vocabulary_sha256"] == build_vocabulary(CAPTIONS).sha256
    assert options["text_encoder"] == (None if name == "model-c2" else "bilstm")


def test_model_c2_decoder_predicts_each_next_word(tmp_path):
    model = with_vocabulary(build("model-c2", **TINY), tmp_path)
    x = torch.rand(3, 3, 64, 64)
    ab, logits = model.generator(x, CAPTIONS)
    targets = model.generator.caption_targets(CAPTIONS, CPU)
    assert ab.shape == (3, 2, 64, 64) and logits.shape == (*targets.shape, VOCAB_CAPACITY)
    assert model.generator(x, None)[1] is None


def test_an_empty_caption_is_refused_not_encoded(tmp_path):
    model = with_vocabulary(build("model-c1", **TINY), tmp_path).eval()
    batch = photo_batch(["a cat", "", "a dog"])
    with pytest.raises(BenchError, match="not applicable"):
        model.colorize(batch.inputs_for(("L", "caption")))
    with pytest.raises(BenchError, match="1 of 3 training images of test have none"):
        with_vocabulary(build("model-b", **TINY), tmp_path, ["a cat", "!", "a dog"])


# -- training ----------------------------------------------------------------------------------------------
def trained_step(name: str, cache: Path):  # type: ignore[no-untyped-def]
    model = with_vocabulary(build(name, **{**TINY, "lr": 1e-5}), cache)
    state, step = prepare_state(model, CPU)
    step.rng = torch.Generator().manual_seed(0)
    return model, state, step


@pytest.mark.parametrize("name", NAMES)
def test_one_step_lowers_the_generator_and_critic_losses(name, tmp_path):
    model, state, step = trained_step(name, tmp_path)
    losses, (g_before, g_after), critic = one_step_effect(model, state, step, photo_batch())
    assert set(losses) <= set(model.loss_names) and ("caption_ce" in losses) == (name == "model-c2")
    assert "class_kl" not in losses and torch.isfinite(torch.stack(list(losses.values()))).all()
    assert g_after < g_before
    assert critic is not None and critic[1] < critic[0]


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_carries_the_vocabulary(name, tmp_path):
    model, _, step = trained_step(name, tmp_path)
    batch = photo_batch()
    model.training_step(batch, step)
    digest = save_state(tmp_path / "final.safetensors", model.state_dict())
    fresh = build(name, **TINY)  # no vocabulary until the weights arrive
    fresh.load_state_dict(load_state(tmp_path / "final.safetensors"))
    assert digest == fresh.weights_sha256() == model.weights_sha256()
    assert fresh.options()["vocabulary_sha256"] == model.options()["vocabulary_sha256"]
    inputs = batch.inputs_for(get_model_spec(name).inputs)
    model.eval(), fresh.eval()
    assert torch.equal(model.colorize(inputs), fresh.colorize(inputs))


@pytest.fixture(scope="module")
def sample_manifest():
    return build_manifest(open_source("sample:train"), "full", progress=False)


@pytest.mark.parametrize("name", NAMES)
def test_resume_equals_uninterrupted_training_bit_for_bit(name, sample_manifest, tmp_path):
    """Three epochs in one go == two epochs, then a resumed third; the vocabulary file is saved in the run."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    inputs = get_model_spec(name).inputs
    first = train(build(name, **TINY, epochs=3), name, inputs, sample_manifest, whole, device=CPU, progress=False)
    assert first["weights_from"] == "trained"
    assert len(list((whole / "train").glob("vocabulary-*.json"))) == 1
    train(build(name, **TINY, epochs=2), name, inputs, sample_manifest, parts, device=CPU, progress=False)
    resumed = train(build(name, **TINY, epochs=3), name, inputs, sample_manifest, parts, device=CPU, progress=False)
    assert resumed["training"]["resumed_from_epoch"] == 2
    final = f"checkpoints/{name}.safetensors"
    assert state_sha256(load_state(whole / final)) == state_sha256(load_state(parts / final))


# -- sidecar captions and the pretrained encoder -------------------------------------------------------------
def test_folder_sidecar_captions(tmp_path):
    from PIL import Image

    for stem in ("beach", "dog"):
        Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / f"{stem}.png")
    assert [r.caption for r in open_source.__wrapped__(f"folder:{tmp_path}").records()] == ["", ""]
    (tmp_path / "captions.json").write_text(json.dumps({"beach.png": "A sunny  beach", "cat": "unused"}))
    assert [r.caption for r in open_source.__wrapped__(f"folder:{tmp_path}").records()] == ["A sunny beach", ""]
    (tmp_path / "captions.csv").write_text("image,caption\ndog,a brown dog\n")
    with pytest.raises(BenchError, match=r"both captions.json and captions.csv"):
        open_source.__wrapped__(f"folder:{tmp_path}").records()
    (tmp_path / "captions.json").unlink()
    assert [r.caption for r in open_source.__wrapped__(f"folder:{tmp_path}").records()] == ["", "a brown dog"]
    (tmp_path / "captions.csv").write_text("name,text\ndog,a brown dog\n")
    with pytest.raises(BenchError, match=r"captions.csv needs a header row"):
        open_source.__wrapped__(f"folder:{tmp_path}").records()
    (tmp_path / "captions.csv").unlink()
    (tmp_path / "captions.json").write_text(json.dumps({"dog": 3}))
    with pytest.raises(BenchError, match=r"captions.json: the caption of 'dog' is a int"):
        open_source.__wrapped__(f"folder:{tmp_path}").records()


@pytest.mark.skipif(pretrained_available() is not None, reason=str(pretrained_available()))
def test_pretrained_sentence_encoder_is_frozen_offline_and_recorded():
    encoder = PretrainedSentenceEncoder()
    vectors = encoder(["a red square", "a blue square"])
    assert vectors.shape == (2, 384) and torch.allclose(vectors.norm(dim=1), torch.ones(2), atol=1e-4)
    model = build("model-c1", **TINY, text_encoder="minilm")
    assert not any(k.startswith("generator.text") for k in model.state_dict())
    options = model.options()
    assert options["text_encoder"] == "minilm" and len(options["text_encoder_weights"]["weights_sha256"]) == 64
    assert model.options()["vocabulary_sha256"] is None
    model.eval()
    batch = photo_batch()
    assert model.colorize(batch.inputs_for(("L", "caption"))).shape == (3, 3, 64, 64)
