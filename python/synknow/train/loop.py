"""The training loop: AdamW + warmup/cosine, gradient accumulation, bf16 autocast on GPU, DDP
or FSDP under ``torchrun`` (one node or several), safetensors checkpoints with exact resume,
and a JSONL metrics log.

:func:`train` reads top to bottom: resolve the configuration, plan the run (corpus, split,
window stream, step count), open the run directory, build the model and optimiser (restoring a
checkpoint on resume), then loop over optimiser steps, logging, evaluating and checkpointing
as due. Batches come from :meth:`synknow.train.data.TrainData.loader` (a DataLoader over
``synknow.torch.CorpusWindows``). The run directory is :mod:`synknow.train.rundir`,
checkpoints are :mod:`synknow.train.checkpoint`, ranks are :mod:`synknow.train.distributed`.

Exact resume: the data position is the step number (the window stream is a pure function of the
configuration, see :mod:`synknow.train.data`), the learning rate is a pure function of the step,
and dropout is reseeded from ``(run.seed, step, rank)`` before every step; the checkpoint also
restores the AdamW moments and the torch / numpy / Python RNG states. Training ``N`` steps
straight and ``N/2 + N/2`` with a resume in between give bit-identical parameters on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import synknow
from synknow.corpus import Corpus
from synknow.fsutil import atomic_write_text
from synknow.provenance import git_info
from synknow.train.checkpoint import (
    CheckpointError,
    json_default,
    latest_checkpoint,
    read_state,
    restore_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from synknow.train.config import ModelConfig, TrainConfig, locate_key
from synknow.train.data import TrainBatch, TrainData, check_split
from synknow.train.distributed import (
    DistContext,
    autocast_dtype,
    init_distributed,
    pick_device,
    teardown,
)
from synknow.train.eval import bayes_test_code_lengths, evaluate
from synknow.train.model import GPT, flops_per_token, kernels, param_count
from synknow.train.rundir import (
    LoadedRun,
    MetricsLog,
    RunInUse,
    check_corpus,
    corpus_identity,
    create_run,
    load_run,
    lock_run,
    new_run_id,
    open_corpus,
    read_run_record,
    vocab_hash,
)

__all__ = [
    "train",
    "TrainingDiverged",
    "peak_flops",
    "versions",
    "PEAK_BF16_FLOPS",
    # defined elsewhere, importable from here as from the module this one was split from
    "load_run",
    "LoadedRun",
    "CheckpointError",
    "RunInUse",
    "vocab_hash",
    "git_info",
]

# Dense bf16 tensor-core peak (no sparsity), FLOP/s, by device-name substring; first match wins.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
)

# run.* keys a resume may change: none of them alters the parameters the run produces.
RESUME_OVERRIDABLE = frozenset(
    {
        "progress",
        "eval_interval",
        "eval_docs",
        "eval_batch_size",
        "log_interval",
        "checkpoint_interval",
        "keep_checkpoints",
        "device",
        "num_threads",
        "data_workers",
        "distributed",
    }
)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN/inf; the last good checkpoint is kept."""


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak (FLOP/s) from :data:`PEAK_BF16_FLOPS`; ``None`` on CPU or
    for an unlisted GPU (MFU is then not reported)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def versions() -> dict[str, str | None]:
    return {
        "synknow": synknow.__version__,
        "synknow_kernels": getattr(kernels, "__version__", None),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "cpu": platform.processor() or platform.machine()}
    info["cpu_count"] = os.cpu_count()
    info["torch_threads"] = torch.get_num_threads()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1))
        info["cuda"] = torch.version.cuda
    return info


# ---- the entry point ---------------------------------------------------------------------------


def train(
    cfg: TrainConfig | None = None,
    *,
    corpus: Corpus | None = None,
    resume: str | os.PathLike[str] | None = None,
    overrides: tuple[str, ...] | list[str | tuple[str, Any]] = (),
    stop_at: int | None = None,
) -> Path:
    """Trains a GPT on ``cfg.data.corpus`` (or ``corpus``) and returns the run directory.

    Args:
        cfg: the run configuration (not needed with ``resume``).
        corpus: an already opened corpus (else ``cfg.data.corpus`` is memory-mapped).
        resume: a run directory: continue from its latest checkpoint with its stored config;
            ``overrides`` may then change ``run.*`` keys that do not alter the result
            (progress, intervals, device, threads).
        stop_at: stop (with a checkpoint) after this many optimiser steps, as an interruption
            would; the learning-rate schedule still spans the full run.

    Under ``torchrun`` every rank calls this; global rank 0 writes the log and the checkpoints.
    Raises :class:`TrainingDiverged` if the loss or gradient norm becomes non-finite,
    :class:`~synknow.train.rundir.RunInUse` if another process holds the run, and
    :class:`~synknow.train.checkpoint.CheckpointError` for a corrupt run directory.
    """
    resume_dir = Path(resume) if resume is not None else None
    cfg = _run_config(cfg, resume_dir, overrides)
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    ddp = init_distributed(cfg.run.device, cfg.run.distributed)
    try:
        with contextlib.ExitStack() as held:
            plan = _plan(cfg, ddp, corpus, resume_dir)
            run_dir = _open_run_dir(plan, ddp, resume_dir, held)
            run = _Run(plan, ddp, run_dir, resumed=resume_dir is not None)
            held.callback(run.close)
            run.loop(stop_at)
        # On success every rank leaves together, so that no rank tears its process group down
        # while another is still closing the run (a rank once aborted inside gloo's teardown
        # under FSDP on a loaded CPU). Not on errors: a rank that failed alone would never
        # reach the barrier and the others would wait for it forever.
        ddp.barrier()
        return run_dir
    finally:
        teardown(ddp)


def _run_config(
    cfg: TrainConfig | None,
    resume_dir: Path | None,
    overrides: tuple[str, ...] | list[str | tuple[str, Any]],
) -> TrainConfig:
    """The configuration to run: a resumed run's stored one (with harmless overrides only)."""
    if resume_dir is not None:
        _, stored = read_run_record(resume_dir)
        for item in overrides:
            section, field = locate_key(item[0] if isinstance(item, tuple) else item.split("=")[0])
            if section != "run" or field not in RESUME_OVERRIDABLE:
                raise ValueError(
                    f"cannot override '{section}.{field}' when resuming (it would change the "
                    f"run); allowed: {', '.join(sorted(RESUME_OVERRIDABLE))}"
                )
        return stored.with_overrides(overrides)
    if cfg is None:
        raise ValueError("train() needs a config (or resume=RUN_DIR)")
    return cfg.with_overrides(overrides) if overrides else cfg


# ---- before the first step ---------------------------------------------------------------------


@dataclasses.dataclass
class _Plan:
    """Everything fixed before the first step."""

    cfg: TrainConfig  # resolved: model shape with the vocabulary, data split filled in
    corpus: Corpus
    identity: dict[str, Any]
    n_train: int
    n_test: int
    micro: int  # windows per micro-step on each rank
    accum: int  # micro-steps per optimiser step
    data: TrainData
    total_steps: int
    limit: int | None  # stream length in windows (None: endless, max_steps decides)
    device: torch.device
    amp: torch.dtype | None


def _plan(
    cfg: TrainConfig, ddp: DistContext, corpus: Corpus | None, resume_dir: Path | None
) -> _Plan:
    """Checks the configuration against the corpus and the machine; writes nothing."""
    device = pick_device(cfg.run.device, ddp)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    if corpus is None:
        corpus = open_corpus(cfg.data.corpus)
    if resume_dir is not None:
        check_corpus(resume_dir, corpus)
    n_train, n_test = check_split(corpus, cfg.data.n_train, cfg.data.n_test)
    if cfg.model.vocab_size is not None and cfg.model.vocab_size != len(corpus.vocab):
        raise ValueError(
            f"model.vocab_size={cfg.model.vocab_size} but the corpus has {len(corpus.vocab)} "
            "tokens; leave model.vocab_size unset (it comes from the corpus)"
        )
    model = cfg.model.resolved(vocab_size=len(corpus.vocab))
    path = str(corpus.path.resolve()) if corpus.path is not None else cfg.data.corpus
    data_cfg = dataclasses.replace(cfg.data, corpus=path, n_train=n_train)
    cfg = dataclasses.replace(cfg, model=model, data=data_cfg)
    micro, accum = cfg.optim.accumulation(ddp.world)
    shards = ddp.world if ddp.sharded else 1
    _check_memory(model, micro, cfg.data.doc_attention == "isolated", device, shards)
    data = TrainData(corpus, n_train, model.context_length, shuffle_seed=cfg.data.shuffle_seed)
    if cfg.optim.max_steps is not None:
        total_steps, limit = cfg.optim.max_steps, None
    else:
        total_steps = data.steps_for(cfg.data.epochs, cfg.optim.batch_size)
        limit = data.stream_windows(cfg.data.epochs)
    amp = autocast_dtype(cfg.run.dtype, device)
    identity = corpus_identity(corpus)
    return _Plan(
        cfg, corpus, identity, n_train, n_test, micro, accum, data, total_steps, limit, device, amp
    )


def _memory_estimate(m: ModelConfig, micro: int, isolated: bool, shards: int = 1) -> int:
    """A lower bound on the bytes one training micro-step needs (float32): the parameters with
    their gradients and two AdamW moments, four int64 input rows, and per layer the few
    d_model- and d_mlp-wide activations autograd keeps; the per-document mask with isolation.
    FSDP over ``shards > 1`` ranks keeps 1/shards of the parameter state on each, and rank 0
    gathers one whole copy of the parameters to evaluate and save."""
    assert m.d_model and m.n_layer and m.d_mlp and m.vocab_size
    params = m.n_layer * (4 * m.d_model**2 + 2 * m.d_model * m.d_mlp)
    params += m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2)
    tokens = micro * m.context_length
    per_token = 32 + m.n_layer * 4 * (6 * m.d_model + 2 * m.d_mlp)
    mask = micro * m.context_length**2 if isolated else 0
    state = 16 * params if shards == 1 else -(-16 * params // shards) + 4 * params
    return state + tokens * per_token + mask


def _device_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _check_memory(
    m: ModelConfig, micro: int, isolated: bool, device: torch.device, shards: int = 1
) -> None:
    need, have = _memory_estimate(m, micro, isolated, shards), _device_memory(device)
    if have is not None and need > have:
        raise ValueError(
            f"a micro-batch of {micro} windows of model.context_length={m.context_length} "
            f"tokens needs at least {need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB "
            f"of this {device.type}; lower optim.micro_batch_size (or optim.batch_size), "
            "model.context_length or the model size"
        )


def _open_run_dir(
    plan: _Plan, ddp: DistContext, resume_dir: Path | None, held: contextlib.ExitStack
) -> Path:
    """The run directory, locked by rank 0 for as long as ``held`` lasts; a new run's
    ``config.json`` is written here (rank 0 names the run; every rank agrees)."""
    if resume_dir is not None:
        if ddp.main:
            held.callback(lock_run(resume_dir).release)
        ddp.barrier()
        return resume_dir
    run_id = ddp.broadcast_from_main(plan.cfg.run.run_id or new_run_id(plan.cfg))
    run_dir = Path(plan.cfg.run.out_dir) / run_id
    if ddp.main:
        record = {"train": plan.cfg.to_dict(), "corpus": plan.identity, "n_test": plan.n_test}
        held.callback(create_run(run_dir, record).release)
    ddp.barrier()
    return run_dir


class _TrainStep(nn.Module):
    """Forward + fused loss as one module, so DDP and torch.compile see one call."""

    def __init__(self, model: GPT, isolated: bool, impl: str):
        super().__init__()
        self.model = model
        self.isolated = isolated
        self.impl = impl

    def forward(self, tokens, targets, positions, segments) -> torch.Tensor:
        if self.isolated:
            hidden = self.model(tokens, positions=positions, segments=segments)
        else:
            hidden = self.model(tokens)
        return self.model.loss(hidden, targets, reduction="sum", impl=self.impl)


def _make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kw: dict[str, Any] = dict(
        lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps
    )
    fused = cfg.optim.fused
    if fused is None:
        fused = device.type == "cuda"
    if fused:
        try:
            return torch.optim.AdamW(groups, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError) as e:
            if cfg.optim.fused:
                raise ValueError(f"optim.fused=true is not supported here: {e}") from None
    return torch.optim.AdamW(groups, foreach=device.type == "cuda", **kw)


def _every(interval: int, step: int) -> bool:
    return bool(interval) and step % interval == 0


# ---- the run -----------------------------------------------------------------------------------


class _Run:
    """The model, optimiser, log and counters of one run, and what happens at each step."""

    def __init__(self, plan: _Plan, ddp: DistContext, run_dir: Path, resumed: bool):
        self.plan, self.cfg, self.ddp, self.run_dir = plan, plan.cfg, ddp, run_dir
        torch.manual_seed(self.cfg.run.seed)
        self.model = GPT(self.cfg.model).to(plan.device)
        self.step = 0
        self.tokens_seen = 0
        self.last_good: Path | None = None  # the newest checkpoint known to be finite
        restored = self._restore_weights() if resumed else None
        step_module = _TrainStep(
            self.model, self.cfg.data.doc_attention == "isolated", self.cfg.run.loss_impl
        )
        # FSDP shards each block, then the rest (embeddings, final norm, head) with the loss.
        self.train_step: Any = ddp.wrap(step_module, plan.device, shard_units=self.model.blocks)
        # After wrapping: FSDP replaces the parameters with their shards.
        self.opt = _make_optimizer(self.model, self.cfg, plan.device)
        if restored is not None:
            load = functools.partial(ddp.load_optimizer, self.model, self.opt)
            restore_training_state(*restored, load)
        self.shadow: GPT | None = None  # FSDP: rank 0's whole model, for evaluation and saving
        if self.cfg.run.compile:
            self.train_step = torch.compile(self.train_step)
        # Step (1-based) at which the loss or gradient norm first became non-finite, or -1;
        # kept on the device so that no step waits for the host.
        self.nonfinite_at = torch.full((), -1, dtype=torch.long, device=plan.device)
        self.bayes: dict[str, Any] | None = None  # depends on n_train only: computed once
        self.bar: Any = None
        self.timer_start, self.timer_tokens = 0.0, 0  # throughput since the last train record
        self.log = MetricsLog(run_dir / "metrics.jsonl", enabled=ddp.main)
        self.log.write(self._header(resumed))

    def _restore_weights(self) -> tuple[Path, dict[str, Any]]:
        """Loads the latest checkpoint's weights and counters into the (unwrapped) model;
        returns the checkpoint and its state for the optimiser and RNG states."""
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            raise ValueError(f"cannot resume {self.run_dir}: it has no complete checkpoint")
        state = read_state(checkpoint, self.plan.total_steps)
        restore_checkpoint(checkpoint, state, self.model, None, self.plan.device)
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.last_good = checkpoint
        return checkpoint, state

    def _whole_model(
        self, with_optimizer: bool
    ) -> tuple[GPT | None, torch.optim.Optimizer | dict[str, Any] | None]:
        """The model with all its parameters, and the optimiser (or its full state), on rank 0;
        ``(None, None)`` on the others. Under FSDP every rank must call this (it gathers the
        shards into a second, unsharded copy of the model on rank 0)."""
        if not self.ddp.sharded:
            return (self.model, self.opt) if self.ddp.main else (None, None)
        model_sd, opt_sd = self.ddp.full_state(self.model, self.opt if with_optimizer else None)
        if model_sd is None:
            return None, None
        if self.shadow is None:
            with torch.random.fork_rng(devices=[]):  # its initialisation is overwritten
                self.shadow = GPT(self.cfg.model)
            self.shadow.to(self.plan.device)
        self.shadow.load_state_dict(model_sd)
        return self.shadow, opt_sd

    def _header(self, resumed: bool) -> dict[str, Any]:
        plan, model = self.plan, self.model
        return {
            "type": "resume" if resumed else "header",
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "step": self.step,
            "config": self.cfg.to_dict(),
            "corpus": plan.identity,
            "n_train": plan.n_train,
            "n_test": plan.n_test,
            "versions": versions(),
            "git": git_info(),
            "device": device_info(plan.device),
            "world_size": self.ddp.world,
            "local_world_size": self.ddp.local_world,
            "distributed": self.ddp.strategy if self.ddp.world > 1 else None,
            "micro_batch_size": plan.micro,
            "grad_accum": plan.accum,
            "total_steps": plan.total_steps,
            "windows_per_epoch": plan.data.windows_per_epoch,
            "targets_per_epoch": plan.data.targets_per_epoch,
            "params": param_count(model),
            "params_non_embedding": param_count(model, with_embeddings=False),
            "flops_per_token": flops_per_token(self.cfg.model),
            "peak_flops": peak_flops(plan.device),
            "loss_kernel": "synknow_kernels" if kernels is not None else "torch-chunked",
            "autocast": str(plan.amp) if plan.amp is not None else None,
        }

    def loop(self, stop_at: int | None) -> None:
        cfg, total = self.cfg, self.plan.total_steps
        end = total if stop_at is None else min(total, stop_at)
        if self.ddp.main and cfg.run.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=self.step, unit="step", desc="train", dynamic_ncols=True
            )
        self.train_step.train()
        self.timer_start, self.timer_tokens = time.perf_counter(), 0
        # This rank's micro-batches of the steps still to run: the data position is the step.
        batches = iter(
            self.plan.data.loader(
                cfg.optim.batch_size,
                self.plan.micro,
                start_step=self.step,
                stop_step=end,
                rank=self.ddp.rank,
                world_size=self.ddp.world,
                limit=self.plan.limit,
                num_workers=cfg.run.data_workers,
                pin_memory=self.plan.device.type == "cuda",
            )
        )
        with _DeferredInterrupt() as interrupt, contextlib.closing(_Closer(batches)):
            while self.step < end and not interrupt.requested:
                lr = cfg.optim.lr_at(self.step, total)
                loss, grad_norm = self._optimizer_step(lr, batches)
                self.step += 1
                if self.bar is not None:
                    self.bar.update(1)
                at_end = self.step == end
                log_due = self.step % cfg.run.log_interval == 0 or at_end
                eval_due = _every(cfg.run.eval_interval, self.step) and not at_end
                checkpoint_due = _every(cfg.run.checkpoint_interval, self.step)
                if log_due or eval_due or checkpoint_due:
                    self._check_finite()
                if log_due:
                    self._log_train(lr, loss, grad_norm)
                if eval_due:
                    self._evaluate(final=False)
                    self.timer_start = time.perf_counter()
                if checkpoint_due and not at_end:
                    self._save()
                    self.timer_start = time.perf_counter()
        self._close_bar()
        self._finish(interrupt.requested)

    def _optimizer_step(
        self, lr: float, batches: Iterator[TrainBatch]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the step's mean loss and gradient norm (on the device)."""
        cfg, ddp = self.cfg, self.ddp
        for group in self.opt.param_groups:
            group["lr"] = lr
        # Dropout randomness as a function of (seed, step, rank): resume-exact.
        torch.manual_seed((cfg.run.seed * 1_000_003 + self.step * ddp.world + ddp.rank) % 2**63)
        normaliser = self.plan.data.step_targets(self.step, cfg.optim.batch_size, self.plan.limit)
        loss_sum = self._accumulate_gradients(normaliser, batches)
        ddp.all_reduce_sum(loss_sum)
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
        grad_norm = ddp.clip_grad_norm(self.model.parameters(), max_norm)
        loss = loss_sum / max(1, normaliser)
        # Flagged on the device and read at the next log / eval / checkpoint, which always comes
        # before anything is saved: NaN is sticky (it reaches the parameters), so nothing is missed.
        bad = ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        self.nonfinite_at = torch.where(
            bad & (self.nonfinite_at < 0), self.step + 1, self.nonfinite_at
        )
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.tokens_seen += normaliser
        return loss, grad_norm

    def _accumulate_gradients(self, normaliser: int, batches: Iterator[TrainBatch]) -> torch.Tensor:
        """Forward and backward over this rank's micro-batches of the step (the next
        ``accum`` of ``batches``); returns their summed loss."""
        plan, cfg, ddp = self.plan, self.cfg, self.ddp
        loss_sum = torch.zeros((), dtype=torch.float64, device=plan.device)
        amp_dtype = plan.amp or torch.float32
        for j in range(plan.accum):
            batch = next(batches).to(plan.device)
            with ddp.no_sync(self.train_step, last_micro_step=j == plan.accum - 1):
                with torch.autocast(plan.device.type, amp_dtype, enabled=plan.amp is not None):
                    loss = self.train_step(
                        batch.tokens, batch.targets, batch.positions, batch.segments
                    )
                # DDP averages gradients over ranks; scale so that the step's gradient is the
                # mean over every target of the global batch.
                (loss * (ddp.world / max(1, normaliser))).backward()
            loss_sum += loss.detach().double()
            self.timer_tokens += plan.micro * cfg.model.context_length
        return loss_sum

    def _check_finite(self) -> None:
        bad_step = int(self.nonfinite_at)
        if bad_step < 0:
            return
        last = self.last_good
        kept = (
            f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        )
        message = (
            f"training diverged: the loss or the gradient norm became NaN/inf at step "
            f"{bad_step}; {kept}. Lower optim.lr or raise optim.warmup_steps."
        )
        last_checkpoint = str(last) if last else None
        self.log.write(
            {
                "type": "error",
                "step": bad_step,
                "message": message,
                "last_checkpoint": last_checkpoint,
            }
        )
        raise TrainingDiverged(message)

    def _log_train(self, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        step_loss, gnorm = float(loss), float(grad_norm)
        device, world = self.plan.device, self.ddp.world
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - self.timer_start
        tps = self.timer_tokens * world / elapsed if elapsed > 0 else None
        peak, fpt = peak_flops(device), flops_per_token(self.cfg.model)
        self.log.write(
            {
                "type": "train",
                "step": self.step,
                "loss": step_loss,
                "loss_bits": step_loss / math.log(2),
                "lr": lr,
                "grad_norm": gnorm,
                "tokens": self.tokens_seen,
                "epoch": self.plan.data.epoch_at(self.step * self.cfg.optim.batch_size),
                "tokens_per_s": tps,
                "mfu": tps * fpt / (peak * world) if (tps and peak) else None,
            }
        )
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}")
        self.timer_start, self.timer_tokens = time.perf_counter(), 0

    def _evaluate(self, final: bool) -> dict[str, Any] | None:
        """Rank 0 evaluates (every test document if ``final``) and logs; the others wait."""
        report = None
        plan, run = self.plan, self.cfg.run
        model, _ = self._whole_model(with_optimizer=False)
        if model is not None:
            if self.bayes is None:
                self.bayes = bayes_test_code_lengths(plan.corpus, plan.n_train, plan.n_test)
            report = evaluate(
                model,
                plan.corpus,
                plan.n_train,
                plan.n_test,
                max_docs=None if final else run.eval_docs,
                batch_size=run.eval_batch_size,
                autocast_dtype=plan.amp,
                impl=run.loss_impl,
                bayes=self.bayes,
                progress=False,
            )
            record = {"type": "eval", "step": self.step, "tokens": self.tokens_seen}
            self.log.write({**record, "final": final, **report})
        self.ddp.barrier()
        return report

    def _save(self) -> None:
        """Rank 0 writes a checkpoint of the current step; the others wait."""
        model, opt = self._whole_model(with_optimizer=True)
        if model is not None and opt is not None:
            state = {
                "step": self.step,
                "tokens_seen": self.tokens_seen,
                "total_steps": self.plan.total_steps,
            }
            path = save_checkpoint(self.run_dir, model, opt, state, self.cfg.run.keep_checkpoints)
            self.log.write({"type": "checkpoint", "step": self.step, "path": str(path)})
            self.last_good = path
        self.ddp.barrier()

    def _finish(self, interrupted: bool) -> None:
        """The last checkpoint, then the final evaluation if the run is complete."""
        self._check_finite()
        self._save()
        if interrupted:
            self.log.write({"type": "interrupted", "step": self.step})
            raise KeyboardInterrupt
        if self.step < self.plan.total_steps:
            self.log.write({"type": "stopped", "step": self.step})
            return
        report = self._evaluate(final=True)
        if self.ddp.main and report is not None:
            text = json.dumps({"step": self.step, **report}, indent=2, default=json_default)
            atomic_write_text(self.run_dir / "eval.json", text + "\n")
        self.log.write({"type": "end", "step": self.step, "tokens": self.tokens_seen})

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self._close_bar()
        self.log.close()


class _Closer:
    """``close()`` for a DataLoader iterator: stops its worker processes at once (an early
    stop, an exception) instead of when the iterator is garbage-collected."""

    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator

    def close(self) -> None:
        shutdown = getattr(self.iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


class _DeferredInterrupt:
    """Turns the first Ctrl-C into a request to stop after the current optimiser step (so the
    checkpoint written then is exact); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
