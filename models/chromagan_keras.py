"""ChromaGAN from the authors' released Keras weights (``my_model_colorization.h5``, a full Keras model saved
with its two outputs, ab and the class distribution; Vitoria et al.'s public Keras code, reference.md sec. 2),
read with h5py (colorbench.io.keras_h5, no TensorFlow) and mapped layer by layer onto
:class:`~colorbench.models.chromagan_nets.Generator`.

Layer names: the authors' code names none of its own layers, so Keras numbers them in creation order. Their
training script builds the critic first (five ``conv2d`` layers), then the generator: VGG-16's named layers
(``block1_conv1`` ... ``block4_conv3``) inside a nested model, ``conv2d_6``-``_9`` with
``batch_normalization_1``-``_4`` (global branch), ``dense_1``-``_3`` (global dense), ``dense_4``-``_6`` (class
head), ``conv2d_10``-``_11`` with ``batch_normalization_5``-``_6`` (mid-level), ``conv2d_12``-``_17`` (decoder).
:data:`AUTHORS_LAYERS` pins that table; a file without one of these layers, with a layer of another shape, or
with any other weight-bearing layer is refused in one line naming the first layer that does not fit.

Layouts: conv kernels HWIO -> OIHW; dense kernels (in, out) -> (out, in); BatchNorm gamma, beta, moving mean
and variance -> weight, bias, running mean and var, with the file's epsilon (Keras' default 1e-3; PyTorch's is
1e-5) set on every BatchNorm module. The dense layers after the flatten (``dense_1``, ``dense_4``) read a
channels-last (H, W, C) flattening where PyTorch flattens (C, H, W), so their input axis is permuted.

Geometry read from the file: the width from block1_conv1's filters (64 at the release's width 1.0), the class
count from dense_6, the input size from dense_1's input (7 x 7 x 512 -> 224). The release's stride-2 global
convolutions pad as Keras does, so the generator is built with ``keras_padding=True``: the one way in which
colorbench's own ChromaGAN differs from the authors' network (models/chromagan_nets.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.io.keras_h5 import KerasFile, read_keras_h5
from colorbench.models.chromagan import VARIANTS, ChromaGAN, PretrainedGenerator
from colorbench.models.chromagan_nets import Generator
from colorbench.models.trainable import profile_settings

RELEASE_FILE = "my_model_colorization.h5"
#: Where the authors publish it: the link in their README's "Pretrained Weights" section (a Google Drive
#: folder) and the demo's direct link.
RELEASE_URLS = ("https://drive.google.com/drive/folders/12s4rbLmnjW4e8MmESbfRStGbrjOrahlW",
                "http://gpi.upf.edu/chromagan/my_model_colorization.h5")
#: Keras' BatchNormalization epsilon when the file's config does not give one.
KERAS_BN_EPSILON = 1e-3
#: (Keras layer in the authors' file, Generator module), in the order the authors' code creates the layers.
AUTHORS_LAYERS: tuple[tuple[str, str], ...] = (
    ("block1_conv1", "trunk.0"), ("block1_conv2", "trunk.2"), ("block2_conv1", "trunk.5"),
    ("block2_conv2", "trunk.7"), ("block3_conv1", "trunk.10"), ("block3_conv2", "trunk.12"),
    ("block3_conv3", "trunk.14"), ("block4_conv1", "trunk.17"), ("block4_conv2", "trunk.19"),
    ("block4_conv3", "trunk.21"),
    ("conv2d_6", "global_convs.0.0"), ("batch_normalization_1", "global_convs.0.2"),
    ("conv2d_7", "global_convs.1.0"), ("batch_normalization_2", "global_convs.1.2"),
    ("conv2d_8", "global_convs.2.0"), ("batch_normalization_3", "global_convs.2.2"),
    ("conv2d_9", "global_convs.3.0"), ("batch_normalization_4", "global_convs.3.2"),
    ("dense_1", "global_dense.1"), ("dense_2", "global_dense.2"), ("dense_3", "global_dense.3"),
    ("dense_4", "class_head.1"), ("dense_5", "class_head.2"), ("dense_6", "class_head.3"),
    ("conv2d_10", "mid.0.0"), ("batch_normalization_5", "mid.0.2"),
    ("conv2d_11", "mid.1.0"), ("batch_normalization_6", "mid.1.2"),
    ("conv2d_12", "decoder.0.0"), ("conv2d_13", "decoder.1.0"), ("conv2d_14", "decoder.3.0"),
    ("conv2d_15", "decoder.4.0"), ("conv2d_16", "decoder.6.0"), ("conv2d_17", "decoder.7"),
)
#: The dense layers whose input is the channels-last flattening of the global branch's last feature map.
FLATTENED = ("dense_1", "dense_4")
#: Keras weight kind -> PyTorch parameter or buffer, per module type.
CONV_OR_DENSE = {"kernel": "weight", "bias": "bias"}
BATCH_NORM = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def conv_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Keras conv kernel (kh, kw, in, out) -> PyTorch (out, in, kh, kw)."""
    return kernel.permute(3, 2, 0, 1)


def dense_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Keras dense kernel (in, out) -> PyTorch (out, in)."""
    return kernel.T


def flattened_dense_kernel(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """A dense kernel over a channels-last flattening (in = H W C, out) -> PyTorch (out, C H W) over a
    channels-first flattening of the same (square) feature map."""
    grid = math.isqrt(kernel.shape[0] // channels)
    return kernel.reshape(grid, grid, channels, -1).permute(3, 2, 0, 1).reshape(kernel.shape[1], -1)


def keras_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """The Keras weight shapes a generator module takes, by weight kind."""
    if isinstance(module, nn.BatchNorm2d):
        return dict.fromkeys(BATCH_NORM, (module.num_features,))
    if isinstance(module, nn.Conv2d):
        out, c_in, kh, kw = module.weight.shape
        return {"kernel": (kh, kw, c_in, out), "bias": (out,)}
    if isinstance(module, nn.Linear):
        return {"kernel": (module.in_features, module.out_features), "bias": (module.out_features,)}
    raise TypeError(f"no Keras layout for {type(module).__name__}")


def misfit(release: KerasFile, name: str, problem: str) -> BenchError:
    """The one-line refusal naming the first layer of the file that does not fit."""
    return BenchError(f"{release.path} does not fit the authors' ChromaGAN generator: layer {name} {problem}")


def architecture(release: KerasFile) -> tuple[int, float, int]:
    """(input size, width, classes) of the generator that the file's shapes describe."""
    shapes = {name: {kind: array.shape for kind, array in layer.weights.items()}
              for name, layer in release.layers.items()}
    for name in ("block1_conv1", "conv2d_9", "dense_1", "dense_6"):
        if "kernel" not in shapes.get(name, {}):
            raise misfit(release, name, "is missing")
    width = shapes["block1_conv1"]["kernel"][-1] / 64
    channels, flat = shapes["conv2d_9"]["kernel"][-1], shapes["dense_1"]["kernel"][0]
    grid = math.isqrt(flat // channels)
    if grid * grid * channels != flat:
        raise misfit(release, "dense_1", f"takes {flat} inputs, not a square grid of conv2d_9's {channels} channels")
    return 32 * grid, width, int(shapes["dense_6"]["kernel"][-1])


def check_fit(release: KerasFile, generator: Generator) -> None:
    """Raise :class:`BenchError` at the first layer of :data:`AUTHORS_LAYERS` that is missing or misshapen, or
    the first weight-bearing layer of the file that is not in it."""
    modules = dict(generator.named_modules())
    for name, module in AUTHORS_LAYERS:
        layer = release.layers.get(name)
        if layer is None:
            raise misfit(release, name, f"({module}) is missing")
        wanted = keras_shapes(modules[module])
        found = {kind: tuple(array.shape) for kind, array in layer.weights.items()}
        if found != wanted:
            raise misfit(release, name, f"({module}) holds {found}, the generator needs {wanted}")
    extra = [name for name in release.layers if name not in dict(AUTHORS_LAYERS)]
    if extra:
        raise misfit(release, extra[0], "is not one of its layers")


def bn_epsilon(release: KerasFile) -> float:
    """The BatchNorm epsilon of the file's config (all its BatchNorm layers must agree), else Keras' default."""
    found = {float(eps) for name, _ in AUTHORS_LAYERS if name.startswith("batch_normalization")
             if isinstance(eps := release.layers[name].config.get("epsilon", KERAS_BN_EPSILON), int | float)}
    if len(found) > 1:
        raise BenchError(f"{release.path}: its BatchNormalization layers use different epsilons {sorted(found)}")
    return found.pop() if found else KERAS_BN_EPSILON


def converted_state(release: KerasFile, generator: Generator) -> dict[str, torch.Tensor]:
    """The file's arrays under the generator's names and in its layouts (the file already checked to fit)."""
    modules = dict(generator.named_modules())
    channels = release.layers["conv2d_9"].weights["kernel"].shape[-1]
    state: dict[str, torch.Tensor] = {}
    for name, module_name in AUTHORS_LAYERS:
        module = modules[module_name]
        table = BATCH_NORM if isinstance(module, nn.BatchNorm2d) else CONV_OR_DENSE
        for kind, array in release.layers[name].weights.items():
            tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            if kind == "kernel":
                tensor = (conv_kernel(tensor) if isinstance(module, nn.Conv2d)
                          else flattened_dense_kernel(tensor, channels) if name in FLATTENED
                          else dense_kernel(tensor))
            state[f"{module_name}.{table[kind]}"] = tensor.contiguous()
    return state


def release_generator(release: KerasFile) -> tuple[Generator, float, int, float]:
    """The generator the file describes, checked layer by layer and, when the file was read with values,
    loaded with its weights; its BatchNorm epsilon (set on every BatchNorm module), input size and width."""
    size, width, classes = architecture(release)
    with torch.device("meta"):
        generator = Generator(size, width, classes, keras_padding=True)
    check_fit(release, generator)
    eps = bn_epsilon(release)
    if release.sha256 is not None:
        generator = generator.to_empty(device="cpu")
        missing, unexpected = generator.load_state_dict(converted_state(release, generator), strict=False)
        if unexpected or [key for key in missing if not key.endswith("num_batches_tracked")]:
            raise BenchError(f"{release.path}: missing {missing[:3]}, unexpected {unexpected[:3]} after conversion")
        for module in generator.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = eps
                if module.num_batches_tracked is not None:
                    module.num_batches_tracked.zero_()
    return generator, eps, size, width


def check_release(path: Path) -> None:
    """Check a Keras file against the authors' generator from its shapes alone (no weights read)."""
    release_generator(read_keras_h5(path, values=False))


def chromagan_from_release(path: Path) -> ChromaGAN:
    """The ``chromagan`` entry with the authors' weights from a Keras file: a :class:`ChromaGAN` at the file's
    geometry, in evaluation mode, whose options record the release (file name, Keras version, epsilon, padding)."""
    release = read_keras_h5(path)
    generator, eps, size, width = release_generator(release)
    settings = profile_settings(VARIANTS["chromagan"].profiles(), "paper", image_size=size, width=width)
    provenance: dict[str, object] = {"pretrained": "authors' release", "release_file": path.name,
                                     "release_sha256": release.sha256, "release_format": f"keras h5 "
                                     f"(Keras {release.keras_version})", "bn_eps": eps, "padding": "keras same"}
    return ChromaGAN(settings, release=PretrainedGenerator(generator, provenance))
