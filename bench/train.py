"""The one trainer of colorbench's gradient-trained models (the ChromaGAN family, paper Sec. 4.2 and 6.4).

Per batch: one generator step, then one critic step (ChromaGAN's order). The generator minimises

    L_G = w_mse * MSE(ab) + w_class * KL(teacher || class head) + w_adv * L_adv(critic(L, fake ab))

(paper Sec. 2: L = L_e + gamma_s L_s + gamma_g L_g; ChromaGAN's weights 1, 0.003, 0.1). The critic minimises a
WGAN loss plus ``gp_weight`` times the gradient penalty (Gulrajani et al. 2017), or the binary cross-entropy GAN
loss (Model A.2), or nothing when ``adversarial == "none"`` (a plain regression model). Every loss is a small pure
function below.

Training writes, under ``<run>/train/<model>/``: ``steps.csv`` (losses every ``log_every`` steps), ``epochs.csv``
(mean losses and validation metrics per epoch), ``checkpoints/epoch-NNN.safetensors`` (generator and critic
weights) with the optimizer state in ``epoch-NNN.optim.safetensors`` (tensors) + ``epoch-NNN.optim.json`` (scalars,
history) and ``summary.json``. The final generator goes to ``<run>/checkpoints/<model>.safetensors``; a later run
with the same model options, training manifest and resize mode reuses it and trains nothing.

Determinism: all randomness of epoch ``e`` (shuffling order, gradient-penalty interpolation) comes from
generators seeded by ``(seed, e)``, and a checkpoint is written after each epoch, so a resumed run on the CPU ends
bit-for-bit equal to an uninterrupted one (tests/test_train.py). On CUDA/XLA bf16 autocast and non-deterministic
kernels make runs close, not identical.

Validation: the first ``n_val`` usable training images in split-hash order (at most a tenth of them, at least one)
are held out of training and scored every epoch; the evaluation split is never used. Divergence: see
:func:`detect_divergence`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from tqdm import tqdm

from bench import integrity
from bench.checkpoints import cached_state, load_state, read_metadata, save_state
from bench.crashpoints import crash_point
from bench.data import Batch, Preprocess, iterate_batches, make_loader
from bench.device import DistInfo, all_reduce_sum, autocast, barrier, fixed_shapes, memory_format, step_done
from bench.errors import BenchError
from bench.images import atomic_write_bytes
from bench.sources import open_source
from bench.splits import Manifest, ManifestEntry, split_key
from metrics.registry import compute
from models.teachers import TEACHER_SIZE, Targets, build_teacher

ADVERSARIAL = ("wgan-gp", "bce", "none")
ALONE = DistInfo()
#: Validation metrics computed every epoch (metrics.registry names).
VAL_METRICS = ("mse", "psnr", "ssim", "colorfulness", "channel_equality")
#: The validation metric that picks the best and the worst epoch (lower is better), as Table 4 reports MSE.
SELECTION_METRIC = "mse"


@dataclass(frozen=True)
class TrainSettings:
    """Every hyper-parameter of one training run (a profile, then the model variant's own choices).

    ``batch_size`` None means the model variant's batch (ChromaGAN's 10, the paper's 256). ``n_val`` is capped at a
    tenth of the usable training images. ``divergence_*`` parametrize :func:`detect_divergence`.
    """

    profile: str
    image_size: int
    width: float
    batch_size: int | None
    epochs: int
    lr: float = 2e-5
    betas: tuple[float, float] = (0.5, 0.999)
    mse_weight: float = 1.0
    class_weight: float = 0.003
    adversarial: str = "wgan-gp"
    adversarial_weight: float = 0.1
    gp_weight: float = 10.0
    n_val: int = 500
    log_every: int = 10
    divergence_min_points: int = 5
    divergence_false_positive_bound: float = 0.01
    seed: int = 0


#: ``smoke``: the built-in sample trains in seconds on a laptop CPU (a plumbing run, not a model).
#: ``paper``: 224x224, full VGG-16 widths, the paper's optimiser settings and 5 epochs (Sec. 6.4).
PROFILES = {
    "smoke": TrainSettings("smoke", image_size=64, width=0.25, batch_size=4, epochs=10, lr=2e-4, n_val=1, log_every=1),
    "paper": TrainSettings("paper", image_size=224, width=1.0, batch_size=None, epochs=5),
}
PROFILE_CHOICES = ("auto", *PROFILES)


def resolve_profile(name: str, train_source: str) -> str:
    """``auto`` -> ``smoke`` when training on the built-in sample, ``paper`` otherwise."""
    if name == "auto":
        return "smoke" if train_source.startswith("sample:") else "paper"
    if name not in PROFILES:
        raise BenchError(f"unknown training profile {name!r}; choose one of {', '.join(PROFILE_CHOICES)}")
    return name


class Trainable(Protocol):
    """What the trainer needs from a model: its settings, a generator mapping the network input (B, 3, S, S)
    to (ab in [0, 1] (B, 2, S, S), class logits (B, K) or None), and its critic."""

    settings: TrainSettings
    generator: nn.Module
    teacher: str | None

    def make_critic(self) -> nn.Module | None: ...

    def options(self) -> dict[str, object]: ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> object: ...

    def colorize(self, inputs: object) -> torch.Tensor: ...


# -- losses ----------------------------------------------------------------------------------------------------
def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator term: -E[D(fake)] (patch scores averaged)."""
    return -fake_scores.mean()


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic term: E[D(fake)] - E[D(real)]; falls as the critic separates real from fake."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(interp_scores: torch.Tensor, interpolates: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x)||_2 - 1)^2] at random interpolates x of real and fake ab (Gulrajani et al. 2017).

    As in ChromaGAN's Keras code and tensorflow_gan, the gradient is that of the patch map summed per image.
    """
    grads, = torch.autograd.grad(interp_scores.sum(), interpolates, create_graph=True)
    norms = (grads.flatten(1).square().sum(1) + 1e-12).sqrt()
    return (norms - 1).square().mean()


def bce_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN generator term (Model A.2): BCE of the fake patch logits against "real"."""
    return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))


def bce_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Discriminator BCE (Model A.2): real patches labelled 1, fake patches 0, the two terms summed."""
    return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
            + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))


def class_kl(target: torch.Tensor, labelled: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || class head) = sum_k p_k log(p_k / q_k), q = softmax(logits), averaged over the labelled
    images of the batch (images the teacher has no label for are left out; 0 when there is none)."""
    per_image = F.kl_div(logits.float().log_softmax(dim=1), target, reduction="none").sum(dim=1)
    weights = labelled.to(per_image.dtype)
    return (per_image * weights).sum() / weights.sum().clamp_min(1)


ADVERSARIAL_LOSSES = {"wgan-gp": (wgan_generator_loss, wgan_critic_loss), "bce": (bce_generator_loss, bce_critic_loss)}


# -- divergence ------------------------------------------------------------------------------------------------
def divergence_window(n_epochs: int, min_points: int) -> int:
    """Length of the trailing windows the divergence rule tests: half the epochs, at least ``min_points``."""
    return max(min_points, math.ceil(n_epochs / 2))


def trend_pvalue(series: Sequence[float], alternative: str) -> float:
    """One-sided p-value of Kendall's tau between epoch order and ``series`` (Mann-Kendall trend test; exact
    for short windows without ties). ``alternative``: "greater" (rising) or "less" (falling). NaN -> 1."""
    values = np.asarray(series, dtype=float)
    if not np.isfinite(values).all():
        return 1.0
    p = stats.kendalltau(np.arange(len(values)), values, alternative=alternative).pvalue
    return 1.0 if math.isnan(p) else float(p)


def detect_divergence(generator_adv: Sequence[float], critic: Sequence[float], min_points: int = 5,
                      false_positive_bound: float = 0.01) -> dict[str, object]:
    """The paper's divergence pattern (claim C5): the critic wins and the generator's loss climbs.

    Evaluation points are the epoch means of the generator's adversarial term and of the critic's loss (without
    gradient penalty). Over every trailing window of W = max(``min_points``, ceil(n / 2)) consecutive epochs
    (k = n - W + 1 windows), a one-sided Kendall trend test asks whether the generator term rises and another
    whether the critic loss falls; the run is flagged at the last epoch of the first window where both p-values
    are at most a = sqrt(bound / k). On i.i.d. noise the two series are independent, so each window fires with
    probability at most a^2 and the whole rule, by the union bound, at most ``false_positive_bound``
    (tests/test_train.py measures the rate on simulated noise). Fewer than ``min_points`` epochs: never flagged.
    Returns ``diverged``, ``epoch`` (1-based, or None), ``window``, the per-test level, the rule, the p-values of
    the flagged (or last) window and the two series as evidence.
    """
    n = len(generator_adv)
    window = divergence_window(n, min_points)
    windows = n - window + 1
    level = math.sqrt(false_positive_bound / windows) if windows > 0 else 0.0
    found, p_rise, p_fall = None, None, None
    for end in range(window, n + 1):
        p_rise = trend_pvalue(generator_adv[end - window:end], "greater")
        p_fall = trend_pvalue(critic[end - window:end], "less")
        if p_rise <= level and p_fall <= level:
            found = end
            break
    return {"diverged": found is not None, "epoch": found, "window": window, "test_level": level,
            "false_positive_bound": false_positive_bound, "p_generator_rises": p_rise, "p_critic_falls": p_fall,
            "rule": f"over a trailing window of {window} epoch means (half the epochs, at least {min_points}), the "
                    f"generator adversarial loss rises and the critic loss falls, each by a one-sided Kendall trend "
                    f"test at p <= sqrt({false_positive_bound} / windows) (at most {false_positive_bound:.0%} "
                    "false alarms on i.i.d. noise)",
            "generator_adversarial": list(generator_adv), "critic": list(critic)}


# -- one step --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` need no gradient inside the block (the critic during the generator step)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


class GanTrainer:
    """Generator and critic, their Adam optimisers, and one training step (generator first, then critic)."""

    def __init__(self, model: Trainable, device: torch.device, dist: DistInfo = ALONE, bf16: bool = True) -> None:
        s = self.settings = model.settings
        self.bf16 = bf16  # bf16 autocast where bench.device enables it (CUDA, XLA)
        if s.adversarial not in ADVERSARIAL:
            raise BenchError(f"unknown adversarial loss {s.adversarial!r}; choose one of {', '.join(ADVERSARIAL)}")
        if s.batch_size is None:
            raise BenchError("training settings without a batch size (the model variant sets the paper's)")
        self.device = device
        fmt = memory_format(device)
        self.generator = model.generator.to(device, memory_format=fmt).train()
        critic = model.make_critic() if s.adversarial != "none" else None
        self.critic = critic.to(device, memory_format=fmt).train() if critic is not None else None
        self.g_net, self.c_net = self.generator, self.critic
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.g_net = DistributedDataParallel(self.generator, device_ids=ids)
            self.c_net = DistributedDataParallel(self.critic, device_ids=ids) if self.critic is not None else None
        self.optimizers = {"generator": torch.optim.Adam(self.generator.parameters(), lr=s.lr, betas=s.betas)}
        if self.critic is not None:
            self.optimizers["critic"] = torch.optim.Adam(self.critic.parameters(), lr=s.lr, betas=s.betas)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, **({"critic": self.critic} if self.critic is not None else {})}

    def step(self, L01: torch.Tensor, ab01: torch.Tensor, targets: Targets | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One generator step, then one critic step, on a batch of L and ab scaled to [0, 1] at the network size.
        The critic sees this step's fakes (generated before the generator update). Returns the detached loss
        terms, without synchronising with the host."""
        losses, fake = self.generator_losses(L01, ab01, targets)
        self._update("generator", losses["g_total"])
        if self.critic is not None:
            eps = torch.rand(len(ab01), 1, 1, 1, generator=rng).to(ab01.device)
            critic_losses = self.critic_losses(L01, ab01, fake.detach(), eps)
            self._update("critic", critic_losses["c_total"])
            losses.update(critic_losses)
        step_done(self.device)
        return {k: v.detach() for k, v in losses.items()}

    def generator_losses(self, L01: torch.Tensor, ab01: torch.Tensor,
                         targets: Targets | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The generator's loss terms and their weighted sum ``g_total`` (the critic frozen), and the fake ab."""
        s = self.settings
        with autocast(self.device, self.bf16):
            fake, logits = self.g_net(L01.expand(-1, 3, -1, -1).contiguous(memory_format=memory_format(self.device)))
        fake = fake.float()
        losses = {"mse": F.mse_loss(fake, ab01)}
        total = s.mse_weight * losses["mse"]
        if logits is not None and targets is not None and s.class_weight:
            losses["class_kl"] = class_kl(targets.probs, targets.labelled, logits)
            total = total + s.class_weight * losses["class_kl"]
        if self.critic is not None:
            with frozen(self.critic), autocast(self.device, self.bf16):
                losses["g_adv"] = ADVERSARIAL_LOSSES[s.adversarial][0](self.critic(L01, fake).float())
            total = total + s.adversarial_weight * losses["g_adv"]
        losses["g_total"] = total
        return losses, fake

    def critic_losses(self, L01: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                      eps: torch.Tensor) -> dict[str, torch.Tensor]:
        """The critic's loss ``critic``, for WGAN-GP its gradient penalty ``gp`` at the interpolates
        eps * real + (1 - eps) * fake, and their weighted sum ``c_total``. Real, fake and interpolated ab go
        through the critic in one forward pass (one DDP reduction; the critic has no batch statistics)."""
        s = self.settings
        wgan = s.adversarial == "wgan-gp"
        parts = [real, fake]
        if wgan:
            interpolates = (eps * real + (1 - eps) * fake).requires_grad_(True)
            parts.append(interpolates)
        with autocast(self.device, self.bf16):
            scores = self.c_net(L01.repeat(len(parts), 1, 1, 1), torch.cat(parts)).float().chunk(len(parts))
        losses = {"critic": ADVERSARIAL_LOSSES[s.adversarial][1](scores[0], scores[1])}
        losses["c_total"] = losses["critic"]
        if wgan:
            losses["gp"] = gradient_penalty(scores[2], interpolates)
            losses["c_total"] = losses["critic"] + s.gp_weight * losses["gp"]
        return losses

    def _update(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # -- state ---------------------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, object]]:
        """(weights, optimizer tensors, optimizer scalars) for an epoch checkpoint."""
        weights = {f"{name}.{k}": v for name, module in self.modules().items() for k, v in module.state_dict().items()}
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, object] = {}
        for name, optimizer in self.optimizers.items():
            state = optimizer.state_dict()
            scalars[name] = {"param_groups": state["param_groups"], "scalars": {}}
            for index, slots in state["state"].items():
                for slot, value in slots.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"{name}.{index}.{slot}"] = value
                    else:
                        scalars[name]["scalars"][f"{index}.{slot}"] = value  # type: ignore[index]
        return weights, tensors, scalars

    def load(self, weights: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor],
             scalars: dict[str, object]) -> None:
        for name, module in self.modules().items():
            module.load_state_dict({k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(f"{name}.")})
        for name, optimizer in self.optimizers.items():
            saved = scalars[name]
            state: dict[int, dict[str, object]] = {}
            for key, value in tensors.items():
                owner, index, slot = key.split(".", 2)
                if owner == name:
                    state.setdefault(int(index), {})[slot] = value.to(self.device)
            for key, value in saved["scalars"].items():  # type: ignore[index]
                index, slot = key.split(".", 1)
                state.setdefault(int(index), {})[slot] = value
            groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
                      for group in saved["param_groups"]]  # type: ignore[index]  # JSON turned tuples into lists
            optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- data ------------------------------------------------------------------------------------------------------
def split_validation(entries: Sequence[ManifestEntry], n_val: int) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(training, validation): validation is the first ``n_val`` entries by split key, capped at a tenth of the
    entries and at least one; both keep manifest order."""
    if len(entries) < 2:
        raise BenchError(f"training needs at least 2 usable images (one is held out for validation), "
                         f"found {len(entries)}")
    count = max(1, min(n_val, len(entries) // 10))
    held = {e.image_id for e in sorted(entries, key=lambda e: split_key(e.image_id))[:count]}
    return [e for e in entries if e.image_id not in held], [e for e in entries if e.image_id in held]


def teacher_targets(teacher_name: str, entries: Sequence[ManifestEntry], source: str, mode: str, cache: Path,
                    device: torch.device, workers: int = 0, progress: bool = True) -> dict[str, Targets]:
    """Each image's class distribution, computed once (the teacher is frozen and inputs are not augmented) and
    cached in ``cache`` keyed by the file's sha256. Returns image id -> single-row targets on the CPU."""
    by_sha: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    cached = cached_state(cache, "teacher targets")
    if cached is not None:
        stored, shas = cached[0], cached[1]["sha256"]
        by_sha = {sha: (stored["probs"][i], stored["labelled"][i]) for i, sha in enumerate(shas)}  # type: ignore[arg-type]
    todo = [e for e in entries if e.sha256 not in by_sha]
    if todo:
        instances = open_source(source).instances() if teacher_name == "coco-labels" else None
        teacher = build_teacher(teacher_name, instances).to(device)
        loader = make_loader(todo, Preprocess(TEACHER_SIZE, mode), batch_size=16, workers=workers)
        sha_of = {e.image_id: e.sha256 for e in todo}
        for batch in tqdm(iterate_batches(loader, device), desc=f"teacher {teacher_name}", unit="batch",
                          total=len(loader), leave=False, disable=not progress):
            with autocast(device):
                out = teacher(batch)
            for i, image_id in enumerate(batch.image_ids):
                by_sha[sha_of[image_id]] = (out.probs[i].float().cpu(), out.labelled[i].cpu())
        shas = sorted(by_sha)
        save_state(cache, {"probs": torch.stack([by_sha[s][0] for s in shas]),
                           "labelled": torch.stack([by_sha[s][1] for s in shas])},
                   {"teacher": teacher_name, "resize_mode": mode, "size": TEACHER_SIZE, "sha256": shas})
    return {e.image_id: Targets(*by_sha[e.sha256]) for e in entries if e.sha256 in by_sha}


def batch_targets(table: dict[str, Targets], batch: Batch) -> Targets:
    rows = [table[image_id] for image_id in batch.image_ids]
    return Targets(torch.stack([r.probs for r in rows]).to(batch.L.device),
                   torch.stack([r.labelled for r in rows]).to(batch.L.device))


def ab_to_unit(ab: torch.Tensor) -> torch.Tensor:
    """Lab ab -> ChromaGAN's [0, 1] scale: (ab + 128) / 255."""
    return (ab + 128) / 255


@torch.no_grad()
def validate(model: Trainable, entries: Sequence[ManifestEntry], preprocess: Preprocess,
             device: torch.device, bf16: bool = True) -> dict[str, float]:
    """Mean validation metrics of the model's colorizations at its training resolution."""
    model.generator.eval()
    sums = dict.fromkeys(VAL_METRICS, 0.0)
    count = 0
    for batch in iterate_batches(make_loader(entries, preprocess, batch_size=16, pad=fixed_shapes(device)), device):
        with autocast(device, bf16):
            rgb = model.colorize(batch.inputs_for(("L",))).float().clamp(0, 1)
        # padding rows count for nothing; the mask is data, not a constant, so a short batch reuses the graph
        real = (torch.arange(batch.rows) < len(batch)).to(device)
        for name, values in compute(VAL_METRICS, rgb, batch.rgb).items():
            sums[name] += float(torch.where(real, values, 0).sum())
        count += len(batch)
    model.generator.train()
    return {f"val_{name}": total / max(count, 1) for name, total in sums.items()}


# -- files -----------------------------------------------------------------------------------------------------
STEP_COLUMNS = ("epoch", "step", "mse", "class_kl", "g_adv", "g_total", "critic", "gp", "c_total")
LOSS_NAMES = STEP_COLUMNS[2:]
EPOCH_COLUMNS = ("epoch", "steps", "seconds", *(f"train_{n}" for n in LOSS_NAMES), *(f"val_{m}" for m in VAL_METRICS))


class CsvLog:
    """An append-only CSV whose rows carry an ``epoch``; opening it drops rows of epochs not yet completed
    (a resumed run rewrites them)."""

    def __init__(self, path: Path, columns: Sequence[str], completed_epochs: int, enabled: bool = True) -> None:
        self.path, self.columns, self.enabled = path, list(columns), enabled
        if not enabled:
            return
        kept: list[dict[str, str]] = []
        if path.is_file() and completed_epochs:
            with path.open(newline="") as handle:
                kept = [r for r in csv.DictReader(handle) if int(r["epoch"]) <= completed_epochs]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, row: dict[str, object]) -> None:
        if self.enabled:
            with self.path.open("a", newline="") as handle:
                csv.writer(handle, lineterminator="\n").writerow(["" if row.get(c) is None else row[c]
                                                                  for c in self.columns])


@dataclass
class Checkpoints:
    """Epoch checkpoints of one training folder: ``epoch-NNN.safetensors`` (weights, written last, so its presence
    marks a complete checkpoint) + ``epoch-NNN.optim.safetensors`` + ``epoch-NNN.optim.json`` (with a checksum).

    ``keep_last``: how many of the latest epoch checkpoints are kept besides the best one by validation MSE
    (None: every epoch's); the others are deleted as training goes (a ``paper`` ChromaGAN epoch is 2 GB)."""

    folder: Path
    key: dict[str, object] = field(default_factory=dict)
    keep_last: int | None = None

    def paths(self, epoch: int) -> tuple[Path, Path, Path]:
        stem = self.folder / f"epoch-{epoch:03d}"
        return stem.with_suffix(".safetensors"), stem.with_suffix(".optim.safetensors"), stem.with_suffix(".optim.json")

    def save(self, epoch: int, trainer: GanTrainer, extra: dict[str, object]) -> None:
        weights_path, tensors_path, json_path = self.paths(epoch)
        weights, tensors, scalars = trainer.state()
        save_state(tensors_path, tensors, {"epoch": epoch})
        integrity.write_sealed_json(json_path, {"epoch": epoch, "optimizers": scalars, **extra})
        save_state(weights_path, weights, {"key": self.key, "epoch": epoch})

    def epochs(self) -> list[int]:
        """Epochs with a complete checkpoint written under this key, latest first."""
        found = []
        for path in sorted(self.folder.glob("epoch-[0-9][0-9][0-9].safetensors"), reverse=True):
            epoch = int(path.stem.split("-")[1])
            if not all(p.is_file() for p in self.paths(epoch)):
                continue
            try:
                if read_metadata(path).get("key") == self.key:
                    found.append(epoch)
            except BenchError as exc:
                integrity.report_corrupt("epoch checkpoint", path, str(exc))
                self.remove(epoch)
        return found

    def latest(self) -> int:
        """The last complete epoch checkpoint written under this key (0 when none)."""
        return next(iter(self.epochs()), 0)

    def load(self, epoch: int, trainer: GanTrainer) -> dict[str, object]:
        """Restore the trainer from an epoch checkpoint; a corrupt one raises BenchError."""
        weights_path, tensors_path, json_path = self.paths(epoch)
        extra = integrity.read_sealed_json(json_path, "optimizer state")
        if extra is None:
            raise BenchError(f"optimizer state {json_path} is corrupt")
        trainer.load(load_state(weights_path), load_state(tensors_path), extra.pop("optimizers"))  # type: ignore[arg-type]
        return extra

    def restore(self, trainer: GanTrainer) -> tuple[int, list[dict[str, object]]]:
        """Resume from the latest intact checkpoint (a corrupt one is reported, deleted and the one before
        tried); returns (its epoch, the history so far), or (0, []) to start over."""
        for epoch in self.epochs():
            try:
                return epoch, list(self.load(epoch, trainer)["history"])  # type: ignore[call-overload]
            except BenchError as exc:
                integrity.report_corrupt("epoch checkpoint", self.paths(epoch)[0], str(exc))
                self.remove(epoch)
        return 0, []

    def remove(self, epoch: int) -> None:
        for path in self.paths(epoch):
            path.unlink(missing_ok=True)

    def prune(self, history: Sequence[dict[str, object]]) -> None:
        """Delete the epoch checkpoints that ``keep_last`` does not keep: all but the latest N and the best."""
        if self.keep_last is None:
            return
        finished = [int(r["epoch"]) for r in history]  # type: ignore[call-overload]
        keep = set(finished[len(finished) - self.keep_last:] if self.keep_last else finished[-1:])
        best = best_epoch(history)
        if best is not None:
            keep.add(best)
        for epoch in set(finished) - keep:
            self.remove(epoch)

    def size_bytes(self, trainer: GanTrainer) -> int:
        """Expected size of one epoch checkpoint: the weights, plus Adam's two moments of every parameter."""
        weights = sum(t.numel() * t.element_size() for m in trainer.modules().values() for t in m.state_dict().values())
        moments = sum(2 * p.numel() * p.element_size() for m in trainer.modules().values() for p in m.parameters())
        return weights + moments

    def clear(self) -> None:
        for path in self.folder.glob("epoch-*"):
            path.unlink()


# -- the loop --------------------------------------------------------------------------------------------------
def as_json(value: dict[str, object]) -> dict[str, object]:
    """``value`` as it reads back from checkpoint metadata (tuples become lists), for key comparisons."""
    return json.loads(json.dumps(value, default=str))


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def disk_note(name: str, checkpoints: Checkpoints, trainer: GanTrainer, epochs: int) -> str:
    """The line printed before a training: what its epoch checkpoints will take on disk."""
    each = checkpoints.size_bytes(trainer)
    kept = epochs if checkpoints.keep_last is None else min(epochs, checkpoints.keep_last + 1)
    policy = "every epoch" if checkpoints.keep_last is None else f"the last {checkpoints.keep_last} and the best"
    return (f"note: training {name} for {epochs} epochs: each epoch checkpoint takes {each / 2**20:.1f} MiB; keeping "
            f"{policy} (--keep-checkpoints) needs up to {kept * each / 2**20:.1f} MiB in {checkpoints.folder}")


def train(model: Trainable, name: str, manifest: Manifest, out: Path, *, device: torch.device,
          dist: DistInfo = ALONE, resize_mode: str = "resize", workers: int = 0, resume: bool = True,
          progress: bool = True, keep_checkpoints: int | None = None, bf16: bool = True) -> dict[str, object]:
    """Train ``model`` on ``manifest``'s usable images (or reuse a finished training); returns the training
    record for run.json. Leaves the model on ``device`` with the last epoch's weights. ``keep_checkpoints``: see
    :class:`Checkpoints` (None keeps every epoch's)."""
    s = model.settings
    final = out / "checkpoints" / f"{name}.safetensors"
    key = as_json({"model": name, "options": model.options(), "train_manifest": manifest.sha256,
                   "resize_mode": resize_mode})
    cached = cached_state(final, "trained weights") if resume else None
    if cached is not None and cached[1].get("key") == key:
        model.load_state_dict(cached[0])
        return {"weights_from": "cached training", "checkpoint": str(final), "training": cached[1].get("summary")}

    folder = out / "train" / name
    resume_key = {**key, "options": {k: v for k, v in key["options"].items() if k != "epochs"}}  # type: ignore[union-attr]
    checkpoints = Checkpoints(folder / "checkpoints", resume_key, keep_checkpoints)
    fit_entries, val_entries = split_validation(manifest.usable, s.n_val)
    if dist.is_main and batch_exceeds_data(s, len(fit_entries)):
        print(f"warning: {name}: batch {s.batch_size} of the {s.profile} profile exceeds the {len(fit_entries)} "
              "training images, so every epoch is a single step on all of them (recorded in run.json)",
              file=sys.stderr)
    preprocess = Preprocess(s.image_size, resize_mode)
    targets = None
    if model.teacher is not None and s.class_weight:
        targets = teacher_targets(model.teacher, fit_entries, manifest.source, resize_mode,
                                  out / "train" / f"teacher-{model.teacher}-{resize_mode}.safetensors", device, workers,
                                  progress and dist.is_main)
    trainer = GanTrainer(model, device, dist, bf16)
    start, history = checkpoints.restore(trainer) if resume else (0, [])
    if not start and dist.is_main:
        checkpoints.clear()
    if dist.is_main and start < s.epochs:
        print(disk_note(name, checkpoints, trainer, s.epochs - start), file=sys.stderr)
    steps_log = CsvLog(folder / "steps.csv", STEP_COLUMNS, start, dist.is_main)
    epochs_log = CsvLog(folder / "epochs.csv", EPOCH_COLUMNS, start, dist.is_main)
    step = int(history[-1]["step"]) if history else 0  # type: ignore[call-overload]
    began = time.perf_counter()
    for epoch in range(start + 1, s.epochs + 1):
        tick = time.perf_counter()
        loader = make_loader(fit_entries, preprocess, batch_size=s.batch_size, workers=workers, shuffle=True,
                             seed=epoch_seed(s.seed, epoch), distributed=dist.enabled,
                             drop_last=not batch_exceeds_data(s, len(fit_entries)))
        bar = tqdm(iterate_batches(loader, device), total=len(loader), desc=f"train {name} {epoch}/{s.epochs}",
                   unit="step", disable=not (progress and dist.is_main), leave=False)
        means, n_steps = run_epoch(trainer, bar, targets, epoch, step, steps_log)
        step += n_steps
        row = {"epoch": epoch, "step": step, "steps": n_steps, **means,
               **validate(model, val_entries, preprocess, device, bf16), "seconds": time.perf_counter() - tick}
        history.append(row)
        epochs_log.append(row)
        if dist.is_main:
            checkpoints.save(epoch, trainer, {"history": history})
            checkpoints.prune(history)
        crash_point("train-epoch")
    summary = summarize(history, s, fit_entries, val_entries, start)
    summary.update({"seconds_this_run": time.perf_counter() - began, "folder": str(folder)})
    model.generator.eval()
    if dist.is_main:
        atomic_write_bytes(folder / "summary.json", json.dumps(summary, indent=2).encode())
        save_state(final, model.state_dict(), {"key": key, "summary": summary})
    barrier(dist)
    if not dist.is_main:  # DDP syncs parameters, not BatchNorm statistics: every rank takes rank 0's weights
        model.load_state_dict(load_state(final))
    return {"weights_from": "trained", "checkpoint": str(final), "training": summary}


def run_epoch(trainer: GanTrainer, batches: Iterable[Batch], targets: dict[str, Targets] | None, epoch: int,
              step: int, log: CsvLog) -> tuple[dict[str, float], int]:
    """Train on every batch once (``step``: steps done before this epoch). Every ``log_every``-th step's losses go
    to ``log``, the only host synchronisation besides the epoch means. The gradient-penalty interpolation draws
    from a generator seeded by (seed, epoch). Returns the epoch's mean losses (over all ranks) and its steps."""
    rng = torch.Generator().manual_seed(epoch_seed(trainer.settings.seed, epoch))
    sums: dict[str, torch.Tensor] = {}
    n_steps = 0
    for batch in batches:
        if not len(batch):
            continue
        losses = trainer.step(batch.L / 100, ab_to_unit(batch.ab),
                              batch_targets(targets, batch) if targets is not None else None, rng)
        n_steps += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0) + v
        if (step + n_steps) % trainer.settings.log_every == 0:
            log.append({"epoch": epoch, "step": step + n_steps, **{k: float(v) for k, v in losses.items()}})
    names = sorted(sums)
    device = next(trainer.generator.parameters()).device
    totals = all_reduce_sum(torch.stack([sums[k] for k in names] + [torch.tensor(float(n_steps), device=device)]))
    return {f"train_{k}": float(totals[i]) / max(float(totals[-1]), 1) for i, k in enumerate(names)}, n_steps


def selected_epoch(history: Sequence[dict[str, object]], best: bool) -> dict[str, object] | None:
    """The epoch row with the lowest (``best``) or highest validation value of :data:`SELECTION_METRIC`."""
    scored = [r for r in history if math.isfinite(float(r[f"val_{SELECTION_METRIC}"]))]  # type: ignore[arg-type]
    if not scored:
        return None
    return (min if best else max)(scored, key=lambda r: float(r[f"val_{SELECTION_METRIC}"]))  # type: ignore[arg-type]


def best_epoch(history: Sequence[dict[str, object]]) -> int | None:
    """The epoch number of :func:`selected_epoch` (best), or None."""
    chosen = selected_epoch(history, True)
    return None if chosen is None else int(chosen["epoch"])  # type: ignore[call-overload]


def batch_exceeds_data(s: TrainSettings, n_train: int) -> bool:
    """Whether the batch is larger than the training set (Model A's 256 on small data: one step per epoch)."""
    return s.batch_size is not None and s.batch_size > n_train


def summarize(history: list[dict[str, object]], s: TrainSettings, fit: Sequence[ManifestEntry],
              val: Sequence[ManifestEntry], resumed_from: int) -> dict[str, object]:
    """The training record: settings, data sizes, best/worst epoch by the selection metric, divergence flag."""
    def pick(best: bool) -> dict[str, object] | None:
        chosen = selected_epoch(history, best)
        return None if chosen is None else {"epoch": chosen["epoch"],
                                            **{k: v for k, v in chosen.items() if k.startswith("val_")}}

    has_critic = s.adversarial != "none" and all("train_critic" in r for r in history)
    return {
        "settings": asdict(s), "epochs": len(history), "steps": history[-1]["step"] if history else 0,
        "resumed_from_epoch": resumed_from or None, "n_train_images": len(fit),
        "batch_exceeds_training_set": batch_exceeds_data(s, len(fit)),
        "validation_images": [e.image_id for e in val], "selection_metric": f"val_{SELECTION_METRIC} (lower is better)",
        "best_epoch": pick(True), "worst_epoch": pick(False), "evaluated_epoch": len(history),
        "divergence": detect_divergence([float(r["train_g_adv"]) for r in history],  # type: ignore[arg-type]
                                        [float(r["train_critic"]) for r in history],  # type: ignore[arg-type]
                                        s.divergence_min_points, s.divergence_false_positive_bound)
        if has_critic else None,
        "epochs_table": history,
    }


def settings_for(profile: str, **overrides: object) -> TrainSettings:
    """A profile's settings with some fields replaced (``None`` values leave the profile's)."""
    if profile not in PROFILES:
        raise BenchError(f"unknown training profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None})
