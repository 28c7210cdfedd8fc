"""Compilation of hot metric kernels with ``torch.compile``, only where it pays.

A kernel wrapped by :func:`compiled_kernel` runs compiled (Inductor: fused C++/OpenMP loops on the CPU, Triton
on GPUs) or eagerly; results agree to float32 rounding (about 1e-7; tests/test_kernels.py). Which one is decided
per call by :meth:`Kernel.decide` from the amount of work and from what is already compiled:

- compiled in this process already: compiled (no cost left to pay);
- otherwise compiled when ``work x saving > compile cost``, where work is images x pixels in megapixels (the
  call's own, or the job's when the caller declared it with :func:`workload`), saving is the kernel's measured
  eager minus compiled seconds per megapixel, and the compile cost is the measured cold cost, or the warm cost
  when a previous process left this kernel's artifacts in the compile cache (a marker file says so).
  The break-even is ``compile cost / saving`` megapixels (:meth:`KernelCost.break_even_mpx`). Each kernel's
  figures are constants in its module, measured with ``python -m colorbench.experiments.compile_cost`` in CPU
  seconds of one thread, because wall time on a shared machine measures the other users too; the measurement
  and the break-evens it gives (hundreds to a few thousand 224x224 images) are in docs/performance.md. So the
  built-in sample (4 evaluation images, a 136-image study) runs eagerly, and coco-mini's study (79 images x 34
  degradations, 135 Mpx) compiles.

Sizes: the kernel is compiled with dynamic spatial sizes, so one compiled artifact serves every image size
above 4,096 pixels (Inductor's CPU reductions guard on H x W <= 4096: images up to 64x64, MS-SSIM's coarse
scales among them, share a second artifact). No padding or bucketing: SSIM's valid region and every mean stay
exactly those of the image. On the CPU it is applied image
by image (kernels treat images independently and reduce each to a few numbers), so a 224x224 image's
intermediates stay in cache; on GPUs the whole batch goes in one call with a dynamic batch dimension.

Cache: Inductor's compiled artifacts (FX graph cache) go to ``$TORCHINDUCTOR_CACHE_DIR`` when the user set it,
else to ``inductor/`` under colorbench's cache folder (``$COLORBENCH_CACHE``, default ``~/.cache/colorbench``),
where a second process finds them; ``colorbench-kernels/`` in the same folder holds one marker per compiled
kernel, so wiping the folder makes the policy count a cold compile again.

``COLORBENCH_COMPILE=0`` turns compilation off, ``=always`` compiles every call (tests, benchmarks); the
default (``1`` or ``auto``) is the policy above. A failed compilation (no C++ compiler, say) warns once and
falls back to eager for the rest of the process.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import torch

from colorbench.core.cachekey import cache_key
from colorbench.core.files import atomic_write_bytes

logger = logging.getLogger(__name__)

_broken = False
#: What a kernel returns: one tensor, or a tuple of tensors (each with the batch axis first).
R = TypeVar("R", torch.Tensor, tuple[torch.Tensor, ...])
_declared_images: contextvars.ContextVar[int] = contextvars.ContextVar("colorbench_workload_images", default=0)


def compile_mode() -> str:
    """``off``, ``auto`` or ``always`` (``COLORBENCH_COMPILE``; ``off`` after a failed compilation)."""
    value = os.environ.get("COLORBENCH_COMPILE", "auto").strip().lower()
    if _broken or value in ("0", "off", "false", "no"):
        return "off"
    return "always" if value == "always" else "auto"


def compile_enabled() -> bool:
    return compile_mode() != "off"


def compile_cache_dir() -> Path:
    """Inductor's cache folder: ``$TORCHINDUCTOR_CACHE_DIR``, else ``inductor/`` in colorbench's cache (set in the
    environment here, so that Inductor and any worker process use it)."""
    from colorbench.data.sample import cache_root

    return Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor")))


@contextlib.contextmanager
def workload(images: int) -> Iterator[None]:
    """Declare that the kernels called inside will see about ``images`` images in all (a scoring job, a study),
    so that the per-call decision weighs the whole job's work against the compile cost."""
    token = _declared_images.set(images)
    try:
        yield
    finally:
        _declared_images.reset(token)


@dataclass(frozen=True)
class KernelCost:
    """A kernel's measured costs on the CPU at 224x224 (``python -m colorbench.experiments.compile_cost``)."""

    eager_s_per_mpx: float
    compiled_s_per_mpx: float
    cold_compile_s: float  # first compilation with an empty compile cache (dynamo + Inductor + C++ compiler)
    warm_compile_s: float  # in a new process whose compile cache holds this kernel (dynamo + cache load)

    def break_even_mpx(self, *, warm: bool) -> float:
        """Megapixels of work above which compiling is faster than eager."""
        saving = self.eager_s_per_mpx - self.compiled_s_per_mpx
        return math.inf if saving <= 0 else (self.warm_compile_s if warm else self.cold_compile_s) / saving


@dataclass(frozen=True)
class Decision:
    compiled: bool
    reason: str


class Kernel(Generic[R]):
    """A metric kernel ``fn(*tensors, **constants)`` with its compiled twin and the policy choosing between them."""

    def __init__(self, fn: Callable[..., R], cost: KernelCost | None, name: str | None = None,
                 version: int = 1) -> None:
        self.fn: Callable[..., R] = fn
        self.cost, self.version = cost, version
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.__doc__ = fn.__doc__
        self.__wrapped__: Callable[..., R] = fn
        self._ready: set[str] = set()  # variants (constants, device type) compiled in this process

    @cached_property
    def _compiled(self) -> Callable[..., R]:
        """The compiled twin, made on first use: ``torch.compile`` imports the compiler stack, a cost that commands
        which never compile (``bench report``) would otherwise pay at import (docs/performance.md)."""
        return torch.compile(self.fn, dynamic=True)

    def variant(self, tensors: tuple[torch.Tensor, ...], constants: dict[str, object]) -> str:
        """What a compiled artifact is specific to: the kernel and its definition version, its constants, device
        type, dtypes, torch. (Only the compile-cost marker is named by it: a changed key costs one cold count.)"""
        described = [self.name, self.version, sorted((k, repr(v)) for k, v in constants.items()),
                     tensors[0].device.type, [str(t.dtype) for t in tensors], torch.__version__]
        return cache_key(described)

    def _marker(self, variant: str) -> Path:
        return compile_cache_dir() / "colorbench-kernels" / f"{variant}.json"

    def decide(self, images: int, pixels_per_image: int, variant: str) -> Decision:
        """Compile or not for a call on ``images`` images of ``pixels_per_image`` pixels (see the module text)."""
        mode = compile_mode()
        if mode != "auto":
            return Decision(mode == "always", f"COLORBENCH_COMPILE={mode}")
        if variant in self._ready:
            return Decision(True, "already compiled in this process")
        if self.cost is None:
            return Decision(False, "no measured cost: eager (COLORBENCH_COMPILE=always compiles it)")
        warm = self._marker(variant).is_file()
        work_mpx = max(images, _declared_images.get()) * pixels_per_image / 1e6
        break_even = self.cost.break_even_mpx(warm=warm)
        state = "warm cache" if warm else "cold cache"
        return Decision(work_mpx > break_even, f"{work_mpx:.3g} Mpx vs break-even {break_even:.3g} Mpx ({state})")

    def _apply(self, compiled: bool, tensors: tuple[torch.Tensor, ...], constants: dict[str, object]) -> R:
        kernel = self._compiled if compiled else self.fn
        if tensors[0].device.type == "cpu" and len(tensors[0]) > 1:
            return _concatenate([kernel(*(t[i : i + 1] for t in tensors), **constants)
                                 for i in range(len(tensors[0]))])
        if compiled:
            for tensor in tensors:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        return kernel(*tensors, **constants)

    def __call__(self, *tensors: torch.Tensor, **constants: object) -> R:
        global _broken
        variant = self.variant(tensors, constants)
        if not self.decide(len(tensors[0]), tensors[0].shape[-2] * tensors[0].shape[-1], variant).compiled:
            return self._apply(False, tensors, constants)
        first = variant not in self._ready
        compile_cache_dir()
        began = time.perf_counter()
        try:
            result = self._apply(True, tensors, constants)
        except Exception as exc:  # any backend failure means: stay eager
            _broken = True
            logger.warning("torch.compile failed for %s, metrics run eagerly: %s", self.name, exc)
            return self._apply(False, tensors, constants)
        if first:
            self._ready.add(variant)
            marker = {"kernel": self.name, "first_call_s": time.perf_counter() - began,
                      "torch": torch.__version__}
            atomic_write_bytes(self._marker(variant), json.dumps(marker).encode())
        return result


@overload
def _concatenate(parts: list[torch.Tensor]) -> torch.Tensor: ...
@overload
def _concatenate(parts: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]: ...
def _concatenate(parts: list[Any]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Per-image results (tensors or tuples of tensors) joined along the batch axis."""
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))
    return torch.cat(parts)


@overload
def compiled_kernel(cost: Callable[..., R], name: str | None = None, version: int = 1) -> Kernel[R]: ...
@overload
def compiled_kernel(cost: KernelCost | None = None, name: str | None = None,
                    version: int = 1) -> Callable[[Callable[..., R]], Kernel[R]]: ...
def compiled_kernel(cost: KernelCost | Callable[..., R] | None = None, name: str | None = None,
                    version: int = 1) -> Callable[[Callable[..., R]], Kernel[R]] | Kernel[R]:
    """Decorator: run ``fn(*tensors, **constants)`` compiled when :meth:`Kernel.decide` says it pays.
    ``fn`` must treat the images of a batch independently. ``@compiled_kernel(COST)`` gives the measured cost;
    a bare ``@compiled_kernel`` (no measured cost) runs eagerly unless ``COLORBENCH_COMPILE=always``. ``version``:
    the kernel's definition version (bump it with the metrics that use it, see colorbench.metrics.registry)."""
    if callable(cost):
        return Kernel(cost, None, name, version)
    return lambda fn: Kernel(fn, cost, name, version)
