"""The paper's experiments E1-E6 (docs/experiments.md#the-experiments) as resumable runs with a
Markdown report.

>>> from synknow.experiments import EXPERIMENTS, PRESETS
>>> list(EXPERIMENTS)[:2], "cpu-tiny" in PRESETS
(['data-scaling', 'model-scaling'], True)

Run them from the command line (``synknow experiment NAME --preset PRESET --out DIR``) or with
:func:`run_experiments`; docs/experiments.md describes each experiment and its outputs.
"""

from synknow.experiments.runner import (
    EXPERIMENTS,
    PRESETS,
    ExperimentContext,
    Preset,
    RunFailure,
    Summary,
    get_preset,
    resolve_experiments,
    run_experiments,
)

__all__ = [
    "EXPERIMENTS",
    "PRESETS",
    "ExperimentContext",
    "Preset",
    "RunFailure",
    "Summary",
    "get_preset",
    "resolve_experiments",
    "run_experiments",
]
