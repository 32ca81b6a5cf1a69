"""Data-parallel set-up for the trainer under ``torchrun``: ranks from the environment, the
process group, each rank's device, the model wrapper (DDP, or FSDP for models whose
parameters, gradients and AdamW moments do not fit one device) and the few collective
operations the loop needs.

Ranks. ``RANK`` (global, ``0 .. WORLD_SIZE - 1``) decides what a process does for the whole
run: rank 0 alone writes the run directory and evaluates, and rank ``r`` reads its own slice of
each step's windows. ``LOCAL_RANK`` (``0 .. LOCAL_WORLD_SIZE - 1`` on each node) only picks the
process's GPU. With several nodes the two differ (``--nnodes 2 --nproc-per-node 1`` gives
every process ``LOCAL_RANK = 0``), so nothing here keys per-run work on the local rank.

Without ``WORLD_SIZE > 1`` in the environment every function is a no-op around one process, so
the loop reads the same with one rank or many.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "STRATEGIES",
    "DistContext",
    "init_distributed",
    "ranks_from_env",
    "teardown",
    "pick_device",
    "autocast_dtype",
]

STRATEGIES = ("ddp", "fsdp")
"""Values of ``run.distributed``: how the model is spread over more than one rank."""


@dataclasses.dataclass
class DistContext:
    """This process's place in the run: global rank and world size, local rank (its GPU) and
    the number of ranks on its node, and the data-parallel strategy."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether init_distributed created the process group
    local_world: int = 1
    strategy: str = "ddp"

    @property
    def main(self) -> bool:
        """Global rank 0: the one that writes the run directory and evaluates."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """Whether parameters are sharded over the ranks (FSDP with more than one rank)."""
        return self.world > 1 and self.strategy == "fsdp"

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

    def wrap(
        self, module: nn.Module, device: torch.device, shard_units: Iterable[nn.Module] = ()
    ) -> nn.Module:
        """``module`` under DistributedDataParallel, or sharded in place by FSDP (FULL_SHARD:
        ``fully_shard`` on each of ``shard_units``, then on ``module``, whose forward must
        contain every use of its own parameters). Both average gradients over ranks. Under
        FSDP the optimiser must be built after this call: sharding replaces the parameters."""
        if self.world == 1:
            return module
        if self.strategy == "fsdp":
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh(device.type, (self.world,))
            for unit in shard_units:
                fully_shard(unit, mesh=mesh)
            fully_shard(module, mesh=mesh)
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def no_sync(
        self, module: nn.Module, last_micro_step: bool
    ) -> contextlib.AbstractContextManager:
        """Skips the gradient reduction on all but the last micro-step of an accumulation."""
        if self.world == 1 or last_micro_step:
            return contextlib.nullcontext()
        if self.sharded:
            return _fsdp_no_sync(module)
        return module.no_sync()  # type: ignore[operator]

    def clip_grad_norm(self, params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
        """``clip_grad_norm_`` over the whole model's gradients; a plain tensor on every rank
        (FSDP's is a replicated DTensor)."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        full = getattr(norm, "full_tensor", None)
        return full() if full is not None else norm

    def full_state(
        self, model: nn.Module, opt: torch.optim.Optimizer | None
    ) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
        """The whole model's ``state_dict()`` (on the CPU) and the optimiser's (parameters
        numbered as ``torch.optim`` numbers them), gathered on rank 0 from the FSDP shards;
        ``(None, None)`` on the other ranks. A collective under FSDP: every rank calls it."""
        if not self.sharded:
            raise RuntimeError("full_state gathers FSDP shards; use the model itself otherwise")
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_sd: dict[str, Any] = get_model_state_dict(model, options=options)
        if opt is None:
            return (model_sd if self.main else None), None
        by_name: Any = get_optimizer_state_dict(model, opt, options=options)
        if not self.main:
            return None, None
        index = {name: i for i, name in enumerate(_optimizer_param_names(model, opt))}
        numbered = {
            "state": {index[name]: st for name, st in by_name["state"].items()},
            "param_groups": [
                {**g, "params": [index[name] for name in g["params"]]}
                for g in by_name["param_groups"]
            ],
        }
        return model_sd, numbered

    def load_optimizer(
        self, model: nn.Module, opt: torch.optim.Optimizer, state_dict: Mapping[str, Any]
    ) -> None:
        """Loads a full optimiser ``state_dict()`` (as :meth:`full_state` returns it, or a
        single process's) into ``opt``; under FSDP each rank keeps its shard."""
        if not self.sharded:
            opt.load_state_dict(dict(state_dict))
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        names = _optimizer_param_names(model, opt)
        by_name: Any = {
            "state": {names[i]: st for i, st in state_dict["state"].items()},
            "param_groups": [
                {**g, "params": [names[i] for i in g["params"]]} for g in state_dict["param_groups"]
            ],
        }
        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, opt, by_name, options=options)


def _optimizer_param_names(model: nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """The names of the optimiser's parameters in its own numbering (a tied parameter under
    its first name, as ``named_parameters`` gives it)."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in opt.param_groups for p in group["params"]]


@contextlib.contextmanager
def _fsdp_no_sync(module: nn.Module) -> Iterator[None]:
    module.set_requires_gradient_sync(False)  # type: ignore[operator]
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)  # type: ignore[operator]


def _env_int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None:
        if default is not None:
            return default
        raise ValueError(
            f"{name} is not set although WORLD_SIZE={env.get('WORLD_SIZE')}: launch every "
            "rank with torchrun (it sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, "
            "MASTER_ADDR and MASTER_PORT)"
        )
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def ranks_from_env(env: Mapping[str, str]) -> tuple[int, int, int, int]:
    """``(rank, world_size, local_rank, local_world_size)`` from torchrun's environment
    variables, checked; ``(0, 1, 0, 1)`` without ``WORLD_SIZE > 1``. ``LOCAL_WORLD_SIZE``
    defaults to ``WORLD_SIZE`` (one node)."""
    world = _env_int(env, "WORLD_SIZE", default=1)
    if world <= 1:
        return 0, 1, 0, 1
    rank, local = _env_int(env, "RANK"), _env_int(env, "LOCAL_RANK")
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", default=world)
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world})")
    if not 1 <= local_world <= world:
        raise ValueError(f"LOCAL_WORLD_SIZE={local_world} is outside [1, WORLD_SIZE={world}]")
    if not 0 <= local < local_world:
        raise ValueError(f"LOCAL_RANK={local} is outside [0, LOCAL_WORLD_SIZE={local_world})")
    return rank, world, local, local_world


def init_distributed(device_cfg: str, strategy: str = "ddp") -> DistContext:
    """Joins (or creates) the process group ``torchrun`` describes in the environment: NCCL
    when this rank uses CUDA, gloo otherwise."""
    if strategy not in STRATEGIES:
        raise ValueError(f"run.distributed must be one of {', '.join(STRATEGIES)}: {strategy!r}")
    rank, world, local, local_world = ranks_from_env(os.environ)
    if world == 1:
        return DistContext(strategy=strategy)
    use_cuda = device_cfg != "cpu" and torch.cuda.is_available()
    if use_cuda and local >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} GPU(s): run at "
            "most one process per GPU on each node (--nproc-per-node)"
        )
    owns = False
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):  # what init_process_group's env:// reads
            if not os.environ.get(name):
                _env_int({"WORLD_SIZE": str(world)}, name)  # the error naming the launcher
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistContext(
        rank=rank,
        world=world,
        local_rank=local,
        owns_group=owns,
        local_world=local_world,
        strategy=strategy,
    )


def teardown(ctx: DistContext) -> None:
    """Destroys the process group if :func:`init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(cfg: str, ctx: DistContext) -> torch.device:
    """``run.device`` made concrete; ``"cuda"`` means this rank's local GPU (``LOCAL_RANK``)."""
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
