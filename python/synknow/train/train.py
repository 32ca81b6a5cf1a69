"""The training loop: AdamW + warmup/cosine, gradient accumulation, bf16 autocast on GPU, DDP
under ``torchrun``, safetensors checkpoints with exact resume, and a JSONL metrics log.

A run lives in ``<out_dir>/<run_id>/``::

    config.json                  resolved TrainConfig + corpus identity (vocabulary hash, sizes)
    metrics.jsonl                header record, then train / eval / checkpoint / end records
    eval.json                    the final evaluation (also the last eval record of the log)
    checkpoints/latest           name of the newest complete checkpoint
    checkpoints/step_00000100/   model.safetensors, optimizer.safetensors, rng.safetensors,
                                 state.json

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
import fcntl
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

import synknow
from synknow.corpus import Corpus, load_corpus
from synknow.fsutil import (
    atomic_write_text,
    default_file_mode,
    remove_stale_temporaries,
    temporary_name,
)
from synknow.provenance import git_info
from synknow.train.config import ModelConfig, TrainConfig, locate_key
from synknow.train.data import TrainData, check_split
from synknow.train.eval import bayes_reference, evaluate
from synknow.train.model import GPT, flops_per_token, kernels, param_count

__all__ = [
    "train",
    "load_run",
    "LoadedRun",
    "TrainingDiverged",
    "CheckpointError",
    "RunInUse",
    "peak_flops",
    "vocab_hash",
    "git_info",
    "versions",
]

# Dense bf16 tensor-core peak (no sparsity), FLOP/s, by device-name substring; first match wins.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN/inf; the last good checkpoint is kept."""


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be used as it is: truncated or modified files,
    an invalid ``state.json`` or ``config.json``, or a path that leads out of the run."""


class RunInUse(OSError):
    """Another process holds the run directory's lock (it is training or resuming that run)."""


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


def vocab_hash(corpus: Corpus) -> str:
    """Identity of a corpus's vocabulary (ids and display strings)."""
    return hashlib.sha256("\n".join(corpus.vocab.strings).encode()).hexdigest()[:16]


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


# ---------------------------------------------------------------------------------------------
# distributed helpers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _init_distributed(device_cfg: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_cfg != "cpu" and torch.cuda.is_available()
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return _Dist(rank=rank, world=world, local_rank=local, owns_group=owns)


def _pick_device(cfg: str, d: _Dist) -> torch.device:
    if cfg == "auto":
        cfg = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"run.device={cfg!r} but CUDA is not available")
        return torch.device("cuda", d.local_rank) if cfg == "cuda" else torch.device(cfg)
    return torch.device("cpu")


def _autocast_dtype(cfg: str, device: torch.device) -> torch.dtype | None:
    if cfg == "bfloat16" or (cfg == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


# ---------------------------------------------------------------------------------------------
# run directory, log, checkpoints
# ---------------------------------------------------------------------------------------------


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``, held while a process trains or resumes the
    run, so that two processes cannot write one run directory. The holder's PID is written into
    the file for the error message; the kernel drops the lock when the holder exits, however it
    exits, so a killed run never leaves a stale lock."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunInUse(
                f"run directory {self.path.parent} is in use by process {holder} (another "
                "synknow train on the same run); wait for it to finish or choose another run.run_id"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


class MetricsLog:
    """Append-only JSONL; one JSON object per line, flushed as written."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self._f = open(path, "a") if enabled else None  # noqa: SIM115 - closed by close()

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(record, default=_json_default) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")
_CHECKPOINT_NAME = re.compile(r"^step_(\d{8,})$")
# Checkpoint temporaries written before they carried the writer's PID (tempfile.mkdtemp).
_LEGACY_CHECKPOINT_TMP = re.compile(r"^\.step_\d{8,}\.[a-z0-9_]{8}$")


def _checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if _CHECKPOINT_NAME.match(p.name) and p.is_dir() and not p.is_symlink()
    )


def _inside(path: Path, directory: Path, what: str) -> Path:
    """``path`` if it resolves to an entry directly inside ``directory``; else CheckpointError
    (a symbolic link or a ``..`` that leads into another run is never followed)."""
    if path.resolve().parent != directory.resolve():
        raise CheckpointError(
            f"{what} {path} leads outside {directory}; a run only uses its own checkpoints"
        )
    return path


def _latest_checkpoint(run_dir: Path) -> Path | None:
    root = run_dir / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        name = _inside(pointer, root, "checkpoint pointer").read_text().strip()
        if not _CHECKPOINT_NAME.match(name):
            raise CheckpointError(
                f"{pointer} names {name[:80]!r}, not a checkpoint directory of this run "
                "(step_NNNNNNNN)"
            )
        path = root / name
        if (path / "state.json").is_file():
            return _inside(path, root, "checkpoint")
    complete = [p for p in _checkpoint_dirs(run_dir) if (p / "state.json").is_file()]
    return complete[-1] if complete else None


def _remove_stale_checkpoint_temporaries(run_dir: Path) -> None:
    """Checkpoints and small files half-written by a killed process. Call with the run lock
    held: then no other process writes here, and legacy names (no PID) are stale too."""
    remove_stale_temporaries(run_dir)
    root = run_dir / "checkpoints"
    remove_stale_temporaries(root)
    if root.is_dir():
        for entry in root.iterdir():
            if _LEGACY_CHECKPOINT_TMP.match(entry.name) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_state(checkpoint: Path, total_steps: int | None = None) -> dict[str, Any]:
    """A checkpoint's ``state.json``, checked: types, the step against the directory name and
    ``[0, total_steps]``, and the SHA-256 of every tensor file against the recorded one."""
    where = f"checkpoint {checkpoint}"
    try:
        state = json.loads((checkpoint / "state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{where}: cannot read state.json ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: state.json must hold an object")
    step, tokens = state.get("step"), state.get("tokens_seen")
    named = _CHECKPOINT_NAME.match(checkpoint.name)
    if not _is_int(step) or named is None or int(named.group(1)) != step:
        raise CheckpointError(f"{where}: state.json step {step!r} does not match the directory")
    if total_steps is not None and not 0 <= step <= total_steps:
        raise CheckpointError(f"{where}: step {step} outside [0, {total_steps}] of this run")
    if not _is_int(tokens) or tokens < 0:
        raise CheckpointError(f"{where}: tokens_seen {tokens!r} is not a count")
    rng = state.get("rng")
    if not isinstance(state.get("param_groups"), list) or not isinstance(rng, dict):
        raise CheckpointError(f"{where}: state.json lacks param_groups or rng")
    hashes = state.get("sha256")
    if hashes is None:  # written before checkpoints carried hashes: nothing to check against
        return state
    if not isinstance(hashes, dict) or set(hashes) != set(CHECKPOINT_FILES):
        raise CheckpointError(f"{where}: state.json sha256 must map {', '.join(CHECKPOINT_FILES)}")
    for name in CHECKPOINT_FILES:
        path = _inside(checkpoint / name, checkpoint, "checkpoint file")
        if not path.is_file():
            raise CheckpointError(f"{where}: {name} is missing")
        if _sha256(path) != hashes[name]:
            raise CheckpointError(
                f"{where}: {name} does not match the hash recorded when it was written (a "
                "truncated or modified file); remove this checkpoint directory to use the one "
                "before it"
            )
    return state


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    sd = opt.state_dict()
    tensors = {
        f"state.{idx}.{key}": value.detach().cpu().contiguous()
        for idx, st in sd["state"].items()
        for key, value in st.items()
    }
    return tensors, sd["param_groups"]


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: Any):
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the global state is what we restore
    plain = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, plain


def _set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    py = plain["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    st = plain["numpy"]
    np.random.set_state((st[0], np.asarray(st[1], dtype=np.uint32), *st[2:]))  # noqa: NPY002


def _save_checkpoint(
    run_dir: Path,
    model: GPT,
    opt: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{state['step']:08d}"
    final = root / name
    # PID-tagged (stale ones are recognisable) and created by mkdir, so that its mode follows
    # the umask like every other output (mkdtemp makes 0700 directories).
    tmp = root / temporary_name(name)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / "model.safetensors"))
        tensors, groups = _optimizer_tensors(opt)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        rng_tensors, rng_plain = _rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        for f in CHECKPOINT_FILES:  # safetensors creates 0600 files; follow the umask
            os.chmod(tmp / f, default_file_mode())
        hashes = {f: _sha256(tmp / f) for f in CHECKPOINT_FILES}
        payload = {**state, "param_groups": groups, "rng": rng_plain, "sha256": hashes}
        atomic_write_text(tmp / "state.json", json.dumps(payload, default=_json_default))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except SafetensorError as e:  # e.g. a full disk; not an OSError subclass
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"cannot write checkpoint {final}: {e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / "latest", name + "\n")
    for old in _checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def restore_checkpoint(
    checkpoint: Path,
    state: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    device: torch.device | str = "cpu",
) -> None:
    """Loads a checkpoint's weights (and, with ``opt``, the optimiser and RNG states)."""
    try:
        load_model(model, str(checkpoint / "model.safetensors"), device=str(device))
        if opt is not None:
            tensors = load_file(str(checkpoint / "optimizer.safetensors"))
            _load_optimizer(opt, tensors, state["param_groups"])
            _set_rng_state(load_file(str(checkpoint / "rng.safetensors")), state["rng"])
    except (SafetensorError, OSError, RuntimeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {checkpoint} cannot be restored: {_one_line(e)}"
        ) from None


def read_run_record(run_dir: Path) -> tuple[dict[str, Any], TrainConfig]:
    """A run directory's ``config.json`` (checked) and the configuration it holds."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"not a run directory (no config.json): {run_dir}")
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read it ({e})") from None
    corpus = stored.get("corpus") if isinstance(stored, dict) else None
    keys = ("n_docs", "config", "vocab_size", "vocab_hash")
    if not (
        isinstance(stored, dict)
        and isinstance(stored.get("train"), dict)
        and _is_int(stored.get("n_test"))
        and isinstance(corpus, dict)
        and all(k in corpus for k in keys)
    ):
        raise CheckpointError(
            f"{path} is not a run record (an object with train, corpus and n_test)"
        )
    try:
        cfg = TrainConfig.from_dict(stored["train"])
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return stored, cfg


def _memory_estimate(m: ModelConfig, micro: int, isolated: bool) -> int:
    """A lower bound on the bytes one training micro-step needs (float32): the parameters with
    their gradients and two AdamW moments, four int64 input rows, and per layer the few
    d_model- and d_mlp-wide activations autograd keeps; the per-document mask with isolation."""
    assert m.d_model and m.n_layer and m.d_mlp and m.vocab_size
    params = m.n_layer * (4 * m.d_model**2 + 2 * m.d_model * m.d_mlp)
    params += m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2)
    tokens = micro * m.context_length
    per_token = 32 + m.n_layer * 4 * (6 * m.d_model + 2 * m.d_mlp)
    mask = micro * m.context_length**2 if isolated else 0
    return 16 * params + tokens * per_token + mask


def _device_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _check_memory(m: ModelConfig, micro: int, isolated: bool, device: torch.device) -> None:
    need, have = _memory_estimate(m, micro, isolated), _device_memory(device)
    if have is not None and need > have:
        raise ValueError(
            f"a micro-batch of {micro} windows of model.context_length={m.context_length} "
            f"tokens needs at least {need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB "
            f"of this {device.type}; lower optim.micro_batch_size (or optim.batch_size), "
            "model.context_length or the model size"
        )


# ---------------------------------------------------------------------------------------------
# corpus and model identity
# ---------------------------------------------------------------------------------------------


def _corpus_identity(corpus: Corpus) -> dict[str, Any]:
    return {
        "path": str(corpus.path.resolve()) if corpus.path is not None else None,
        "config": corpus.config.to_dict(),
        "n_docs": corpus.n_docs,
        "n_tokens": corpus.n_tokens,
        "vocab_size": len(corpus.vocab),
        "vocab_hash": vocab_hash(corpus),
    }


def _check_vocab(stored: dict[str, Any], corpus: Corpus, what: str) -> None:
    if stored["vocab_size"] != len(corpus.vocab) or stored["vocab_hash"] != vocab_hash(corpus):
        raise ValueError(
            f"vocabulary mismatch: {what} was trained on a vocabulary of {stored['vocab_size']} "
            f"tokens (hash {stored['vocab_hash']}), the corpus has {len(corpus.vocab)} tokens "
            f"(hash {vocab_hash(corpus)}); use the corpus the run was trained on"
        )


def _open_corpus(path: str | None) -> Corpus:
    if path is None:
        raise ValueError("no corpus given: set data.corpus (or pass --corpus DIR)")
    return load_corpus(path)


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
    kw = dict(lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps)
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


def _new_run_id(cfg: TrainConfig) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(cfg.to_json().encode()).hexdigest()[:6]
    return f"{stamp}-{digest}"


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


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

    Under ``torchrun`` every rank calls this; rank 0 writes the log and the checkpoints.
    Raises :class:`TrainingDiverged` if the loss or gradient norm becomes non-finite.
    """
    if resume is not None:
        _, base = read_run_record(Path(resume))
        allowed = {
            "progress",
            "eval_interval",
            "eval_docs",
            "eval_batch_size",
            "log_interval",
            "checkpoint_interval",
            "keep_checkpoints",
            "device",
            "num_threads",
        }
        for item in overrides:
            section, field = locate_key(item[0] if isinstance(item, tuple) else item.split("=")[0])
            if section != "run" or field not in allowed:
                raise ValueError(
                    f"cannot override '{section}.{field}' when resuming (it would change the "
                    f"run); allowed: {', '.join(sorted(allowed))}"
                )
        cfg = base.with_overrides(overrides)
    elif cfg is None:
        raise ValueError("train() needs a config (or resume=RUN_DIR)")
    elif overrides:
        cfg = cfg.with_overrides(overrides)
    assert cfg is not None
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)

    ddp = _init_distributed(cfg.run.device)
    try:
        with contextlib.ExitStack() as held:
            resume_dir = Path(resume) if resume is not None else None
            return _train(cfg, ddp, corpus, resume_dir, stop_at, held)
    finally:
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig,
    ddp: _Dist,
    corpus: Corpus | None,
    resume_dir: Path | None,
    stop_at: int | None,
    held: contextlib.ExitStack,
) -> Path:
    device = _pick_device(cfg.run.device, ddp)
    amp = _autocast_dtype(cfg.run.dtype, device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    if corpus is None:
        corpus = _open_corpus(cfg.data.corpus)
    identity = _corpus_identity(corpus)
    if resume_dir is not None:
        stored, _ = read_run_record(resume_dir)
        _check_vocab(stored["corpus"], corpus, f"run {resume_dir}")
        for key in ("n_docs", "config"):
            if stored["corpus"][key] != identity[key]:
                raise ValueError(
                    f"cannot resume {resume_dir}: the corpus differs from the one it was trained "
                    f"on ({key} changed)"
                )
    n_train, n_test = check_split(corpus, cfg.data.n_train, cfg.data.n_test)
    if cfg.model.vocab_size is not None and cfg.model.vocab_size != len(corpus.vocab):
        raise ValueError(
            f"model.vocab_size={cfg.model.vocab_size} but the corpus has {len(corpus.vocab)} "
            "tokens; leave model.vocab_size unset (it comes from the corpus)"
        )
    mcfg: ModelConfig = cfg.model.resolved(vocab_size=len(corpus.vocab))
    cfg = dataclasses.replace(
        cfg,
        model=mcfg,
        data=dataclasses.replace(
            cfg.data,
            corpus=str(corpus.path.resolve()) if corpus.path is not None else cfg.data.corpus,
            n_train=n_train,
        ),
    )
    micro, accum = cfg.optim.accumulation(ddp.world)
    _check_memory(mcfg, micro, cfg.data.doc_attention == "isolated", device)
    data = TrainData(corpus, n_train, mcfg.context_length, shuffle_seed=cfg.data.shuffle_seed)
    stream_windows = data.stream_windows(cfg.data.epochs)
    if cfg.optim.max_steps is not None:
        total_steps = cfg.optim.max_steps
        limit = None  # the stream is endless; max_steps decides
    else:
        total_steps = data.steps_for(cfg.data.epochs, cfg.optim.batch_size)
        limit = stream_windows

    # ---- run directory (rank 0 names it and holds its lock; everyone agrees) ----
    if resume_dir is not None:
        run_dir = resume_dir
        if ddp.main:
            held.enter_context(RunLock(run_dir))
            _remove_stale_checkpoint_temporaries(run_dir)
        ddp.barrier()
    else:
        run_id = cfg.run.run_id or _new_run_id(cfg)
        if ddp.world > 1:
            box = [run_id]
            dist.broadcast_object_list(box, src=0)
            run_id = box[0]
        run_dir = Path(cfg.run.out_dir) / run_id
        if ddp.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(RunLock(run_dir))
            if (run_dir / "config.json").exists():
                raise FileExistsError(
                    f"run directory {run_dir} already holds a run; choose another run.run_id or "
                    "resume it"
                )
            _remove_stale_checkpoint_temporaries(run_dir)
            record = {"train": cfg.to_dict(), "corpus": identity, "n_test": n_test}
            atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2) + "\n")
        ddp.barrier()

    # ---- model, optimiser, state ----
    torch.manual_seed(cfg.run.seed)
    model = GPT(mcfg).to(device)
    opt = _make_optimizer(model, cfg, device)
    step = 0
    tokens_seen = 0
    checkpoint = _latest_checkpoint(run_dir) if resume_dir is not None else None
    if resume_dir is not None:
        if checkpoint is None:
            raise ValueError(f"cannot resume {run_dir}: it has no complete checkpoint")
        state = read_state(checkpoint, total_steps)
        restore_checkpoint(checkpoint, state, model, opt, device)
        step, tokens_seen = int(state["step"]), int(state["tokens_seen"])
    train_step: nn.Module = _TrainStep(
        model, cfg.data.doc_attention == "isolated", cfg.run.loss_impl
    )
    if ddp.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_step = DistributedDataParallel(
            train_step, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.run.compile:
        train_step = torch.compile(train_step)

    log = MetricsLog(run_dir / "metrics.jsonl", enabled=ddp.main)
    peak = peak_flops(device)
    fpt = flops_per_token(mcfg)
    header = {
        "type": "resume" if resume_dir is not None else "header",
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "step": step,
        "config": cfg.to_dict(),
        "corpus": identity,
        "n_train": n_train,
        "n_test": n_test,
        "versions": versions(),
        "git": git_info(),
        "device": device_info(device),
        "world_size": ddp.world,
        "micro_batch_size": micro,
        "grad_accum": accum,
        "total_steps": total_steps,
        "windows_per_epoch": data.windows_per_epoch,
        "targets_per_epoch": data.targets_per_epoch,
        "params": param_count(model),
        "params_non_embedding": param_count(model, with_embeddings=False),
        "flops_per_token": fpt,
        "peak_flops": peak,
        "loss_kernel": "synknow_kernels" if kernels is not None else "torch-chunked",
        "autocast": str(amp) if amp is not None else None,
    }
    log.write(header)

    bayes_cache: dict[str, Any] = {}

    def run_eval(at_step: int, final: bool) -> dict[str, Any] | None:
        report = None
        if ddp.main:
            if "ref" not in bayes_cache:  # the Bayes reference depends on n_train only: once
                bayes_cache["ref"] = bayes_reference(corpus, n_train, n_test)
            report = evaluate(
                model,
                corpus,
                n_train,
                n_test,
                max_docs=None if final else cfg.run.eval_docs,
                batch_size=cfg.run.eval_batch_size,
                autocast_dtype=amp,
                impl=cfg.run.loss_impl,
                bayes=bayes_cache["ref"],
                progress=False,
            )
            log.write(
                {"type": "eval", "step": at_step, "tokens": tokens_seen, "final": final, **report}
            )
        ddp.barrier()
        return report

    def save(at_step: int) -> Path | None:
        path = None
        if ddp.main:
            path = _save_checkpoint(
                run_dir,
                model,
                opt,
                {"step": at_step, "tokens_seen": tokens_seen, "total_steps": total_steps},
                cfg.run.keep_checkpoints,
            )
            log.write({"type": "checkpoint", "step": at_step, "path": str(path)})
        ddp.barrier()
        return path

    bar = None
    if ddp.main and cfg.run.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", desc="train", dynamic_ncols=True)
    end = total_steps if stop_at is None else min(total_steps, stop_at)
    window_tokens = micro * mcfg.context_length
    timer_start, timer_tokens = time.perf_counter(), 0
    last_good = checkpoint
    nonfinite_at = torch.full((), -1, dtype=torch.long, device=device)

    def check_finite() -> None:
        bad_step = int(nonfinite_at)
        if bad_step < 0:
            return
        kept = (
            f"the last good checkpoint is {last_good}"
            if last_good
            else ("no checkpoint was written before it")
        )
        message = (
            f"training diverged: the loss or the gradient norm became NaN/inf at step "
            f"{bad_step}; {kept}. Lower optim.lr or raise optim.warmup_steps."
        )
        log.write(
            {
                "type": "error",
                "step": bad_step,
                "message": message,
                "last_checkpoint": str(last_good) if last_good else None,
            }
        )
        raise TrainingDiverged(message)

    train_step.train()
    try:
        with _DeferredInterrupt() as interrupt:
            while step < end and not interrupt.requested:
                lr = cfg.optim.lr_at(step, total_steps)
                for group in opt.param_groups:
                    group["lr"] = lr
                # Dropout randomness as a function of (seed, step, rank): resume-exact.
                torch.manual_seed((cfg.run.seed * 1_000_003 + step * ddp.world + ddp.rank) % 2**63)
                normaliser = data.step_targets(step, cfg.optim.batch_size, limit)
                loss_sum = torch.zeros((), dtype=torch.float64, device=device)
                for j in range(accum):
                    batch = data.batch(
                        step,
                        cfg.optim.batch_size,
                        rank=ddp.rank,
                        world_size=ddp.world,
                        micro=j,
                        micro_batch_size=micro,
                        limit=limit,
                    ).to(device)
                    sync = contextlib.nullcontext()
                    if ddp.world > 1 and j < accum - 1:
                        sync = train_step.no_sync()  # type: ignore[operator]
                    with sync:
                        with torch.autocast(
                            device.type, dtype=amp or torch.float32, enabled=amp is not None
                        ):
                            loss = train_step(
                                batch.tokens, batch.targets, batch.positions, batch.segments
                            )
                        # DDP averages gradients over ranks; scale so that the step's gradient
                        # is the mean over every target of the global batch.
                        (loss * (ddp.world / max(1, normaliser))).backward()
                    loss_sum += loss.detach().double()
                    timer_tokens += window_tokens
                if ddp.world > 1:
                    dist.all_reduce(loss_sum)
                max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                step_loss_t = loss_sum / max(1, normaliser)
                # Non-finite values are flagged on the device (no host sync per step) and read
                # at the next log / eval / checkpoint, which always comes before anything is saved:
                # NaN is sticky (it reaches the parameters), so nothing is missed.
                bad = ~(torch.isfinite(step_loss_t) & torch.isfinite(grad_norm))
                nonfinite_at = torch.where(bad & (nonfinite_at < 0), step + 1, nonfinite_at)
                opt.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                tokens_seen += normaliser
                if bar is not None:
                    bar.update(1)
                checkpoint_due = bool(
                    cfg.run.checkpoint_interval and step % cfg.run.checkpoint_interval == 0
                )
                eval_due = bool(cfg.run.eval_interval and step % cfg.run.eval_interval == 0)
                if step % cfg.run.log_interval == 0 or step == end or checkpoint_due or eval_due:
                    check_finite()
                if step % cfg.run.log_interval == 0 or step == end:
                    step_loss, gnorm = float(step_loss_t), float(grad_norm)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    elapsed = time.perf_counter() - timer_start
                    tps = timer_tokens * ddp.world / elapsed if elapsed > 0 else None
                    log.write(
                        {
                            "type": "train",
                            "step": step,
                            "loss": step_loss,
                            "loss_bits": step_loss / math.log(2),
                            "lr": lr,
                            "grad_norm": gnorm,
                            "tokens": tokens_seen,
                            "epoch": data.epoch_at(step * cfg.optim.batch_size),
                            "tokens_per_s": tps,
                            "mfu": tps * fpt / (peak * ddp.world) if (tps and peak) else None,
                        }
                    )
                    if bar is not None:
                        bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}")
                    timer_start, timer_tokens = time.perf_counter(), 0
                if eval_due and step < end:
                    run_eval(step, final=False)
                    timer_start = time.perf_counter()
                if checkpoint_due and step < end:
                    last_good = save(step) or last_good
                    timer_start = time.perf_counter()
        if bar is not None:
            bar.close()
            bar = None
        check_finite()
        save(step)
        if interrupt.requested:
            log.write({"type": "interrupted", "step": step})
            raise KeyboardInterrupt
        if step >= total_steps:
            report = run_eval(step, final=True)
            if ddp.main and report is not None:
                text = json.dumps({"step": step, **report}, indent=2, default=_json_default)
                atomic_write_text(run_dir / "eval.json", text + "\n")
            log.write({"type": "end", "step": step, "tokens": tokens_seen})
        else:
            log.write({"type": "stopped", "step": step})
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return run_dir


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


# ---------------------------------------------------------------------------------------------
# loading a finished (or interrupted) run
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LoadedRun:
    """A trained model with its configuration and corpus."""

    model: GPT
    config: TrainConfig
    corpus: Corpus
    step: int
    run_dir: Path
    checkpoint: Path
    n_train: int
    n_test: int

    def evaluate(self, **kwargs: Any) -> dict[str, Any]:
        """:func:`synknow.train.evaluate` on this run's test split."""
        kwargs.setdefault("n_test", self.n_test)
        return evaluate(self.model, self.corpus, self.n_train, **kwargs)


def load_run(
    run_dir: str | os.PathLike[str],
    *,
    step: int | None = None,
    corpus: Corpus | str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedRun:
    """Loads a run's model from its latest checkpoint (or the one at ``step``).

    ``corpus`` defaults to the corpus the run was trained on; another corpus must have the same
    vocabulary (else ``ValueError``).
    """
    run_dir = Path(run_dir)
    stored, cfg = read_run_record(run_dir)
    if step is None:
        checkpoint = _latest_checkpoint(run_dir)
        if checkpoint is None:
            raise ValueError(f"run {run_dir} has no complete checkpoint")
    else:
        checkpoint = run_dir / "checkpoints" / f"step_{step:08d}"
        if (checkpoint / "state.json").is_file():
            _inside(checkpoint, run_dir / "checkpoints", "checkpoint")
        else:
            have = ", ".join(p.name for p in _checkpoint_dirs(run_dir)) or "none"
            raise ValueError(f"run {run_dir} has no checkpoint at step {step} (have: {have})")
    if corpus is None:
        if cfg.data.corpus is None:
            raise ValueError(
                f"run {run_dir} was trained on an in-memory corpus: pass corpus= to load_run"
            )
        corpus = _open_corpus(cfg.data.corpus)
    elif not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)
    _check_vocab(stored["corpus"], corpus, f"run {run_dir}")
    state = read_state(checkpoint)
    model = GPT(cfg.model)
    restore_checkpoint(checkpoint, state, model, None)
    model.to(device).eval()
    n_test = int(stored["n_test"])
    n_train = int(cfg.data.n_train or corpus.n_docs - n_test)
    return LoadedRun(model, cfg, corpus, int(state["step"]), run_dir, checkpoint, n_train, n_test)
