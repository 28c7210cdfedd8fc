"""The ChromaGAN release loader (models/chromagan_keras.py) against an independently built Keras reference: the
generator built in Keras from reference.md sec. 2's architecture facts under the layer names of the authors'
code, given random weights (BatchNorm statistics included), saved as the authors saved theirs (the full model,
two outputs, ``model.save("....h5")``), loaded through colorbench's h5py reader; the two forward passes on the
same inputs agree to 1e-4 in ab (and in the class distribution). Deliberately broken conversions (flatten order,
kernel transpose, BatchNorm epsilon, symmetric padding) must make them disagree.

Runs in tox.ini's ``keras`` environment (tensorflow-cpu); skipped where Keras is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorbench.models import chromagan_keras
from colorbench.models.chromagan_nets import SamePaddedConv2d

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None,
                                reason="needs Keras (tox -e keras installs tensorflow-cpu)")

SIZE, WIDTH, CLASSES = 96, 0.125, 12
TOLERANCE = 1e-4
#: A broken conversion must move ab by at least this much somewhere (ab01 lies in [0, 1]).
BROKEN = 1e-2


def keras_generator(size: int, width: float, classes: int) -> object:
    """ChromaGAN's generator in Keras (reference.md sec. 2) with the authors' layer names."""
    import keras
    from keras import layers

    def w(channels: int) -> int:
        return max(1, round(channels * width))

    trunk_input = keras.Input((size, size, 3))
    x = trunk_input
    for block, (convs, channels) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512)), start=1):
        for index in range(1, convs + 1):
            x = layers.Conv2D(w(channels), 3, padding="same", activation="relu", name=f"block{block}_conv{index}")(x)
        if block < 4:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    trunk = keras.Model(trunk_input, x, name="model_2")
    image = keras.Input((size, size, 3), name="input_1")
    features = trunk(image)
    summary = features
    for index, stride in enumerate((2, 1, 2, 1)):
        summary = layers.Conv2D(w(512), 3, strides=stride, padding="same", activation="relu",
                                name=f"conv2d_{6 + index}")(summary)
        summary = layers.BatchNormalization(name=f"batch_normalization_{1 + index}")(summary)
    dense = layers.Flatten(name="flatten_1")(summary)
    for index, units in enumerate((1024, 512, 256)):
        dense = layers.Dense(w(units), name=f"dense_{1 + index}")(dense)
    grid = size // 8
    dense = layers.Reshape((grid, grid, w(256)), name="reshape_1")(layers.RepeatVector(grid * grid)(dense))
    head = layers.Flatten(name="flatten_2")(summary)
    head = layers.Dense(w(4096), name="dense_4")(head)
    head = layers.Dense(w(4096), name="dense_5")(head)
    head = layers.Dense(classes, activation="softmax", name="dense_6")(head)
    mid = layers.Conv2D(w(512), 3, padding="same", activation="relu", name="conv2d_10")(features)
    mid = layers.BatchNormalization(name="batch_normalization_5")(mid)
    mid = layers.Conv2D(w(256), 3, padding="same", activation="relu", name="conv2d_11")(mid)
    mid = layers.BatchNormalization(name="batch_normalization_6")(mid)
    out = layers.Concatenate(name="concatenate_2")([mid, dense])
    out = layers.Conv2D(w(256), 1, padding="same", activation="relu", name="conv2d_12")(out)
    out = layers.Conv2D(w(128), 3, padding="same", activation="relu", name="conv2d_13")(out)
    out = layers.UpSampling2D(2)(out)
    out = layers.Conv2D(w(64), 3, padding="same", activation="relu", name="conv2d_14")(out)
    out = layers.Conv2D(w(64), 3, padding="same", activation="relu", name="conv2d_15")(out)
    out = layers.UpSampling2D(2)(out)
    out = layers.Conv2D(w(32), 3, padding="same", activation="relu", name="conv2d_16")(out)
    out = layers.Conv2D(2, 3, padding="same", activation="sigmoid", name="conv2d_17")(out)
    out = layers.UpSampling2D(2)(out)
    return keras.Model(image, [out, head], name="model_3")


def randomize(model, seed: int = 0) -> None:
    """Random weights of a scale that keeps activations near unit size: He-normal kernels, small biases, and
    BatchNorm statistics with small variances (so that the epsilon matters) and gammas to match."""
    rng = np.random.default_rng(seed)
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if hasattr(layer, "layers"):
            stack.extend(layer.layers)
            continue
        weights = layer.get_weights()
        if not weights:
            continue
        if type(layer).__name__ == "BatchNormalization":
            variance = rng.uniform(0.002, 0.02, weights[0].shape)
            layer.set_weights([np.sqrt(variance) * rng.uniform(0.5, 1.5, variance.shape),
                               rng.normal(0, 0.1, variance.shape), rng.normal(0, 0.05, variance.shape), variance])
        else:
            kernel, bias = weights
            fan_in = int(np.prod(kernel.shape[:-1]))
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), kernel.shape), rng.normal(0, 0.05, bias.shape)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """The Keras reference saved as a full .h5 model, an input batch and the reference's two outputs."""
    model = keras_generator(SIZE, WIDTH, CLASSES)
    randomize(model)
    path = tmp_path_factory.mktemp("keras") / chromagan_keras.RELEASE_FILE
    model.save(path)
    grey = np.random.default_rng(1).uniform(0, 1, (3, SIZE, SIZE, 1)).astype(np.float32)
    images = np.repeat(grey, 3, axis=3)
    ab, classes = model.predict(images, verbose=0)
    return path, images, np.asarray(ab), np.asarray(classes)


def torch_outputs(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = chromagan_keras.chromagan_from_release(path)
    with torch.no_grad():
        ab, logits = model.generator.eval()(torch.from_numpy(images).permute(0, 3, 1, 2))
    return ab.permute(0, 2, 3, 1).numpy(), logits.softmax(dim=1).numpy()


def test_the_loaded_generator_reproduces_the_keras_model(saved):
    path, images, keras_ab, keras_classes = saved
    ab, classes = torch_outputs(path, images)
    assert ab.shape == keras_ab.shape and float(keras_ab.std()) > 0.05  # a live output, not a saturated one
    assert float(np.abs(ab - keras_ab).max()) < TOLERANCE
    assert float(np.abs(classes - keras_classes).max()) < TOLERANCE
    options = chromagan_keras.chromagan_from_release(path).options()
    assert (options["image_size"], options["width"], options["pretrained"]) == (SIZE, WIDTH, "authors' release")


def _symmetric_padding(self: SamePaddedConv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, self.weight, self.bias, self.stride, 1)


MUTATIONS = {
    "flatten channels-first": ("flattened_dense_kernel", lambda kernel, channels: kernel.T),
    "kernel spatially transposed": ("conv_kernel", lambda kernel: kernel.permute(3, 2, 1, 0)),
    "torch's batchnorm epsilon": ("bn_epsilon", lambda release: 1e-5),
}


@pytest.mark.parametrize("mutation", [*MUTATIONS, "symmetric stride-2 padding"])
def test_a_broken_conversion_is_caught(saved, monkeypatch, mutation):
    path, images, keras_ab, _ = saved
    if mutation in MUTATIONS:
        name, broken = MUTATIONS[mutation]
        monkeypatch.setattr(chromagan_keras, name, broken)
    else:
        monkeypatch.setattr(SamePaddedConv2d, "forward", _symmetric_padding)
    ab, _ = torch_outputs(path, images)
    assert float(np.abs(ab - keras_ab).max()) > BROKEN
