"""Data-parallel training over processes started by ``torchrun`` (torch.distributed).

The CLI reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) into a
:class:`DistContext`; library code only receives that object. Every process samples the
same path each step (same seed), sees a disjoint slice of each global batch, and the
gradients are averaged with one ``all_reduce`` over a flat buffer after ``backward``
— the reduction ``DistributedDataParallel`` performs, done explicitly because a
single-path supernet uses a different parameter subset every step (DDP's bucket hooks
assume a fixed set, or need ``find_unused_parameters`` and would hand zero gradients to
unused weights, changing what momentum and weight decay do). Backend: NCCL on CUDA,
gloo on CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel job.

    Attributes:
        rank: global rank (0 writes checkpoints and logs).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_process_group(ctx: DistContext, device: torch.device, timeout_s: float = 1800.0) -> None:
    """Joins the process group (``env://``: torchrun's MASTER_ADDR/PORT) if not yet joined."""
    if not ctx.enabled or (tdist.is_available() and tdist.is_initialized()):
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    tdist.init_process_group(
        backend, init_method="env://", rank=ctx.rank, world_size=ctx.world_size, timeout=timedelta(seconds=timeout_s)
    )
    logger.info("joined process group: rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)


def destroy_process_group(ctx: DistContext) -> None:
    if ctx.enabled and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        tdist.barrier()


def broadcast_module(module: nn.Module, ctx: DistContext) -> None:
    """Copies rank 0's parameters and buffers to every process (in place)."""
    if not ctx.enabled:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.dtype == torch.bool:
                tmp = t.to(torch.uint8)
                tdist.broadcast(tmp, 0)
                t.copy_(tmp.bool())
            else:
                tdist.broadcast(t.data, 0)


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Averages the gradients of ``params`` that have one over all processes.

    All processes must hold gradients for the same parameters (they run the same path).
    """
    if not ctx.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat.div_(ctx.world_size)
    off = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[off : off + n].view_as(g))
        off += n


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``t`` over processes (in place; returns ``t``)."""
    if ctx.enabled:
        tdist.all_reduce(t)
    return t
