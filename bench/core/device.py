"""Device handling in one place: CPU, CUDA and XLA (TPU via torch-xla), mixed precision, step marking and
distributed process groups (torchrun / DDP, or torch-xla's PJRT runtime).

Nothing outside this module imports ``torch_xla`` or branches on the device type.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from colorbench.core.errors import BenchError

T = TypeVar("T")

DEVICE_CHOICES = ("auto", "cpu", "cuda", "xla")
#: Set in the processes that torch-xla's launcher starts (they run the command themselves, never launch again).
XLA_WORKER_ENV = "COLORBENCH_XLA_WORKER"


def _xla_device() -> torch.device:
    try:
        import torch_xla
    except ImportError as exc:
        raise BenchError("--device xla needs torch-xla (see tox.ini's xla environment)") from exc
    return torch_xla.device()


def resolve_device(name: str) -> torch.device:
    """Turn ``auto|cpu|cuda|xla`` (or ``cuda:N``) into a torch device; auto prefers CUDA, then an XLA
    runtime named by ``PJRT_DEVICE``, then the CPU. Under torchrun, CUDA ranks take ``LOCAL_RANK``'s GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif os.environ.get("PJRT_DEVICE"):
            name = "xla"
        else:
            name = "cpu"
    if name == "xla":
        return _xla_device()
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BenchError(f"--device {name} asked for, but torch sees no CUDA GPU")
        if name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise BenchError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on CUDA and XLA; a no-op on the CPU (fp32 there, so CPU runs are reproducible)."""
    if enabled and device.type in ("cuda", "xla"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_done(device: torch.device) -> None:
    """End of one training/inference step: XLA cuts and runs its lazy graph here."""
    if device.type == "xla":
        import torch_xla

        torch_xla.sync()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (for honest timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xla":
        import torch_xla

        torch_xla.sync(wait=True)


def fixed_shapes(device: torch.device) -> bool:
    """Whether every new input shape costs a graph compilation (XLA): loaders then pad short batches."""
    return device.type == "xla"


def device_loader(loader: Iterable[T], device: torch.device) -> Iterable[T]:
    """On XLA, torch-xla's parallel loader: background threads copy each batch's tensors to the device while the
    previous step runs, so the step never waits on a host-to-device copy. Elsewhere the loader itself (the CPU
    needs no copy; CUDA's pinned, non-blocking copy happens in :func:`colorbench.data.loader.to_batch`)."""
    if device.type != "xla":
        return loader
    from torch_xla.distributed.parallel_loader import MpDeviceLoader

    return MpDeviceLoader(loader, device)


@dataclass(frozen=True)
class XlaCounters:
    """torch-xla's running totals in this process: graphs compiled, device-to-host copies (each one a wait for the
    device) and operations run as CPU kernels instead of in the graph (``aten::`` fallbacks)."""

    compiles: int
    host_transfers: int
    cpu_fallbacks: int

    def __sub__(self, other: XlaCounters) -> XlaCounters:
        return XlaCounters(self.compiles - other.compiles, self.host_transfers - other.host_transfers,
                           self.cpu_fallbacks - other.cpu_fallbacks)


def xla_counters() -> XlaCounters:
    """The current :class:`XlaCounters` (torch_xla.debug.metrics: ``CompileTime`` and ``TransferFromDeviceTime``
    sample counts, ``aten::*`` counters)."""
    import torch_xla.debug.metrics as met

    def samples(name: str) -> int:
        data = met.metric_data(name)
        return int(data[0]) if data else 0

    fallbacks = sum(met.counter_value(n) or 0 for n in met.counter_names() if n.startswith("aten::"))
    return XlaCounters(samples("CompileTime"), samples("TransferFromDeviceTime"), int(fallbacks))


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (tensor-core friendly convolutions), contiguous elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


# -- one process per XLA device (torch-xla's launcher) ----------------------------------------------------------
class WorkerExitError(Exception):
    """A launched process ended with a non-zero exit status (it has printed its own error line)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def launches_xla_processes(device_name: str) -> bool:
    """Whether a command on ``--device device_name`` starts its processes through torch-xla's launcher: on an XLA
    runtime other than the CPU (``PJRT_DEVICE=TPU``: one process per TPU chip), unless torchrun started this
    process or it is itself a launched one. On ``PJRT_DEVICE=CPU`` the launcher would start a single process, so
    the command runs in this one."""
    if os.environ.get(XLA_WORKER_ENV) or "WORLD_SIZE" in os.environ:
        return False
    runtime = os.environ.get("PJRT_DEVICE", "").upper()
    wants_xla = device_name == "xla" or (device_name == "auto" and not torch.cuda.is_available() and bool(runtime))
    return wants_xla and runtime not in ("", "CPU")


def launch_xla(command: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """Run ``command(argv)`` in one process per XLA device (``torch_xla.launch``) and return the first non-zero exit
    status (0 when all succeed). Each process gets ``RANK``/``WORLD_SIZE`` from the runtime, so the command shards,
    reduces and writes exactly as under torchrun (:func:`init_distributed`: rank 0 writes)."""
    import torch_xla

    try:
        torch_xla.launch(_xla_worker, args=(command, list(argv)))
    except WorkerExitError as exc:
        return exc.code
    return 0


def _xla_worker(index: int, command: Callable[[Sequence[str]], int], argv: list[str]) -> None:
    import torch_xla.runtime as xr

    if xr.addressable_device_count() > 1:
        raise BenchError(f"this XLA process drives {xr.addressable_device_count()} devices in threads (TPU v2/v3 "
                         "cores, or CPU_NUM_DEVICES > 1), which colorbench does not support: one device per process "
                         "(TPU v4 and later), or set TPU_NUM_DEVICES=1 / CPU_NUM_DEVICES=1")
    os.environ.update({XLA_WORKER_ENV: "1", "RANK": str(index), "WORLD_SIZE": str(xr.world_size())})
    code = command(argv)
    if code:
        raise WorkerExitError(code)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a multi-process job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that torchrun (``WORLD_SIZE``/``RANK`` set) or torch-xla describes.

    Backends: NCCL on CUDA, gloo on the CPU, ``xla`` on XLA devices. Single-process runs skip all of this.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        if device.type == "xla":
            import torch_xla.distributed.xla_backend  # noqa: F401  (registers the "xla" backend)

            dist.init_process_group("xla", init_method="xla://")
        else:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world_size:
        joined = dist.get_world_size()
        dist.destroy_process_group()
        raise BenchError(f"{world_size} processes were started, but the {device.type} runtime joined {joined} "
                         "(torch-xla's CPU runtime gives every process its own one-device world, so it cannot run "
                         "multi-process jobs; use a TPU runtime, or one process)")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks (moved to the backend's device: the GPU for NCCL, the XLA device for
    xla); identity when the process runs alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    backend = dist.get_backend()
    if backend == "nccl":
        carrier = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    elif backend == "xla":
        carrier = tensor.to(_xla_device())
    else:
        carrier = tensor.clone()
    dist.all_reduce(carrier)
    return carrier.to(tensor.device)


def shutdown_distributed(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[DistInfo]:
    """Context manager around :func:`init_distributed` / :func:`shutdown_distributed`."""
    info = init_distributed(device)
    try:
        yield info
    finally:
        shutdown_distributed(info)
