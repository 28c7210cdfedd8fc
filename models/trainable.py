"""What a gradient-trained model gives the trainer (``colorbench.training``), which knows no model.

A trained model is a :class:`~colorbench.models.base.Colorizer` that also satisfies :class:`TrainableModel`: it owns its
hyper-parameters (:class:`LoopSettings` for what the loop reads, anything else in its own settings), its modules
and optimisers, and its loss terms. One training step is the model's: it computes named losses and asks the
trainer, through :class:`StepContext`, to apply each optimiser update in the order it wants (a GAN: generator,
then critic; a regression model: one update). The trainer provides the loop around it: data, seeded randomness,
DDP wrapping, bf16 autocast, step marks for XLA, CSV logs of whatever loss names come back, validation with the
model's declared inputs, epoch checkpoints, bit-for-bit resume on the CPU, best/worst epoch and the divergence
rule for adversarial models.

Settings, the one pattern of every trained family (models/unet.py is the plainest example):

- a frozen dataclass ``<Family>Settings`` whose first field is ``loop: LoopSettings``, followed by the family's
  own hyper-parameters (network width, optimiser, loss weights);
- ``PROFILES = {"smoke": ..., "paper": ...}``, one settings object per name of :data:`PROFILE_NAMES`;
- ``build(profile="paper", seed=0, epochs=None, ..., **overrides)`` returns the model built from
  ``profile_settings(PROFILES, profile, seed=seed, epochs=epochs, **overrides)``: an override names a field of
  either dataclass, ``None`` leaves the profile's value;
- ``options()`` starts with ``flat_options(self.settings)``: the loop's fields (so ``profile``, ``seed`` and
  ``epochs`` at the top level, where the trainer and the claims read them), then the family's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from colorbench.core.device import autocast, memory_format
from colorbench.core.errors import BenchError
from colorbench.data.loader import Batch, ModelInputs
from colorbench.data.splits import ManifestEntry

#: The profile names every trained family provides: ``smoke`` (the built-in sample trains in seconds on a CPU, a
#: plumbing run) and ``paper`` (the paper's or the family's published settings).
PROFILE_NAMES = ("smoke", "paper")


@dataclass(frozen=True)
class LoopSettings:
    """What the training loop reads from a model's settings.

    ``image_size``: the square size training batches are resized to. ``n_val``: validation images held out of
    the training manifest (capped at a tenth, at least one). ``divergence_*`` parametrize the divergence rule of
    adversarial models (``colorbench.training.divergence``).
    """

    profile: str
    image_size: int
    batch_size: int
    epochs: int
    seed: int = 0
    n_val: int = 500
    log_every: int = 10
    divergence_min_points: int = 5
    divergence_false_positive_bound: float = 0.01


class FamilySettings(Protocol):
    """A trained family's settings: a dataclass holding the loop's settings in ``loop`` (module text)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def loop(self) -> LoopSettings: ...


S = TypeVar("S", bound=FamilySettings)


def profile_settings(profiles: Mapping[str, S], profile: str, **overrides: object) -> S:
    """``profiles[profile]`` with single settings replaced: an override naming a :class:`LoopSettings` field
    replaces it in ``loop``, any other a field of the family's settings; ``None`` leaves the profile's value (a
    run's ``epochs=None`` keeps the profile's epochs). An unknown profile or setting is a :class:`BenchError`."""
    if profile not in PROFILE_NAMES or profile not in profiles:
        raise BenchError(f"unknown training profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    base = profiles[profile]
    given = {name: value for name, value in overrides.items() if value is not None}
    loop_fields = {f.name for f in fields(LoopSettings)}
    family_fields = set(base.__dataclass_fields__) - {"loop"}
    unknown = sorted(set(given) - loop_fields - family_fields)
    if unknown:
        raise BenchError(f"unknown training setting(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted(loop_fields | family_fields))}")
    loop = replace(base.loop, **{k: v for k, v in given.items() if k in loop_fields})  # type: ignore[arg-type]
    return replace(base, loop=loop, **{k: v for k, v in given.items() if k in family_fields})


def flat_options(settings: FamilySettings, order: Sequence[str] = ()) -> dict[str, object]:
    """A family's settings as one flat dict for ``options()``: the loop's fields, then the family's own; the keys
    named in ``order`` first, in that order (a family keeps the key order its run.json records were written in)."""
    own = asdict(settings)
    flat = {**own.pop("loop"), **own}
    return {**{key: flat[key] for key in order}, **flat}


@dataclass(frozen=True)
class TrainingData:
    """What :meth:`TrainableModel.prepare_training` may read: the training entries (validation held out), their
    source spec, how originals are resized, a folder for the model's derived training files (reused across runs
    of the same folder), the device and loader settings."""

    entries: Sequence[ManifestEntry]
    source: str
    resize_mode: str
    cache_dir: Path
    device: torch.device
    workers: int = 0
    progress: bool = True


@dataclass
class StepContext:
    """The trainer's side of one training step.

    ``nets`` are the model's :meth:`~TrainableModel.trained_modules`, wrapped in DistributedDataParallel when the
    run is distributed: forward passes that train go through them. ``update(name, loss)`` zeroes the named
    optimiser's gradients, back-propagates ``loss`` and steps it. ``rng`` is a CPU generator seeded by
    (seed, epoch): every random draw of the step comes from it, so a resumed run repeats it.
    """

    device: torch.device
    rng: torch.Generator
    nets: dict[str, nn.Module]
    update: Callable[[str, torch.Tensor], None]
    bf16: bool = True

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast where the device supports it (CUDA, XLA) and the run allows it; else a no-op."""
        return autocast(self.device, self.bf16)

    @property
    def memory_format(self) -> torch.memory_format:
        return memory_format(self.device)


@runtime_checkable
class TrainableModel(Protocol):
    """The protocol of gradient-trained models (registry ``training="train"``).

    - ``loss_names``: the loss terms :meth:`training_step` returns, in the column order of ``steps.csv`` and
      ``epochs.csv``; returning an undeclared name is an error, never a silently dropped column.
    - ``adversarial_terms``: (generator's adversarial term, critic's loss) for the divergence rule, or None for a
      model trained without an adversary.
    """

    @property
    def loss_names(self) -> tuple[str, ...]: ...

    @property
    def adversarial_terms(self) -> tuple[str, str] | None: ...

    def loop_settings(self) -> LoopSettings:
        """Batch size, epochs, image size and the rest of what the loop reads."""
        ...

    def trained_modules(self) -> dict[str, nn.Module]:
        """Every module with trained state, by name (``{"generator": ..., "critic": ...}``): the trainer moves
        them to the device, wraps them for DDP, switches train/eval mode and checkpoints them."""
        ...

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name, over the trained modules' parameters (called once they are on the device)."""
        ...

    def prepare_training(self, data: TrainingData) -> None:
        """Derive what training needs from the training data before the first epoch (ChromaGAN's teacher
        distributions, a caption vocabulary). Called before the trained-weights cache lookup, so what it derives
        may enter :meth:`options`; it must be cheap when its own caches in ``data.cache_dir`` exist."""
        ...

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        """Compute the losses of ``batch`` (at ``loop_settings().image_size``), apply the updates with
        ``step.update`` and return the loss terms as scalar tensors named in :attr:`loss_names` (no host sync)."""
        ...

    def options(self) -> dict[str, object]:
        """The hyper-parameters that change the output (models/base.py), with the loop's epochs under the top-level
        key ``epochs``: the trainer drops that key from the resume key, so a longer run resumes a shorter one."""
        ...

    def colorize(self, inputs: ModelInputs) -> torch.Tensor: ...
