"""Checkpoints of a training run: writing, checking, restoring, and the ``latest`` pointer.

A checkpoint is a directory ``RUN_DIR/checkpoints/step_<N>/``::

    model.safetensors       the parameters
    optimizer.safetensors   the AdamW moments (``state.<param index>.<key>``)
    rng.safetensors         the torch (and CUDA) generator states
    state.json              step, tokens seen, total steps, AdamW param_groups, the Python and
                            numpy RNG states, and the SHA-256 of the three tensor files

It is written to a PID-tagged temporary directory (``.step_<N>.tmp-PID-RANDOM``) and renamed,
so a reader sees whole checkpoints only; ``checkpoints/latest`` names the newest. Reading one
back checks everything a flipped byte, a truncated file or a hand edit could break, and never
follows a path out of the run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeGuard, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from synknow.fsutil import (
    atomic_write_text,
    default_file_mode,
    remove_stale_temporaries,
    temporary_name,
)

__all__ = [
    "CHECKPOINT_FILES",
    "CheckpointError",
    "checkpoint_dirs",
    "latest_checkpoint",
    "inside",
    "read_state",
    "restore_checkpoint",
    "restore_training_state",
    "save_checkpoint",
    "remove_stale_checkpoint_temporaries",
    "json_default",
    "is_int",
    "one_line",
]

CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")
_CHECKPOINT_NAME = re.compile(r"^step_(\d{8,})$")
# Checkpoint temporaries written before they carried the writer's PID (tempfile.mkdtemp).
_LEGACY_CHECKPOINT_TMP = re.compile(r"^\.step_\d{8,}\.[a-z0-9_]{8}$")


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be used as it is: truncated or modified files,
    an invalid ``state.json`` or ``config.json``, or a path that leads out of the run."""


def json_default(x: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays."""
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def is_int(x: Any) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, shortened (torch's load errors span many lines)."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- where checkpoints are ------------------------------------------------------------------


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoint directories (complete or not), oldest first; symbolic links are
    never counted as checkpoints."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if _CHECKPOINT_NAME.match(p.name) and p.is_dir() and not p.is_symlink()
    )


def inside(path: Path, directory: Path, what: str) -> Path:
    """``path`` if it resolves to an entry directly inside ``directory``; else CheckpointError
    (a symbolic link or a ``..`` that leads into another run is never followed)."""
    if path.resolve().parent != directory.resolve():
        raise CheckpointError(
            f"{what} {path} leads outside {directory}; a run only uses its own checkpoints"
        )
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``checkpoints/latest`` names, else the newest complete one, else None."""
    root = run_dir / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        name = inside(pointer, root, "checkpoint pointer").read_text().strip()
        if not _CHECKPOINT_NAME.match(name):
            raise CheckpointError(
                f"{pointer} names {name[:80]!r}, not a checkpoint directory of this run "
                "(step_NNNNNNNN)"
            )
        path = root / name
        if (path / "state.json").is_file():
            return inside(path, root, "checkpoint")
    complete = [p for p in checkpoint_dirs(run_dir) if (p / "state.json").is_file()]
    return complete[-1] if complete else None


def remove_stale_checkpoint_temporaries(run_dir: Path) -> None:
    """Checkpoints and small files half-written by a killed process. Call with the run lock
    held: then no other process writes here, and legacy names (no PID) are stale too."""
    remove_stale_temporaries(run_dir)
    root = run_dir / "checkpoints"
    remove_stale_temporaries(root)
    if root.is_dir():
        for entry in root.iterdir():
            if _LEGACY_CHECKPOINT_TMP.match(entry.name) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


# ---- writing -----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _optimizer_tensors(
    opt: torch.optim.Optimizer | Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], Any]:
    sd = opt if isinstance(opt, Mapping) else opt.state_dict()
    tensors = {
        f"state.{idx}.{key}": value.detach().cpu().contiguous()
        for idx, st in sd["state"].items()
        for key, value in st.items()
    }
    return tensors, sd["param_groups"]


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    # The global state is what we restore; legacy=True gives the 5-tuple.
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))  # noqa: NPY002
    plain = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, plain


def save_checkpoint(
    run_dir: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer | Mapping[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Writes ``checkpoints/step_<state["step"]>/``, points ``latest`` at it and keeps the
    ``keep`` newest. ``opt`` is the optimiser or its full ``state_dict()`` (parameters numbered
    as ``torch.optim`` numbers them; a sharded run gathers it first). A failure (a full disk)
    is an ``OSError`` and leaves no partial checkpoint."""
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
        atomic_write_text(tmp / "state.json", json.dumps(payload, default=json_default))
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
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ---- reading -----------------------------------------------------------------------------------


def _check_hashes(checkpoint: Path, hashes: Any) -> None:
    where = f"checkpoint {checkpoint}"
    if not isinstance(hashes, dict) or set(hashes) != set(CHECKPOINT_FILES):
        raise CheckpointError(f"{where}: state.json sha256 must map {', '.join(CHECKPOINT_FILES)}")
    for name in CHECKPOINT_FILES:
        path = inside(checkpoint / name, checkpoint, "checkpoint file")
        if not path.is_file():
            raise CheckpointError(f"{where}: {name} is missing")
        if _sha256(path) != hashes[name]:
            raise CheckpointError(
                f"{where}: {name} does not match the hash recorded when it was written (a "
                "truncated or modified file); remove this checkpoint directory to use the one "
                "before it"
            )


def read_state(checkpoint: Path, total_steps: int | None = None) -> dict[str, Any]:
    """A checkpoint's ``state.json``, checked: types, the step against the directory name and
    ``[0, total_steps]``, and the SHA-256 of every tensor file against the recorded one
    (checkpoints written before hashes were recorded have none to check)."""
    where = f"checkpoint {checkpoint}"
    try:
        state = json.loads((checkpoint / "state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{where}: cannot read state.json ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: state.json must hold an object")
    step, tokens = state.get("step"), state.get("tokens_seen")
    named = _CHECKPOINT_NAME.match(checkpoint.name)
    if not is_int(step) or named is None or int(named.group(1)) != step:
        raise CheckpointError(f"{where}: state.json step {step!r} does not match the directory")
    if total_steps is not None and not 0 <= step <= total_steps:
        raise CheckpointError(f"{where}: step {step} outside [0, {total_steps}] of this run")
    if not is_int(tokens) or tokens < 0:
        raise CheckpointError(f"{where}: tokens_seen {tokens!r} is not a count")
    if not isinstance(state.get("param_groups"), list) or not isinstance(state.get("rng"), dict):
        raise CheckpointError(f"{where}: state.json lacks param_groups or rng")
    if state.get("sha256") is not None:
        _check_hashes(checkpoint, state["sha256"])
    return state


def _optimizer_state_dict(tensors: dict[str, torch.Tensor], groups: Any) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups}


def _set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    py = plain["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    st = plain["numpy"]
    np.random.set_state((st[0], np.asarray(st[1], dtype=np.uint32), *st[2:]))  # noqa: NPY002


_RESTORE_ERRORS = (SafetensorError, OSError, RuntimeError, KeyError, TypeError, ValueError)


def restore_checkpoint(
    checkpoint: Path,
    state: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    device: torch.device | str = "cpu",
) -> None:
    """Loads a checkpoint's weights (and, with ``opt``, the optimiser and RNG states); any
    failure (a truncated file, tensors of another model) is one CheckpointError."""
    try:
        load_model(model, str(checkpoint / "model.safetensors"), device=str(device))
    except _RESTORE_ERRORS as e:
        raise CheckpointError(
            f"checkpoint {checkpoint} cannot be restored: {one_line(e)}"
        ) from None
    if opt is not None:
        restore_training_state(checkpoint, state, opt.load_state_dict)


def restore_training_state(
    checkpoint: Path,
    state: dict[str, Any],
    load_optimizer: Callable[[dict[str, Any]], Any],
) -> None:
    """Passes the checkpoint's optimiser ``state_dict()`` (parameters numbered as
    ``torch.optim`` numbers them) to ``load_optimizer``, then restores the RNG states; any
    failure is one CheckpointError."""
    try:
        tensors = load_file(str(checkpoint / "optimizer.safetensors"))
        load_optimizer(_optimizer_state_dict(tensors, state["param_groups"]))
        _set_rng_state(load_file(str(checkpoint / "rng.safetensors")), state["rng"])
    except _RESTORE_ERRORS as e:
        raise CheckpointError(
            f"checkpoint {checkpoint} cannot be restored: {one_line(e)}"
        ) from None
