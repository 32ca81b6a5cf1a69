"""Data-parallel set-up for the trainer under ``torchrun``: ranks from the environment, the
process group, each rank's device, and the few collective operations the loop needs.

Without ``WORLD_SIZE > 1`` in the environment every function is a no-op around one process, so
the loop reads the same with one rank or many.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "init_distributed", "teardown", "pick_device", "autocast_dtype"]


@dataclasses.dataclass
class DistContext:
    """This process's place in the run: rank, world size, local rank (its GPU)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether init_distributed created the process group

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run directory and evaluates."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def broadcast_from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sums ``tensor`` over ranks, in place."""
        if self.world > 1:
            dist.all_reduce(tensor)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel (which averages gradients over ranks)."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def no_sync(
        self, module: nn.Module, last_micro_step: bool
    ) -> contextlib.AbstractContextManager:
        """Skips the gradient all-reduce on all but the last micro-step of an accumulation."""
        if self.world > 1 and not last_micro_step:
            return module.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()


def init_distributed(device_cfg: str) -> DistContext:
    """Joins (or creates) the process group ``torchrun`` describes in the environment: NCCL
    when this rank uses CUDA, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_cfg != "cpu" and torch.cuda.is_available()
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistContext(rank=rank, world=world, local_rank=local, owns_group=owns)


def teardown(ctx: DistContext) -> None:
    """Destroys the process group if :func:`init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(cfg: str, ctx: DistContext) -> torch.device:
    """``run.device`` made concrete; ``"cuda"`` means this rank's local GPU."""
    if cfg == "auto":
        cfg = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"run.device={cfg!r} but CUDA is not available")
        return torch.device("cuda", ctx.local_rank) if cfg == "cuda" else torch.device(cfg)
    return torch.device("cpu")


def autocast_dtype(cfg: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``run.dtype`` on ``device`` (None: plain float32)."""
    if cfg == "bfloat16" or (cfg == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None
