"""Named starting points for :class:`~synknow.SyntaxKnowledgeConfig`."""

from __future__ import annotations

from typing import Any

from synknow.config import SyntaxKnowledgeConfig

__all__ = ["bios", "procedural", "by_name", "PRESETS"]


def bios(**overrides: Any) -> SyntaxKnowledgeConfig:
    """English-looking biographies: 6 attributes (birth city, work city, birth year, university,
    major, employer), hand-written templates (up to 24 per attribute) and value words, one city
    pool shared by two attributes.

    >>> bios(alpha=0.5).alpha
    0.5
    """
    return SyntaxKnowledgeConfig(**{"preset": "bios", **overrides})


def procedural(**overrides: Any) -> SyntaxKnowledgeConfig:
    """Everything drawn from the seed; sizes are knobs (attributes, pools, templates, lengths).

    Defaults: 6 attributes with pools of 100 values each (attributes 0 and 1 share pool 0),
    16 templates per attribute of 4-10 words over 256 syntax words.

    >>> procedural(n_attributes=2, pool_sizes=(10,), attribute_pool=(0, 0)).n_attributes
    2
    """
    base: dict[str, Any] = {
        "preset": "procedural",
        "pool_sizes": (100, 100, 100, 100, 100),
        "attribute_pool": (0, 0, 1, 2, 3, 4),
    }
    if "n_attributes" in overrides and "attribute_pool" not in overrides:
        a = int(overrides["n_attributes"])
        base["attribute_pool"] = tuple(range(a))
        base["pool_sizes"] = (100,) * a
    return SyntaxKnowledgeConfig(**{**base, **overrides})


PRESETS = {"bios": bios, "procedural": procedural}


def by_name(name: str, **overrides: Any) -> SyntaxKnowledgeConfig:
    """The preset called ``name`` with overrides; unknown names raise ``ValueError``."""
    try:
        return PRESETS[name](**overrides)
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
