"""Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004) and its multi-scale form (Wang, Simoncelli,
Bovik 2003), batched.

Definition used (and recorded in every run): Gaussian window with sigma 1.5 truncated at 3.5 sigma (11 taps),
K1 = 0.01, K2 = 0.03, C1 = (K1 R)^2, C2 = (K2 R)^2 for data range R, population (biased) local variances,
SSIM map averaged over the valid region (no padded border) and then over the three RGB channels:

    SSIM(x, y) = ((2 mu_x mu_y + C1) (2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

This equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0, channel_axis=-1)``; scikit-image's defaults (7x7 uniform window,
sample covariance) give a different number. Images smaller than the window have no valid region: NaN.

Implementation: the variances only enter as sigma_x^2 + sigma_y^2, so four local moments suffice (x, y,
x^2 + y^2, xy), each filtered separably by shifted adds over the valid region. Each image (and channel) is
shifted by its own global mean first - local (co)variances do not change under such shifts, but they are
differences of nearly equal numbers, and centring keeps float32 accurate to about 1e-7 (for constant images
the covariance terms are exactly 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorbench.metrics.kernels import KernelCost, compiled_kernel


def gaussian_taps(sigma: float, truncate: float) -> tuple[float, ...]:
    """Normalized 1-D Gaussian with radius ``int(truncate * sigma + 0.5)`` (scipy.ndimage's rule)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return tuple(float(t) for t in taps / taps.sum())


def window_size(sigma: float, truncate: float) -> int:
    return 2 * int(truncate * sigma + 0.5) + 1


def valid_blur(maps: torch.Tensor, taps: tuple[float, ...]) -> torch.Tensor:
    """Separable filter over the last two axes without padding: (..., H, W) -> (..., H - k + 1, W - k + 1)."""
    k = len(taps)
    height, width = maps.shape[-2:]
    rows = maps[..., : height - k + 1, :] * taps[0]
    for i in range(1, k):
        rows.add_(maps[..., i : i + height - k + 1, :], alpha=taps[i])
    out = rows[..., : width - k + 1] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., i : i + width - k + 1], alpha=taps[i])
    return out


def ssim_maps(
    pred: torch.Tensor, target: torch.Tensor, *, taps: tuple[float, ...], c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel SSIM and contrast-structure maps over the valid region, shape (B, C, H', W'), float32."""
    x, y = pred.float(), target.float()
    shift_x, shift_y = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    x, y = x - shift_x, y - shift_y
    mu_x, mu_y, squares, products = valid_blur(torch.cat((x, y, x * x + y * y, x * y), dim=1), taps).chunk(4, dim=1)
    contrast_structure = (2 * (products - mu_x * mu_y) + c2) / (squares - mu_x.square() - mu_y.square() + c2)
    mean_x, mean_y = mu_x + shift_x, mu_y + shift_y
    luminance = (2 * mean_x * mean_y + c1) / (mean_x.square() + mean_y.square() + c1)
    return luminance * contrast_structure, contrast_structure


#: Compile-policy data (metrics/kernels.py): CPU seconds of one thread at 224x224 from
#: ``python -m colorbench.experiments.compile_cost``; the run and its break-evens: docs/performance.md.
SSIM_MEANS_COST = KernelCost(eager_s_per_mpx=0.125, compiled_s_per_mpx=0.0264, cold_compile_s=10.1, warm_compile_s=5.47)


@compiled_kernel(SSIM_MEANS_COST)
def ssim_means(
    pred: torch.Tensor, target: torch.Tensor, *, taps: tuple[float, ...], c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means over the valid region of the SSIM and contrast-structure maps per image and channel, (B, C) each,
    float64 (the maps are float32)."""
    ssim_map, contrast_structure = ssim_maps(pred, target, taps=taps, c1=c1, c2=c2)
    return ssim_map.double().mean(dim=(2, 3)), contrast_structure.double().mean(dim=(2, 3))


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image over RGB, shape (B,); NaN where the image is smaller than the window."""
    if min(pred.shape[-2:]) < window_size(sigma, truncate):
        return torch.full(pred.shape[:1], float("nan"), dtype=torch.float64, device=pred.device)
    means, _ = ssim_means(pred, target, taps=gaussian_taps(sigma, truncate), c1=(k1 * data_range) ** 2,
                          c2=(k2 * data_range) ** 2)
    return means.mean(dim=1).clamp(-1.0, 1.0)  # bounded; float32 can land at 1 + 1e-9


#: Scale weights of Wang, Simoncelli & Bovik 2003 (Table 1 of their paper), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def halve(images: torch.Tensor) -> torch.Tensor:
    """One MS-SSIM downsampling step: 2x2 average pooling. When the height or the width is odd, one row and one
    column are first replicated at the top and left (both, as piq.multi_scale_ssim does)."""
    pad = max(images.shape[-2] % 2, images.shape[-1] % 2)
    if pad:
        images = F.pad(images, (pad, 0, pad, 0), mode="replicate")
    return F.avg_pool2d(images, kernel_size=2)


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> torch.Tensor:
    """Multi-scale SSIM per image, shape (B,), with piq.multi_scale_ssim's definition.

    At scale j = 1..M (M = len(weights)) the images are halved j - 1 times (:func:`halve`); per channel,
    cs_j is the mean contrast-structure term over the valid region at scales 1..M-1 and the full SSIM at
    scale M. Negative values are set to 0 (ReLU), then MS-SSIM = prod_j v_j ** w_j per channel, averaged over
    RGB, at most 1. Window and constants as :func:`ssim`. Images smaller than (k - 1) 2^(M-1) + 1 pixels on a side
    (161 for the 11-tap window and 5 scales) are too small for the coarsest scale: NaN.
    """
    taps = gaussian_taps(sigma, truncate)
    if min(pred.shape[-2:]) < (len(taps) - 1) * 2 ** (len(weights) - 1) + 1:
        return torch.full(pred.shape[:1], float("nan"), dtype=torch.float64, device=pred.device)
    x, y = pred.float(), target.float()
    per_scale = []
    for scale in range(len(weights)):
        if scale:
            x, y = halve(x), halve(y)
        ssim_mean, cs_mean = ssim_means(x, y, taps=taps, c1=(k1 * data_range) ** 2, c2=(k2 * data_range) ** 2)
        per_scale.append(ssim_mean if scale == len(weights) - 1 else cs_mean)
    exponents = torch.tensor(weights, dtype=torch.float64, device=pred.device).view(-1, 1, 1)
    return (torch.stack(per_scale).relu() ** exponents).prod(dim=0).mean(dim=1).clamp(max=1.0)  # as ssim
