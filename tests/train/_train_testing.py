"""Helpers shared by the trainer tests (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import synknow
from synknow.train import TrainConfig


def small_bios(**overrides: Any) -> synknow.SyntaxKnowledgeConfig:
    """A bios corpus config small enough to learn on a CPU: 40,000 names, short value pools,
    few entities (alpha 0.3, beta 2), four templates per attribute."""
    base: dict[str, Any] = dict(
        name_parts=(20, 20, 100),
        alpha=0.3,
        beta=2.0,
        pool_sizes=(20, 10, 10, 8, 10),
        templates_per_attribute=4,
        seed=3,
    )
    return synknow.presets.bios(**{**base, **overrides})


def tiny_config(out_dir: Path, **sections: dict[str, Any]) -> TrainConfig:
    """A tiny fp32 CPU run; ``sections`` maps a section name to overrides of its keys."""
    base: dict[str, dict[str, Any]] = {
        "model": {"size": "tiny", "context_length": 64},
        "data": {"n_test": 200},
        "optim": {"lr": 1e-2, "warmup_steps": 10, "batch_size": 8, "max_steps": 20},
        "run": {"out_dir": str(out_dir), "device": "cpu", "progress": False, "log_interval": 1},
    }
    for name, values in sections.items():
        base[name] = {**base[name], **values}
    return TrainConfig.from_dict(base)


def records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The metrics-log records of one type."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]
