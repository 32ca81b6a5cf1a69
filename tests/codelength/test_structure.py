"""The two-part code and structure function (docs/codelength.md#structure-function): shape and
monotonicity, its two ends, ``h(C)``, and the MDL point. (Term-by-term agreement with the
pure-Python reference is in ``test_reference.py``.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import synknow


@pytest.fixture(scope="module")
def corpus() -> synknow.Corpus:
    return synknow.sample(synknow.presets.bios(alpha=0.6, beta=2.0), 3000, seed=4)


def test_shape_and_ends(corpus) -> None:
    n = 2500
    sf = synknow.structure_function(corpus, n)
    counts = corpus.entity_counts_at(n)
    k_count = int((counts > 0).sum())
    assert len(sf.k) == k_count + 1 and sf.n_train == n
    # Storage order: count descending, ties by id.
    assert np.all(np.diff(sf.entity_counts.astype(np.int64)) <= 0)
    np.testing.assert_array_equal(sf.entity_counts, counts[sf.entity_order])
    assert np.all(np.diff(sf.model_bits) > 0)
    # k = 0 stores only syntax: d_syn / 2 * log2 N model bits.
    d_syn = sum(int(t) - 1 for t in [corpus.config.templates_per_attribute] * 6)
    assert sf.model_bits[0] == pytest.approx(d_syn / 2 * math.log2(n))
    # k = K: every document pays -log2(c_k / N) for its entity and nothing for names or values.
    c = counts[counts > 0].astype(np.float64)
    entity_bits = float(-(c * np.log2(c / n)).sum())
    a = corpus.sentence_attribute[:n].astype(np.int64).ravel()
    t = corpus.sentence_template[:n].astype(np.int64).ravel()
    syntax_ml = 0.0
    for attr in range(6):
        ct = np.bincount(t[a == attr]).astype(np.float64)
        ct = ct[ct > 0]
        syntax_ml -= float((ct * np.log2(ct / ct.sum())).sum())
    order_bits = n * math.log2(math.factorial(6))
    assert sf.data_bits[-1] == pytest.approx(entity_bits + syntax_ml + order_bits, rel=1e-12)
    # An entity seen once costs log2 U + values + log2 N to store and saves less than that.
    assert sf.total[-1] > sf.total[sf.mdl_index]


def test_h_and_mdl_point(corpus) -> None:
    sf = synknow.structure_function(corpus)
    assert 0 <= sf.mdl_index < len(sf.k)
    assert sf.mdl_bits == pytest.approx(sf.total.min())
    assert sf.mdl_model_bits == sf.model_bits[sf.mdl_index]
    caps = np.linspace(0, sf.model_bits[-1] * 1.1, 50)
    h = sf.h(caps)
    assert np.isinf(h[caps < sf.model_bits[0]]).all()
    finite = h[np.isfinite(h)]
    assert np.all(np.diff(finite) <= 0)
    assert sf.h(sf.model_bits[3]) == pytest.approx(sf.data_bits[:4].min())
    assert sf.h(1e30) == pytest.approx(sf.data_bits.min())
    table = sf.table()
    assert table.columns == ["k", "model_bits", "data_bits", "total_bits"]
    assert len(table) == len(sf.k)


def test_more_data_moves_the_mdl_point(corpus) -> None:
    """With more training documents more entities are worth storing."""
    small = synknow.structure_function(corpus, 300)
    large = synknow.structure_function(corpus, 3000)
    assert large.mdl_index > small.mdl_index
