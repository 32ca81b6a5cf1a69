"""The theory (docs/codelength.md#theory) against high-precision arithmetic (mpmath), exact
identities, and Monte Carlo from the sampler (``synknow.sample``) or from the stick-breaking
construction."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import synknow
from synknow import theory

PARAMS = [(0.5, 2.0), (0.0, 3.0), (0.6, -0.4), (0.8, 0.0)]


@pytest.mark.parametrize("alpha,beta", PARAMS)
def test_exact_forms_against_mpmath(alpha, beta) -> None:
    a, b = mp.mpf(alpha), mp.mpf(beta)
    for n in (1, 2, 17, 500, 20_000):
        if alpha > 0:
            k = ((b + a) * mp.rf(b + a + 1, n - 1) / mp.rf(b + 1, n - 1) - b) / a
        else:
            k = mp.fsum(b / (b + i) for i in range(n))
        assert theory.expected_entities(n, alpha, beta) == pytest.approx(float(k), rel=1e-11)
        p_new = mp.rf(b + a, n) / mp.rf(b + 1, n)
        assert theory.expected_new_probability(n, alpha, beta) == pytest.approx(
            float(p_new), rel=1e-11
        )
    n = 300
    for c in (1, 2, 5, 40, 300):
        e = mp.binomial(n, c) * mp.rf(1 - a, c - 1) * mp.rf(b + a, n - c) / mp.rf(b + 1, n - 1)
        assert theory.expected_counts_of_counts(n, c, alpha, beta) == pytest.approx(
            float(e), rel=1e-9
        )


def test_digamma_and_entropy_against_mpmath() -> None:
    for x in (1e-3, 0.3, 1.0, 2.5, 9.99, 10.0, 123.4, 1e8, -0.5, -3.7):
        assert theory.digamma(x) == pytest.approx(float(mp.digamma(x)), rel=1e-13, abs=1e-14)
    assert math.isnan(theory.digamma(-2.0))
    xs = np.array([0.5, 2.0])
    np.testing.assert_allclose(theory.digamma(xs), [float(mp.digamma(x)) for x in xs])
    h = theory.expected_entity_entropy(0.5, 2.0)
    assert h == pytest.approx(float(mp.digamma(3.0) - mp.digamma(0.5)), rel=1e-13)
    assert theory.expected_entity_entropy(0.5, 2.0, unit="bits") == pytest.approx(h / math.log(2))


@pytest.mark.parametrize("alpha,beta", [(0.5, 2.0), (0.3, -0.2), (0.7, 10.0)])
def test_asymptotic_forms_and_exponents(alpha, beta) -> None:
    n = np.array([1e8, 1e9])
    k = theory.expected_entities(n, alpha, beta) + beta / alpha
    np.testing.assert_allclose(
        k / theory.expected_entities_asymptotic(n, alpha, beta), 1, atol=1e-4
    )
    p = theory.expected_new_probability(n, alpha, beta)
    np.testing.assert_allclose(
        p / theory.expected_new_probability_asymptotic(n, alpha, beta), 1, atol=1e-4
    )
    # Heaps: the log-log slope of E[K_n] is alpha.
    slope = np.diff(np.log(theory.expected_entities(np.array([1e9, 2e9]), alpha, beta)))
    assert slope[0] / math.log(2) == pytest.approx(theory.heaps_exponent(alpha), abs=1e-3)
    # Counts of counts ~ c^(-1-alpha) for 1 << c << n.
    c = np.array([200, 2000])
    e = theory.expected_counts_of_counts(10**9, c, alpha, beta)
    slope = np.diff(np.log(e))[0] / math.log(10)
    assert -slope == pytest.approx(theory.counts_of_counts_exponent(alpha), abs=2e-3)
    assert theory.zipf_exponent(alpha) == 1 / alpha
    assert theory.data_scaling_exponent(alpha) == 1 - alpha
    assert theory.model_scaling_exponent(alpha) == pytest.approx((1 - alpha) / alpha)


def _monte_carlo(alpha: float, beta: float, n: int, seeds: int) -> np.ndarray:
    """Entity ids of ``seeds`` sampled corpora of ``n`` documents, one row each."""
    cfg = synknow.presets.bios(alpha=alpha, beta=beta, attrs_per_doc=1)
    return np.stack(
        [synknow.sample(cfg, n, seed=s).doc_entity.astype(np.int64) for s in range(seeds)]
    )


@pytest.mark.parametrize("alpha,beta", PARAMS)
def test_against_sampler_monte_carlo(alpha, beta) -> None:
    """Entity ids are numbered in order of first appearance, so K_n = 1 + max id among the first
    n documents and document n is new iff its id equals K_n. Tolerance: 4.5 standard errors."""
    seeds, n_max = 400, 400
    z = _monte_carlo(alpha, beta, n_max + 1, seeds)
    first_max = np.maximum.accumulate(z, axis=1)
    for n in (10, 100, 400):
        k_n = first_max[:, n - 1] + 1
        expect = theory.expected_entities(n, alpha, beta)
        assert abs(k_n.mean() - expect) < 4.5 * k_n.std(ddof=1) / math.sqrt(seeds), (n, expect)
        new = z[:, n] == k_n
        p = theory.expected_new_probability(n, alpha, beta)
        assert abs(new.mean() - p) < 4.5 * math.sqrt(p * (1 - p) / seeds) + 1e-12, (n, p)
    counts = [np.bincount(row[:n_max]) for row in z]
    for c in (1, 2, 3, 5):
        m_c = np.array([(cnt == c).sum() for cnt in counts])
        expect = theory.expected_counts_of_counts(n_max, c, alpha, beta)
        assert abs(m_c.mean() - expect) < 4.5 * m_c.std(ddof=1) / math.sqrt(seeds) + 1e-9, c


@pytest.mark.parametrize(
    "alpha,beta,draws,sticks",
    [(0.0, 3.0, 2000, 300), (0.3, 1.0, 2000, 3000), (0.5, 2.0, 400, 20_000)],
)
def test_entity_entropy_against_stick_breaking(alpha, beta, draws, sticks) -> None:
    """GEM(alpha, beta) weights by stick breaking, truncated after ``sticks`` sticks; the
    leftover mass r (below 1e-3) is a scaled GEM(alpha, beta + K alpha) whose expected entropy
    adds ``-r ln r + r E[H_rest]``. Mean entropy within 4.5 standard errors."""
    rng = np.random.default_rng(0)
    k = np.arange(1, sticks + 1)
    v = rng.beta(1 - alpha, beta + k * alpha, size=(draws, sticks))
    log_rest = np.cumsum(np.log1p(-v), axis=1)
    w = v * np.exp(np.concatenate([np.zeros((draws, 1)), log_rest[:, :-1]], axis=1))
    r = np.exp(log_rest[:, -1])
    assert r.max() < 1e-3
    h = -np.sum(np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0), axis=1)
    tail = theory.digamma(beta + sticks * alpha + 1) - theory.digamma(1 - alpha)
    h = h + np.where(r > 0, -r * np.log(np.where(r > 0, r, 1.0)), 0.0) + r * tail
    expect = theory.expected_entity_entropy(alpha, beta)
    assert abs(h.mean() - expect) < 4.5 * h.std(ddof=1) / math.sqrt(draws), (h.mean(), expect)


def test_excess_formulas_and_validation() -> None:
    assert theory.syntax_excess_bits(100, 30) == pytest.approx(30 / (200 * math.log(2)))
    n = np.array([1e3, 1e4])
    ke = theory.knowledge_excess_bits(n, 0.5, 1.0, 1.6e8, 30.0)
    p = theory.expected_new_probability(n, 0.5, 1.0)
    np.testing.assert_allclose(ke, p * (math.log2(1.6e8) + 30.0 - 0.5 * np.log2(n)))
    with pytest.raises(ValueError, match="alpha"):
        theory.expected_entities(10, 1.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        theory.expected_new_probability(10, 0.5, -0.6)
    with pytest.raises(ValueError, match="beta"):
        theory.expected_entities(10, 0.0, 0.0)
    with pytest.raises(ValueError, match="unit"):
        theory.expected_entity_entropy(0.5, 1.0, unit="dits")


def test_stats_expected_entities_is_theorys() -> None:
    """synknow.stats.expected_entities is theory.expected_entities as an array: same numbers,
    same argument checks (its own copy passed alpha >= 1 or beta <= -alpha to the core)."""
    from synknow import stats

    n = [1, 10, 1000]
    np.testing.assert_array_equal(
        stats.expected_entities(n, 0.5, 1.0), theory.expected_entities(np.array(n), 0.5, 1.0)
    )
    assert stats.expected_entities(10, 0.5, 1.0).shape == (1,)
    with pytest.raises(ValueError, match="alpha"):
        stats.expected_entities(10, 1.5, 1.0)
    with pytest.raises(ValueError, match="beta"):
        stats.expected_entities(10, 0.5, -0.6)
