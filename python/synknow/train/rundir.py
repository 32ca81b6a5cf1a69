"""The run directory: its creation and lock, its record of the configuration and corpus, the
metrics log, and loading a trained model back (:func:`load_run`).

A run lives in ``<out_dir>/<run_id>/``::

    config.json                  resolved TrainConfig + corpus identity (vocabulary hash, sizes)
    metrics.jsonl                header record, then train / eval / checkpoint / end records
    eval.json                    the final evaluation (also the last eval record of the log)
    checkpoints/latest           name of the newest complete checkpoint
    checkpoints/step_00000100/   see :mod:`synknow.train.checkpoint`
    .lock                        held (flock) by the process training the run; holds its PID
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from synknow.corpus import Corpus, load_corpus
from synknow.fsutil import atomic_write_text
from synknow.train.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    inside,
    is_int,
    json_default,
    latest_checkpoint,
    read_state,
    remove_stale_checkpoint_temporaries,
    restore_checkpoint,
)
from synknow.train.config import TrainConfig
from synknow.train.eval import evaluate
from synknow.train.model import GPT

__all__ = [
    "RunInUse",
    "RunLock",
    "MetricsLog",
    "LoadedRun",
    "load_run",
    "read_run_record",
    "create_run",
    "lock_run",
    "new_run_id",
    "corpus_identity",
    "check_corpus",
    "check_vocab",
    "open_corpus",
    "vocab_hash",
]


class RunInUse(OSError):
    """Another process holds the run directory's lock (it is training or resuming that run)."""


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``, held while a process trains or resumes the
    run, so that two processes cannot write one run directory. The holder's PID is written into
    the file for the error message; the kernel drops the lock when the holder exits, however it
    exits, so a killed run never leaves a stale lock."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Takes the lock at once or raises :class:`RunInUse` naming the holder's PID."""
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

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---- corpus identity ---------------------------------------------------------------------------


def vocab_hash(corpus: Corpus) -> str:
    """Identity of a corpus's vocabulary (ids and display strings)."""
    return hashlib.sha256("\n".join(corpus.vocab.strings).encode()).hexdigest()[:16]


def corpus_identity(corpus: Corpus) -> dict[str, Any]:
    """What ``config.json`` records about the corpus a run trains on."""
    return {
        "path": str(corpus.path.resolve()) if corpus.path is not None else None,
        "config": corpus.config.to_dict(),
        "n_docs": corpus.n_docs,
        "n_tokens": corpus.n_tokens,
        "vocab_size": len(corpus.vocab),
        "vocab_hash": vocab_hash(corpus),
    }


def check_vocab(stored: dict[str, Any], corpus: Corpus, what: str) -> None:
    """ValueError unless ``corpus`` has the vocabulary recorded in ``stored``."""
    if stored["vocab_size"] != len(corpus.vocab) or stored["vocab_hash"] != vocab_hash(corpus):
        raise ValueError(
            f"vocabulary mismatch: {what} was trained on a vocabulary of {stored['vocab_size']} "
            f"tokens (hash {stored['vocab_hash']}), the corpus has {len(corpus.vocab)} tokens "
            f"(hash {vocab_hash(corpus)}); use the corpus the run was trained on"
        )


def check_corpus(run_dir: Path, corpus: Corpus) -> dict[str, Any]:
    """The run's record, after checking that ``corpus`` is the one it was trained on (resume
    needs the same documents, not only the same vocabulary)."""
    stored, _ = read_run_record(run_dir)
    check_vocab(stored["corpus"], corpus, f"run {run_dir}")
    identity = corpus_identity(corpus)
    for key in ("n_docs", "config"):
        if stored["corpus"][key] != identity[key]:
            raise ValueError(
                f"cannot resume {run_dir}: the corpus differs from the one it was trained "
                f"on ({key} changed)"
            )
    return stored


def open_corpus(path: str | None) -> Corpus:
    if path is None:
        raise ValueError("no corpus given: set data.corpus (or pass --corpus DIR)")
    return load_corpus(path)


# ---- the directory -----------------------------------------------------------------------------


def new_run_id(cfg: TrainConfig) -> str:
    """``<UTC time>-<config hash>``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(cfg.to_json().encode()).hexdigest()[:6]
    return f"{stamp}-{digest}"


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
        and is_int(stored.get("n_test"))
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


def create_run(run_dir: Path, record: dict[str, Any]) -> RunLock:
    """Creates a new run directory with its ``config.json``; returns the lock, held. A
    directory that already holds a run is never reused (FileExistsError)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()
    try:
        if (run_dir / "config.json").exists():
            raise FileExistsError(
                f"run directory {run_dir} already holds a run; choose another run.run_id or "
                "resume it"
            )
        remove_stale_checkpoint_temporaries(run_dir)
        atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2) + "\n")
    except BaseException:
        lock.release()
        raise
    return lock


def lock_run(run_dir: Path) -> RunLock:
    """Takes an existing run's lock (to resume it) and clears what killed runs left."""
    lock = RunLock(run_dir).acquire()
    remove_stale_checkpoint_temporaries(run_dir)
    return lock


class MetricsLog:
    """Append-only JSONL; one JSON object per line, flushed as written (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self._f = open(path, "a") if enabled else None  # noqa: SIM115 - closed by close()

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(record, default=json_default) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


# ---- loading a finished (or interrupted) run ---------------------------------------------------


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


def _checkpoint_at(run_dir: Path, step: int | None) -> Path:
    if step is None:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise ValueError(f"run {run_dir} has no complete checkpoint")
        return checkpoint
    checkpoint = run_dir / "checkpoints" / f"step_{step:08d}"
    if not (checkpoint / "state.json").is_file():
        have = ", ".join(p.name for p in checkpoint_dirs(run_dir)) or "none"
        raise ValueError(f"run {run_dir} has no checkpoint at step {step} (have: {have})")
    return inside(checkpoint, run_dir / "checkpoints", "checkpoint")


def load_run(
    run_dir: str | os.PathLike[str],
    *,
    step: int | None = None,
    corpus: Corpus | str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedRun:
    """Loads a run's model from its latest checkpoint (or the one at ``step``).

    ``corpus`` defaults to the corpus the run was trained on; another corpus must have the same
    vocabulary (else ``ValueError``). A corrupt or edited checkpoint is a
    :class:`~synknow.train.checkpoint.CheckpointError`.
    """
    run_dir = Path(run_dir)
    stored, cfg = read_run_record(run_dir)
    checkpoint = _checkpoint_at(run_dir, step)
    if corpus is None:
        if cfg.data.corpus is None:
            raise ValueError(
                f"run {run_dir} was trained on an in-memory corpus: pass corpus= to load_run"
            )
        corpus = open_corpus(cfg.data.corpus)
    elif not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)
    check_vocab(stored["corpus"], corpus, f"run {run_dir}")
    state = read_state(checkpoint)
    model = GPT(cfg.model)
    restore_checkpoint(checkpoint, state, model, None)
    model.to(device).eval()
    n_test = int(stored["n_test"])
    n_train = int(cfg.data.n_train or corpus.n_docs - n_test)
    return LoadedRun(model, cfg, corpus, int(state["step"]), run_dir, checkpoint, n_train, n_test)
