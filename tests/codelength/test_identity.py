"""The required identity (docs/codelength.md#per-token): the per-token code lengths (from tokens) of
each document sum to its closed form (docs/codelength.md#per-document, from the latent records), and
all documents to the whole-corpus form (#whole-corpus); plus normalisation of the predictive,
thread-count invariance and memory-mapped input."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
from _codelength_testing import careful_configs, tiny_procedural_config
from synknow.codelength import closed_form_parts, predictive_distribution

REL = 1e-9

CONFIGS = careful_configs()


@pytest.fixture(scope="module", params=CONFIGS, ids=[c[0] for c in CONFIGS])
def corpus(request: pytest.FixtureRequest) -> synknow.Corpus:
    _, config, n = request.param
    return synknow.sample(config, n)


def test_per_token_sums_match_closed_forms(corpus: synknow.Corpus) -> None:
    cl = synknow.code_lengths(corpus, progress=False)
    assert cl.per_token is not None and cl.per_token.shape == corpus.tokens.shape
    closed = synknow.closed_form_per_doc(corpus)
    sums = cl.per_token_sums()
    np.testing.assert_allclose(sums, closed, rtol=REL, atol=0)
    np.testing.assert_allclose(cl.per_doc, closed, rtol=REL, atol=0)
    total = synknow.closed_form_total(corpus)
    assert cl.total == pytest.approx(total, rel=REL)
    assert float(np.sum(closed)) == pytest.approx(total, rel=REL)
    # Prefixes: docs/codelength.md#whole-corpus on the first n documents equals the sum of the first
    # n of docs/codelength.md#per-document.
    n = corpus.n_docs // 3
    assert synknow.closed_form_total(corpus, n) == pytest.approx(closed[:n].sum(), rel=REL)


def test_roles_and_boundaries(corpus: synknow.Corpus) -> None:
    cl = synknow.code_lengths(corpus, progress=False)
    roles = corpus.roles
    # BOS and EOS cost nothing; every other token is counted under its role.
    assert np.all(cl.per_token[roles == 0] == 0.0)
    for r, name in enumerate(synknow.ROLE_NAMES):
        assert cl.tokens_by_role[name] == int(np.sum(roles == r))
        assert cl.by_role[name] == pytest.approx(cl.per_token[roles == r].sum(), rel=1e-12, abs=0)
    assert cl.n_entities == len(np.unique(corpus.doc_entity))
    assert np.all(cl.per_token >= -1e-12)
    parts = closed_form_parts(corpus)
    assert parts["total"] == pytest.approx(
        sum(v for k, v in parts.items() if k != "total"), rel=1e-12
    )


def test_later_mentions_are_determined() -> None:
    """After the first sentence the name is determined: the predictive puts all of a name
    position's name-block mass on the entity's own token. A value revealed by an earlier
    document is determined too: with the attribute known (fixed order), all of the pool's mass
    is on the revealed value (the token pays only for what is left of the parse)."""
    corpus = synknow.sample(CONFIGS[2][1], 400)
    cl = synknow.code_lengths(corpus, progress=False)
    roles = corpus.roles
    off = corpus.doc_offsets.astype(np.int64)
    grammar = corpus.grammar
    j_count = len(corpus.config.name_parts)
    name_pos, value_pos = [], []
    seen: set[int] = set()
    for d in range(corpus.n_docs):
        lo, hi = off[d], off[d + 1]
        name_pos.extend((lo + np.flatnonzero(roles[lo:hi] == 2))[j_count:].tolist())
        if int(corpus.doc_entity[d]) in seen:
            value_pos.extend((lo + np.flatnonzero(roles[lo:hi] == 3)).tolist())
        seen.add(int(corpus.doc_entity[d]))
    assert name_pos and value_pos
    dist = predictive_distribution(corpus, np.array(name_pos + value_pos))
    toks = corpus.tokens.astype(np.int64)
    for row, pos in zip(dist[: len(name_pos)], name_pos, strict=True):
        j = next(i for i, r in enumerate(corpus.vocab.name_ranges) if toks[pos] in r)
        block = corpus.vocab.name_ranges[j]
        assert row[toks[pos]] == pytest.approx(row[block.start : block.stop].sum(), rel=1e-15)
    pools = corpus.config.attribute_pool
    for row, pos in zip(dist[len(name_pos) :], value_pos, strict=True):
        d = int(np.searchsorted(off, pos, side="right") - 1)
        s = int(np.sum(roles[off[d] : pos] == 3))
        a = int(corpus.sentence_attribute[d, s])
        lo = grammar["pool_start"][pools[a]]
        pool_mass = row[lo : lo + grammar["pool_size"][pools[a]]]
        assert row[toks[pos]] == pytest.approx(pool_mass.sum(), rel=1e-15)
        assert row[toks[pos]] == pytest.approx(2.0 ** -cl.per_token[pos], rel=1e-12)


def test_threads_give_identical_results() -> None:
    corpus = synknow.sample(synknow.presets.bios(alpha=0.6, beta=2.0), 6000, seed=8)
    one = synknow.code_lengths(corpus, threads=1, progress=False)
    two = synknow.code_lengths(corpus, threads=2, progress=False)
    np.testing.assert_array_equal(one.per_token, two.per_token)
    np.testing.assert_array_equal(one.per_doc, two.per_doc)
    assert one.total == pytest.approx(two.total, rel=1e-13)
    slim = synknow.code_lengths(corpus, per_token=False, threads=2, progress=False)
    assert slim.per_token is None
    np.testing.assert_array_equal(slim.per_doc, one.per_doc)
    with pytest.raises(ValueError, match="not kept"):
        slim.per_token_sums()


def test_uint32_tokens() -> None:
    config = synknow.presets.bios(name_parts=(300, 300, 70_000), seed=4)
    corpus = synknow.sample(config, 300)
    assert corpus.tokens.dtype == np.uint32
    cl = synknow.code_lengths(corpus, progress=False)
    np.testing.assert_allclose(cl.per_doc, synknow.closed_form_per_doc(corpus), rtol=REL)


def test_memory_mapped_corpus(tmp_path) -> None:
    corpus = synknow.sample(synknow.presets.bios(), 2000, seed=5)
    path = corpus.save(tmp_path / "c")
    mapped = synknow.load_corpus(path)
    assert isinstance(mapped.tokens, np.memmap)
    a = synknow.code_lengths(corpus, progress=False)
    b = synknow.code_lengths(mapped, progress=False)
    np.testing.assert_array_equal(a.per_token, b.per_token)
    assert synknow.closed_form_total(mapped) == synknow.closed_form_total(corpus)


@pytest.mark.parametrize(
    "config,n",
    [
        (tiny_procedural_config(), 100),
        (tiny_procedural_config(attribute_order="fixed", alpha=0.0, beta=1.0, seed=9), 60),
        (CONFIGS[3][1], 120),
        (CONFIGS[4][1], 120),
    ],
    ids=["tiny procedural", "tiny fixed alpha=0", "ambiguous", "ambiguous fixed"],
)
def test_predictive_is_normalised_everywhere(config, n) -> None:
    """At every position the predictive over the whole vocabulary sums to 1, and the actual
    token's probability is 2^-bits."""
    corpus = synknow.sample(config, n)
    positions = np.arange(corpus.n_tokens)
    dist = predictive_distribution(corpus, positions)
    assert dist.shape == (corpus.n_tokens, len(corpus.vocab))
    assert np.all(dist >= 0)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    cl = synknow.code_lengths(corpus, progress=False)
    actual = dist[positions, corpus.tokens.astype(np.int64)]
    np.testing.assert_allclose(actual, 2.0**-cl.per_token, rtol=1e-12)
    # Order of the requested positions does not matter.
    some = np.array([7, 3, 3, corpus.n_tokens - 1])
    np.testing.assert_array_equal(predictive_distribution(corpus, some), dist[some])
