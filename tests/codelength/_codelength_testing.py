"""Shared helpers of the code-length tests: configurations covering the careful cases, and
corpora rebuilt from a reordering (or a selection) of another corpus's documents."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import synknow
from hypothesis import strategies as st
from synknow import Corpus, SyntaxKnowledgeConfig

AMBIGUOUS_TEMPLATES = (
    # Attributes 0 and 1 share pool 0 and have skeletons that agree past [VALUE]: the parse is
    # still open after the value token (whose probability differs between the two under zipf).
    ("[NAME] lives in [VALUE] now .", "[NAME] in the [VALUE] lives ."),
    ("[NAME] lives in [VALUE] today .", "[NAME] lives in [VALUE] ."),
    ("[NAME] lives [VALUE] .", "[NAME] lives in the [VALUE] ."),
)


def ambiguous_config(**kw: object) -> SyntaxKnowledgeConfig:
    """Three attributes, two sharing a pool, parse ambiguity surviving the value, zipf priors,
    small name lists (so names share prefixes) and heavy entity reuse."""
    base: dict[str, object] = {
        "n_attributes": 3,
        "pool_sizes": (6, 4),
        "attribute_pool": (0, 0, 1),
        "value_prior": "zipf(1.3)",
        "name_parts": (30, 40),
        "templates": AMBIGUOUS_TEMPLATES,
        "alpha": 0.3,
        "beta": 0.5,
        "seed": 11,
    }
    base.update(kw)
    return synknow.presets.bios(**base)


def tiny_procedural_config(**kw: object) -> SyntaxKnowledgeConfig:
    """A tiny vocabulary: 3 syntax words, pools of 3 and 4 values, 3 x 3 x 4 names, m < A."""
    base: dict[str, object] = {
        "n_attributes": 3,
        "pool_sizes": (3, 4),
        "attribute_pool": (0, 0, 1),
        "value_prior": "zipf(0.8)",
        "name_parts": (8, 9, 12),
        "templates_per_attribute": (3, 2, 4),
        "template_length": (1, 2),
        "syntax_vocab": 4,
        "attrs_per_doc": 2,
        "alpha": 0.5,
        "beta": -0.2,
        "seed": 5,
    }
    base.update(kw)
    return synknow.presets.procedural(**base)


def careful_configs() -> list[tuple[str, SyntaxKnowledgeConfig, int]]:
    """(label, config, n_docs): alpha = 0, beta < 0, shared pools, m < A, fixed and shuffled
    order, zipf priors, ambiguity past the value token, tiny vocabularies."""
    return [
        ("bios default", synknow.presets.bios(seed=1), 1500),
        ("bios alpha=0", synknow.presets.bios(alpha=0.0, beta=3.0, seed=2), 1000),
        (
            "bios beta<0, fixed, m<A, zipf",
            synknow.presets.bios(
                alpha=0.5,
                beta=-0.3,
                attrs_per_doc=3,
                attribute_order="fixed",
                value_prior="zipf(1.1)",
                seed=3,
            ),
            1000,
        ),
        ("ambiguous past value", ambiguous_config(), 150),
        ("ambiguous, fixed order", ambiguous_config(attribute_order="fixed", seed=12), 150),
        ("tiny procedural", tiny_procedural_config(), 100),
        (
            "procedural shared pools, m<A",
            synknow.presets.procedural(attrs_per_doc=4, alpha=0.6, beta=1.5, seed=6),
            800,
        ),
    ]


def reordered(corpus: Corpus, docs: Sequence[int] | np.ndarray) -> Corpus:
    """A corpus holding ``corpus``'s documents ``docs`` in that order (the entity table is kept
    as is: entity ids need not be in order of first appearance for the engines)."""
    docs = np.asarray(docs, dtype=np.int64)
    off = corpus.doc_offsets.astype(np.int64)
    lengths = off[docs + 1] - off[docs]
    pieces = [np.arange(off[d], off[d + 1]) for d in docs]
    index = np.concatenate(pieces) if len(pieces) else np.zeros(0, dtype=np.int64)
    arrays = dict(corpus.arrays)
    arrays["tokens"] = np.ascontiguousarray(corpus.tokens[index])
    arrays["roles"] = np.ascontiguousarray(corpus.roles[index])
    arrays["doc_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.uint64)
    for name in ("doc_entity", "sentence_attribute", "sentence_template"):
        arrays[name] = np.ascontiguousarray(corpus.arrays[name][docs])
    return Corpus(arrays, corpus.config)


@st.composite
def configs(draw: st.DrawFn) -> SyntaxKnowledgeConfig:
    """Random configurations over the careful cases (all sampler-valid)."""
    alpha = draw(st.sampled_from([0.0, 0.2, 0.5, 0.8]))
    beta = draw(st.sampled_from([0.5, 2.0, 10.0] if alpha == 0 else [-0.9 * alpha, 0.0, 1.0, 10.0]))
    order = draw(st.sampled_from(["shuffled", "fixed"]))
    prior = draw(st.sampled_from(["uniform", "zipf(1.2)"]))
    seed = draw(st.integers(0, 2**32))
    kind = draw(st.sampled_from(["bios", "procedural", "ambiguous"]))
    if kind == "ambiguous":
        return ambiguous_config(
            alpha=alpha,
            beta=beta,
            attribute_order=order,
            value_prior=prior,
            seed=seed,
            name_parts=(300, 400),
        )
    n_attr = draw(st.integers(2, 6))
    m = draw(st.integers(1, n_attr))
    if kind == "bios":
        pools = {2: (0, 0), 3: (0, 0, 1), 4: (0, 0, 1, 2), 5: (0, 0, 1, 2, 3)}
        return synknow.presets.bios(
            alpha=alpha,
            beta=beta,
            n_attributes=n_attr,
            attribute_pool=pools.get(n_attr, (0, 0, 1, 2, 3, 4)),
            attrs_per_doc=m,
            attribute_order=order,
            value_prior=prior,
            templates_per_attribute=draw(st.integers(1, 24)),
            seed=seed,
        )
    shared = draw(st.booleans())
    pool = tuple([0, 0] + list(range(1, n_attr - 1))) if shared else tuple(range(n_attr))
    return synknow.presets.procedural(
        alpha=alpha,
        beta=beta,
        n_attributes=n_attr,
        attribute_pool=pool,
        pool_sizes=(draw(st.integers(2, 30)),) * (max(pool) + 1),
        attrs_per_doc=m,
        attribute_order=order,
        value_prior=prior,
        templates_per_attribute=draw(st.integers(1, 8)),
        template_length=(1, draw(st.integers(2, 4))),
        syntax_vocab=draw(st.integers(20, 60)),
        seed=seed,
    )
