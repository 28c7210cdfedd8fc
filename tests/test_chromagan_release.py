"""ChromaGAN from a file of the authors' release layout (models/chromagan_keras.py) in the main suite: a synthetic
file (tests/keras_release.py, a small width) loads at the geometry its shapes describe, a file of another naming
or shape is refused in one line naming the first layer that does not fit, and ``run --models chromagan --weights
chromagan=FILE.h5`` (or the file in ``--weights-dir``) runs end to end with the release's provenance; a wrong file
ends the command with exit 2. The layout conversion against Keras itself: tests/test_chromagan_keras.py."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256
from colorbench.data.loader import ModelInputs
from colorbench.io.keras_h5 import read_keras_h5
from colorbench.models.chromagan_keras import RELEASE_FILE, check_release, chromagan_from_release
from colorbench.models.chromagan_nets import SamePaddedConv2d
from tests.keras_release import write_authors_layout

FAST = ["--limit", "2", "--size", "32", "--no-progress", "--no-study", "--metrics", "psnr,ssim", "--quiet"]


def test_a_file_of_the_authors_layout_loads_at_its_own_geometry(tmp_path):
    path = write_authors_layout(tmp_path / "release.h5", image_size=64, width=0.125, classes=10)
    model = chromagan_from_release(path)
    options = model.options()
    assert (options["image_size"], options["width"], options["pretrained"]) == (64, 0.125, "authors' release")
    assert options["release_file"] == "release.h5" and options["release_sha256"] == file_sha256(path)
    generator = model.generator
    assert {m.eps for m in generator.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}
    assert isinstance(generator.global_convs[0][0], SamePaddedConv2d)
    layers = read_keras_h5(path).layers
    assert torch.equal(generator.trunk[0].weight, torch.from_numpy(layers["block1_conv1"].weights["kernel"])
                       .permute(3, 2, 0, 1))
    assert torch.equal(generator.global_convs[1][2].running_var,
                       torch.from_numpy(layers["batch_normalization_2"].weights["moving_variance"]))
    with torch.no_grad():
        rgb = model.eval().colorize(ModelInputs({"L": torch.rand(2, 1, 40, 48) * 100}, 2))
    assert rgb.shape == (2, 3, 40, 48) and bool(torch.isfinite(rgb).all())


@pytest.mark.parametrize(("change", "named"), [
    ({"rename": {"conv2d_13": "conv2d_30"}}, "layer conv2d_13 (decoder.1.0) is missing"),
    ({"rename": {"block2_conv1": "block2_conv9"}}, "layer block2_conv1 (trunk.5) is missing"),
])
def test_a_file_of_another_naming_is_refused_naming_the_first_misfit(tmp_path, change, named):
    path = write_authors_layout(tmp_path / "other.h5", **change)
    with pytest.raises(BenchError, match=re.escape(f"does not fit the authors' ChromaGAN generator: {named}")):
        check_release(path)


def test_a_misshapen_or_extra_layer_is_refused(tmp_path):
    path = write_authors_layout(tmp_path / "shape.h5")
    with h5py.File(path, "a") as handle:
        del handle["model_weights/conv2d_12/conv2d_12/bias:0"]
        handle["model_weights/conv2d_12/conv2d_12"].create_dataset("bias:0", data=torch.zeros(3).numpy())
    with pytest.raises(BenchError, match=r"layer conv2d_12 \(decoder\.0\.0\) holds .*'bias': \(3,\)"):
        check_release(path)
    path = write_authors_layout(tmp_path / "extra.h5")
    with h5py.File(path, "a") as handle:
        group = handle["model_weights"]
        group.attrs["layer_names"] = np.array([*group.attrs["layer_names"], b"dense_7"], dtype="S")
        group.create_group("dense_7").attrs["weight_names"] = [b"dense_7/kernel:0"]
        group["dense_7"].create_dataset("dense_7/kernel:0", data=torch.zeros(2, 2).numpy())
    with pytest.raises(BenchError, match="layer dense_7 is not one of its layers"):
        check_release(path)
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle.create_dataset("x", data=[1.0])
    with pytest.raises(BenchError, match="not a Keras model file"):
        check_release(tmp_path / "plain.h5")


def test_run_with_the_release_file_end_to_end(tmp_path):
    path = write_authors_layout(tmp_path / RELEASE_FILE)
    out = tmp_path / "run"
    assert main(["run", "--models", "chromagan", "--weights", f"chromagan={path}", "--out", str(out), *FAST]) == 0
    entry = json.loads((out / "run.json").read_text())["models"]["chromagan"]
    assert entry["pretrained"] == "authors' release" and entry["weights_file_sha256"] == file_sha256(path)
    assert entry["options"]["trunk_init"] == "release" and entry["error"] is None
    assert (out / "predictions" / "chromagan").is_dir()


def test_the_release_file_in_the_weights_folder_is_used(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    path = write_authors_layout(folder / RELEASE_FILE)
    out = tmp_path / "run"
    assert main(["run", "--models", "chromagan", "--weights-dir", str(folder), "--out", str(out), *FAST]) == 0
    entry = json.loads((out / "run.json").read_text())["models"]["chromagan"]
    assert entry["weights_path"] == str(path.resolve()) and entry["pretrained"] == "authors' release"


def test_a_wrong_release_file_ends_the_run_with_one_line_and_exit_2(tmp_path, capsys):
    path = write_authors_layout(tmp_path / "wrong.h5", rename={"dense_2": "dense_20"})
    code = main(["run", "--models", "chromagan", "--weights", f"chromagan={path}", "--out", str(tmp_path / "r"),
                 *FAST])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "layer dense_2 (global_dense.2) is missing" in lines[0]
