"""Adversarial training pieces shared by the GAN families (ChromaGAN, the caption models): the losses, a frozen
critic, the generator's adversarial term and the critic's update (paper Sec. 2 and 4.2; reference.md sec. 2).

A GAN family's ``training_step`` (models/trainable.py) computes its own generator losses, adds
``GanLosses.adversarial_weight * generator_adversarial(...)["g_adv"]``, applies ``step.update("generator", ...)``
and then calls :func:`critic_update` with the same batch's detached fakes. Both helpers call the critic as
``critic(condition, ab)`` (ChromaGAN's PatchGAN on concat(L, ab)), so a family whose critic takes another
condition (a caption embedding) passes that as ``condition``.

Losses: WGAN with gradient penalty (Gulrajani et al. 2017; ChromaGAN, Model A) or the binary cross-entropy GAN
loss (Model A.2, Sec. 4.2.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from colorbench.core.errors import BenchError
from colorbench.models.trainable import StepContext

ADVERSARIAL = ("wgan-gp", "bce")


@dataclass(frozen=True)
class GanLosses:
    """The adversarial settings of a GAN family: the loss (``wgan-gp`` or ``bce``), the weight of the generator's
    adversarial term in its total loss (ChromaGAN's 0.1) and the gradient-penalty weight (WGAN-GP's 10)."""

    adversarial: str = "wgan-gp"
    adversarial_weight: float = 0.1
    gp_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.adversarial not in ADVERSARIAL:
            raise BenchError(f"unknown adversarial loss {self.adversarial!r}; choose one of {', '.join(ADVERSARIAL)}")


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


ADVERSARIAL_LOSSES = {"wgan-gp": (wgan_generator_loss, wgan_critic_loss), "bce": (bce_generator_loss, bce_critic_loss)}


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` need no gradient inside the block (the critic during the generator step)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def unwrapped(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (itself otherwise)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def generator_adversarial(step: StepContext, condition: torch.Tensor, fake: torch.Tensor, losses: GanLosses,
                          critic: str = "critic") -> dict[str, torch.Tensor]:
    """``{"g_adv": ...}``: the generator's adversarial term for ``fake`` ab (with gradient to the generator),
    scored by the frozen critic ``step.nets[critic]`` (outside DDP: its gradients are never reduced)."""
    net = unwrapped(step.nets[critic])
    with frozen(net), step.autocast():
        scores = net(condition, fake).float()
    return {"g_adv": ADVERSARIAL_LOSSES[losses.adversarial][0](scores)}


def critic_update(step: StepContext, condition: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                  losses: GanLosses, critic: str = "critic") -> dict[str, torch.Tensor]:
    """One critic update on real and (detached) fake ab; returns ``critic`` (the adversarial loss), ``gp`` (the
    gradient penalty at eps * real + (1 - eps) * fake, WGAN-GP only) and ``c_total`` = critic + gp_weight * gp.

    eps is drawn from ``step.rng`` for every update (also for BCE, so the random stream does not depend on the
    loss). Real, fake and interpolated ab go through the critic in one forward pass (one DDP reduction; the
    critic has no batch statistics). The update goes through ``step.update(critic, c_total)``.
    """
    eps = torch.rand(len(real), 1, 1, 1, generator=step.rng).to(real.device)
    wgan = losses.adversarial == "wgan-gp"
    parts = [real, fake.detach()]
    if wgan:
        interpolates = (eps * real + (1 - eps) * parts[1]).requires_grad_(True)
        parts.append(interpolates)
    with step.autocast():
        scores = step.nets[critic](condition.repeat(len(parts), 1, 1, 1), torch.cat(parts)).float().chunk(len(parts))
    terms = {"critic": ADVERSARIAL_LOSSES[losses.adversarial][1](scores[0], scores[1])}
    terms["c_total"] = terms["critic"]
    if wgan:
        terms["gp"] = gradient_penalty(scores[2], interpolates)
        terms["c_total"] = terms["critic"] + losses.gp_weight * terms["gp"]
    step.update(critic, terms["c_total"])
    return terms
