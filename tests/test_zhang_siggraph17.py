"""Zhang et al.'s SIGGRAPH17 release file through ``--weights`` (models/zhang_siggraph17.py, models/releases.py)
against a reference module written from the release's public layout: ``model1`` ... ``model10`` sequentials,
``model8up``/``model9up``/``model10up`` transposed convolutions, the ``model3short8``/``model2short9``/
``model1short10`` shortcuts, ``model_class`` and ``model_out``, fed L, hint ab and mask as the release is (no hints:
zeros). Random weights saved under its key names with ``torch.save`` (a pickle, as the release is), loaded through
the release path, the two ab predictions compared on the same input; a transposed kernel, the input channels in
another order or swapped shortcut weights must make them disagree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.core.files import file_sha256
from colorbench.models import zhang_siggraph17
from colorbench.models.releases import check_weights_file, release_for
from colorbench.models.zhang_siggraph17 import RELEASE_FILE, automatic_ab, build
from tests.training_helpers import losses_over, randomize_release_weights, sample_training

TOLERANCE = 1e-4
FAST = ["--limit", "1", "--size", "32", "--no-progress", "--no-study", "--metrics", "psnr", "--quiet"]


def _convs(specs: list[tuple[int, int, int]], closing: nn.Module) -> nn.Sequential:
    """[(in, out, dilation)] 3x3 convolutions, each followed by a ReLU, then ``closing``."""
    layers: list[nn.Module] = []
    for c_in, c_out, dilation in specs:
        layers += [nn.Conv2d(c_in, c_out, 3, 1, dilation, dilation), nn.ReLU()]
    return nn.Sequential(*layers, closing)


class ReleaseLayout(nn.Module):
    """The SIGGRAPH17 release network as its public PyTorch code lays it out, with its forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.model1 = _convs([(4, 64, 1), (64, 64, 1)], nn.BatchNorm2d(64))
        self.model2 = _convs([(64, 128, 1), (128, 128, 1)], nn.BatchNorm2d(128))
        self.model3 = _convs([(128, 256, 1), (256, 256, 1), (256, 256, 1)], nn.BatchNorm2d(256))
        self.model4 = _convs([(256, 512, 1), (512, 512, 1), (512, 512, 1)], nn.BatchNorm2d(512))
        self.model5 = _convs([(512, 512, 2)] * 3, nn.BatchNorm2d(512))
        self.model6 = _convs([(512, 512, 2)] * 3, nn.BatchNorm2d(512))
        self.model7 = _convs([(512, 512, 1)] * 3, nn.BatchNorm2d(512))
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, 2, 1))
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, 1, 1))
        self.model8 = nn.Sequential(nn.ReLU(), *_convs([(256, 256, 1), (256, 256, 1)], nn.BatchNorm2d(256)))
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, 2, 1))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, 1, 1))
        self.model9 = nn.Sequential(nn.ReLU(), *_convs([(128, 128, 1)], nn.BatchNorm2d(128)))
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, 2, 1))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, 1, 1))
        self.model10 = nn.Sequential(nn.ReLU(), nn.Conv2d(128, 128, 3, 1, 1), nn.LeakyReLU(0.2))
        self.model_class = nn.Sequential(nn.Conv2d(256, 529, 1))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

    def predict(self, L: torch.Tensor) -> torch.Tensor:
        """ab (Lab units) of L in [0, 100], no hints: the hint ab and the mask are zeros."""
        zeros = torch.zeros_like(L)
        conv1 = self.model1(torch.cat(((L - 50) / 100, zeros, zeros, zeros), dim=1))
        conv2 = self.model2(conv1[:, :, ::2, ::2])
        conv3 = self.model3(conv2[:, :, ::2, ::2])
        x = self.model4(conv3[:, :, ::2, ::2])
        x = self.model7(self.model6(self.model5(x)))
        x = self.model8(self.model8up(x) + self.model3short8(conv3))
        x = self.model9(self.model9up(x) + self.model2short9(conv2))
        x = self.model10(self.model10up(x) + self.model1short10(conv1))
        return self.model_out(x) * 110


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReleaseLayout, torch.Tensor]:
    """A release file of random weights (He-normal convolutions, random BatchNorm statistics and biases, whose
    first-layer weights on the hint and mask channels differ from those on L), and an L input."""
    torch.manual_seed(0)
    reference = ReleaseLayout().eval()
    randomize_release_weights(reference)
    with torch.no_grad():
        reference.model_out[0].weight.mul_(0.05)  # ab away from tanh's saturation, so that it varies
    path = tmp_path_factory.mktemp("siggraph17") / RELEASE_FILE
    torch.save(reference.state_dict(), path)
    return path, reference, torch.rand(2, 1, 32, 32) * 100


def gap_to_reference(path: Path, reference: ReleaseLayout, L: torch.Tensor) -> float:
    """The largest |ab| difference between the file loaded through the release path and the reference."""
    model = zhang_siggraph17.siggraph17_from_release(path)
    with torch.no_grad():
        return float((automatic_ab(model.net.eval(), L) - reference.predict(L)).abs().max())


def test_the_loaded_release_predicts_as_the_reference(release):
    path, reference, L = release
    assert release_for("zhang-siggraph17", path) is not None
    check_weights_file("zhang-siggraph17", path)
    with torch.no_grad():
        assert float(reference.predict(L).std(dim=(2, 3)).min()) > 1
    assert gap_to_reference(*release) < TOLERANCE
    options = zhang_siggraph17.siggraph17_from_release(path).options()
    assert options["pretrained"] == "authors' release" and options["release_file"] == RELEASE_FILE


def _transposed_kernels(mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.transpose(2, 3) if value.ndim == 4 else value for key, value in mapped.items()}


def _mask_channel_for_l(mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The first layer reading L where the release reads the mask (channel 3), as if the mask were skipped."""
    return {**mapped, "encoder.0.0.weight": mapped["encoder.0.0.weight"][:, [3, 1, 2, 0]]}


def _swapped_shortcuts(mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The biases of the 128-wide shortcuts into stages 9 and 10 (``model2short9``, ``model1short10``) exchanged."""
    return {**mapped, "shortcuts.1.0.bias": mapped["shortcuts.2.0.bias"],
            "shortcuts.2.0.bias": mapped["shortcuts.1.0.bias"]}


@pytest.mark.parametrize("mutation", [_transposed_kernels, _mask_channel_for_l, _swapped_shortcuts],
                         ids=["kernel transpose", "mask channel skipped", "shortcuts swapped"])
def test_a_broken_mapping_is_caught(release, monkeypatch, mutation):
    checked = zhang_siggraph17.checked_release_state
    monkeypatch.setattr(zhang_siggraph17, "checked_release_state", lambda p: mutation(checked(p)))
    assert gap_to_reference(*release) > 100 * TOLERANCE


def test_a_release_of_another_shape_or_naming_is_refused_naming_its_key(release, tmp_path):
    state = torch.load(release[0], weights_only=True)
    wrong = {**state, "model3short8.0.weight": torch.zeros(256, 256, 1, 1)}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(BenchError, match=r"model3short8\.0\.weight has shape \(256, 256, 1, 1\)"):
        check_weights_file("zhang-siggraph17", tmp_path / "wrong.pth")
    torch.save({k: v for k, v in state.items() if k != "model9.1.weight"}, tmp_path / "short.pth")
    with pytest.raises(BenchError, match=r"has no model9\.1\.weight"):
        check_weights_file("zhang-siggraph17", tmp_path / "short.pth")
    torch.save({**state, "model11.0.weight": torch.zeros(1)}, tmp_path / "renamed.pth")
    with pytest.raises(BenchError, match=r"model11\.0\.weight is not one of its layers"):
        check_weights_file("zhang-siggraph17", tmp_path / "renamed.pth")


def test_the_huber_loss_decreases_from_scratch(tmp_path):
    data, batch = sample_training(tmp_path, size=32)
    model = build("smoke")
    model.prepare_training(data)
    losses = losses_over(model, batch, 15)
    assert losses[-1]["huber"] < 0.9 * losses[0]["huber"]


def test_run_with_the_release_file_in_the_weights_folder_end_to_end(release, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / RELEASE_FILE).write_bytes(release[0].read_bytes())
    out = tmp_path / "run"
    assert main(["run", "--models", "zhang-siggraph17", "--weights-dir", str(folder), "--out", str(out), *FAST]) == 0
    entry = json.loads((out / "run.json").read_text())["models"]["zhang-siggraph17"]
    assert entry["pretrained"] == "authors' release" and entry["weights_file_sha256"] == file_sha256(release[0])
    assert entry["error"] is None and entry["options"]["image_size"] == 224


def test_a_wrong_release_file_ends_the_run_with_one_line_and_exit_2(release, tmp_path, capsys):
    state = torch.load(release[0], weights_only=True)
    torch.save({("decoder8.1.weight" if k == "model8.1.weight" else k): v for k, v in state.items()},
               tmp_path / "wrong.pth")
    code = main(["run", "--models", "zhang-siggraph17", "--weights", f"zhang-siggraph17={tmp_path / 'wrong.pth'}",
                 "--out", str(tmp_path / "r"), *FAST])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "decoder8.1.weight is not one of its layers" in lines[0]
