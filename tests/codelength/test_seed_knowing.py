"""The seed-knowing code length (docs/compression.md#the-seed-knowing-coder): a hand computation
on a tiny corpus, the CRP part against the Pitman-Yor partition probability in closed form, and
its place below the Bayes code."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import synknow
import synknow.seed_knowing
from synknow import presets
from synknow.seed_knowing import entity_sequence_bits, seed_knowing_bits

TINY = presets.procedural(
    n_attributes=2,
    pool_sizes=(5, 5),
    attribute_pool=(0, 1),
    name_parts=(30, 30),
    templates_per_attribute=2,
    theta=((0.75, 0.25), (0.5, 0.5)),
    alpha=0.5,
    beta=1.0,
)


def test_hand_computation_on_four_documents() -> None:
    corpus = synknow.sample(TINY, 4, seed=1)
    # The latents this hand computation is about (the sampler is deterministic per seed).
    assert corpus.doc_entity.tolist() == [0, 1, 2, 0]
    assert corpus.sentence_attribute.tolist() == [[0, 1], [0, 1], [1, 0], [0, 1]]
    assert corpus.sentence_template.tolist() == [[1, 1], [0, 1], [0, 1], [0, 0]]
    # Entities: doc 0 is free; docs 1 and 2 are new with (beta + K alpha) / (i + beta) =
    # 1.5/2 and 2/3; doc 3 is entity 0 again, (c - alpha) / (i + beta) = 0.5/4.
    entity = -math.log2(0.75) - math.log2(2 / 3) - math.log2(0.5 / 4)
    # Order: one of the 2! orders of both attributes, per document.
    order = 4 * 1.0
    # Templates: attribute 0 takes t = 1, 0, 1, 0 (theta 0.25, 0.75), attribute 1 four
    # times a template of probability 1/2.
    template = 2 * 2.0 - 2 * math.log2(0.75) + 4 * 1.0
    parts = seed_knowing_bits(corpus)
    assert parts["entity"] == pytest.approx(entity, rel=1e-12)
    assert parts["order"] == pytest.approx(order, rel=1e-12)
    assert parts["template"] == pytest.approx(template, rel=1e-12)
    assert parts["total"] == pytest.approx(entity + order + template, rel=1e-12)


def test_fixed_order_costs_nothing() -> None:
    corpus = synknow.sample(TINY.replace(attribute_order="fixed"), 4, seed=1)
    assert seed_knowing_bits(corpus)["order"] == 0.0


@pytest.mark.parametrize("alpha, beta", [(0.0, 3.0), (0.5, 1.0), (0.8, -0.3)])
def test_entity_bits_are_the_pitman_yor_partition_probability(alpha, beta) -> None:
    corpus = synknow.sample(presets.bios(alpha=alpha, beta=beta), 3000, seed=5)
    counts = corpus.entity_counts.astype(np.float64)
    n, k = corpus.n_docs, len(counts)
    # log P = sum_{j<K} log(beta + j alpha) - log (beta + 1)_{N-1}
    #         + sum_k log (1 - alpha)_{c_k - 1}  (rising factorials)
    log_p = (
        sum(math.log(beta + j * alpha) for j in range(1, k))
        - (math.lgamma(beta + n) - math.lgamma(beta + 1))
        + sum(math.lgamma(c - alpha) - math.lgamma(1 - alpha) for c in counts)
    )
    got = entity_sequence_bits(corpus.doc_entity, alpha, beta)
    # Both sum a few thousand logarithms in double precision.
    assert got == pytest.approx(-log_p / math.log(2), rel=1e-9)


def test_below_the_bayes_code() -> None:
    corpus = synknow.sample(presets.bios(), 2000, seed=2)
    bayes = synknow.code_lengths(corpus, progress=False).total
    seed = seed_knowing_bits(corpus)["total"]
    # The Bayes code pays for theta and every entity's name and values on top: ~1e5 bits here.
    assert seed < bayes - corpus.n_entities * 20


def test_entities_out_of_first_appearance_order_are_an_error() -> None:
    with pytest.raises(ValueError, match="doc_entity"):
        entity_sequence_bits(np.array([0, 2, 1]), 0.5, 1.0)
    with pytest.raises(ValueError, match="doc_entity"):
        entity_sequence_bits(np.array([1, 0]), 0.5, 1.0)
    assert entity_sequence_bits(np.array([], dtype=np.int64), 0.5, 1.0) == 0.0


def test_docstring_example() -> None:
    result = doctest.testmod(synknow.seed_knowing)
    assert result.attempted > 0 and result.failed == 0
