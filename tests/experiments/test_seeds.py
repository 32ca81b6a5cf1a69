"""Seed aggregation: per-seed summaries, Student-t intervals, and the bootstrap over whole seeds
(never over the correlated points of one seed's curve)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synknow.experiments.seeds import repeat_seeds, seed_bootstrap, summarise, t_quantile


def test_summary_of_known_values() -> None:
    s = summarise([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == pytest.approx(2.5)
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    half = 3.182 * math.sqrt(5 / 3) / 2  # t(3) quantile times the standard error
    assert s.ci == pytest.approx((2.5 - half, 2.5 + half), rel=1e-9)
    assert "4 seeds" in s.describe()


def test_one_seed_has_no_interval_and_bad_values_raise() -> None:
    s = summarise([0.7])
    assert s.n == 1 and math.isnan(s.ci[0]) and "no interval" in s.describe()
    with pytest.raises(ValueError, match="finite"):
        summarise([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        summarise([])
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0)


def test_t_interval_covers_the_mean_at_about_95_percent() -> None:
    # 2000 experiments of 5 seeds each: coverage within 2 points of 95% (binomial sd ~0.5%).
    rng = np.random.default_rng(1)
    hits = sum(
        lo <= 0.0 <= hi for lo, hi in (summarise(rng.normal(size=5)).ci for _ in range(2000))
    )
    assert abs(hits / 2000 - 0.95) < 0.02


def test_repeat_seeds_are_distinct_and_stable() -> None:
    a = repeat_seeds(1, 3, 16)
    assert len(set(a)) == 16 and a == repeat_seeds(1, 3, 16)
    assert not set(a) & set(repeat_seeds(1, 4, 16))
    assert not set(a) & set(repeat_seeds(2, 3, 16))
    with pytest.raises(ValueError, match=">= 1"):
        repeat_seeds(1, 3, 0)


def test_seed_bootstrap_moves_whole_curves() -> None:
    # Each seed's curve is one random level shared by all its points (nested points are perfectly
    # correlated). Resampling seeds gives an interval as wide as the spread of the levels; a
    # bootstrap over the 20 points as if independent would be ~sqrt(20) times narrower.
    rng = np.random.default_rng(2)
    levels = rng.normal(size=8)
    curves = levels[:, None] + np.zeros((8, 20))
    est, lo, hi = seed_bootstrap(curves, lambda c: c.mean(), n_boot=2000, seed=3)
    assert est[0] == pytest.approx(levels.mean())
    width = hi[0] - lo[0]
    se = levels.std(ddof=1) / math.sqrt(8)
    assert 2.5 * se < width < 5.0 * se  # ~3.9 se for a 95% interval (bootstrap shrinks it a bit)


def test_seed_bootstrap_vector_statistic_and_errors() -> None:
    curves = np.arange(12.0).reshape(4, 3)
    est, lo, hi = seed_bootstrap(curves, lambda c: c.mean(axis=0), n_boot=200, seed=0)
    assert est.tolist() == [4.5, 5.5, 6.5] and np.all(lo <= est) and np.all(est <= hi)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_bootstrap(curves[:1], lambda c: c.mean())
    with pytest.raises(ValueError, match="level"):
        seed_bootstrap(curves, lambda c: c.mean(), level=1.0)
