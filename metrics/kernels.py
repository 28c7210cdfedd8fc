"""Optional compilation of hot metric kernels with ``torch.compile``.

A kernel wrapped by :func:`compiled_kernel` runs compiled (Inductor: fused C++/OpenMP loops on the CPU, Triton
on GPUs) when the batch is large enough to pay for compilation, and eagerly otherwise. Results agree with the
eager path to float32 rounding (about 1e-7); the calibration tests run both.

On the CPU the kernel is applied image by image (kernels treat images independently and reduce each to a few
numbers): a 224x224 image's intermediates then stay in cache. Measured on the 2-core development CPU (batch 32,
224x224, compiled): SSIM 445 images/s for the whole batch at once, 4,200 image by image; CIEDE2000 296 vs 470.
Compilation is then per spatial size with batch 1, so a run at 224x224 compiles once. On GPUs the whole batch
goes in one call, compiled with a dynamic batch dimension.

``COLORBENCH_COMPILE=0`` turns compilation off; a failed compilation (no C++ compiler, say) warns once and
falls back to eager for the rest of the process.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

#: Batches smaller than this run eagerly (compiling a kernel costs seconds).
MIN_COMPILED_BATCH = 8
#: Compiled variants kept per kernel (one per image size). MS-SSIM alone visits five sizes per working size, and
#: training validates at the network size, so torch's default of 8 would fall back to eager mid-run.
SIZES_PER_KERNEL = 32
_F = TypeVar("_F", bound=Callable[..., object])
_broken = False


def compile_enabled() -> bool:
    return not _broken and os.environ.get("COLORBENCH_COMPILE", "1") != "0"


def _concatenate(parts: list[object]) -> object:
    """Per-image results (tensors or tuples of tensors) joined along the batch axis."""
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))
    return torch.cat(parts)  # type: ignore[arg-type]


def compiled_kernel(fn: _F) -> _F:
    """Decorator: run ``fn(*tensors, **constants)`` compiled when enabled and the batch is big enough; on the
    CPU image by image. ``fn`` must treat the images of a batch independently."""
    compiled = torch.compile(fn, dynamic=False)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, SIZES_PER_KERNEL)

    def call(kernel: Callable[..., object], tensors: tuple[torch.Tensor, ...], constants: dict[str, object]) -> object:
        if tensors[0].device.type == "cpu" and len(tensors[0]) > 1:
            return _concatenate([kernel(*(t[i : i + 1] for t in tensors), **constants)
                                 for i in range(len(tensors[0]))])
        if kernel is compiled and tensors[0].device.type != "cpu":
            for tensor in tensors:
                torch._dynamo.mark_dynamic(tensor, 0)
        return kernel(*tensors, **constants)

    @functools.wraps(fn)
    def run(*tensors: torch.Tensor, **constants: object) -> object:
        global _broken
        if not compile_enabled() or tensors[0].shape[0] < MIN_COMPILED_BATCH:
            return call(fn, tensors, constants)
        try:
            return call(compiled, tensors, constants)
        except Exception as exc:  # any backend failure means: stay eager
            _broken = True
            warnings.warn(f"torch.compile failed for {fn.__name__}, metrics run eagerly: {exc}", stacklevel=2)
            return call(fn, tensors, constants)

    return run  # type: ignore[return-value]
