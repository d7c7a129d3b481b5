"""Multi-process training under ``torchrun``: the process environment, the process group, the device.

``torchrun --nproc_per_node N -m clawcrane train-head ...`` starts N processes with WORLD_SIZE,
RANK and LOCAL_RANK set. ``setup`` reads them, starts the process group (gloo on CPU, NCCL on
CUDA, each process on ``cuda:LOCAL_RANK``) and returns a ``Processes``; without those variables
(or with WORLD_SIZE=1) it returns the single process and starts nothing, so a plain run is
unchanged. Rank 0 is the only one that logs, shows progress and writes artifacts; the stages ask
``Processes.main``.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from clawcrane.build.device import resolve_device
from clawcrane.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_ENV = "CLAWCRANE_DIST_TIMEOUT_MINUTES"
"""Minutes a process waits in a collective (e.g. for rank 0's first MiniLM encoding) before giving up."""


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the training processes (one, unless under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False
    """``setup`` started the process group (so ``teardown`` ends it)."""

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, shows progress bars and writes every artifact."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing with one process)."""
        if self.distributed and dist.is_initialized():
            dist.barrier()

    def main_first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0, then on the other ranks: a cache ``fn`` fills is written by rank 0 alone
        and only read by the others."""
        if not self.distributed:
            return fn()
        if self.main:
            out = fn()
            self.barrier()
            return out
        self.barrier()
        return fn()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not an integer; run under torchrun, or unset it for a single process") from None


def environment() -> Processes:
    """The process's place from torchrun's WORLD_SIZE, RANK and LOCAL_RANK (one process when unset)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Processes()
    rank, local = _env_int("RANK", -1), _env_int("LOCAL_RANK", -1)
    if not 0 <= rank < world or local < 0:
        raise ConfigError(f"WORLD_SIZE={world} but RANK={os.environ.get('RANK')!r}, LOCAL_RANK={os.environ.get('LOCAL_RANK')!r}; "
                          "start the processes with torchrun, which sets all three")
    return Processes(rank=rank, world=world, local_rank=local)


def check_global_batch(batch_size: int, procs: Processes, option: str = "--batch-size") -> int:
    """The per-process batch: ``batch_size`` (the global batch, as one process trains it) / processes."""
    if batch_size % procs.world:
        raise ConfigError(f"{option} {batch_size} is the global batch; it must divide among the {procs.world} "
                          f"processes (each takes {option} / {procs.world}); use a multiple of {procs.world}")
    return batch_size // procs.world


def process_device(option: str | torch.device | None, procs: Processes) -> torch.device:
    """``resolve_device(option)``; under torchrun, CUDA means this process's ``cuda:LOCAL_RANK``."""
    device = resolve_device(option)
    if not procs.distributed or device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"--device {option}: under torchrun each process takes cuda:LOCAL_RANK; pass --device cuda "
                          "(choose the GPUs with CUDA_VISIBLE_DEVICES)")
    if procs.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK {procs.local_rank} but {torch.cuda.device_count()} visible GPU(s); "
                          "start at most one process per GPU (torchrun --nproc_per_node)")
    torch.cuda.set_device(procs.local_rank)
    return torch.device("cuda", procs.local_rank)


def setup(device_option: str | torch.device | None, batch_size: int | None = None) -> tuple[Processes, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device.

    ``batch_size`` (the global batch) is checked to divide among the processes before anything starts.
    Returns the single process and ``resolve_device(device_option)`` when not under torchrun.
    """
    procs = environment()
    if batch_size is not None:
        check_global_batch(batch_size, procs)
    device = process_device(device_option, procs)
    if not procs.distributed or dist.is_initialized():
        return procs, device
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run a single process (without torchrun)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "gloo" and not dist.is_gloo_available():
        raise ConfigError("this torch build has no gloo backend for CPU processes; use --device cuda or one process")
    minutes = float(os.environ.get(TIMEOUT_ENV, "120"))
    kw: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=minutes), **kw)
    if procs.main:
        log.info("%d processes (%s), this one rank 0 on %s", procs.world, backend, device)
    return replace(procs, owns_group=True), device


def teardown(procs: Processes) -> None:
    """Leave the process group ``setup`` started (nothing with one process)."""
    if procs.owns_group and dist.is_initialized():
        dist.destroy_process_group()
