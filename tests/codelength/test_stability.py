"""Numerical stability of the code lengths at extreme concentrations, and arithmetic on
user-given numbers that must never overflow into a Rust panic.

The whole-corpus closed form holds ``ln (beta + 1)_{N-1}`` and the Dirichlet-multinomial rising
factorials; they used to be differences of two ``lgamma`` values, which cancel to nothing once
the argument is large (beta = 1e20 gave 82,373 bits against 215,184 from the per-token engine,
beta = 1e300 a negative number). The three routes must agree to 1e-9 relative, the tolerance of
the identity itself (compensated sums of ~1e5 terms leave ~1e-13). Tiny template priors are
covered by the Rust identity test (sampling them in this process would hang on a regression of
the Dirichlet draw; tests/sampler/test_limits.py checks that in a subprocess)."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
from synknow import _core, presets, theory

CASES = [
    (0.5, 1e12, 1.0),
    (0.5, 1e20, 1.0),
    (0.5, 1e300, 1.0),
    (0.0, 1e20, 1.0),
    (0.5, 10.0, 1e100),
]


@pytest.mark.parametrize(("alpha", "beta", "gamma"), CASES)
def test_closed_form_matches_per_token_at_extreme_concentrations(alpha, beta, gamma) -> None:
    cfg = presets.bios(alpha=alpha, beta=beta, template_prior=gamma, name_parts=(4000, 4000, 4000))
    corpus = synknow.sample(cfg, 2000, seed=7)
    per_token = synknow.code_lengths(corpus, per_token=False, progress=False).total
    closed = synknow.closed_form_total(corpus)
    per_doc = float(np.sum(synknow.closed_form_per_doc(corpus)))
    assert np.isfinite(per_token) and per_token > 0
    assert abs(closed - per_token) <= 1e-9 * per_token, (closed, per_token)
    assert abs(per_doc - per_token) <= 1e-9 * per_token, (per_doc, per_token)


def _one_doc_corpus():
    corpus = synknow.sample(presets.bios(seed=1), 20)
    return corpus.config.to_json(), np.asarray(corpus.tokens), np.asarray(corpus.doc_offsets)


@pytest.mark.parametrize("where", [1, -2])
def test_offsets_near_two_to_the_64_are_value_errors_not_panics(where: int) -> None:
    """``doc_offsets[i] + 2`` used to overflow in the offsets check: a PanicException (which is
    not an Exception subclass, so ``except ValueError`` missed it)."""
    cfg, tokens, offsets = _one_doc_corpus()
    bad = offsets.copy()
    bad[where] = np.uint64(2**64 - 1)
    with pytest.raises(ValueError, match="doc_offsets"):
        _core.code_lengths(cfg, tokens, bad)
    with pytest.raises(ValueError, match="doc_offsets"):
        _core.bayes_curve(cfg, tokens, bad, 10, 5, [1, 10])
    with pytest.raises(ValueError, match="doc_offsets"):
        _core.predictive_distributions(cfg, tokens, bad, np.array([0], dtype=np.uint64))


@pytest.mark.parametrize("beta", [1e12, 1e20, 1e300])
def test_counts_of_counts_stay_consistent_for_huge_beta(beta: float) -> None:
    """sum_c E[N_c] = E[K_n] and sum_c c E[N_c] = n (exact identities), at any beta."""
    n = 300
    alpha = 0.5
    e = theory.expected_counts_of_counts(n, np.arange(1, n + 1), alpha, beta)
    assert np.all(np.isfinite(e))
    k = theory.expected_entities(n, alpha, beta)
    assert abs(e.sum() - k) <= 1e-9 * k
    assert abs((np.arange(1, n + 1) * e).sum() - n) <= 1e-9 * n


@pytest.mark.parametrize("beta", [1e20, 1e300])
def test_asymptotic_forms_are_finite_for_huge_beta(beta: float) -> None:
    # Gamma(beta + 1) / Gamma(beta + alpha) ~ beta^(1 - alpha): a lgamma difference at 1e20.
    ratio = theory.expected_entities_asymptotic(1.0, 0.5, beta) * 0.5
    assert abs(ratio / beta**0.5 - 1) < 1e-9
