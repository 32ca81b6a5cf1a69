"""Optional dependencies: which extra brings each, and the one error for a missing one.

Every place that needs an optional package (figures, training, Parquet export, the Hugging Face
bridge) raises :class:`MissingDependencyError`, whose message names the
``pip install 'synknow[EXTRA]'`` line; the CLI prints it as one line, and maps any other missing
optional import the same way.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "MissingDependencyError", "missing"]

# Optional module -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "torch": "train",
    "safetensors": "train",
    "synknow_kernels": "train",
    "triton": "train",
    "matplotlib": "plot",
    "pyarrow": "export",
    "tokenizers": "hf",
    "transformers": "hf",
    "constriction": "compress",
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


def missing(module: str, what: str) -> MissingDependencyError:
    """``WHAT needs MODULE: pip install 'synknow[EXTRA]'`` for an optional ``module``."""
    return MissingDependencyError(f"{what} needs {module}: pip install 'synknow[{EXTRAS[module]}]'")
