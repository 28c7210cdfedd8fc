"""Checks every registered model passes, whatever is registered when the tests run (a new family is covered
without editing this file): the options a model records are pinned.

A model's ``options()`` enter run.json, its prediction key and its trained-weights (resume) key
(bench/pipeline/model_stage.py, colorbench.training.loop): a change in their content would recompute every
checkpoint and prediction already on disk. ``tests/model_options.json`` holds, for every registered model, the
options and the loop settings it is built with under each training profile, in their key order (run.json's
text). Regenerate it (``python -m tests.test_model_registry``) only for a deliberate change of a model, together
with a bump of that model's registry ``version``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import pytest
from colorbench.io.weights import WEIGHTS_DIR_ENV
from colorbench.models.registry import FAMILY_MODULES, ModelSpec, model_specs
from colorbench.models.trainable import TrainableModel

PINNED = Path(__file__).with_name("model_options.json")
#: How the harness builds a trained model (bench/pipeline/model_stage.py's build options), per pinned case.
BUILDS: dict[str, dict[str, object]] = {
    "smoke": {"profile": "smoke", "seed": 0, "epochs": None},
    "paper": {"profile": "paper", "seed": 0, "epochs": None},
    "smoke, seed 3, 2 epochs": {"profile": "smoke", "seed": 3, "epochs": 2},
}
SPECS = model_specs()


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
