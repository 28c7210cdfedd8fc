"""Optional compilation of hot metric kernels with ``torch.compile``.

A kernel wrapped by :func:`compiled_kernel` runs compiled (Inductor: fused C++/OpenMP loops on the CPU, Triton
on GPUs) when the batch is large enough to pay for compilation, and eagerly otherwise. Compilation is per
spatial size with a dynamic batch dimension, so a run at 224x224 compiles once. Results agree with the eager
path to float32 rounding (about 1e-7); the calibration tests run both.

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
_F = TypeVar("_F", bound=Callable[..., object])
_broken = False


def compile_enabled() -> bool:
    return not _broken and os.environ.get("COLORBENCH_COMPILE", "1") != "0"


def compiled_kernel(fn: _F) -> _F:
    """Decorator: run ``fn(*tensors, **constants)`` compiled when enabled and the batch is big enough."""
    compiled = torch.compile(fn, dynamic=False)

    @functools.wraps(fn)
    def run(*tensors: torch.Tensor, **constants: object) -> object:
        global _broken
        if not compile_enabled() or tensors[0].shape[0] < MIN_COMPILED_BATCH:
            return fn(*tensors, **constants)
        for tensor in tensors:
            torch._dynamo.mark_dynamic(tensor, 0)
        try:
            return compiled(*tensors, **constants)
        except Exception as exc:  # any backend failure means: stay eager
            _broken = True
            warnings.warn(f"torch.compile failed for {fn.__name__}, metrics run eagerly: {exc}", stacklevel=2)
            return fn(*tensors, **constants)

    return run  # type: ignore[return-value]
