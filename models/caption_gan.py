"""The caption models of the paper (Sec. 4.2.3 Model B, Sec. 4.2.4 Model C; reference.md sec. 2-3): ChromaGAN
without class head, told the image's caption (networks in models/caption_nets.py, text in models/captions.py).

- ``model-b``: mean-pooled 50-d word embeddings, projected to one extra input channel;
- ``model-c1``: FiLM on every convolution block, gamma and beta linear in the BiLSTM's final hidden state;
- ``model-c2``: an LSTM caption decoder over the generator's pooled global features, trained with cross-entropy
  in place of ChromaGAN's class-distribution loss, with its weight gamma_s (Sec. 4.2.4: "the class distribution
  loss is replaced by the LSTM's classification loss"); it reads no caption at prediction time.

Training is ChromaGAN's (models/chromagan.py): the same profiles, loss weights, WGAN-GP critic and step order.
The optimiser and schedule are those of ``chromagan-noclass`` (Adam beta1 0.5, batch 10 in the ``paper``
profile), so that the caption is the only difference in the comparison of the caption claim (the paper's own
Model B used Model A's beta1 0.9 and batch 256; pass ``betas``/``batch_size`` overrides for that).

B and C.1 read the caption through the learned encoder (``text_encoder="bilstm"``, default) or the pretrained
all-MiniLM-L6-v2 sentence encoder (``"minilm"``, frozen, optional extra ``text``); the choice is in the options.
The vocabulary (1,500 words) is built in :meth:`CaptionGAN.prepare_training` from the training captions, saved
as ``train/vocabulary-<hash>.json`` in the run, and carried in the weights (see ``VocabularyHolder``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.cachekey import cache_key
from colorbench.core.errors import BenchError
from colorbench.data.loader import Batch, ModelInputs
from colorbench.models.caption_nets import CaptionChannelNet, CaptionDecoderNet, FiLMNet, init_caption_layers
from colorbench.models.captions import (
    TEXT_ENCODERS,
    PretrainedSentenceEncoder,
    VocabularyHolder,
    build_vocabulary,
    make_text_encoder,
    tokenize,
)
from colorbench.models.chromagan import PROFILES, VARIANTS, ChromaGAN, ChromaGANSettings, ab_to_unit, rgb_from_ab01
from colorbench.models.chromagan_nets import Generator, scaled
from colorbench.models.gan import generator_adversarial
from colorbench.models.registry import register_model
from colorbench.models.trainable import StepContext, TrainingData, profile_settings

#: The ChromaGAN entry whose optimiser, schedule and initial generator the caption models share.
BASELINE = "chromagan-noclass"


class CaptionGAN(ChromaGAN):
    """A ChromaGAN whose generator also reads the caption. ``wrap`` turns the plain generator (built and seeded
    as ``chromagan-noclass``'s) into the family member's network; ``text_encoder`` is None for Model C.2."""

    generator_terms: tuple[str, ...] = ("mse", "g_adv")

    def __init__(self, settings: ChromaGANSettings, wrap: Callable[[Generator], nn.Module], text_encoder: str | None,
                 trunk_init: str = "auto") -> None:
        super().__init__(settings, None, trunk_init)
        self.text_encoder = text_encoder
        assert isinstance(self.generator, Generator)  # ChromaGAN's own, before the wrap
        self.generator = wrap(self.generator)

    def vocabulary_holders(self) -> list[VocabularyHolder]:
        return [m for m in self.generator.modules() if isinstance(m, VocabularyHolder)]

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        ab01, _ = self.generator(self.network_input(inputs.L), inputs.captions)
        return rgb_from_ab01(inputs.L, ab01)

    def generator_forward(self, batch: Batch, step: StepContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        with step.autocast():
            fake, logits = step.nets["generator"](
                self.network_input(batch.L).contiguous(memory_format=step.memory_format), batch.captions)
        return fake.float(), logits

    def prepare_training(self, data: TrainingData) -> None:
        """The vocabulary of the training captions (every training image must have one; building it takes a
        tokenizer pass), saved in ``data.cache_dir`` and given to the networks that index with it."""
        missing = [e.image_id for e in data.entries if not tokenize(e.caption)]
        if missing:
            raise BenchError(f"caption models train on captions, but {len(missing)} of {len(data.entries)} training "
                             f"images of {data.source} have none (first: {missing[0]}); give a folder source a "
                             "captions.json or captions.csv sidecar")
        captions = sorted(e.caption for e in data.entries)
        path = data.cache_dir / f"vocabulary-{cache_key(captions)}.json"
        vocabulary = build_vocabulary(captions)
        if not path.is_file() or path.read_bytes() != vocabulary.to_json().encode():
            vocabulary.save(path)
        for holder in self.vocabulary_holders():
            holder.set_vocabulary(vocabulary)

    def options(self) -> dict[str, object]:
        holders = self.vocabulary_holders()
        vocabulary = holders[0].vocabulary if holders and holders[0].vocabulary_json.numel() else None
        text = getattr(self.generator, "text", None)
        return {**super().options(), "text_encoder": self.text_encoder,
                **({"text_encoder_weights": text.identity} if isinstance(text, PretrainedSentenceEncoder) else {}),
                "vocabulary_sha256": vocabulary.sha256 if vocabulary else None,
                "vocabulary_size": len(vocabulary) if vocabulary else None}


class CaptionDecoderGAN(CaptionGAN):
    """Model C.2: the caption is a training target (cross-entropy of the decoder, weight gamma_s), never an
    input at prediction."""

    generator_terms = ("mse", "caption_ce", "g_adv")
    generator: CaptionDecoderNet

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        ab01, _ = self.generator(self.network_input(inputs.L), None)
        return rgb_from_ab01(inputs.L, ab01)

    def loss_weights(self) -> dict[str, float]:
        return {**super().loss_weights(), "caption_ce": self.settings.class_weight}

    def generator_losses(self, batch: Batch, step: StepContext) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fake, logits = self.generator_forward(batch, step)
        assert logits is not None  # the decoder's word logits: CaptionDecoderNet returns them with captions given
        targets = self.generator.caption_targets(batch.captions, fake.device)
        terms = {"mse": F.mse_loss(fake, ab_to_unit(batch.ab)),
                 "caption_ce": F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=0)}
        gan = self.settings.gan
        if gan is not None:
            terms.update(generator_adversarial(step, batch.L / 100, fake, gan))
        return terms, fake


def _model_b(settings: ChromaGANSettings, text_encoder: str) -> Callable[[Generator], nn.Module]:
    def wrap(generator: Generator) -> nn.Module:
        net = CaptionChannelNet(generator, make_text_encoder(text_encoder, mean_pooled=True), settings.loop.image_size)
        net.widen_input()
        init_caption_layers(net, settings.loop.seed)
        return net
    return wrap


def _model_c1(settings: ChromaGANSettings, text_encoder: str) -> Callable[[Generator], nn.Module]:
    def wrap(generator: Generator) -> nn.Module:
        net = FiLMNet(generator, make_text_encoder(text_encoder, mean_pooled=False))
        init_caption_layers(net, settings.loop.seed)
        net.zero_film()
        return net
    return wrap


def _model_c2(settings: ChromaGANSettings, text_encoder: str) -> Callable[[Generator], nn.Module]:
    def wrap(generator: Generator) -> nn.Module:
        net = CaptionDecoderNet(generator, scaled(512, settings.width))
        init_caption_layers(net, settings.loop.seed)
        return net
    return wrap


FAMILY = {
    "model-b": (_model_b, CaptionGAN, "Sec. 4.2.3, Table 4", "Model B: ChromaGAN without class head; the caption's "
                "mean 50-d word embedding projected to a fourth input channel"),
    "model-c1": (_model_c1, CaptionGAN, "Sec. 2, 4.2.4 (C.1)", "Model C.1: ChromaGAN without class head, every "
                 "convolution block FiLM-modulated by the caption's BiLSTM state (zero-initialised)"),
    "model-c2": (_model_c2, CaptionDecoderGAN, "Sec. 4.2.4 (C.2)", "Model C.2: ChromaGAN whose class loss is "
                 "replaced by a caption decoder's cross-entropy over pooled image features; reads no caption"),
}


def caption_profiles(decoder: bool) -> dict[str, ChromaGANSettings]:
    """The caption models' profiles: ``chromagan-noclass``'s (its optimiser and batch); Model C.2 (``decoder``)
    keeps the family's gamma_s, the weight of the caption cross-entropy that takes the class loss's place."""
    profiles = VARIANTS[BASELINE].profiles()
    if not decoder:
        return profiles
    return {name: replace(settings, class_weight=PROFILES[name].class_weight) for name, settings in profiles.items()}


def build(variant: str, profile: str = "paper", seed: int = 0, epochs: int | None = None, text_encoder: str = "bilstm",
          trunk_init: str = "auto", **overrides: object) -> CaptionGAN:
    """A caption model under its training profile (:func:`caption_profiles`); ``overrides`` replace single
    settings (image_size, width, betas...)."""
    if text_encoder not in TEXT_ENCODERS:
        raise BenchError(f"unknown text encoder {text_encoder!r}; choose one of {', '.join(TEXT_ENCODERS)}")
    wrap, cls, _, _ = FAMILY[variant]
    settings = profile_settings(caption_profiles(cls is CaptionDecoderGAN), profile, seed=seed, epochs=epochs,
                                **overrides)
    return cls(settings, wrap(settings, text_encoder), None if cls is CaptionDecoderGAN else text_encoder, trunk_init)


def _register() -> None:
    for name, (_, cls, paper, description) in FAMILY.items():
        inputs = ("L",) if cls is CaptionDecoderGAN else ("L", "caption")
        register_model(name, inputs=inputs, training="train", paper=paper, description=description,
                       adversarial=True)(functools.partial(build, name))


_register()
