"""Helpers shared by the experiment tests (a uniquely named module: test directories share one
import namespace)."""

from __future__ import annotations

import pytest
import synknow

CODELENGTH_API = all(
    hasattr(synknow, name) for name in ("bayes_curve", "structure_function", "code_lengths")
)
needs_codelength = pytest.mark.skipif(
    not CODELENGTH_API, reason="synknow.bayes_curve / structure_function not available yet"
)
