"""The few ``torch.distributed`` calls of a run under ``torchrun`` (gloo), each a no-op in one process."""

from __future__ import annotations

import os

import torch


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` from ``torchrun``'s environment (``(0, 1)`` outside it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def start(threads: int = 0) -> tuple[int, int]:
    """``(rank, world size)``; ``threads`` set and the gloo process group started under ``torchrun``."""
    rank, world = rank_world()
    if threads:
        torch.set_num_threads(threads)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
    return rank, world


def wrap(network: torch.nn.Module, world: int) -> torch.nn.Module:
    """``network`` wrapped in DistributedDataParallel under ``torchrun``, else itself."""
    if world == 1:
        return network
    return torch.nn.parallel.DistributedDataParallel(network)


def mean(value: float, world: int) -> float:
    """The mean of ``value`` over the processes (itself in a single process)."""
    if world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value])
    dist.all_reduce(t)
    return float(t) / world


def rank0_flag(flag: bool, world: int) -> bool:
    """Rank 0's ``flag`` on every process, so that all of them stop after the same epoch."""
    if world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0])
    dist.broadcast(t, 0)
    return bool(t)


def finish(world: int) -> None:
    """Wait for every process, then end the gloo process group (nothing in a single process).

    Left running, the group's threads race the interpreter's exit: a process may abort with
    "terminate called without an active exception" after its work is done.
    """
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
