"""Exchangeability: the code length is invariant under any permutation of the documents
(docs/codelength.md#whole-corpus). Permuted corpora are rebuilt by reordering the documents' arrays;
the closed form from counts, the sequential closed form and the per-token predictive (from the
tokens alone) must all give the original total."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
from _codelength_testing import careful_configs, configs, reordered
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REL = 1e-9


def _check_invariance(corpus: synknow.Corpus, order: np.ndarray) -> None:
    total = synknow.closed_form_total(corpus)
    permuted = reordered(corpus, order)
    assert synknow.closed_form_total(permuted) == pytest.approx(total, rel=REL)
    per_doc = synknow.closed_form_per_doc(permuted)
    assert float(np.sum(per_doc)) == pytest.approx(total, rel=REL)
    cl = synknow.code_lengths(permuted, progress=False)
    assert cl.total == pytest.approx(total, rel=REL)
    np.testing.assert_allclose(cl.per_doc, per_doc, rtol=REL)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(config=configs(), n=st.integers(2, 300), data=st.data())
def test_total_is_invariant_under_permutations(config, n, data) -> None:
    corpus = synknow.sample(config, n)
    order = np.array(data.draw(st.permutations(range(n))))
    _check_invariance(corpus, order)


@pytest.mark.parametrize("label,config,n", careful_configs(), ids=[c[0] for c in careful_configs()])
def test_reversal_and_shuffles_on_careful_configs(label, config, n) -> None:
    corpus = synknow.sample(config, n)
    _check_invariance(corpus, np.arange(n)[::-1])
    rng = np.random.default_rng(0)
    for _ in range(2):
        _check_invariance(corpus, rng.permutation(n))


def test_permutation_changes_per_document_lengths() -> None:
    """The invariance is not vacuous: individual documents' code lengths do change."""
    corpus = synknow.sample(synknow.presets.bios(), 500, seed=3)
    a = synknow.closed_form_per_doc(corpus)
    b = synknow.closed_form_per_doc(reordered(corpus, np.arange(500)[::-1]))[::-1]
    assert np.max(np.abs(a - b)) > 10.0
