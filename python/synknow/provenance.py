"""Where results came from: the git state of the source checkout synknow runs from."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_info"]

# python/synknow/provenance.py -> the repository root of a source checkout.
_ROOT = Path(__file__).resolve().parents[2]


def git_info() -> dict[str, Any]:
    """``{"sha": ..., "dirty": ...}`` of the checkout, or ``None`` values outside one."""
    if not (_ROOT / ".git").exists():
        return {"sha": None, "dirty": None}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"sha": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
