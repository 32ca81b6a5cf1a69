"""A pure-Python reference sampler of the Syntax-Knowledge model, straight from
docs/model.md#generative-process.

Slow and simple on purpose: every step is the textbook form of the law, with explicit
probabilities, so that it is obviously correct by reading. It draws from the same law as the
Rust sampler but not the same random numbers (it uses Python's ``random.Random``), so the tests
compare *distributions*, never individual corpora.

What it shares with the Rust side is only what the configuration fixes before any random draw:
the vocabulary layout, the template skeletons and ``H_a`` (``_core.grammar_info``), and ``theta``
(``_core.theta``; drawn from the seed, or given explicitly).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from synknow import _core
from synknow.config import SyntaxKnowledgeConfig

BOS, EOS = 1, 2
NAME_SLOT, VALUE_SLOT = -1, -2
ROLE_SPECIAL, ROLE_SYNTAX, ROLE_NAME, ROLE_VALUE = 0, 1, 2, 3


@dataclass
class ReferenceCorpus:
    """The latent records and the rendered documents of one reference draw."""

    doc_entity: list[int]
    entity_names: list[tuple[int, ...]]
    entity_values: list[tuple[int, ...]]
    sentence_attribute: list[list[int]]
    sentence_template: list[list[int]]
    documents: list[list[int]]
    roles: list[list[int]]

    @property
    def n_entities(self) -> int:
        return len(self.entity_names)

    def entity_counts(self) -> np.ndarray:
        return np.bincount(np.array(self.doc_entity, dtype=np.int64), minlength=self.n_entities)


def crp_assignments(n: int, alpha: float, beta: float, rng: random.Random) -> list[int]:
    """The PYCRP of docs/model.md#knowledge with explicit probabilities: document ``i`` is about
    existing entity
    ``k`` with probability ``(c_k - alpha) / (i + beta)`` and about a new one with probability
    ``(beta + K alpha) / (i + beta)`` (1 for ``i = 0``)."""
    z: list[int] = []
    counts: list[int] = []
    for i in range(n):
        k_now = len(counts)
        if i == 0:
            k = 0
        else:
            weights = [(c - alpha) / (i + beta) for c in counts]
            weights.append((beta + k_now * alpha) / (i + beta))
            assert abs(sum(weights) - 1.0) < 1e-9
            k = rng.choices(range(k_now + 1), weights=weights)[0]
        if k == k_now:
            counts.append(0)
        counts[k] += 1
        z.append(k)
    return z


def sample_reference(config: SyntaxKnowledgeConfig, n_docs: int, seed: int) -> ReferenceCorpus:
    """Draws ``n_docs`` documents of ``config``'s model with Python's RNG seeded by ``seed``."""
    info = _core.grammar_info(config.to_json())
    theta = _core.theta(config.to_json())
    rng = random.Random(seed)
    a_count, m = config.n_attributes, config.m
    name_start, name_size = info["name_start"], info["name_size"]
    # H_a over pool-local indices, and the pool's first token id.
    value_probs = [np.exp(np.asarray(lp)) for lp in info["value_log_prob"]]
    value_base = [info["pool_start"][config.attribute_pool[a]] for a in range(a_count)]
    skeletons = info["skeletons"]

    z = crp_assignments(n_docs, config.alpha, config.beta, rng)

    # Entities in order of first appearance: a name uniform over the names not used yet (drawn
    # by rejection: uniform over all names, retried while taken), values independently from H_a.
    used: set[tuple[int, ...]] = set()
    names: list[tuple[int, ...]] = []
    values: list[tuple[int, ...]] = []
    for _ in range(max(z, default=-1) + 1):
        while True:
            name = tuple(s + rng.randrange(n) for s, n in zip(name_start, name_size, strict=True))
            if name not in used:
                break
        used.add(name)
        names.append(name)
        values.append(
            tuple(
                value_base[a] + rng.choices(range(len(value_probs[a])), weights=value_probs[a])[0]
                for a in range(a_count)
            )
        )

    attrs: list[list[int]] = []
    temps: list[list[int]] = []
    docs: list[list[int]] = []
    roles: list[list[int]] = []
    for i in range(n_docs):
        if config.attribute_order == "shuffled":
            order = rng.sample(range(a_count), m)  # uniform m-subset in uniform random order
        else:
            order = list(range(m))
        tpl = [rng.choices(range(len(theta[a])), weights=theta[a])[0] for a in order]
        k = z[i]
        doc, role = [BOS], [ROLE_SPECIAL]
        for a, t in zip(order, tpl, strict=True):
            for slot in skeletons[a][t]:
                if slot == NAME_SLOT:
                    doc.extend(names[k])
                    role.extend([ROLE_NAME] * len(names[k]))
                elif slot == VALUE_SLOT:
                    doc.append(values[k][a])
                    role.append(ROLE_VALUE)
                else:
                    doc.append(slot)
                    role.append(ROLE_SYNTAX)
        doc.append(EOS)
        role.append(ROLE_SPECIAL)
        attrs.append(order)
        temps.append(tpl)
        docs.append(doc)
        roles.append(role)
    return ReferenceCorpus(z, names, values, attrs, temps, docs, roles)


def expected_entities_by_recursion(n: int, alpha: float, beta: float) -> float:
    """``E[K_n]`` by the one-step recursion ``E[K_{i+1}] = E[K_i] + (beta + alpha E[K_i]) /
    (i + beta)`` (an independent check of the closed form)."""
    k = 0.0
    for i in range(n):
        k += 1.0 if i == 0 else (beta + alpha * k) / (i + beta)
    return k
