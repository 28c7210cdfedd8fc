"""Checks every registered model passes, whatever is registered when the tests run (a new family is covered
without editing this file).

Conformance, at the smoke profile's widths on 2 photos of the built-in sample (the smallest real input): every
model builds (a trained one satisfies the trainer's protocol, models/trainable.py); a fitted model fits on the
photos, a trained one prepares its training data from them and runs one training step with finite, declared loss
terms that changes its weights; every model colorizes a batch into sRGB in [0, 1] of the input's shape
(models/base.py); its state round-trips through the safetensors checkpoint code (colorbench.io.checkpoints) into
a model built with another seed, with identical predictions. Family-specific checks (loss decrease, shapes
inside the networks, resume) stay in each family's test file.

Pins: a model's ``options()`` enter run.json, its prediction key and its trained-weights (resume) key
(bench/pipeline/model_stage.py, colorbench.training.loop): a change in their content would recompute every
checkpoint and prediction already on disk. ``tests/model_options.json`` holds, for every registered model, the
options and the loop settings it is built with under each training profile, in their key order (run.json's
text). Regenerate it (``python -m tests.test_model_registry``) only for a deliberate change of a model, together
with a bump of that model's registry ``version``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pytest
import torch

from colorbench.data.loader import Batch
from colorbench.io.checkpoints import load_state, save_state
from colorbench.io.weights import WEIGHTS_DIR_ENV
from colorbench.models.base import Colorizer
from colorbench.models.registry import FAMILY_MODULES, ModelSpec, model_specs
from colorbench.models.trainable import TrainableModel, TrainingData
from tests.training_helpers import losses_over, sample_training

#: Photos per batch, and the size the colorized batch is read at (the networks' own sizes differ: resizing in).
IMAGES, COLORIZE_SIZE = 2, 32
PINNED = Path(__file__).with_name("model_options.json")
#: How the harness builds a trained model (bench/pipeline/model_stage.py's build options), per pinned case.
BUILDS: dict[str, dict[str, object]] = {
    "smoke": {"profile": "smoke", "seed": 0, "epochs": None},
    "paper": {"profile": "paper", "seed": 0, "epochs": None},
    "smoke, seed 3, 2 epochs": {"profile": "smoke", "seed": 3, "epochs": 2},
}
SPECS = model_specs()


def build(spec: ModelSpec, seed: int = 0) -> Colorizer:
    """``spec``'s model as the harness builds it for a smoke run (a trained model: the smoke profile)."""
    return spec.build(**{**BUILDS["smoke"], "seed": seed}) if spec.training == "train" else spec.build()


def photos(cache: Path, size: int) -> tuple[Batch, TrainingData]:
    """:data:`IMAGES` photos of the built-in sample at ``size`` and the training data made of just them."""
    data, batch = sample_training(cache, size=size, images=IMAGES)
    return batch, replace(data, entries=data.entries[:IMAGES])


@dataclass
class Learned:
    """A model after learning from the photos: its registry entry, the weights hash it was built with, and the
    loss terms of its one training step (None for a model that is not trained)."""

    spec: ModelSpec
    model: Colorizer
    built_sha256: str
    losses: dict[str, float] | None


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    return photos(tmp_path_factory.getbasetemp(), COLORIZE_SIZE)[0]


@pytest.fixture(scope="module", params=list(SPECS))
def learned(request: pytest.FixtureRequest, batch: Batch, tmp_path_factory: pytest.TempPathFactory) -> Learned:
    """Each registered model, fitted on the photos (``fit``) or prepared on them and trained one step (``train``)
    at its smoke profile's size; the training cache is shared, so ChromaGAN's teacher runs once."""
    spec = SPECS[request.param]
    model = build(spec)
    built, losses = model.weights_sha256(), None
    if spec.training == "fit":
        model.fit([batch], progress=False)
    elif spec.training == "train":
        assert isinstance(model, TrainableModel)
        training_batch, data = photos(tmp_path_factory.getbasetemp() / "training", model.loop_settings().image_size)
        model.prepare_training(data)
        losses = losses_over(model, training_batch, 1)[0]
    return Learned(spec, model.eval(), built, losses)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_model_builds_and_a_trained_one_speaks_the_trainers_protocol(name: str) -> None:
    """Trained models: the protocol's methods, loss names, the adversarial terms exactly for the registry's
    adversarial models, and the loop's epochs under ``options()["epochs"]`` (the trainer's resume rule)."""
    spec = SPECS[name]
    model = build(spec)
    assert isinstance(model, Colorizer)
    if spec.training != "train":
        return
    assert isinstance(model, TrainableModel) and model.loss_names
    terms = model.adversarial_terms
    assert (terms is not None) == spec.adversarial and set(terms or ()) <= set(model.loss_names)
    loop = model.loop_settings()
    assert loop.profile == "smoke" and model.options()["epochs"] == loop.epochs


def test_a_trained_model_steps_with_finite_declared_losses(learned: Learned) -> None:
    if learned.losses is None:
        pytest.skip(f"{learned.spec.name} is not trained ({learned.spec.training!r})")
    assert learned.losses and set(learned.losses) <= set(learned.model.loss_names)
    assert all(math.isfinite(value) for value in learned.losses.values()), learned.losses
    assert learned.model.weights_sha256() != learned.built_sha256  # the step updated the weights


def test_every_model_colorizes_into_range(learned: Learned, batch: Batch) -> None:
    with torch.no_grad():
        rgb = learned.model.colorize(batch.inputs_for(learned.spec.inputs))
    assert rgb.shape == batch.rgb.shape and rgb.dtype == torch.float32
    assert bool(torch.isfinite(rgb).all()) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1


def test_state_round_trips_through_a_checkpoint(learned: Learned, batch: Batch, tmp_path: Path) -> None:
    """Into a model built with another seed: the file's hash is the model's, the predictions are identical."""
    digest = save_state(tmp_path / "model.safetensors", learned.model.state_dict())
    assert digest == learned.model.weights_sha256()
    fresh = build(learned.spec, seed=1)
    fresh.load_state_dict(load_state(tmp_path / "model.safetensors"))
    assert fresh.weights_sha256() == digest
    inputs = batch.inputs_for(learned.spec.inputs)
    with torch.no_grad():
        assert torch.equal(fresh.eval().colorize(inputs), learned.model.colorize(inputs))


def recorded(spec: ModelSpec) -> dict[str, object]:
    """What ``spec`` records under every pinned build: ``options()`` and, for a trained model, its loop settings.
    A model with nothing to train is built once, without options."""
    if spec.training != "train":
        return {"no profile": {"options": spec.build().options()}}
    cases: dict[str, object] = {}
    for case, options in BUILDS.items():
        model = spec.build(**options)
        assert isinstance(model, TrainableModel)
        cases[case] = {"options": model.options(), "loop": asdict(model.loop_settings())}
    return cases


def in_tree(spec: ModelSpec) -> bool:
    """Whether ``spec`` comes from a family of the source tree (:data:`FAMILY_MODULES`), not from a module named in
    ``$COLORBENCH_MODEL_FAMILIES`` (tests/families, a plug-in), which has no checkpoints of ours to protect."""
    return getattr(spec.build, "func", spec.build).__module__ in FAMILY_MODULES


def as_text(value: object) -> str:
    """The JSON text of ``value`` with its key order kept (run.json's order, which sorted cache keys ignore)."""
    return json.dumps(value, indent=1)


@pytest.fixture
def no_weight_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty weight folders: ``auto`` choices (ChromaGAN's trunk and teacher, zhang-eccv16's initialization)
    resolve as on a machine without pretrained files, so the pins do not depend on the machine."""
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))


@pytest.mark.parametrize("name", list(SPECS))
def test_options_are_pinned(name: str, no_weight_files: None) -> None:
    pinned = json.loads(PINNED.read_text())
    if name not in pinned and not in_tree(SPECS[name]):
        pytest.skip(f"{name} is registered from outside the source tree")
    assert name in pinned, f"{name} has no pinned options: regenerate {PINNED.name} (see the module docstring)"
    assert as_text(recorded(SPECS[name])) == as_text(pinned[name])


def test_every_pinned_model_is_registered() -> None:
    """A pin of a model that is gone (renamed, removed) is stale."""
    assert set(json.loads(PINNED.read_text())) <= set(SPECS)


def write_pins() -> None:
    """Rewrite tests/model_options.json from the models as they are now, without weight files."""
    with tempfile.TemporaryDirectory() as empty:
        os.environ[WEIGHTS_DIR_ENV] = os.environ["TORCH_HOME"] = empty
        pins = {name: recorded(spec) for name, spec in SPECS.items() if in_tree(spec)}
        PINNED.write_text(as_text(pins) + "\n")


if __name__ == "__main__":
    write_pins()
