"""Synthetic files of the authors' ChromaGAN release layout, written with h5py as Keras 2.2.4's ``model.save``
lays them out (``model_weights/<layer>/<layer>/kernel:0``, the VGG-16 trunk's layers inside the nested model
``model_2``, ``layer_names`` and ``weight_names`` attributes, a ``model_config`` with each BatchNormalization's
epsilon): random values of the Keras shapes of a small generator (tests of the loader's plumbing; the layout
conversion itself is tested against Keras in tests/test_chromagan_keras.py)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from colorbench.models.chromagan_keras import AUTHORS_LAYERS, keras_shapes
from colorbench.models.chromagan_nets import Generator

TRUNK_MODEL = "model_2"


def write_authors_layout(path: Path, image_size: int = 64, width: float = 0.125, classes: int = 10,
                         rename: dict[str, str] | None = None, seed: int = 0) -> Path:
    """Write a synthetic release of the authors' layout; ``rename`` renames layers (a file of another naming)."""
    rename = rename or {}
    with torch.device("meta"):
        modules = dict(Generator(image_size, width, classes).named_modules())
    rng = np.random.default_rng(seed)
    nested: list[tuple[str, dict[str, np.ndarray]]] = []
    top: list[tuple[str, dict[str, np.ndarray]]] = []
    for name, module in AUTHORS_LAYERS:
        weights = {kind: (rng.uniform(0.5, 1.5, shape) if kind == "moving_variance" else rng.normal(0, 0.05, shape))
                   .astype(np.float32) for kind, shape in keras_shapes(modules[module]).items()}
        (nested if name.startswith("block") else top).append((rename.get(name, name), weights))
    config = {"class_name": "Model", "config": {"name": "model_3", "layers": [
        {"class_name": "Model", "config": {"name": TRUNK_MODEL, "layers": [
            {"class_name": "Conv2D", "config": {"name": name}} for name, _ in nested]}},
        *({"class_name": "BatchNormalization" if name.startswith("batch") else "Layer",
           "config": {"name": name, "epsilon": 0.001}} for name, _ in top)]}}
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = b"2.2.4"
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["model_config"] = json.dumps(config).encode()
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [b"input_1", TRUNK_MODEL.encode(), *(name.encode() for name, _ in top)]
        group.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        trunk = group.create_group(TRUNK_MODEL)
        trunk.attrs["weight_names"] = [f"{name}/{kind}:0".encode() for name, weights in nested for kind in weights]
        for name, weights in nested:
            for kind, array in weights.items():
                trunk.create_dataset(f"{name}/{kind}:0", data=array)
        for name, weights in top:
            layer = group.create_group(name)
            layer.attrs["weight_names"] = [f"{name}/{kind}:0".encode() for kind in weights]
            for kind, array in weights.items():
                layer.create_dataset(f"{name}/{kind}:0", data=array)
    return path
