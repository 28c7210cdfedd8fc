"""LPIPS weight plumbing - NOT a calibration: no pretrained AlexNet/VGG weights exist on this machine, so these
tests save randomly initialised torchvision backbones under the official file names in a temporary weights
directory and check that the files are found, loaded into the backbone exactly, and used; and that a missing
file makes the metric unavailable with a message naming the file and where to put it."""

from __future__ import annotations

import pytest
import torch
import torchvision

from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256
from colorbench.io import weights
from colorbench.metrics.perceptual import backbone_file, lpips_distance, lpips_model, lpips_unavailable
from colorbench.metrics.registry import METRICS

pytest.importorskip("lpips")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty $TORCH_HOME and no --weights-dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV, raising=False)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


def save_random_backbone(net: str, directory, as_net: str | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random torchvision backbone of ``net`` saved under the official file name of ``as_net`` (default: its
    own). AlexNet keeps its classifier when saved under its own name, as the real file does (the loader must
    drop it); otherwise only the ``features.*`` are saved, to keep the file small."""
    with torch.device("meta"):  # shapes only; random values below
        model = torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()
    generator = torch.Generator().manual_seed(seed)
    state = {k: 0.05 * torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()
             if k.startswith("features.") or (net == "alex" and as_net is None)}
    torch.save(state, directory / backbone_file(as_net or net))
    return state


def test_file_names_come_from_torchvision():
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    for net, torchvision_weights in (("alex", AlexNet_Weights.IMAGENET1K_V1), ("vgg", VGG16_Weights.IMAGENET1K_V1)):
        assert backbone_file(net) == weights.file_name_of(torchvision_weights.url)
    assert backbone_file("alex") == "alexnet-owt-7be5be79.pth"
    assert backbone_file("vgg") == "vgg16-397923af.pth"


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_missing_weights_make_lpips_unavailable(torch_home, net):
    reason = METRICS[f"lpips_{net}"].unavailable()
    assert reason is not None and backbone_file(net) in reason and str(torch_home) in reason
    assert "--weights-dir" in reason
    with pytest.raises(BenchError, match=backbone_file(net)):
        lpips_distance(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), net=net)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_plumbing_with_a_saved_state_dict(torch_home, net):
    saved = save_random_backbone(net, torch_home)
    assert lpips_unavailable(net) is None
    with weights.recording_weights() as files:
        model = lpips_model(net, "cpu")
    loaded = {f"{k.split('.')[1]}.{k.split('.')[2]}": v for k, v in model.net.state_dict().items()}
    features = {k.removeprefix("features."): v for k, v in saved.items() if k.startswith("features.")}
    assert loaded.keys() == features.keys()
    assert all(torch.equal(loaded[k], features[k]) for k in features), "backbone differs from the saved file"
    path = str((torch_home / backbone_file(net)).resolve())
    assert files[path] == file_sha256(torch_home / backbone_file(net))
    with weights.recording_weights() as again:
        assert lpips_model(net, "cpu") is model  # built once per process, recorded again in every run using it
    assert again == files
    save_random_backbone(net, torch_home, seed=1)  # the file replaced: read afresh, its new hash recorded
    with weights.recording_weights() as replaced:
        assert lpips_model(net, "cpu") is not model
    assert replaced[path] == file_sha256(torch_home / backbone_file(net)) != files[path]

    generator = torch.Generator().manual_seed(1)
    gt = torch.rand(3, 3, 64, 64, generator=generator)
    pred = (gt + 0.2 * torch.rand(gt.shape, generator=generator)).clamp(0, 1)
    values = METRICS[f"lpips_{net}"](pred, gt)
    assert values.shape == (3,) and values.dtype == torch.float64 and torch.isfinite(values).all()
    assert (values > 0).all()
    assert torch.allclose(METRICS[f"lpips_{net}"](gt, gt), torch.zeros(3, dtype=torch.float64))


def test_weights_dir_comes_before_torch_home(torch_home, tmp_path, monkeypatch):
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (torch_home / backbone_file("alex")).touch()
    assert weights.find_weights(backbone_file("alex")) == torch_home / backbone_file("alex")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(explicit))
    (explicit / backbone_file("alex")).touch()
    assert weights.find_weights(backbone_file("alex")) == explicit / backbone_file("alex")
    assert str(explicit) in weights.missing_message("x.pth", "test")


def test_a_file_of_the_wrong_network_is_refused(torch_home):
    save_random_backbone("alex", torch_home, as_net="vgg")
    with pytest.raises(BenchError, match="does not hold the torchvision vgg backbone"):
        lpips_model("vgg", "cpu")
