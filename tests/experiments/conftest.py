"""Fixtures for the experiment tests: one micro-preset run of every experiment, shared by the
tests that check its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import synknow

CODELENGTH_API = all(
    hasattr(synknow, name) for name in ("bayes_curve", "structure_function", "code_lengths")
)
needs_codelength = pytest.mark.skipif(
    not CODELENGTH_API, reason="synknow.bayes_curve / structure_function not available yet"
)


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """``synknow experiment all --preset micro`` into a fresh directory (about ten seconds)."""
    from synknow.experiments import EXPERIMENTS, run_experiments

    out = tmp_path_factory.mktemp("experiments") / "micro"
    summary = run_experiments(list(EXPERIMENTS), "micro", out, progress=False)
    return out, summary
