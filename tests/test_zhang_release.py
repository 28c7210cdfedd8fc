"""Zhang et al.'s ECCV16 release file through ``--weights`` (models/zhang_release.py, models/releases.py) against
a reference module written from the release's public layout (``model1`` ... ``model8`` sequentials, BatchNorm
closing blocks 1-7, ``model_out`` holding the bin centres / 110, their decoding: softmax, then that 1x1
convolution, times 110): random weights saved under its key names with ``torch.save`` (a pickle, as the release
is), loaded through the release path, the two decodings (T = 1, the release's plain mean) compared on the same
input. A wrong bin order or a transposed kernel must make them disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from colorbench.core.errors import BenchError
from colorbench.models import zhang_release
from colorbench.models.lab_networks import normalized_l
from colorbench.models.releases import check_weights_file, release_for
from colorbench.models.zhang import RELEASE_FILE, ab_bins, annealed_mean
from tests.training_helpers import randomize_release_weights

TOLERANCE = 1e-4
#: (block, [(in, out, stride, dilation) of each convolution], closing BatchNorm) of the release's layout.
RELEASE_LAYOUT = (
    ("model1", [(1, 64, 1, 1), (64, 64, 2, 1)]),
    ("model2", [(64, 128, 1, 1), (128, 128, 2, 1)]),
    ("model3", [(128, 256, 1, 1), (256, 256, 1, 1), (256, 256, 2, 1)]),
    ("model4", [(256, 512, 1, 1), (512, 512, 1, 1), (512, 512, 1, 1)]),
    ("model5", [(512, 512, 1, 2)] * 3),
    ("model6", [(512, 512, 1, 2)] * 3),
    ("model7", [(512, 512, 1, 1)] * 3),
)


class ReleaseLayout(nn.Module):
    """The ECCV16 release network as its public code lays it out; ``decode`` returns ab at a quarter of the
    input size, the mean of the bin centres under the softmax."""

    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        for name, convs in RELEASE_LAYOUT:
            layers: list[nn.Module] = []
            for c_in, c_out, stride, dilation in convs:
                layers += [nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation), nn.ReLU()]
            setattr(self, name, nn.Sequential(*layers, nn.BatchNorm2d(convs[-1][1])))
        self.model8 = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.ReLU(), nn.Conv2d(256, 256, 3, 1, 1),
                                    nn.ReLU(), nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), nn.Conv2d(256, 313, 1))
        self.model_out = nn.Conv2d(313, 2, 1, bias=False)
        with torch.no_grad():
            self.model_out.weight.copy_((centres.T / 110).reshape(2, 313, 1, 1))

    def decode(self, L: torch.Tensor) -> torch.Tensor:
        x = (L - 50) / 100
        for name in (*(block for block, _ in RELEASE_LAYOUT), "model8"):
            x = getattr(self, name)(x)
        return self.model_out(x.softmax(dim=1)) * 110


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReleaseLayout, torch.Tensor]:
    """A release file of random weights (He-normal convolutions, random BatchNorm statistics), its bins in a
    shuffled order."""
    torch.manual_seed(0)
    order = torch.randperm(313)
    reference = ReleaseLayout(ab_bins()[order].float()).eval()
    randomize_release_weights(reference, keep=(reference.model_out,))
    with torch.no_grad():
        reference.model8[6].weight.mul_(3)  # peaked bin distributions, so that the decoding varies over the image
    path = tmp_path_factory.mktemp("zhang") / RELEASE_FILE
    torch.save(reference.state_dict(), path)
    return path, reference, torch.rand(2, 1, 64, 64) * 100


def loaded_decoding(path: Path, L: torch.Tensor) -> torch.Tensor:
    model = zhang_release.eccv16_from_release(path)
    with torch.no_grad():
        logits = model.net.eval()(normalized_l(L))
    return annealed_mean(logits.softmax(dim=1), model.centres, temperature=1.0)


def test_the_loaded_release_decodes_as_the_reference(release):
    path, reference, L = release
    assert release_for("zhang-eccv16", path) is not None
    check_weights_file("zhang-eccv16", path)
    with torch.no_grad():
        expected = reference.decode(L)
    assert float(expected.std(dim=(2, 3)).min()) > 1
    assert float((loaded_decoding(path, L) - expected).abs().max()) < TOLERANCE
    options = zhang_release.eccv16_from_release(path).options()
    assert options["pretrained"] == "authors' release" and options["init"] == "release"


def _rolled_bins(mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**mapped, "decoder.6.weight": mapped["decoder.6.weight"].roll(1, 0),
            "decoder.6.bias": mapped["decoder.6.bias"].roll(1, 0)}


def _transposed_kernels(mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.transpose(2, 3) if value.ndim == 4 else value for key, value in mapped.items()}


@pytest.mark.parametrize("mutation", [_rolled_bins, _transposed_kernels], ids=["bin order", "kernel transpose"])
def test_a_broken_mapping_is_caught(release, monkeypatch, mutation):
    path, reference, L = release
    checked = zhang_release.checked_eccv16_state
    monkeypatch.setattr(zhang_release, "checked_eccv16_state", lambda p: mutation(checked(p)))
    with torch.no_grad():
        expected = reference.decode(L)
    assert float((loaded_decoding(path, L) - expected).abs().max()) > 1


def test_a_release_of_another_shape_is_refused_naming_its_key(release, tmp_path):
    path = release[0]
    state = torch.load(path, weights_only=True)
    state["model3.2.weight"] = torch.zeros(256, 256, 1, 1)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(BenchError, match=r"model3\.2\.weight has shape \(256, 256, 1, 1\)"):
        check_weights_file("zhang-eccv16", tmp_path / "wrong.pth")
    del state["model3.2.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(BenchError, match=r"has no model3\.2\.weight"):
        check_weights_file("zhang-eccv16", tmp_path / "short.pth")
