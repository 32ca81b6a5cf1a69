"""The Syntax-Knowledge configuration (docs/model.md#configuration) as a typed, validated dataclass.

The Rust core is the single validator: constructing a config calls it, so an invalid field raises
``ValueError`` naming the field and its valid range straight away.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

from synknow import _core

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["SyntaxKnowledgeConfig", "parse_override"]

BIOS_POOL_SIZES = (200, 80, 120, 48, 160)
BIOS_ATTRIBUTE_POOL = (0, 0, 1, 2, 3, 4)


@dataclasses.dataclass(frozen=True)
class SyntaxKnowledgeConfig:
    """Every knob of the Syntax-Knowledge model (docs/model.md#configuration); defaults are the bios
    preset.

    Besides each field's own range, sizes are bounded so that nothing is allocated that cannot
    fit (checked before anything is built): ``beta <= 1e300``, ``1e-100 <= template_prior <=
    1e100``, at most 2^24 vocabulary ids (``syntax_vocab + sum(name_parts) + sum(pool_sizes)``),
    2^26 value-prior entries (``sum`` over attributes of their pool size), 2^20 templates and
    2^26 rendered template tokens.

    Example:
        >>> cfg = SyntaxKnowledgeConfig(alpha=0.5, beta=5.0)
        >>> cfg.attrs_per_doc is None  # None means n_attributes sentences per document
        True
        >>> SyntaxKnowledgeConfig(alpha=1.2)
        Traceback (most recent call last):
        ...
        ValueError: invalid config field 'alpha': must satisfy 0 <= alpha < 1, got 1.2
    """

    preset: str = "bios"
    alpha: float = 0.7
    beta: float = 10.0
    n_attributes: int = 6
    pool_sizes: tuple[int, ...] = BIOS_POOL_SIZES
    attribute_pool: tuple[int, ...] = BIOS_ATTRIBUTE_POOL
    value_prior: str = "uniform"
    name_parts: tuple[int, ...] = (400, 400, 1000)
    templates_per_attribute: int | tuple[int, ...] = 16
    template_length: tuple[int, int] = (4, 10)
    syntax_vocab: int = 256
    template_prior: float = 1.0
    attrs_per_doc: int | None = None
    attribute_order: str = "shuffled"
    seed: int = 0
    theta: tuple[tuple[float, ...], ...] | None = None
    templates: tuple[tuple[str, ...], ...] | None = None
    attribute_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Normalise lists (from JSON/TOML) to tuples so configs are hashable and comparable.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
                object.__setattr__(self, f.name, value)
        _check_types(self)
        _core.validate_config(self.to_json())

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain JSON/TOML-serialisable dict (lists, not tuples)."""

        def plain(v: Any) -> Any:
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys); its hash names a corpus."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntaxKnowledgeConfig:
        """Builds a config from a dict; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown config field(s): {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> SyntaxKnowledgeConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_toml(cls, source: str | Path) -> SyntaxKnowledgeConfig:
        """Reads a TOML file (a path) or TOML text. A ``[corpus]`` table is used if present."""
        path = Path(source) if not isinstance(source, str) or "\n" not in source else None
        if path is not None and path.exists():
            text = path.read_text()
        elif isinstance(source, Path):
            raise FileNotFoundError(f"config file not found: {source}")
        else:
            text = str(source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"cannot parse TOML config: {e}") from None
        return cls.from_dict(data.get("corpus", data))

    def to_toml(self) -> str:
        """TOML text that :meth:`from_toml` reads back to an equal config."""
        lines = []
        for key, value in self.to_dict().items():
            if value is None:
                continue
            lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"

    def replace(self, **changes: Any) -> SyntaxKnowledgeConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: Iterable[str]) -> SyntaxKnowledgeConfig:
        """Applies ``key=value`` strings (values parsed as JSON, else kept as strings)."""
        changes = dict(parse_override(o) for o in overrides)
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown config field(s) in overrides: {', '.join(unknown)}")
        return self.replace(**changes)

    # ---- derived quantities ----------------------------------------------------------------
    @property
    def m(self) -> int:
        """Sentences per document."""
        return self.n_attributes if self.attrs_per_doc is None else self.attrs_per_doc

    @property
    def name_space(self) -> int:
        """``U``: the number of distinct names."""
        u = 1
        for n in self.name_parts:
            u *= n
        return u


_CHOICES = {"preset": ("bios", "procedural"), "attribute_order": ("shuffled", "fixed")}
_FLOATS = ("alpha", "beta", "template_prior")
_INTS = ("n_attributes", "syntax_vocab", "seed")
_INT_TUPLES = ("pool_sizes", "attribute_pool", "name_parts", "template_length")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(cfg: SyntaxKnowledgeConfig) -> None:
    """Type checks that name the field; the Rust core then checks the ranges. (Without these,
    a wrong type or a NaN would surface as a JSON/serde message that names no field.)"""

    def bad(field: str, expected: str) -> ValueError:
        return ValueError(
            f"invalid config field '{field}': must be {expected}, got {getattr(cfg, field)!r}"
        )

    for field in _FLOATS:
        v = getattr(cfg, field)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool)) or not math.isfinite(v):
            raise bad(field, "a finite number")
    for field in _INTS:
        v = getattr(cfg, field)
        if not _is_int(v) or v < 0 or v >= 2**64:
            raise bad(field, "an integer in [0, 2^64)")
    for field in _INT_TUPLES:
        v = getattr(cfg, field)
        if not isinstance(v, tuple) or not all(_is_int(x) and 0 <= x < 2**32 for x in v):
            raise bad(field, "a list of non-negative integers")
    for field, choices in _CHOICES.items():
        if getattr(cfg, field) not in choices:
            raise bad(field, "one of " + ", ".join(repr(c) for c in choices))
    _check_optional_types(cfg, bad)


def _check_optional_types(
    cfg: SyntaxKnowledgeConfig, bad: Callable[[str, str], ValueError]
) -> None:
    """The fields that take one of several shapes (a number or a list, None, a string)."""
    tpa = cfg.templates_per_attribute
    if not (_is_int(tpa) and 0 <= tpa < 2**32) and not (
        isinstance(tpa, tuple) and all(_is_int(x) and 0 <= x < 2**32 for x in tpa)
    ):
        raise bad("templates_per_attribute", "an integer or a list of integers")
    if cfg.attrs_per_doc is not None and not (
        _is_int(cfg.attrs_per_doc) and cfg.attrs_per_doc >= 0
    ):
        raise bad("attrs_per_doc", "None or a non-negative integer")
    if not isinstance(cfg.value_prior, str):
        raise bad("value_prior", "'uniform' or 'zipf(s)'")
    if cfg.theta is not None and not all(
        isinstance(row, tuple)
        and all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
            for p in row
        )
        for row in cfg.theta
    ):
        raise bad("theta", "a list of lists of finite probabilities")
    for field in ("templates", "attribute_names"):
        v = getattr(cfg, field)
        if v is None:
            continue
        flat = [x for row in v for x in row] if field == "templates" else list(v)
        if not isinstance(v, tuple) or not all(isinstance(x, str) for x in flat):
            raise bad(field, "None or (lists of) strings")


def parse_override(text: str) -> tuple[str, Any]:
    """``"alpha=0.5"`` -> ``("alpha", 0.5)``; ``"pool_sizes=[3,4]"`` -> a list; else a string."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    raw = raw.strip()
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
    return key, value
