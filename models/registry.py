"""The model registry: a name -> how to build it, what it reads, and whether it must be fitted or trained.

A model family is one file in ``models/`` whose build functions carry ``@register_model(...)``; adding a family
is that file plus one line in :data:`FAMILY_MODULES`. A family outside the source tree (a plug-in, a test-only
family) is named in the environment variable :data:`FAMILIES_ENV` (``pkg.module[,pkg.other]``) and imported after
those. Families are imported on first lookup, so listing the registry does not pay for importing every network.

Builds are called as ``build(profile=..., seed=..., epochs=..., **family_options)``: the harness passes
``profile``, ``seed`` and ``epochs`` to trained models, and a family option (ChromaGAN's ``teacher``) only to
builds whose signature names it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from colorbench.core.errors import BenchError, unknown_name

if TYPE_CHECKING:
    from colorbench.models.base import Colorizer

#: One line per model family module.
FAMILY_MODULES = (
    "colorbench.models.gray",
    "colorbench.models.baseline0",
    "colorbench.models.chromagan",
    "colorbench.models.caption_gan",
    "colorbench.models.unet",
    "colorbench.models.zhang",
    "colorbench.models.zhang_siggraph17",
    "colorbench.models.oracle",
)

#: Environment variable naming extra family modules, comma-separated, imported after :data:`FAMILY_MODULES`.
FAMILIES_ENV = "COLORBENCH_MODEL_FAMILIES"

#: What a model may read from a batch. ``ab`` is ground truth: only ``reference`` entries may read it.
INPUTS = ("L", "luma", "caption", "ab")
Training = Literal["none", "fit", "train"]


@dataclass(frozen=True)
class ModelSpec:
    """Registry entry. ``training``: ``none`` (nothing to learn), ``fit`` (one streaming pass of statistics
    over the training source), ``train`` (gradient training, see colorbench.training). ``reference`` marks entries that
    are yardsticks rather than colorizers (they may read ground truth) and are left out of rankings.
    ``adversarial`` says whether the model is trained against a critic (the GAN claims C3 and C5 read it).
    ``version`` is the version of the model's definition: bump it when what the model computes changes; it goes
    into run.json and the prediction key (colorbench.core.cachekey), so exactly that model's predictions are remade."""

    name: str
    build: Callable[..., Colorizer]
    inputs: tuple[str, ...]
    training: Training
    description: str
    paper: str = ""
    reference: bool = False
    adversarial: bool = False
    version: int = 1

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "inputs": list(self.inputs), "training": self.training,
                "description": self.description, "paper": self.paper, "reference": self.reference,
                "adversarial": self.adversarial, "version": self.version}


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register_model(
    name: str, *, inputs: tuple[str, ...], training: Training, description: str, paper: str = "",
    reference: bool = False, adversarial: bool = False, version: int = 1,
) -> Callable[[Callable[..., Colorizer]], Callable[..., Colorizer]]:
    """Decorator for a family's build function: ``build(**options) -> Colorizer``."""
    unknown = set(inputs) - set(INPUTS)
    if unknown:
        raise ValueError(f"model {name}: unknown inputs {sorted(unknown)}; choose from {INPUTS}")
    if adversarial and training != "train":
        raise ValueError(f"model {name} is adversarial, so it must be registered with training='train'")
    if version < 1:
        raise ValueError(f"model {name}: version {version} (definition versions start at 1)")
    if "ab" in inputs and not reference:
        raise ValueError(f"model {name} reads ground-truth ab, so it must be registered with reference=True")

    def decorate(build: Callable[..., Colorizer]) -> Callable[..., Colorizer]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, build, inputs, training, description, paper, reference, adversarial,
                                    version)
        return build

    return decorate


def family_modules() -> tuple[str, ...]:
    """:data:`FAMILY_MODULES`, then the modules named in ``$COLORBENCH_MODEL_FAMILIES``."""
    extra = [name.strip() for name in os.environ.get(FAMILIES_ENV, "").split(",") if name.strip()]
    return (*FAMILY_MODULES, *(name for name in extra if name not in FAMILY_MODULES))


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for module in family_modules():
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if module in FAMILY_MODULES or exc.name is None or not module.startswith(exc.name):
                    raise
                raise BenchError(f"{FAMILIES_ENV}: model family module {module!r} not found") from exc
        _loaded = True


def model_specs() -> dict[str, ModelSpec]:
    """Every registered model, in registration order."""
    _load_families()
    return dict(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    specs = model_specs()
    if name not in specs:
        raise unknown_name("model", name, specs)
    return specs[name]


def resolve_model_names(names: list[str] | None, *, all_models: bool) -> list[str]:
    """``--all`` -> every registered model; ``--models a,b`` -> those, checked; neither -> an error."""
    if all_models:
        return list(model_specs())
    if not names:
        raise BenchError("name the models to run with --models a,b or run every model with --all")
    return [get_model_spec(n).name for n in names]
