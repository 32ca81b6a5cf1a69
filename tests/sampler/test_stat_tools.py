"""The statistical tools of the tests are themselves checked against known values."""

import math

import numpy as np
import pytest
from _sampler_stats import chi2_gof, chi2_sf, chi2_two_sample, k_n_pmf
from reference_sampler import expected_entities_by_recursion
from synknow import _core

# (statistic, dof, upper-tail probability) from standard chi-square tables.
CHI2_TABLE = [
    (3.841, 1, 0.05),
    (6.635, 1, 0.01),
    (10.828, 1, 0.001),
    (11.070, 5, 0.05),
    (20.515, 5, 0.001),
    (18.307, 10, 0.05),
    (29.588, 10, 0.001),
    (124.342, 100, 0.05),
    (149.449, 100, 0.001),
]


@pytest.mark.parametrize(("stat", "dof", "p"), CHI2_TABLE)
def test_chi2_sf_matches_tables(stat: float, dof: int, p: float) -> None:
    assert chi2_sf(stat, dof) == pytest.approx(p, rel=2e-3)


def test_chi2_sf_even_dof_closed_form() -> None:
    # For even dof = 2k: sf(x) = exp(-x/2) sum_{j<k} (x/2)^j / j!.
    for k in (1, 2, 5, 20):
        for x in (0.5, 3.0, 17.0, 60.0):
            exact = math.exp(-x / 2) * sum((x / 2) ** j / math.factorial(j) for j in range(k))
            assert chi2_sf(x, 2 * k) == pytest.approx(exact, rel=1e-10, abs=1e-300)


def test_gof_and_two_sample_detect_differences() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.2])
    same = np.bincount(rng.choice(3, size=20_000, p=p), minlength=3)
    assert chi2_gof(same, p)[2] > 1e-3
    other = np.bincount(rng.choice(3, size=20_000, p=[0.45, 0.35, 0.2]), minlength=3)
    assert chi2_gof(other, p)[2] < 1e-10
    a = rng.poisson(4.0, size=5000)
    assert chi2_two_sample(a, rng.poisson(4.0, size=5000))[2] > 1e-3
    assert chi2_two_sample(a, rng.poisson(4.4, size=5000))[2] < 1e-6


@pytest.mark.parametrize(("alpha", "beta"), [(0.7, 10.0), (0.5, 0.0), (0.3, -0.2), (0.0, 3.0)])
def test_k_n_pmf_mean_matches_closed_form(alpha: float, beta: float) -> None:
    n = 200
    pmf = k_n_pmf(n, alpha, beta)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    mean = float((np.arange(n + 1) * pmf).sum())
    assert mean == pytest.approx(_core.expected_entities(n, alpha, beta), rel=1e-10)
    assert mean == pytest.approx(expected_entities_by_recursion(n, alpha, beta), rel=1e-10)
