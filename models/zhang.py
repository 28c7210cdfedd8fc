"""Zhang, Isola and Efros, Colorful Image Colorization (ECCV 2016; reference.md sec. 4): colorization as
classification over quantized ab, the classic anchor the paper never compared with.

- Output space: Q = 313 ab bins on a grid of 10 (:func:`ab_bins`, stored with their provenance in
  ``models/data/zhang_ab_bins.json``).
- Target (their Eq. 2): the ground-truth ab of each output pixel soft-encoded over its 5 nearest bins with
  Gaussian weights exp(-d^2 / (2 sigma^2)), sigma = 5, normalised to sum to one (:func:`soft_encode`).
- Loss (their Eq. 2-4): per pixel cross-entropy -sum_q Z_q log softmax(logits)_q times the class-rebalancing weight
  v(Z) = w_{q*} of the pixel's nearest bin q*, with w proportional to ((1 - lambda) p~ + lambda / Q)^-1, lambda = 0.5,
  normalised so that E_{p~}[w] = sum_q p~_q w_q = 1; p~ is the empirical ab prior of the training images at the
  output resolution, smoothed by a Gaussian (sigma 5) over the bin centres (:func:`smoothed_prior`,
  :func:`rebalancing_weights`), computed in :meth:`ZhangColorizer.prepare_training` and cached.
- Decoding (their Eq. 5): the annealed mean H(Z) = E[f_T(Z)], f_T(z) = exp(log z / T) / sum exp(log z / T),
  T = 0.38 (:func:`annealed_mean`).
- Network: the ECCV16 release's layout (eight conv blocks, BatchNorm after each of the first seven, dilation 2 in
  blocks 5-6, a transposed convolution up to S/4, a 1x1 convolution to Q logits); input (L - 50) / 100. Channels
  scale with ``width`` (1.0 = the release's). With width 1.0 and the release file
  ``colorization_release_v2-9b330a0b.pth`` in a weights folder (colorbench.io.weights), ``init="auto"`` starts from
  the authors' weights (:func:`from_release`), else from a seeded default initialization. ``bench run`` evaluates
  a release file found there (or given with ``--weights``) as it is, untrained (models/zhang_release.py).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from colorbench.core.cachekey import cache_key
from colorbench.core.errors import BenchError
from colorbench.data.loader import Batch, ModelInputs, Preprocess, iterate_batches, make_loader
from colorbench.io.checkpoints import cached_state, save_state, state_sha256
from colorbench.io.weights import find_weights, load_weights
from colorbench.models.base import Colorizer
from colorbench.models.lab_networks import AB_SCALE, at_network_size, normalized_l, rgb_at_input_size, seeded
from colorbench.models.registry import register_model
from colorbench.models.trainable import LoopSettings, StepContext, TrainingData, flat_options, profile_settings

logger = logging.getLogger(__name__)

BINS_FILE = Path(__file__).parent / "data" / "zhang_ab_bins.json"
RELEASE_FILE = "colorization_release_v2-9b330a0b.pth"
INITS = ("auto", "release", "scratch")
#: (output channels, convolutions, stride of the last one, dilation) of blocks 1-7 of the ECCV16 network.
BLOCKS = ((64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2), (512, 3, 1, 2),
          (512, 3, 1, 1))
#: The 1x1 convolution to the Q logits: the last layer of :class:`ZhangNet`'s decoder (the release's ``model8.6``).
LOGITS_LAYER = "decoder.6"


@functools.cache
def ab_bins() -> torch.Tensor:
    """The 313 bin centres (Q, 2) in Lab units, float64, expanded from the stored ranges (a ascending, then b)."""
    table = json.loads(BINS_FILE.read_text())
    step = table["grid"]
    centres = [(int(a), b) for a, (lo, hi) in sorted(table["b_range_by_a"].items(), key=lambda kv: int(kv[0]))
               for b in range(lo, hi + 1, step)]
    if len(centres) != table["count"]:
        raise BenchError(f"{BINS_FILE} expands to {len(centres)} bins, not the {table['count']} it declares")
    return torch.tensor(centres, dtype=torch.float64)


def squared_distances(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """||ab_n - c_q||^2 for ab (N, 2) and centres (Q, 2): (N, Q)."""
    return (ab.square().sum(1, keepdim=True) - 2 * ab @ centres.T + centres.square().sum(1)).clamp_min(0)


def soft_encode(ab: torch.Tensor, centres: torch.Tensor, sigma: float = 5.0,
                neighbours: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft encoding of ab (N, 2): the indices of the ``neighbours`` nearest bins, nearest first (N, k), and their
    Gaussian weights normalised to sum to one (N, k)."""
    distances, indices = squared_distances(ab, centres.to(ab)).topk(neighbours, dim=1, largest=False)
    return indices, (-distances / (2 * sigma**2)).softmax(dim=1)


def soft_encode_dense(ab: torch.Tensor, centres: torch.Tensor, sigma: float = 5.0,
                      neighbours: int = 5) -> torch.Tensor:
    """:func:`soft_encode` of an ab map (B, 2, H, W) as a distribution over all bins, (B, Q, H, W)."""
    batch, _, height, width = ab.shape
    indices, weights = soft_encode(ab.permute(0, 2, 3, 1).reshape(-1, 2), centres, sigma, neighbours)
    dense = torch.zeros(len(indices), len(centres), dtype=weights.dtype, device=ab.device)
    return dense.scatter_(1, indices, weights).view(batch, height, width, -1).permute(0, 3, 1, 2)


def smoothed_prior(counts: torch.Tensor, centres: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """p~: bin frequencies smoothed by a Gaussian of ``sigma`` over the bin centres, normalised to sum to one."""
    kernel = (-squared_distances(centres, centres) / (2 * sigma**2)).exp()
    smoothed = kernel @ (counts.double() / counts.sum().clamp_min(1))
    return smoothed / smoothed.sum()


def rebalancing_weights(prior: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """w_q proportional to ((1 - lam) p~_q + lam / Q)^-1, scaled so that sum_q p~_q w_q = 1."""
    weights = 1 / ((1 - lam) * prior + lam / len(prior))
    return weights / (prior * weights).sum()


def annealed_mean(probs: torch.Tensor, centres: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """H(Z): the mean of the bin centres under f_T(Z), for a distribution Z over the bins (B, Q, H, W); (B, 2, H, W).
    f_T of a one-hot distribution is itself, so its annealed mean is that bin's centre."""
    annealed = (probs.float().log() / temperature).softmax(dim=1)
    return torch.einsum("bqhw,qc->bchw", annealed, centres.to(annealed))


def target_ab(ab: torch.Tensor, size: int) -> torch.Tensor:
    """The ground-truth ab at the network's output resolution (area average)."""
    return F.interpolate(ab, size=(size, size), mode="area")


class ZhangNet(nn.Module):
    """(B, 1, S, S) normalized L -> (B, Q, S/4, S/4) logits; S a multiple of 8."""

    def __init__(self, width: float = 1.0, bins: int = 313) -> None:
        super().__init__()
        w = lambda c: max(1, round(c * width))  # noqa: E731
        stages, channels = [], 1
        for out, convs, stride, dilation in BLOCKS:
            layers: list[nn.Module] = []
            for index in range(convs):
                last = index == convs - 1
                layers += [nn.Conv2d(channels, w(out), 3, stride if last else 1, padding=dilation, dilation=dilation),
                           nn.ReLU(inplace=True)]
                channels = w(out)
            stages.append(nn.Sequential(*layers, nn.BatchNorm2d(channels)))
        self.stages = nn.Sequential(*stages)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(channels, w(256), 4, 2, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(w(256), w(256), 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(w(256), w(256), 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(w(256), bins, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.stages(x))


def from_release(state: Mapping[str, torch.Tensor], centres: torch.Tensor) -> dict[str, torch.Tensor]:
    """The release's state dict (``model1`` ... ``model8``, ``model_out``) under :class:`ZhangNet`'s names.

    ``model_out.weight`` (2, Q, 1, 1) is the release's decoding layer, the bin centres / 110: it fixes which logit
    is which bin. The last layer's output channels are permuted into the order of :func:`ab_bins`; a release whose
    centres are not the same set raises :class:`BenchError`."""
    if "model_out.weight" not in state:
        raise BenchError(f"{RELEASE_FILE}: no 'model_out.weight' (the bin centres); is this the ECCV16 release?")
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        block, _, rest = key.partition(".")
        number = block.removeprefix("model")
        if block == "model_out":
            continue
        if not number.isdigit() or not 1 <= int(number) <= 8:
            raise BenchError(f"{RELEASE_FILE}: unexpected key {key!r}")
        mapped[f"stages.{int(number) - 1}.{rest}" if int(number) < 8 else f"decoder.{rest}"] = value
    release = state["model_out.weight"].double().reshape(2, -1).T * AB_SCALE
    gaps = (centres[:, None, :] - release[None]).abs().amax(dim=2)
    order = gaps.argmin(dim=1)
    if len(release) != len(centres) or bool((gaps.amin(dim=1) > 0.5).any()) or len(set(order.tolist())) != len(order):
        raise BenchError(f"{RELEASE_FILE}: its {len(release)} decoding centres are not the {len(centres)} bins of "
                         f"{BINS_FILE.name}")
    for suffix in ("weight", "bias"):
        mapped[f"{LOGITS_LAYER}.{suffix}"] = mapped[f"{LOGITS_LAYER}.{suffix}"][order]
    return mapped


@dataclass(frozen=True)
class ZhangSettings:
    """The loop's settings, the network width, Adam's settings and the method's constants (reference.md sec. 4)."""

    loop: LoopSettings
    width: float
    lr: float = 3e-5
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 1e-3
    sigma: float = 5.0
    neighbours: int = 5
    rebalance_lambda: float = 0.5
    temperature: float = 0.38


#: ``paper``: the release's widths at colorbench's 224 px and the paper's 5-epoch budget; Adam beta (0.9, 0.99),
#: weight decay 1e-3, initial lr 3e-5 and batch 40 as recalled from Zhang et al.'s training details (UNVERIFIED:
#: not in reference.md; their lr schedule is not reproduced).
#: ``smoke``: the built-in sample in seconds on a CPU (plumbing).
PROFILES = {
    "smoke": ZhangSettings(LoopSettings("smoke", image_size=64, batch_size=4, epochs=10, n_val=1, log_every=1),
                           width=0.125, lr=2e-4),
    "paper": ZhangSettings(LoopSettings("paper", image_size=224, batch_size=40, epochs=5), width=1.0),
}


class ZhangColorizer(Colorizer):
    """Zhang et al.'s classifier colorizer, trained by ``colorbench.training`` (one loss, one optimiser)."""

    loss_names = ("ce",)
    adversarial_terms = None

    def __init__(self, settings: ZhangSettings, init: str = "auto") -> None:
        super().__init__()
        if init not in INITS:
            raise BenchError(f"unknown zhang-eccv16 initialization {init!r}; choose one of {', '.join(INITS)}")
        if settings.loop.image_size % 8:
            raise BenchError(f"zhang-eccv16's image size must be a multiple of 8, not {settings.loop.image_size}")
        self.settings = settings
        self.centres = ab_bins()
        self.net = seeded(settings.loop.seed, ZhangNet, settings.width, len(self.centres))
        if init == "auto":
            init = "release" if settings.width == 1.0 and find_weights(RELEASE_FILE) else "scratch"
        if init == "release":
            if settings.width != 1.0:
                raise BenchError("zhang-eccv16's release weights fit width 1.0 only")
            self.load_release(load_weights(RELEASE_FILE, "zhang-eccv16 with init='release'"))
        self.init = init
        #: True when the release file is the model's final weights (models/zhang_release.py), not a start.
        self.pretrained = False
        self.class_weights: torch.Tensor | None = None
        self.prior_sha256: str | None = None

    def load_release(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the release's weights (:func:`from_release`); a missing or misshapen tensor raises BenchError."""
        mapped = from_release(state, self.centres)
        try:
            missing, unexpected = self.net.load_state_dict(mapped, strict=False)
        except RuntimeError as exc:
            raise BenchError(f"{RELEASE_FILE} does not fit the ECCV16 network: {str(exc).splitlines()[0]}") from exc
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise BenchError(f"{RELEASE_FILE}: missing {missing[:3]}, unexpected {unexpected[:3]}")

    @property
    def output_size(self) -> int:
        return self.settings.loop.image_size // 4

    def loop_settings(self) -> LoopSettings:
        return self.settings.loop

    def trained_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.net}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        s = self.settings
        return {"generator": torch.optim.Adam(self.net.parameters(), lr=s.lr, betas=s.betas,
                                              weight_decay=s.weight_decay)}

    def prepare_training(self, data: TrainingData) -> None:
        """The smoothed empirical prior of the training images' ab bins and the rebalancing weights, cached."""
        s = self.settings
        entries = sorted(data.entries, key=lambda e: e.image_id)
        key = cache_key({"files": [e.pixels_key for e in entries], "size": s.loop.image_size, "mode": data.resize_mode,
                         "bins": state_sha256({"bins": self.centres})})
        path = data.cache_dir / f"zhang-prior-{key}.safetensors"
        cached = cached_state(path, "zhang-eccv16 ab prior")
        if cached is not None:
            counts = cached[0]["counts"]
        else:
            logger.info("zhang-eccv16: counting the ab bins of %d training images", len(entries))
            counts = self.bin_counts(data)
            save_state(path, {"counts": counts}, {"images": len(entries), "size": s.loop.image_size})
        prior = smoothed_prior(counts, self.centres, s.sigma)
        self.class_weights = rebalancing_weights(prior, s.rebalance_lambda).float()
        self.prior_sha256 = state_sha256({"prior": prior})

    def bin_counts(self, data: TrainingData) -> torch.Tensor:
        """How many output pixels of the training images fall nearest to each bin (float64, (Q,))."""
        loader = make_loader(data.entries, Preprocess(self.settings.loop.image_size, data.resize_mode),
                             batch_size=16, workers=data.workers)
        counts = torch.zeros(len(self.centres), dtype=torch.float64, device=data.device)
        centres = self.centres.float().to(data.device)
        for batch in tqdm(iterate_batches(loader, data.device), desc="zhang-eccv16 ab prior", unit="batch",
                          total=len(loader), leave=False, disable=not data.progress):
            ab = target_ab(batch.ab, self.output_size).permute(0, 2, 3, 1).reshape(-1, 2)
            nearest = squared_distances(ab, centres).argmin(dim=1)
            counts.index_add_(0, nearest, torch.ones_like(nearest, dtype=counts.dtype))
        return counts.cpu()

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        """One Adam step on the class-rebalanced multinomial cross-entropy against the soft-encoded truth."""
        if self.class_weights is None:
            raise RuntimeError("zhang-eccv16: prepare_training must run before the first training step")
        s = self.settings
        with step.autocast():
            logits = step.nets["generator"](normalized_l(batch.L)).float()
        ab = target_ab(batch.ab, logits.shape[-1]).permute(0, 2, 3, 1).reshape(-1, 2)
        indices, targets = soft_encode(ab, self.centres.float(), s.sigma, s.neighbours)
        log_probs = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1]).log_softmax(dim=1)
        cross_entropy = -(targets * log_probs.gather(1, indices)).sum(dim=1)
        loss = (self.class_weights.to(ab.device)[indices[:, 0]] * cross_entropy).mean()
        step.update("generator", loss)
        return {"ce": loss.detach()}

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        L = inputs.L
        logits = self.net(normalized_l(at_network_size(L, self.settings.loop.image_size)))
        ab = annealed_mean(logits.float().softmax(dim=1), self.centres, self.settings.temperature)
        return rgb_at_input_size(L, ab)

    def options(self) -> dict[str, object]:
        release = ({"release_file": RELEASE_FILE, **({"pretrained": "authors' release"} if self.pretrained else {})}
                   if self.init == "release" else {})
        bins = {"bins": BINS_FILE.name, "bins_sha256": state_sha256({"bins": self.centres})}
        return {**flat_options(self.settings), **bins, "init": self.init, **release, "prior_sha256": self.prior_sha256}


@register_model("zhang-eccv16", inputs=("L",), training="train", adversarial=False, paper="reference.md sec. 4",
                description="Zhang et al. 2016: classification over 313 ab bins, class rebalancing, annealed mean")
def build(profile: str = "paper", seed: int = 0, epochs: int | None = None, init: str = "auto",
          **overrides: object) -> ZhangColorizer:
    """zhang-eccv16 under a training profile; ``overrides`` replace loop or method settings."""
    return ZhangColorizer(profile_settings(PROFILES, profile, seed=seed, epochs=epochs, **overrides), init)
