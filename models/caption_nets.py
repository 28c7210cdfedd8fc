"""The networks of the caption models: ChromaGAN's generator without class head (models/chromagan_nets.py), told the
caption in three ways (paper Sec. 2, 4.2.3, 4.2.4; reference.md sec. 2-3).

Every network maps ``(x, captions)`` to ``(ab01, caption_logits)``: x is the (B, 3, S, S) grey input on [0, 1],
ab01 the predicted chroma on ChromaGAN's [0, 1] scale, and caption_logits the caption decoder's next-word
logits (Model C.2 in training) or None.

- :class:`CaptionChannelNet` (Model B, Sec. 4.2.3): the caption vector (mean of 50-d word embeddings) is
  projected by a dense layer to S * S values, reshaped to one image channel and given to the generator as a
  fourth input channel, so the first convolution learns how to weigh it.
- :class:`FiLMNet` (Model C.1, Sec. 2 and 4.2.4): the output Z of every convolution block of the generator (each
  trunk convolution with its ReLU, each global, mid-level and decoder block) is modulated as
  Z' = (1 + gamma_n(h)) * Z + beta_n(h), gamma_n and beta_n linear in the BiLSTM's h and initialised to zero,
  so that at initialisation the network is its unconditioned generator.
- :class:`CaptionDecoderNet` (Model C.2, Sec. 4.2.4 flavour 2): the generator plus an LSTM caption decoder whose
  initial state is computed from the global branch's features (average-pooled), trained with teacher forcing;
  prediction reads no caption.

The generator inside each network is built and initialised exactly as ChromaGAN's (same layer names, same
seeded Glorot draws), so a caption model and ``chromagan-noclass`` at the same seed start from the same
generator weights; caption-side layers get their own seeded draws (:func:`init_caption_layers`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn

from colorbench.models.captions import VOCAB_CAPACITY, WORD_DIM, TextEncoder, VocabularyHolder
from colorbench.models.chromagan_nets import Generator, layer_seed, materialized, xavier_init

#: Hidden units of Model C.2's caption decoder (per step).
DECODER_HIDDEN = 256
#: Init prefix of the caption-side layers (see :func:`init_caption_layers`).
CAPTION_PREFIX = "captions"


def base_generator(image_size: int, width: float, seed: int) -> Generator:
    """ChromaGAN's generator without class head, initialised as ``chromagan-noclass``'s at this seed."""
    return materialized(lambda: Generator(image_size, width, None), seed, "generator")


def init_caption_layers(net: nn.Module, seed: int) -> None:
    """Seeded initialisation of the caption-side layers of ``net`` (everything outside ``net.generator``):
    Glorot-uniform dense and convolution layers with zero bias (as ChromaGAN's), N(0, 1) embeddings (PyTorch's
    default law) with the <pad> row zero, LSTM weights uniform on +-1/sqrt(hidden) (PyTorch's default law); each
    layer draws from its own generator seeded by (seed, layer name)."""
    for name, layer in net.named_modules():
        if name == "generator" or name.startswith("generator."):
            continue
        if isinstance(layer, nn.Conv2d | nn.Linear):
            xavier_init(layer, seed, f"{CAPTION_PREFIX}.{name}")
            continue
        generator = torch.Generator().manual_seed(layer_seed(seed, f"{CAPTION_PREFIX}.{name}"))
        with torch.no_grad():
            if isinstance(layer, nn.Embedding):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
                if layer.padding_idx is not None:
                    layer.weight[layer.padding_idx].zero_()
            elif isinstance(layer, nn.LSTM):
                bound = layer.hidden_size ** -0.5
                for param in layer.parameters():
                    param.copy_(torch.rand(param.shape, generator=generator) * 2 * bound - bound)


class CaptionChannelNet(nn.Module):
    """Model B: the caption vector as a fourth input channel (see the module docstring)."""

    def __init__(self, generator: Generator, text: TextEncoder, image_size: int) -> None:
        super().__init__()
        self.generator, self.text, self.image_size = generator, text, image_size
        self.project = nn.Linear(text.dim, image_size * image_size)

    def widen_input(self) -> None:
        """Give the first trunk convolution a fourth input channel: the grey channels keep their weights, the
        caption channel's start at zero (so at initialisation the network is its unconditioned generator)."""
        first = self.generator.trunk[0]
        assert isinstance(first, nn.Conv2d) and first.bias is not None  # vgg16_trunk's first convolution
        wider = nn.Conv2d(first.in_channels + 1, first.out_channels, 3, padding=1).to(first.weight.device)
        with torch.no_grad():
            wider.weight.zero_()
            wider.weight[:, :first.in_channels] = first.weight
            wider.bias.copy_(first.bias)  # type: ignore[union-attr]  # nn.Conv2d's bias=True: a tensor
        self.generator.trunk[0] = wider

    def forward(self, x: torch.Tensor, captions: Sequence[str]) -> tuple[torch.Tensor, None]:
        channel = self.project(self.text(captions).to(x.dtype)).view(-1, 1, self.image_size, self.image_size)
        return self.generator(torch.cat((x, channel.to(x.dtype)), dim=1))[0], None


def film_blocks(generator: Generator) -> list[tuple[nn.Module, int]]:
    """The generator's convolution blocks in forward order, with their output channels: every trunk convolution's
    ReLU, every global and mid-level block (conv, ReLU, BN) and every decoder conv-ReLU block (not the output
    convolution, whose sigmoid output is the prediction)."""
    blocks: list[tuple[nn.Module, int]] = []
    channels = 0
    for layer in generator.trunk:
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.ReLU):
            blocks.append((layer, channels))
    for stage in (generator.global_convs, generator.mid, generator.decoder):
        for block in stage:
            if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d):
                blocks.append((block, block[0].out_channels))
    return blocks


class FiLMNet(nn.Module):
    """Model C.1: FiLM on every convolution block of the generator (see the module docstring). The modulation
    is applied by forward hooks, so the generator's own forward pass is reused unchanged."""

    def __init__(self, generator: Generator, text: TextEncoder) -> None:
        super().__init__()
        self.generator, self.text = generator, text
        blocks = film_blocks(generator)
        self.film = nn.ModuleList(nn.Linear(text.dim, 2 * channels) for _, channels in blocks)
        self._h: torch.Tensor | None = None
        for index, (block, _) in enumerate(blocks):
            block.register_forward_hook(functools.partial(self._modulate, index))

    def zero_film(self) -> None:
        """gamma = beta = 0 for every block: the network equals its unconditioned generator."""
        for param in self.film.parameters():  # each layer's weight and bias
            nn.init.zeros_(param)

    def _modulate(self, index: int, module: nn.Module, args: object, out: torch.Tensor) -> torch.Tensor:
        """Forward hook of block ``index``: Z' = (1 + gamma(h)) * Z + beta(h). Registered as a partial of this
        bound method (not a closure), so a deep copy of the network modulates with the copy's layers."""
        if self._h is None:
            raise RuntimeError("FiLMNet's generator was called without a caption")
        gamma, beta = self.film[index](self._h).to(out.dtype).chunk(2, dim=1)
        return (1 + gamma[:, :, None, None]) * out + beta[:, :, None, None]

    def forward(self, x: torch.Tensor, captions: Sequence[str]) -> tuple[torch.Tensor, None]:
        self._h = self.text(captions)
        try:
            return self.generator(x)[0], None
        finally:
            self._h = None


class CaptionDecoder(VocabularyHolder):
    """Model C.2's caption decoder: an LSTM whose initial hidden and cell states are dense maps (tanh) of the
    pooled image features, reading <bos> w_1 .. w_n and predicting w_1 .. w_n <eos> (teacher forcing)."""

    def __init__(self, features: int, hidden: int = DECODER_HIDDEN) -> None:
        super().__init__()
        self.init_state = nn.Linear(features, 2 * hidden)
        self.embedding = nn.Embedding(VOCAB_CAPACITY, WORD_DIM, padding_idx=0)
        self.lstm = nn.LSTM(WORD_DIM, hidden, batch_first=True)
        self.out = nn.Linear(hidden, VOCAB_CAPACITY)

    def forward(self, pooled: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next-word logits (B, T, V) for input tokens (B, T)."""
        h0, c0 = torch.tanh(self.init_state(pooled)).chunk(2, dim=1)
        states, _ = self.lstm(self.embedding(tokens), (h0[None].contiguous(), c0[None].contiguous()))
        return self.out(states)


class CaptionDecoderNet(nn.Module):
    """Model C.2: the generator plus :class:`CaptionDecoder` over its pooled global features (captured by a
    forward hook on the global branch). With ``captions`` None (prediction) only ab is computed."""

    def __init__(self, generator: Generator, features: int) -> None:
        super().__init__()
        self.generator = generator
        self.decoder = CaptionDecoder(features)
        self._features: torch.Tensor | None = None
        generator.global_convs.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: object, out: torch.Tensor) -> None:
        self._features = out

    def forward(self, x: torch.Tensor, captions: Sequence[str] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            ab = self.generator(x)[0]
            if captions is None:
                return ab, None
            vocabulary = self.decoder.vocabulary
            tokens, _ = vocabulary.batch(captions, x.device, bos=True, eos=True)
            pooled = self._features.float().mean(dim=(2, 3))  # type: ignore[union-attr]
            return ab, self.decoder(pooled, tokens[:, :-1])
        finally:
            self._features = None

    def caption_targets(self, captions: Sequence[str], device: torch.device) -> torch.Tensor:
        """w_1 .. w_n <eos> padded with <pad> (index 0, ignored by the loss): the decoder's targets."""
        tokens, _ = self.decoder.vocabulary.batch(captions, device, bos=True, eos=True)
        return tokens[:, 1:]
