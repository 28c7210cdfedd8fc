"""Raw accuracy AuC of Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), Sec. 3.1, batched.

For each threshold t = 0, 1, ..., 150 (ab units) take the share of pixels whose ab error
||ab_pred - ab_gt||_2 is at most t; the metric is the area under that cumulative curve over [0, 150],
by the trapezoid rule, divided by 150, so it lies in [0, 1] (1 = every pixel exact). Zhang et al. describe
"integrate the area under the curve and normalize"; the trapezoid rule over the 151 integer thresholds is that
integral (the plain mean of the 151 shares differs by at most 1/302).

Resolution: ab is taken at the input resolution by default (``downsample=1``); Zhang et al. evaluated at 1/4
resolution, which ``downsample=4`` reproduces by average-pooling ab over 4x4 blocks of both images before the
distances. The value is a raw (not class-rebalanced) accuracy; a grey prediction already scores high (they
report about 89% raw AuC for grey on ImageNet).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorbench.data.color import rgb_to_lab
from colorbench.metrics.kernels import KernelCost, compiled_kernel

#: Compile-policy data (metrics/kernels.py): CPU seconds of one thread at 224x224 from
#: ``python -m colorbench.experiments.compile_cost``; the run and its break-evens: docs/performance.md.
AUC_COST = KernelCost(eager_s_per_mpx=0.222, compiled_s_per_mpx=0.0505, cold_compile_s=6.08, warm_compile_s=5.49)


@compiled_kernel(AUC_COST)
def _auc(pred: torch.Tensor, target: torch.Tensor, *, max_threshold: int, downsample: int) -> torch.Tensor:
    ab_pred, ab_true = rgb_to_lab(pred.float())[:, 1:], rgb_to_lab(target.float())[:, 1:]
    if downsample > 1:
        ab_pred, ab_true = F.avg_pool2d(ab_pred, downsample), F.avg_pool2d(ab_true, downsample)
    k = torch.linalg.vector_norm(ab_pred - ab_true, dim=1).ceil()
    area = torch.where(k == 0, float(max_threshold), (max_threshold + 0.5 - k).clamp_min(0))
    return area.flatten(1).double().mean(dim=1) / max_threshold


def auc_ab(pred: torch.Tensor, target: torch.Tensor, *, max_threshold: int = 150,
           downsample: int = 1) -> torch.Tensor:
    """Zhang et al.'s raw accuracy AuC per image, shape (B,), float64 in [0, 1].

    Closed form of the trapezoid area: a pixel with error d counts in every share with t >= k = ceil(d), so it
    adds sum_{t=k}^{T} w_t with trapezoid weights w_0 = w_T = 1/2 and w_t = 1 otherwise, i.e.
    T - k + 1/2 for 1 <= k <= T, T for k = 0 and 0 for k > T (T = ``max_threshold``); the AuC is the mean of
    that over pixels, divided by T. Lab and the distances are float32 (a pixel whose error lies within float
    rounding of an integer may fall on either side: 1 / (T N) of the AuC per such pixel); the mean is float64.
    """
    return _auc(pred, target, max_threshold=max_threshold, downsample=downsample)
