"""The Rust engines against the independent pure-Python reference (``reference.py``) on random
small corpora: the closed forms per document and for the whole corpus, the per-token predictive
and the structure function (docs/codelength.md, "Formulas")."""

from __future__ import annotations

import numpy as np
import pytest
import reference
import synknow
from _codelength_testing import careful_configs, configs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SMALL = [(label, cfg, min(n, 150)) for label, cfg, n in careful_configs()]


@pytest.mark.parametrize("label,config,n", SMALL, ids=[c[0] for c in SMALL])
def test_reference_matches_on_careful_configs(label, config, n) -> None:
    corpus = synknow.sample(config, n)
    closed = synknow.closed_form_per_doc(corpus)
    np.testing.assert_allclose(closed, reference.closed_form_per_doc(corpus), rtol=1e-10)
    assert synknow.closed_form_total(corpus) == pytest.approx(
        reference.closed_form_total(corpus), rel=1e-10
    )
    cl = synknow.code_lengths(corpus, progress=False)
    ref_tokens = np.array(reference.per_token_bits(corpus))
    np.testing.assert_allclose(cl.per_token, ref_tokens, rtol=1e-9, atol=1e-12)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(config=configs(), n=st.integers(1, 80))
def test_reference_matches_on_random_configs(config, n) -> None:
    corpus = synknow.sample(config, n)
    ref_docs = np.array(reference.closed_form_per_doc(corpus))
    np.testing.assert_allclose(synknow.closed_form_per_doc(corpus), ref_docs, rtol=1e-10)
    cl = synknow.code_lengths(corpus, progress=False)
    ref_tokens = reference.per_token_bits(corpus)
    np.testing.assert_allclose(cl.per_token, ref_tokens, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cl.per_doc, ref_docs, rtol=1e-9)
    assert cl.total == pytest.approx(reference.closed_form_total(corpus), rel=1e-9)


@pytest.mark.parametrize("label,config,n", SMALL[:4], ids=[c[0] for c in SMALL[:4]])
def test_structure_function_matches_reference(label, config, n) -> None:
    corpus = synknow.sample(config, n)
    sf = synknow.structure_function(corpus, n)
    assert len(sf.k) == len(np.unique(corpus.doc_entity)) + 1
    for k in sorted({0, 1, 2, len(sf.k) // 2, len(sf.k) - 1}):
        m, d = reference.structure_function(corpus, n, k)
        assert sf.model_bits[k] == pytest.approx(m, rel=1e-10)
        assert sf.data_bits[k] == pytest.approx(d, rel=1e-10)
