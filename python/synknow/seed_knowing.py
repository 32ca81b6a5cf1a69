"""The code length of a corpus under its true parameters: what a coder that knows the seed pays
(docs/compression.md#the-seed-knowing-coder).

Such a coder knows ``theta`` and the entity table (every entity's name and values, in order of
first appearance) and still has to code what the sampler draws given them: each document's
entity (a Pitman-Yor CRP draw given the earlier documents), its attribute order and its
templates. Names, values and syntax words are then determined, so they cost nothing. The
cost of ``theta`` and of the table itself is excluded; the Bayes code (docs/codelength.md)
pays for both, which is the gap between the two.

Example:
    >>> import synknow
    >>> from synknow.seed_knowing import seed_knowing_bits
    >>> corpus = synknow.sample(synknow.presets.bios(), 2000, seed=1)
    >>> parts = seed_knowing_bits(corpus)
    >>> parts["total"] < synknow.code_lengths(corpus, progress=False).total
    True
"""

from __future__ import annotations

import math

import numpy as np

from synknow.codelength import _check_corpus
from synknow.corpus import Corpus

__all__ = ["entity_sequence_bits", "seed_knowing_bits"]


def entity_sequence_bits(doc_entity: np.ndarray, alpha: float, beta: float) -> float:
    """``-log2`` of the Pitman-Yor CRP probability of the entity sequence ``doc_entity``
    (entities numbered in order of first appearance, as the sampler numbers them).

    Document ``i`` with ``K`` earlier entities and ``c_k`` earlier documents about entity ``k``
    costs ``-log2((c_k - alpha) / (i + beta))`` for an entity seen before and
    ``-log2((beta + K alpha) / (i + beta))`` for a new one (0 bits for ``i = 0``): the
    sampler's own draw probabilities (docs/model.md#knowledge).
    """
    z = np.asarray(doc_entity, dtype=np.int64).reshape(-1)
    n = len(z)
    if n == 0:
        return 0.0
    # Entities are numbered in order of first appearance: a document is new iff its entity
    # is one above every earlier one.
    running_max = np.maximum.accumulate(z)
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = z[1:] > running_max[:-1]
    if z[0] != 0 or not np.array_equal(z[new], np.arange(int(new.sum()))):
        raise ValueError(
            "doc_entity: entities must be numbered 0, 1, ... in order of first appearance"
        )
    k_before = np.cumsum(new) - new
    # Earlier documents about the same entity: the rank of each document within its entity.
    order = np.argsort(z, kind="stable")
    sorted_z = z[order]
    group_start = np.searchsorted(sorted_z, sorted_z, side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    i = np.arange(n, dtype=np.float64)
    numerator = np.where(new, beta + k_before * alpha, rank - alpha)
    bits = np.log2(i[1:] + beta) - np.log2(numerator[1:])
    return math.fsum(bits.tolist())


def seed_knowing_bits(corpus: Corpus) -> dict[str, float]:
    """Bits of ``corpus``'s tokens under its true ``theta`` and entity table, by part:

    - ``entity``: the CRP draw of each document's entity (:func:`entity_sequence_bits`);
    - ``order``: the attribute order, ``log2(A! / (A - m)!)`` per document when shuffled, 0
      when fixed;
    - ``template``: ``-log2 theta_a(t)`` per sentence;
    - ``total``: their sum. Names, values, syntax words, ``BOS`` and ``EOS`` are determined by
      the entity and the templates and cost nothing.

    The coder does not use the number of rows of the table (the number of entities, which a
    coder of the whole table would know): using it would save the information of that one
    number, at most ``log2 N`` bits on average.
    """
    corpus = _check_corpus(corpus)
    config = corpus.config
    n_docs = corpus.n_docs
    entity = entity_sequence_bits(corpus.doc_entity, config.alpha, config.beta)
    a_count, m = config.n_attributes, config.m
    if config.attribute_order == "shuffled":
        per_doc = (math.lgamma(a_count + 1) - math.lgamma(a_count - m + 1)) / math.log(2)
    else:
        per_doc = 0.0
    order = per_doc * n_docs
    theta = corpus.theta
    attributes = np.asarray(corpus.sentence_attribute, dtype=np.int64).reshape(-1)
    templates = np.asarray(corpus.sentence_template, dtype=np.int64).reshape(-1)
    template = 0.0
    for a in range(a_count):
        chosen = templates[attributes == a]
        if len(chosen):
            with np.errstate(divide="ignore"):
                log_theta = np.log2(np.asarray(theta[a], dtype=np.float64))
            counts = np.bincount(chosen, minlength=len(log_theta))
            used = counts > 0
            template -= math.fsum((counts[used] * log_theta[used]).tolist())
    return {
        "entity": entity,
        "order": order,
        "template": template,
        "total": entity + order + template,
    }
