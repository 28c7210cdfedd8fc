"""Set-level metrics: the Frechet distance against closed forms and a SciPy transcription (tolerances stated per
test), the EfficientNet-lite0 feature extractor (real ImageNet weights: it must recognise a cat), and the FID
Inception plumbing with a saved random state dict (NOT a calibration: the real weights are not here)."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import torch

from colorbench.io import weights
from colorbench.metrics.distribution import (
    FID_INCEPTION_FILE,
    EffNetLite0Features,
    InceptionFIDFeatures,
    frechet_distance,
)
from colorbench.metrics.registry import DISTRIBUTION_METRICS
from tests.metric_inputs import damaged, photo_batch


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The usual transcription (Heusel et al.; as in pytorch-fid): scipy.linalg.sqrtm of the product."""
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(cov_x @ cov_y).real
    return float(np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(root))


def test_identical_sets_give_zero():
    x = torch.randn(300, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    few = x[:20]  # N < D: singular covariances, still 0
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-9)


def test_closed_form_for_diagonal_covariances():
    """Columns 1..3 of a Hadamard matrix of order 8 are orthogonal with zero mean, so the sample covariances
    are exactly diagonal: d^2 = ||mu_x - mu_y||^2 + sum_i (s_x,i - s_y,i)^2 with s the sample std. Exact up to
    float64 rounding (1e-10)."""
    design = torch.from_numpy(scipy.linalg.hadamard(8)[:, 1:4]).double()
    scale_x, scale_y = torch.tensor([1.0, 2.0, 0.5]).double(), torch.tensor([3.0, 2.0, 0.1]).double()
    mu_x, mu_y = torch.tensor([0.0, 1.0, -2.0]).double(), torch.tensor([4.0, 1.0, 0.0]).double()
    x, y = mu_x + design * scale_x, mu_y + design * scale_y
    std_x, std_y = scale_x * math.sqrt(8 / 7), scale_y * math.sqrt(8 / 7)
    expected = float((mu_x - mu_y).square().sum() + (std_x - std_y).square().sum())
    assert frechet_distance(x, y) == pytest.approx(expected, abs=1e-10)
    assert frechet_distance(y, x) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize(("n", "d"), [(500, 16), (200, 128)])
def test_matches_scipy_transcription(n, d):
    """Correlated Gaussian features; relative tolerance 1e-8."""
    generator = torch.Generator().manual_seed(d)
    mixing = torch.randn(d, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64) @ mixing
    y = 0.7 * torch.randn(n, d, generator=generator, dtype=torch.float64) @ mixing.T + 0.3
    assert frechet_distance(x, y) == pytest.approx(scipy_frechet(x.numpy(), y.numpy()), rel=1e-8)


def test_few_samples():
    x = torch.randn(10, 50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    value = frechet_distance(x, x + 1.0)  # N < D: defined, only the mean term remains
    assert value == pytest.approx(50.0, rel=1e-9)
    assert math.isnan(frechet_distance(x[:1], x))


@pytest.fixture(scope="module")
def effnet() -> EffNetLite0Features:
    if DISTRIBUTION_METRICS["fd_effnet_lite0"].unavailable():
        pytest.skip(DISTRIBUTION_METRICS["fd_effnet_lite0"].unavailable())
    return DISTRIBUTION_METRICS["fd_effnet_lite0"].extractor()


def test_effnet_weights_are_the_real_imagenet_ones(effnet):
    """The shipped weights recognise scikit-image's chelsea as a cat (ImageNet classes 281-285) and coffee as
    espresso/cup (967, 968): a random network would not."""
    import skimage.data

    photos = [skimage.data.chelsea(), skimage.data.coffee()]
    batch = torch.stack([torch.nn.functional.interpolate(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255,
                                                         size=(224, 224), mode="bilinear", antialias=True)[0]
                         for a in photos])
    with torch.inference_mode():
        classes = effnet.net((batch * 255 - 127) / 128).argmax(dim=1).tolist()
    assert 281 <= classes[0] <= 285 and classes[1] in (967, 968)
    with weights.recording_weights() as files:
        EffNetLite0Features()
    assert len(files) == 1 and weights.used_weights() == {}  # the shipped file's sha256, in this recording only


def test_effnet_features_and_distance_on_photos(effnet):
    gt = photo_batch().float()
    with torch.inference_mode():
        features = effnet(gt)
        grey = effnet(damaged(photo_batch(), "grey").float())
    assert features.shape == (4, 1280) and features.dtype == torch.float32 and torch.isfinite(features).all()
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(grey, features) > 1.0
    resized = effnet(torch.nn.functional.interpolate(gt, size=(224, 224), mode="bilinear", antialias=True))
    assert torch.allclose(features, resized, atol=1e-5)  # the extractor resizes as stated


@pytest.fixture
def inception_file(tmp_path, monkeypatch):
    """A random FID Inception state dict saved as pt_inception-2015-12-05-6726825d.pth under --weights-dir."""
    inception = pytest.importorskip("pytorch_fid.inception")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    built = []
    original = inception._inception_v3
    with mock.patch.object(inception, "_inception_v3", lambda *a, **k: built.append(original(*a, **k)) or built[-1]), \
            mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: built[-1].state_dict()):
        state = inception.fid_inception_v3().state_dict()
    torch.save(state, tmp_path / FID_INCEPTION_FILE)
    return state


def test_fid_inception_unavailable_without_its_file(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reason = DISTRIBUTION_METRICS["fid_inception"].unavailable()
    assert reason and FID_INCEPTION_FILE in reason and str(tmp_path) in reason


def test_fid_inception_plumbing(inception_file):
    """Plumbing only: the saved file is found, loaded exactly (weights_only), and gives pool3 features."""
    assert DISTRIBUTION_METRICS["fid_inception"].unavailable() is None
    extractor = DISTRIBUTION_METRICS["fid_inception"].extractor()
    assert isinstance(extractor, InceptionFIDFeatures)
    loaded = extractor.net.state_dict()  # keys renamed by pytorch-fid's block wrapper: compare by content
    assert len(loaded) == len([k for k in inception_file if not k.startswith("fc.")])
    for key, value in loaded.items():
        assert any(torch.equal(value, saved) for saved in inception_file.values() if saved.shape == value.shape), key
    with torch.inference_mode():
        features = extractor(torch.rand(2, 3, 64, 80))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
