"""Keras HDF5 model files read with h5py alone (no TensorFlow at run time): every weight-bearing layer's arrays
by layer name, and each layer's configuration (BatchNormalization's epsilon, say) from the ``model_config``
attribute.

A file written by ``model.save("x.h5")`` (Keras 2 and Keras 3's legacy HDF5 format) holds a group
``model_weights`` with an attribute ``layer_names``; each layer's group lists its datasets in ``weight_names``,
e.g. ``conv2d_6/kernel:0``, or for a model nested as one layer (ChromaGAN's VGG-16 trunk) ``block1_conv1/kernel:0``
under the nested model's group. A file of ``model.save_weights`` has the same layout at its root. Layers are keyed
here by the name of the layer that owns the weight (``block1_conv1``, not the nested model's name), and each
weight by its kind (``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``). Arrays keep
Keras' layouts (conv kernels HWIO, dense kernels (in, out)); converting them is the model's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from colorbench.core.errors import BenchError
from colorbench.io.weights import record_weight_file

#: The first eight bytes of every HDF5 file.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    """Whether ``path`` is a file that starts with the HDF5 signature."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


@dataclass(frozen=True)
class KerasLayer:
    """One weight-bearing layer: its Keras class (from ``model_config``; "" when the file has none), its
    configuration and its arrays by weight kind. Read without values, the arrays are zero-stride placeholders
    of the stored shapes and dtypes (no memory)."""

    name: str
    class_name: str
    config: dict[str, object]
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class KerasFile:
    """A Keras HDF5 file's weight-bearing layers, in stored order, and its sha256 (None when read for shapes)."""

    path: Path
    layers: dict[str, KerasLayer]
    keras_version: str
    sha256: str | None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def layer_configs(model_config: object) -> dict[str, tuple[str, dict[str, object]]]:
    """{layer name: (class name, config)} of every layer in a ``model_config`` JSON, nested models included."""
    found: dict[str, tuple[str, dict[str, object]]] = {}
    stack = [json.loads(_text(model_config))] if model_config is not None else []
    while stack:
        entry = stack.pop()
        config = entry.get("config", {}) if isinstance(entry, dict) else {}
        if not isinstance(config, dict):
            continue
        if "name" in config:
            found.setdefault(str(config["name"]), (str(entry.get("class_name", "")), config))
        stack.extend(layer for layer in config.get("layers", []) if isinstance(layer, dict))
    return found


def read_keras_h5(path: Path, values: bool = True) -> KerasFile:
    """The weight-bearing layers of a Keras HDF5 file (see the module docstring); ``values=False`` reads only
    shapes and dtypes. Reading values records the file's sha256 for the run's provenance
    (colorbench.io.weights). A file that is not HDF5, or HDF5 without Keras' layer lists, raises
    :class:`BenchError` with one line naming it."""
    if not is_hdf5(path):
        raise BenchError(f"{path} is not an HDF5 file (a Keras .h5 model)")
    layers: dict[str, KerasLayer] = {}
    try:
        with h5py.File(path, "r") as handle:
            group = handle.get("model_weights", handle)
            if "layer_names" not in group.attrs:
                raise BenchError(f"{path} is an HDF5 file without Keras' layer_names: not a Keras model file")
            configs = layer_configs(handle.attrs.get("model_config"))
            for top in (_text(name) for name in group.attrs["layer_names"]):
                for weight_name in (_text(w) for w in group[top].attrs.get("weight_names", [])):
                    parts = weight_name.split("/")
                    owner = parts[-2] if len(parts) > 1 else top
                    kind = parts[-1].split(":")[0]
                    dataset = group[top][weight_name]
                    array = (np.asarray(dataset) if values
                             else np.broadcast_to(np.zeros((), dataset.dtype), dataset.shape))
                    if owner not in layers:
                        class_name, config = configs.get(owner, ("", {}))
                        layers[owner] = KerasLayer(owner, class_name, config)
                    layers[owner].weights[kind] = array
            version = _text(handle.attrs.get("keras_version", "unknown"))
    except (OSError, KeyError, ValueError) as exc:
        raise BenchError(f"cannot read Keras file {path}: {' '.join(str(exc).split())}") from exc
    return KerasFile(path, layers, version, record_weight_file(path) if values else None)
