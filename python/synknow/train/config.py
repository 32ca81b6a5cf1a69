"""Run configuration: four dataclasses (model, data, optim, run) read from TOML plus overrides.

A run file has one table per section; keys may also be written flat at the top level when the
name belongs to exactly one section. Overrides use the same names, dotted or flat::

    [model]
    size = "tiny"          # named size; n_layer / n_head / d_model written here win over it
    context_length = 128

    [data]
    corpus = "corpora/bios-small"
    n_test = 500

    [optim]
    lr = 3e-3
    batch_size = 32

    [run]
    eval_interval = 100

>>> cfg = TrainConfig.from_toml('[model]\\nsize = "1m"\\n', overrides=["optim.lr=1e-3", "seed=3"])
>>> (cfg.model.resolved().d_model, cfg.optim.lr, cfg.run.seed)
(128, 0.001, 3)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from synknow.config import parse_override

__all__ = [
    "MODEL_SIZES",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
]

# name -> (n_layer, n_head, d_model). Sizes are non-embedding parameters, 12 * n_layer * d_model^2
# (attention 4 d^2 + MLP 8 d^2 per block); the vocabulary adds V * d_model on top.
MODEL_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 2, 48),  # 55k
    "1m": (5, 4, 128),  # 0.98M
    "5m": (6, 4, 256),  # 4.7M
    "20m": (12, 6, 384),  # 21M
    "50m": (16, 8, 512),  # 50M
    "100m": (14, 12, 768),  # 99M
}


class _Section:
    """Shared validation and (de)serialisation for the four sections."""

    _section: typing.ClassVar[str]

    def _check_types(self) -> None:
        # Direct construction (``DataConfig(corpus=5)``) skips from_dict: check the hints here
        # too, so a wrong type is a one-line error instead of a traceback deep in training.
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _coerce(f"{self._section}.{f.name}", getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], section: str) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError(f"[{section}] must be a table, got {type(data).__name__}")
        known = cls.field_names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown key(s) in [{section}]: {', '.join(unknown)}; valid: {', '.join(known)}"
            )
        hints = typing.get_type_hints(cls)
        return cls(**{k: _coerce(f"{section}.{k}", v, hints[k]) for k, v in data.items()})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Checks ``value`` against a field's type hint; ints are accepted for float fields."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{key} must not be empty")
    for t in options:
        if t is type(None):
            continue
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is str and isinstance(value, str):
            return value
    names = " or ".join("none" if t is type(None) else t.__name__ for t in options)
    raise ValueError(f"{key} must be {names}, got {value!r}")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _positive(
    key: str, value: float | int | None, *, allow_zero: bool = False, at_most: float | None = None
) -> None:
    if value is None:
        return
    if not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{key} must be {bound}, got {value!r}")
    if at_most is not None and value > at_most:
        bound = f"{at_most:g}" if isinstance(at_most, float) else f"{at_most:,}"
        raise ValueError(f"{key} must be at most {bound}, got {value!r}")


# Upper bounds. They keep every value inside what the arithmetic and the machine can represent;
# none is close to a useful setting.
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit seed
MAX_THREADS = 1024  # torch.set_num_threads(100000) crashes the process (segfault)
MAX_CONTEXT = 2**20  # tokens per window; the rotary tables alone hold context x head_dim
MAX_BATCH = 2**20  # windows per optimiser step; the loop walks each window in Python
MAX_EPOCHS = 10_000  # every epoch is packed (a Python pass over the training documents)
# AdamW moves a parameter by about lr per step, and float32/bfloat16 arithmetic must hold
# lr / (1 - beta1) (at most 1e6 / 1.1e-16 ~ 1e22 < 3.4e38); lr = 1e6 already diverges at once.
MAX_LR = 1e6


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """GPT shape. ``size`` picks a row of :data:`MODEL_SIZES`; explicit fields override it.

    ``vocab_size`` comes from the corpus (leave it unset in run files).
    """

    size: str | None = None
    n_layer: int | None = None
    n_head: int | None = None
    d_model: int | None = None
    d_mlp: int | None = None  # default 4 * d_model
    context_length: int = 128
    vocab_size: int | None = None
    norm: str = "rmsnorm"  # or "layernorm"
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    dropout: float = 0.0
    init_std: float = 0.02

    _section = "model"

    def __post_init__(self) -> None:
        self._check_types()
        if self.size is not None and self.size not in MODEL_SIZES:
            raise ValueError(
                f"model.size must be one of {', '.join(MODEL_SIZES)}, got {self.size!r}"
            )
        for key in ("n_layer", "n_head", "d_model", "d_mlp", "vocab_size"):
            _positive(f"model.{key}", getattr(self, key))
        _positive("model.context_length", self.context_length, at_most=MAX_CONTEXT)
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"model.norm must be 'rmsnorm' or 'layernorm', got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        _positive("model.rope_base", self.rope_base, at_most=1e12)  # used: 1e4 .. 5e8
        _positive("model.init_std", self.init_std, at_most=10.0)
        if self.n_head is not None and self.d_model is not None:
            if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
                raise ValueError(
                    f"model.d_model={self.d_model} must be n_head={self.n_head} times an even "
                    "head size (RoPE rotates pairs of channels)"
                )

    def resolved(self, vocab_size: int | None = None) -> ModelConfig:
        """Concrete shape: the named size (default ``tiny``) filled in under explicit fields."""
        n_layer, n_head, d_model = MODEL_SIZES[self.size or "tiny"]
        d_model = self.d_model or d_model
        n_head = self.n_head or (n_head if d_model % n_head == 0 else 1)
        return dataclasses.replace(
            self,
            n_layer=self.n_layer or n_layer,
            n_head=n_head,
            d_model=d_model,
            d_mlp=self.d_mlp or 4 * d_model,
            vocab_size=vocab_size if vocab_size is not None else self.vocab_size,
        )

    @property
    def head_dim(self) -> int:
        assert self.d_model is not None and self.n_head is not None
        return self.d_model // self.n_head


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Which documents are trained on and how they are packed (docs/model.md#splits).

    The test split is the last ``n_test`` documents of the corpus; training uses the first
    ``n_train`` (default: every document before the test split).
    """

    corpus: str | None = None
    n_train: int | None = None
    n_test: int = 1000
    epochs: float = 1.0
    shuffle_seed: int = 0  # document order
    # "isolated": each document attends only to itself, positions restart at its BOS (what the
    # evaluation and the Bayes reference see); "packed": plain causal attention over the window.
    doc_attention: str = "isolated"

    _section = "data"

    def __post_init__(self) -> None:
        self._check_types()
        _positive("data.n_train", self.n_train)
        _positive("data.n_test", self.n_test)
        _positive("data.epochs", self.epochs, at_most=MAX_EPOCHS)
        _positive("data.shuffle_seed", self.shuffle_seed, allow_zero=True, at_most=MAX_SEED)
        if self.doc_attention not in ("isolated", "packed"):
            raise ValueError(
                f"data.doc_attention must be 'isolated' or 'packed', got {self.doc_attention!r}"
            )


@dataclasses.dataclass(frozen=True)
class OptimConfig(_Section):
    """AdamW with linear warmup and cosine decay to ``min_lr_ratio * lr``.

    ``batch_size`` counts context windows per optimiser step over all ranks; each rank runs
    ``batch_size / (world_size * micro_batch_size)`` accumulation steps.
    """

    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 disables clipping
    batch_size: int = 32
    micro_batch_size: int | None = None  # default: batch_size / world_size (no accumulation)
    max_steps: int | None = None  # default: data.epochs passes over the training windows
    fused: bool | None = None  # fused AdamW; default on where supported

    _section = "optim"

    def __post_init__(self) -> None:
        self._check_types()
        _positive("optim.lr", self.lr, at_most=MAX_LR)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _positive("optim.warmup_steps", self.warmup_steps, allow_zero=True)
        # Decoupled decay scales parameters by 1 - lr * weight_decay per step.
        _positive("optim.weight_decay", self.weight_decay, allow_zero=True, at_most=100.0)
        for key in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"optim.{key} must be in [0, 1), got {getattr(self, key)}")
        _positive("optim.eps", self.eps, at_most=1.0)
        _positive("optim.grad_clip", self.grad_clip, allow_zero=True)
        _positive("optim.batch_size", self.batch_size, at_most=MAX_BATCH)
        _positive("optim.micro_batch_size", self.micro_batch_size, at_most=MAX_BATCH)
        _positive("optim.max_steps", self.max_steps)

    def accumulation(self, world_size: int) -> tuple[int, int]:
        """``(micro_batch_size, accumulation steps)`` per rank; raises if they do not divide."""
        micro = self.micro_batch_size or max(1, self.batch_size // world_size)
        if self.batch_size % (micro * world_size):
            raise ValueError(
                f"optim.batch_size={self.batch_size} must be a multiple of micro_batch_size="
                f"{micro} x world_size={world_size}"
            )
        return micro, self.batch_size // (micro * world_size)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based): a pure function, so resuming
        needs no scheduler state beyond the step."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        decay_steps = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        floor = self.min_lr_ratio * self.lr
        return floor + 0.5 * (self.lr - floor) * (1.0 + math.cos(math.pi * progress))


@dataclasses.dataclass(frozen=True)
class RunConfig(_Section):
    """Where the run goes, on what device, and how often it logs, evaluates and saves."""

    out_dir: str = "runs"
    run_id: str | None = None  # default: <UTC time>-<config hash>
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    dtype: str = "auto"  # "auto": bfloat16 autocast on CUDA, float32 on CPU
    compile: bool = False
    seed: int = 0  # initialisation and dropout
    log_interval: int = 10
    eval_interval: int = 0  # 0: evaluate only at the end
    eval_docs: int = 256  # test documents for periodic evaluation (the final one uses n_test)
    eval_batch_size: int = 64
    checkpoint_interval: int = 0  # 0: checkpoint only at the end
    keep_checkpoints: int = 2
    progress: bool = True
    num_threads: int | None = None  # torch CPU threads
    data_workers: int = 0  # DataLoader worker processes per rank (0: batches built in-line)
    # With several ranks: "ddp" replicates the model on each; "fsdp" shards parameters,
    # gradients and AdamW moments over the ranks (models that one device cannot hold).
    distributed: str = "ddp"
    loss_impl: str = "auto"  # synknow_kernels impl: "auto", "triton", "torch"

    _section = "run"

    def __post_init__(self) -> None:
        self._check_types()
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"run.dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        if self.loss_impl not in ("auto", "triton", "torch"):
            raise ValueError(f"run.loss_impl must be auto, triton or torch, got {self.loss_impl!r}")
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError(f"run.distributed must be ddp or fsdp, got {self.distributed!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"run.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.run_id is not None and (
            not self.run_id or "/" in self.run_id or self.run_id.startswith(".")
        ):
            raise ValueError(f"run.run_id must be a plain directory name, got {self.run_id!r}")
        _positive("run.seed", self.seed, allow_zero=True, at_most=MAX_SEED)
        for key in ("log_interval", "eval_docs", "eval_batch_size", "keep_checkpoints"):
            _positive(f"run.{key}", getattr(self, key))
        for key in ("eval_interval", "checkpoint_interval"):
            _positive(f"run.{key}", getattr(self, key), allow_zero=True)
        _positive("run.num_threads", self.num_threads, at_most=MAX_THREADS)
        _positive("run.data_workers", self.data_workers, allow_zero=True, at_most=MAX_THREADS)


_SECTIONS: dict[str, type[_Section]] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "run": RunConfig,
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training run: ``model``, ``data``, ``optim`` and ``run`` sections."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: getattr(self, name).to_dict() for name in _SECTIONS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], overrides: Iterable[str | tuple[str, Any]] = ()
    ) -> TrainConfig:
        """Sections as tables and/or flat keys, then ``key=value`` overrides (strings parsed as
        TOML/JSON values, or ``(key, value)`` pairs)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run config must be a table, got {type(data).__name__}")
        tables: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
        for key, value in data.items():
            if key in _SECTIONS:
                if not isinstance(value, Mapping):
                    raise ValueError(f"[{key}] must be a table, got {value!r}")
                tables[key].update(value)
            else:
                section, field = locate_key(key)
                tables[section][field] = value
        for item in overrides:
            key, value = parse_override(item.lstrip("-")) if isinstance(item, str) else item
            section, field = locate_key(key)
            tables[section][field] = value
        return cls(**{n: sec.from_dict(tables[n], n) for n, sec in _SECTIONS.items()})

    @classmethod
    def from_toml(
        cls, source: str | Path, overrides: Iterable[str | tuple[str, Any]] = ()
    ) -> TrainConfig:
        """Reads a TOML file (a ``Path``, or a string naming an existing file) or TOML text."""
        text = _read_source(source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"cannot parse run config TOML: {e}") from None
        return cls.from_dict(data, overrides)

    def with_overrides(self, overrides: Iterable[str | tuple[str, Any]]) -> TrainConfig:
        return TrainConfig.from_dict(self.to_dict(), overrides)


def _read_source(source: str | Path) -> str:
    if not isinstance(source, Path):
        try:
            is_file = Path(source).is_file()
        except (OSError, ValueError):  # TOML text too long or odd to be a file name
            is_file = False
        if not is_file and ("=" in source or "[" in source or not source.strip()):
            return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"run config not found: {path}")
    return path.read_text()


def locate_key(key: str) -> tuple[str, str]:
    """``"optim.lr"`` or ``"lr"`` -> ``("optim", "lr")``; unknown or ambiguous keys raise."""
    key = key.strip().lstrip("-").replace("-", "_")
    if "." in key:
        section, field = key.split(".", 1)
        if section not in _SECTIONS:
            raise ValueError(
                f"unknown config section {section!r} in {key!r}; sections: {', '.join(_SECTIONS)}"
            )
        if field not in _SECTIONS[section].field_names():
            raise ValueError(
                f"unknown key {key!r}; valid keys in [{section}]: "
                f"{', '.join(_SECTIONS[section].field_names())}"
            )
        return section, field
    owners = [name for name, sec in _SECTIONS.items() if key in sec.field_names()]
    if not owners:
        raise ValueError(
            f"unknown config key {key!r}; write section.key (sections: model, data, optim, run)"
        )
    if len(owners) > 1:
        raise ValueError(
            f"config key {key!r} is ambiguous; write one of "
            f"{', '.join(f'{o}.{key}' for o in owners)}"
        )
    return owners[0], key
