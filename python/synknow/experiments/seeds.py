"""Repetition over seeds: the seed of every repeat, and the mean, spread and interval of a result
across repeats.

Every repeat draws a fresh corpus and (for a transformer) a fresh initialisation, so the repeats
are independent and the spread across them is the uncertainty of the result. Intervals come from
that spread only: a Student-t interval of the mean of per-seed values, or a bootstrap that
resamples *whole seeds* (a block bootstrap: every point of one seed's curve moves together). The
points of one learning curve are nested prefixes scored on one test set; they are strongly
correlated, so resampling them as if independent (a residual bootstrap) gives intervals that are
far too narrow, and nothing here does that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SeedSummary",
    "repeat_seeds",
    "summarise",
    "t_quantile",
    "seed_bootstrap",
]

# Two-sided 95% Student-t quantiles (the 0.975 point) for 1..30 degrees of freedom; beyond 30 the
# normal value is within 2% and is used.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (95% two-sided)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.960


def repeat_seeds(base: int, tag: int, count: int) -> list[int]:
    """``count`` distinct seeds for the repeats of one result. ``tag`` separates results (an
    experiment's alpha, a model size, ...) so that two results never share a corpus by accident;
    the same ``(base, tag)`` always gives the same seeds, so a resumed run sees the same ones."""
    if count < 1:
        raise ValueError(f"the number of seeds must be >= 1, got {count}")
    return [int(base) * 1_000_003 + int(tag) * 1009 + i for i in range(count)]


@dataclass(frozen=True)
class SeedSummary:
    """A scalar result over ``n`` seeds: mean, sample standard deviation, standard error and the
    95% Student-t interval of the mean (``nan`` bounds when ``n < 2``)."""

    n: int
    mean: float
    std: float
    sem: float
    ci: tuple[float, float]
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "sem": self.sem,
            "ci": list(self.ci),
            "values": list(self.values),
        }

    def describe(self, digits: int = 3) -> str:
        """``mean +- std (95% CI [lo, hi], n seeds)``."""
        if self.n < 2:
            return f"{self.mean:.{digits}g} (1 seed, no interval)"
        lo, hi = self.ci
        return (
            f"{self.mean:.{digits}g} +- {self.std:.2g} "
            f"[{lo:.{digits}g}, {hi:.{digits}g}], {self.n} seeds"
        )


def summarise(values: Sequence[float] | np.ndarray) -> SeedSummary:
    """Mean and spread of per-seed values (non-finite values are a caller's bug: they raise)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("summarise needs at least one value")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"per-seed values must be finite, got {v.tolist()}")
    mean = float(v.mean())
    if v.size < 2:
        return SeedSummary(1, mean, float("nan"), float("nan"), (math.nan, math.nan), (mean,))
    std = float(v.std(ddof=1))
    sem = std / math.sqrt(v.size)
    half = t_quantile(v.size - 1) * sem
    return SeedSummary(
        int(v.size), mean, std, sem, (mean - half, mean + half), tuple(float(x) for x in v)
    )


def seed_bootstrap(
    per_seed: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray | float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic`` under resampling of whole seeds.

    ``per_seed`` has one row per seed (e.g. the seed's whole learning curve); ``statistic`` maps
    such an array to a number or a vector (e.g. the exponent fitted to the mean curve). Returns
    ``(estimate, lower, upper)``, the estimate being the statistic of all seeds. Replicates for
    which the statistic is not finite are dropped (a fit that fails on a degenerate resample).
    """
    rows = np.asarray(per_seed, dtype=np.float64)
    if rows.ndim < 1 or rows.shape[0] < 2:
        raise ValueError("a seed bootstrap needs at least 2 seeds")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    estimate = np.atleast_1d(np.asarray(statistic(rows), dtype=np.float64))
    rng = np.random.default_rng([seed, 0x5EED5])
    reps = []
    for _ in range(n_boot):
        pick = rng.integers(0, rows.shape[0], size=rows.shape[0])
        r = np.atleast_1d(np.asarray(statistic(rows[pick]), dtype=np.float64))
        if np.all(np.isfinite(r)):
            reps.append(r)
    if not reps:
        nan = np.full_like(estimate, np.nan)
        return estimate, nan, nan
    stack = np.stack(reps)
    tail = (1 - level) / 2
    return (
        estimate,
        np.quantile(stack, tail, axis=0),
        np.quantile(stack, 1 - tail, axis=0),
    )
