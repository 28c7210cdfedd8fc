"""The ChromaGAN family (Vitoria et al., WACV 2020; paper Sec. 2, 4.2, 6.2, 6.4): one generator and one critic
(models/chromagan_nets.py) shared by five registry entries that differ only in their class head, adversarial loss,
optimiser settings and (``chromagan-vivid``) the vividness term of Sec. 7.6; the family's settings, profiles,
class-teacher targets and training step.

The input is the Lab lightness scaled to [0, 1] and copied into three channels; the output is ab on ChromaGAN's
[0, 1] scale, ab01 = (ab + 128) / 255. :meth:`ChromaGAN.colorize` works at any input size: it resizes L to the
network's S, predicts ab, upsamples it bilinearly to the input size and combines it with the full-resolution L.

One training step (models/trainable.py): a generator step, then a critic step (ChromaGAN's order). The generator
minimises

    L_G = w_mse * MSE(ab) + w_class * KL(teacher || class head) + w_adv * L_adv(critic(L, fake ab))

(paper Sec. 2: L = L_e + gamma_s L_s + gamma_g L_g; ChromaGAN's weights 1, 0.003, 0.1); the critic minimises the
WGAN loss plus ``gp_weight`` times the gradient penalty, or the BCE GAN loss (Model A.2), see models/gan.py.
``adversarial="none"`` trains the generator alone (a plain regression model, used by tests).

Extending the family (the caption models): override :meth:`ChromaGAN.generator_forward` to feed the generator
more than L, and :meth:`ChromaGAN.generator_losses` plus :attr:`ChromaGAN.generator_terms` and
:meth:`ChromaGAN.loss_weights` to add a weighted term to L_G; the critic step and logging follow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.data.color import rgb_from_l_ab
from colorbench.data.loader import Batch, ModelInputs
from colorbench.models.base import Colorizer
from colorbench.models.chromagan_nets import INIT_SCHEME, Critic, Generator, materialized
from colorbench.models.gan import GanLosses, critic_update, generator_adversarial
from colorbench.models.registry import register_model
from colorbench.models.teachers import (
    VGG16_FILE,
    Targets,
    batch_targets,
    has_vgg16_weights,
    load_vgg16_state,
    resolve_teacher,
    teacher_classes,
    teacher_targets,
)
from colorbench.models.trainable import LoopSettings, StepContext, TrainingData, flat_options, profile_settings
from colorbench.models.vividness import VividnessTerm

TRUNK_INITS = ("auto", "imagenet", "xavier")
ADVERSARIAL = ("wgan-gp", "bce", "none")


@dataclass(frozen=True)
class ChromaGANSettings:
    """Every hyper-parameter of a ChromaGAN training (models/trainable.py's settings pattern): the loop's
    settings, the network width, Adam's settings, the loss weights and the adversarial loss (:attr:`gan`)."""

    loop: LoopSettings
    width: float
    lr: float = 2e-5
    betas: tuple[float, float] = (0.5, 0.999)
    mse_weight: float = 1.0
    class_weight: float = 0.003
    adversarial: str = "wgan-gp"
    adversarial_weight: float = 0.1
    gp_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.adversarial not in ADVERSARIAL:
            raise BenchError(f"unknown adversarial loss {self.adversarial!r}; choose one of {', '.join(ADVERSARIAL)}")

    @property
    def gan(self) -> GanLosses | None:
        """The adversarial settings (models/gan.py), None without a critic."""
        if self.adversarial == "none":
            return None
        return GanLosses(self.adversarial, self.adversarial_weight, self.gp_weight)


#: ``smoke``: the built-in sample trains in seconds on a laptop CPU (a plumbing run, not a model).
#: ``paper``: 224x224, full VGG-16 widths, the paper's optimiser settings, ChromaGAN's batch of 10 and 5 epochs
#: (Sec. 6.4). Each registry entry changes them by its :class:`Variant` (:meth:`Variant.profiles`).
PROFILES = {
    "smoke": ChromaGANSettings(LoopSettings("smoke", image_size=64, batch_size=4, epochs=10, n_val=1, log_every=1),
                               width=0.25, lr=2e-4),
    "paper": ChromaGANSettings(LoopSettings("paper", image_size=224, batch_size=10, epochs=5), width=1.0),
}
#: The key order of :meth:`ChromaGAN.options`: that of the flat settings the family had before they held a
#: LoopSettings, so that run.json records read as before (cache keys sort their keys; run.json keeps the order).
OPTIONS_ORDER = ("profile", "image_size", "width", "batch_size", "epochs", "lr", "betas", "mse_weight", "class_weight",
                 "adversarial", "adversarial_weight", "gp_weight", "n_val", "log_every", "divergence_min_points",
                 "divergence_false_positive_bound", "seed")


def ab_to_unit(ab: torch.Tensor) -> torch.Tensor:
    """Lab ab -> ChromaGAN's [0, 1] scale: (ab + 128) / 255."""
    return (ab + 128) / 255


def rgb_from_ab01(L: torch.Tensor, ab01: torch.Tensor) -> torch.Tensor:
    """sRGB from the full-resolution L (B, 1, H, W) and the network's ab01, upsampled bilinearly to L's size."""
    ab = ab01.float() * 255 - 128
    if ab.shape[-2:] != L.shape[-2:]:
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
    return rgb_from_l_ab(L, ab)


def class_kl(target: torch.Tensor, labelled: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || class head) = sum_k p_k log(p_k / q_k), q = softmax(logits), averaged over the labelled
    images of the batch (images the teacher has no label for are left out; 0 when there is none). Written out
    (0 log 0 = 0 by ``xlogy``) rather than ``F.kl_div``, which has no autograd kernel on XLA."""
    per_image = (torch.xlogy(target, target) - target * logits.float().log_softmax(dim=1)).sum(dim=1)
    weights = labelled.to(per_image.dtype)
    return (per_image * weights).sum() / weights.sum().clamp_min(1)


@dataclass(frozen=True)
class Variant:
    """What distinguishes the registry entries: the class head, the adversarial loss, Adam's beta1, the batch
    size used by the ``paper`` profile (ChromaGAN's 10, or the paper's 256 over 8 TPU cores) and whether the
    generator also minimises the vividness term (:class:`VividChromaGAN`)."""

    class_head: bool
    adversarial: str
    beta1: float
    paper_batch_size: int
    paper: str
    description: str
    vivid: bool = False

    def profiles(self) -> dict[str, ChromaGANSettings]:
        """The family's :data:`PROFILES` with this variant's choices: Adam's beta1, the adversarial loss, no class
        weight without a class head and, in the ``paper`` profile, the variant's batch."""
        return {name: replace(settings, betas=(self.beta1, settings.betas[1]), adversarial=self.adversarial,
                              class_weight=settings.class_weight if self.class_head else 0.0,
                              loop=replace(settings.loop, batch_size=self.paper_batch_size) if name == "paper"
                              else settings.loop)
                for name, settings in PROFILES.items()}


VARIANTS = {
    "chromagan": Variant(True, "wgan-gp", 0.5, 10, "Sec. 2, 6.2", "reference ChromaGAN: VGG-16 trunk, class head "
                         "(KL to a teacher), WGAN-GP, beta1 0.5"),
    "chromagan-noclass": Variant(False, "wgan-gp", 0.5, 10, "Sec. 6.2 (claim C4)", "ChromaGAN without the class head "
                                 "and its KL loss (the paper's C4 comparison)"),
    "model-a": Variant(True, "wgan-gp", 0.9, 256, "Sec. 4.2.1, 6.4; Tables 3-4", "the paper's ChromaGAN port: "
                       "WGAN-GP, Adam beta1 0.9, batch 256 (paper profile)"),
    "model-a2": Variant(True, "bce", 0.9, 256, "Sec. 4.2.2, 6.4; Tables 3-4", "Model A with binary cross-entropy "
                        "adversarial losses; keeps the KL class loss and MSE"),
    "chromagan-vivid": Variant(True, "wgan-gp", 0.5, 10, "Sec. 7.6 (proposal, claim C6)", "chromagan plus the "
                               "vividness loss (per-segment chroma deficit against the truth)", vivid=True),
}
#: The vividness term's weight in L_G: at a chroma deficit of 20 Lab units (vivid_recall's threshold) in every
#: segment it equals the MSE of a 20-unit error on ChromaGAN's ab01 scale, (20 / 255)^2 = w * 20.
VIVID_WEIGHT = 20 / 255**2


@dataclass(frozen=True)
class PretrainedGenerator:
    """A generator whose weights come from a released file (models/chromagan_keras.py), and what its options
    record of that file (``pretrained``, the file's name and format, the settings the release needs)."""

    generator: Generator
    provenance: dict[str, object]


class ChromaGAN(Colorizer):
    """A ChromaGAN-family colorizer: the generator (its weights are the model's weights), the settings it is
    trained with, its class teacher and how its trunk was initialized; a
    :class:`~colorbench.models.trainable.TrainableModel`.

    The critic is built on the first :meth:`trained_modules` call and is not a submodule: the model's state (the
    final weights file, ``weights_sha256``) is the generator's alone. With ``release`` the generator is the
    released one (no teacher, ``trunk_init="release"``), for evaluation.
    """

    #: The generator's loss terms, in column order; ``g_total`` is their weighted sum (:meth:`loss_weights`).
    generator_terms: tuple[str, ...] = ("mse", "class_kl", "g_adv")
    #: The trained network: a :class:`Generator`, or a network wrapping one (the caption models).
    generator: nn.Module

    def __init__(self, settings: ChromaGANSettings, teacher: str | None = None, trunk_init: str = "auto",
                 release: PretrainedGenerator | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.release = release
        self.targets: dict[str, Targets] | None = None
        self._critic: list[Critic] = []  # a list, so that nn.Module does not register the critic as a submodule
        if release is not None:
            self.teacher, self.trunk_init, self.generator = None, "release", release.generator
            return
        if trunk_init not in TRUNK_INITS:
            raise BenchError(f"unknown trunk initialization {trunk_init!r}; choose one of {', '.join(TRUNK_INITS)}")
        self.teacher = resolve_teacher(teacher) if teacher else None
        if trunk_init == "auto":
            trunk_init = "imagenet" if settings.width == 1.0 and has_vgg16_weights() else "xavier"
        if trunk_init == "imagenet" and settings.width != 1.0:
            raise BenchError("ImageNet trunk weights fit width 1.0 only")
        self.trunk_init = trunk_init
        classes = teacher_classes(self.teacher) if self.teacher else None
        self.generator = generator = materialized(lambda: Generator(settings.loop.image_size, settings.width, classes),
                                                  settings.loop.seed, "generator")
        if trunk_init == "imagenet":
            state = load_vgg16_state()
            generator.trunk.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                             if k.startswith("features.") and int(k.split(".")[1]) < 23})

    def make_critic(self) -> Critic:
        """A freshly initialized critic (seeded from the settings, so training is reproducible)."""
        return materialized(lambda: Critic(self.settings.width), self.settings.loop.seed, "critic")

    def network_input(self, L: torch.Tensor) -> torch.Tensor:
        """Lab L (B, 1, H, W) in [0, 100] -> (B, 3, S, S) in [0, 1], resized to the network's size."""
        size = self.settings.loop.image_size
        if L.shape[-2:] != (size, size):
            L = F.interpolate(L, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (L / 100).expand(-1, 3, -1, -1)

    def colorize(self, inputs: ModelInputs) -> torch.Tensor:
        ab01, _ = self.generator(self.network_input(inputs.L))
        return rgb_from_ab01(inputs.L, ab01)

    def options(self) -> dict[str, object]:
        if self.release is not None:
            return {**flat_options(self.settings, OPTIONS_ORDER), "teacher": None, "trunk_init": "release",
                    **self.release.provenance}
        return {**flat_options(self.settings, OPTIONS_ORDER), "teacher": self.teacher, "trunk_init": self.trunk_init,
                "init": INIT_SCHEME, **({"trunk_weights": VGG16_FILE} if self.trunk_init == "imagenet" else {})}

    # -- training (models/trainable.py) ---------------------------------------------------------------------
    @property
    def loss_names(self) -> tuple[str, ...]:
        return (*self.generator_terms, "g_total", "critic", "gp", "c_total")

    @property
    def adversarial_terms(self) -> tuple[str, str] | None:
        return ("g_adv", "critic") if self.settings.gan is not None else None

    def loop_settings(self) -> LoopSettings:
        return self.settings.loop

    def trained_modules(self) -> dict[str, nn.Module]:
        if self.settings.gan is not None and not self._critic:
            self._critic.append(self.make_critic())
        return {"generator": self.generator, **({"critic": self._critic[0]} if self._critic else {})}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        s = self.settings
        return {name: torch.optim.Adam(module.parameters(), lr=s.lr, betas=s.betas)
                for name, module in self.trained_modules().items()}

    def prepare_training(self, data: TrainingData) -> None:
        """The teacher's class distribution of every training image (cached in ``data.cache_dir``, see
        colorbench.models.teachers.teacher_targets), when the model has a class head."""
        if self.teacher is not None and self.settings.class_weight:
            self.targets = teacher_targets(
                self.teacher, data.entries, data.source, data.resize_mode,
                data.cache_dir, data.device, data.workers, data.progress)

    def loss_weights(self) -> dict[str, float]:
        """The weight of each generator term in ``g_total`` (paper Sec. 2: 1, gamma_s, gamma_g)."""
        s = self.settings
        return {"mse": s.mse_weight, "class_kl": s.class_weight, "g_adv": s.adversarial_weight}

    def generator_forward(self, batch: Batch, step: StepContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training generator (``step.nets["generator"]``) on the batch's L: (fake ab01 in float32, class
        logits or None). Override to condition the generator on more than L."""
        with step.autocast():
            fake, logits = step.nets["generator"](self.network_input(batch.L).contiguous(
                memory_format=step.memory_format))
        return fake.float(), logits

    def generator_losses(self, batch: Batch, step: StepContext) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The generator's loss terms (named in :attr:`generator_terms`; the critic frozen) and the fake ab01.
        ``class_kl`` only with a class head and teacher targets, ``g_adv`` only with a critic."""
        fake, logits = self.generator_forward(batch, step)
        terms = {"mse": F.mse_loss(fake, ab_to_unit(batch.ab))}
        if logits is not None and self.targets is not None and self.settings.class_weight:
            targets = batch_targets(self.targets, batch)
            terms["class_kl"] = class_kl(targets.probs, targets.labelled, logits)
        gan = self.settings.gan
        if gan is not None:
            terms.update(generator_adversarial(step, batch.L / 100, fake, gan))
        return terms, fake

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        """One generator update, then one critic update on this step's fakes (generated before the generator
        update). Returns the detached loss terms."""
        losses, fake = self.generator_losses(batch, step)
        weights = self.loss_weights()
        losses["g_total"] = sum(weights[name] * term for name, term in losses.items())  # type: ignore[assignment]
        step.update("generator", losses["g_total"])
        gan = self.settings.gan
        if gan is not None:
            losses.update(critic_update(step, batch.L / 100, ab_to_unit(batch.ab), fake, gan))
        return {k: v.detach() for k, v in losses.items()}


class VividChromaGAN(ChromaGAN):
    """ChromaGAN whose generator also minimises the vividness term (paper Sec. 7.6, :mod:`colorbench.models.vividness`):
    L_G gains ``VIVID_WEIGHT * vivid``, the chroma deficit of the fake ab against the truth per segment."""

    generator_terms = (*ChromaGAN.generator_terms, "vivid")

    def __init__(self, settings: ChromaGANSettings, teacher: str | None = None, trunk_init: str = "auto") -> None:
        super().__init__(settings, teacher, trunk_init)
        self.vivid = VividnessTerm(VIVID_WEIGHT)

    def prepare_training(self, data: TrainingData) -> None:
        super().prepare_training(data)
        self.vivid.prepare(data, self.settings.loop.image_size)

    def loss_weights(self) -> dict[str, float]:
        return {**super().loss_weights(), "vivid": self.vivid.weight}

    def generator_losses(self, batch: Batch, step: StepContext) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        terms, fake = super().generator_losses(batch, step)
        terms["vivid"] = self.vivid.loss(fake * 255 - 128, batch.ab, batch.image_ids)
        return terms, fake

    def options(self) -> dict[str, object]:
        return {**super().options(), **self.vivid.options()}


def build(variant: str, profile: str = "paper", teacher: str = "auto", seed: int = 0, epochs: int | None = None,
          trunk_init: str = "auto", **overrides: object) -> ChromaGAN:
    """A family member under its variant's training profile; ``overrides`` replace single settings (image_size,
    width...)."""
    v = VARIANTS[variant]
    settings = profile_settings(v.profiles(), profile, seed=seed, epochs=epochs, **overrides)
    return (VividChromaGAN if v.vivid else ChromaGAN)(settings, teacher if v.class_head else None, trunk_init)


def _register_variants() -> None:
    """One registry entry per variant; each builds through :func:`build`."""
    for name, variant in VARIANTS.items():
        register_model(name, inputs=("L",), training="train", paper=variant.paper, description=variant.description,
                       adversarial=variant.adversarial != "none")(functools.partial(build, name))


_register_variants()
