"""A pure-Python reference of the Bayes code length, straight from docs/codelength.md.

Slow and simple on purpose: explicit candidate parse states with explicit weights
``P(a | earlier sentences) * P_DM(t | a)``, a dictionary of used-name prefixes, and textbook
formulas, so that every step can be checked by reading. It shares nothing with the Rust engine
but the configuration's grammar (``corpus.grammar``: vocabulary blocks, skeletons, ``ln H_a``).

* :func:`closed_form_per_doc` - docs/codelength.md#per-document from the latent records;
* :func:`closed_form_total` - docs/codelength.md#whole-corpus from counts;
* :class:`Learner` / :func:`per_token_bits` - docs/codelength.md#per-token, the per-token
  predictive from tokens;
* :func:`structure_function` - docs/codelength.md#structure-function for one ``k``.

``benches/bench_codelength.py`` times :func:`per_token_bits` against the Rust engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOS, EOS = 1, 2
NAME_SLOT, VALUE_SLOT = -1, -2


class Grammar:
    """The parts of the configuration the learner knows, as plain Python."""

    def __init__(self, corpus: Any):
        cfg = corpus.config
        g = corpus.grammar
        self.alpha = float(cfg.alpha)
        self.beta = float(cfg.beta)
        self.gamma = float(cfg.template_prior)
        self.n_attributes = int(cfg.n_attributes)
        self.m = int(cfg.m)
        self.shuffled = cfg.attribute_order == "shuffled"
        self.name_start = [int(x) for x in g["name_start"]]
        self.name_size = [int(x) for x in g["name_size"]]
        self.n_name_parts = len(self.name_size)
        self.name_space = math.prod(self.name_size)
        pool_start = [int(x) for x in g["pool_start"]]
        pool_size = [int(x) for x in g["pool_size"]]
        self.value_base = [pool_start[p] for p in cfg.attribute_pool]
        self.value_size = [pool_size[p] for p in cfg.attribute_pool]
        self.log_h = [[float(x) for x in lp] for lp in g["value_log_prob"]]
        self.skeletons: list[list[list[int]]] = [
            [[int(s) for s in sk] for sk in per_attr] for per_attr in g["skeletons"]
        ]
        self.n_templates = [len(s) for s in self.skeletons]
        self.end = 3

    def expanded(self, attribute: int, template: int) -> list[tuple[str, int]]:
        """Token-level slots: ("word", id), ("name", j), ("value", 0)."""
        out: list[tuple[str, int]] = []
        for s in self.skeletons[attribute][template]:
            if s == NAME_SLOT:
                out.extend(("name", j) for j in range(self.n_name_parts))
            elif s == VALUE_SLOT:
                out.append(("value", 0))
            else:
                out.append(("word", s))
        return out

    def log_value_prior(self, attribute: int, token: int) -> float:
        """``ln H_a(x)``, ``-inf`` outside the attribute's pool."""
        local = token - self.value_base[attribute]
        if 0 <= local < self.value_size[attribute]:
            return self.log_h[attribute][local]
        return -math.inf

    def names_below(self, depth: int) -> int:
        """Full names under a prefix of ``depth`` parts."""
        return math.prod(self.name_size[depth:])


def _latent_docs(corpus: Any, n_docs: int) -> list[tuple[int, list[tuple[int, int]]]]:
    m = corpus.config.m
    ents = [int(k) for k in corpus.doc_entity[:n_docs]]
    attrs = corpus.sentence_attribute[:n_docs].tolist()
    temps = corpus.sentence_template[:n_docs].tolist()
    return [(ents[i], [(attrs[i][s], temps[i][s]) for s in range(m)]) for i in range(n_docs)]


def closed_form_per_doc(corpus: Any, n_docs: int | None = None) -> list[float]:
    """docs/codelength.md#per-document, document by document, from the latent records (bits)."""
    g = Grammar(corpus)
    n_docs = corpus.n_docs if n_docs is None else n_docs
    values = corpus.entity_values.tolist()
    counts: dict[int, int] = {}
    revealed: set[tuple[int, int]] = set()
    c_at: dict[tuple[int, int], int] = {}
    n_a = [0] * g.n_attributes
    out = []
    for i, (k, sentences) in enumerate(_latent_docs(corpus, n_docs)):
        bits = 0.0
        n_entities = len(counts)
        if i > 0:
            if k in counts:
                p = (counts[k] - g.alpha) / (i + g.beta)
            else:
                p = (g.beta + n_entities * g.alpha) / (i + g.beta)
            bits -= math.log2(p)
        if k not in counts:
            bits += math.log2(g.name_space - n_entities)
        counts[k] = counts.get(k, 0) + 1
        for s, (a, t) in enumerate(sentences):
            if g.shuffled:
                bits += math.log2(g.n_attributes - s)
            p_t = (c_at.get((a, t), 0) + g.gamma) / (n_a[a] + g.n_templates[a] * g.gamma)
            bits -= math.log2(p_t)
            c_at[(a, t)] = c_at.get((a, t), 0) + 1
            n_a[a] += 1
            if (k, a) not in revealed:
                revealed.add((k, a))
                bits -= g.log_value_prior(a, values[k][a]) / math.log(2)
        out.append(bits)
    return out


def closed_form_total(corpus: Any, n_docs: int | None = None) -> float:
    """docs/codelength.md#whole-corpus from counts (bits), with ``lgamma`` and ``fsum``."""
    g = Grammar(corpus)
    n = corpus.n_docs if n_docs is None else n_docs
    if n == 0:
        return 0.0
    values = corpus.entity_values.tolist()
    counts: dict[int, int] = {}
    c_at: dict[tuple[int, int], int] = {}
    revealed: set[tuple[int, int]] = set()
    for k, sentences in _latent_docs(corpus, n):
        counts[k] = counts.get(k, 0) + 1
        for a, t in sentences:
            c_at[(a, t)] = c_at.get((a, t), 0) + 1
            revealed.add((k, a))
    a_, b_ = g.alpha, g.beta
    k_count = len(counts)
    log_eppf = math.fsum(
        [math.log(b_ + j * a_) for j in range(1, k_count)]
        + [-(math.lgamma(b_ + n) - math.lgamma(b_ + 1))]
        + [math.lgamma(c - a_) - math.lgamma(1 - a_) for c in counts.values()]
    )
    names = math.fsum(math.log(g.name_space - j) for j in range(k_count))
    log_dm = []
    for a in range(g.n_attributes):
        tg = g.n_templates[a] * g.gamma
        cs = [c_at.get((a, t), 0) for t in range(g.n_templates[a])]
        log_dm.append(math.lgamma(tg) - math.lgamma(sum(cs) + tg))
        log_dm.extend(math.lgamma(c + g.gamma) - math.lgamma(g.gamma) for c in cs)
    order = 0.0
    if g.shuffled:
        order = n * math.fsum(math.log(g.n_attributes - s) for s in range(g.m))
    vals = math.fsum(-g.log_value_prior(a, values[k][a]) for k, a in revealed)
    nats = math.fsum([-log_eppf, names, -math.fsum(log_dm), order, vals])
    return nats / math.log(2)


class Learner:
    """docs/codelength.md#per-token: the Bayes learner reading a corpus token by token."""

    def __init__(self, grammar: Grammar):
        self.g = grammar
        self.n_docs = 0
        self.counts: dict[tuple[int, ...], int] = {}
        # prefix (1..J parts) -> [documents about names below, used names below]
        self.prefix: dict[tuple[int, ...], list[int]] = {}
        self.revealed: dict[tuple[tuple[int, ...], int], int] = {}
        self.c_at: dict[tuple[int, int], int] = {}
        self.n_a = [0] * grammar.n_attributes
        self.expanded = [
            [grammar.expanded(a, t) for t in range(grammar.n_templates[a])]
            for a in range(grammar.n_attributes)
        ]

    def _name_weight(self, prefix: tuple[int, ...]) -> float:
        """``W(q)`` of docs/codelength.md#per-token."""
        g = self.g
        k_count = len(self.counts)
        nu = 1.0 if self.n_docs == 0 else g.beta + k_count * g.alpha
        if prefix:
            docs, used = self.prefix.get(prefix, (0, 0))
        else:
            docs, used = self.n_docs, k_count
        below = g.names_below(len(prefix))
        return (docs - g.alpha * used) + nu * (below - used) / (g.name_space - k_count)

    def read_document(self, tokens: Sequence[int]) -> list[float]:
        """Bits of every token of one document; then learns the document."""
        g = self.g
        tokens = [int(x) for x in tokens]
        if tokens[0] != BOS:
            raise ValueError("a document starts with BOS")
        bits = [0.0]
        pos = 1
        used: list[int] = []
        name: tuple[int, ...] | None = None
        parsed: list[tuple[int, int, int]] = []
        for s in range(g.m):
            avail = [a for a in range(g.n_attributes) if a not in used] if g.shuffled else [s]
            states = []
            for a in avail:
                norm = self.n_a[a] + g.n_templates[a] * g.gamma
                for t in range(g.n_templates[a]):
                    w = (1.0 / len(avail)) * (self.c_at.get((a, t), 0) + g.gamma) / norm
                    states.append((a, t, w))
            name_prefix: tuple[int, ...] = ()
            value = -1
            k = 0
            while True:
                x = tokens[pos]
                name_factor = None
                new_states = []
                for a, t, w in states:
                    kind, arg = self.expanded[a][t][k]
                    if kind == "word":
                        f = 1.0 if x == arg else 0.0
                    elif kind == "name":
                        local = x - g.name_start[arg]
                        if not 0 <= local < g.name_size[arg]:
                            f = 0.0
                        elif name is not None:
                            f = 1.0 if x == name[arg] else 0.0
                        else:
                            if name_factor is None:
                                name_factor = self._name_weight(
                                    name_prefix + (x,)
                                ) / self._name_weight(name_prefix)
                            f = name_factor
                    else:
                        key = (name, a)
                        if name is not None and key in self.revealed:
                            f = 1.0 if x == self.revealed[key] else 0.0
                        else:
                            f = math.exp(g.log_value_prior(a, x))
                    if f > 0.0:
                        new_states.append((a, t, w * f))
                p = sum(w for _, _, w in new_states) / sum(w for _, _, w in states)
                if p <= 0.0:
                    raise ValueError(f"token {x} at position {pos} has probability 0")
                bits.append(-math.log2(p))
                states = new_states
                kind, _ = self.expanded[states[0][0]][states[0][1]][k]
                if kind == "name" and name is None:
                    name_prefix = name_prefix + (x,)
                    if len(name_prefix) == g.n_name_parts:
                        name = name_prefix
                elif kind == "value":
                    value = x
                pos += 1
                k += 1
                if x == g.end:
                    ((a, t, _),) = states
                    parsed.append((a, t, value))
                    used.append(a)
                    break
        if tokens[pos] != EOS or pos + 1 != len(tokens):
            raise ValueError("a document ends with EOS after m sentences")
        bits.append(0.0)
        assert name is not None
        self._learn(name, parsed)
        return bits

    def _learn(self, name: tuple[int, ...], parsed: list[tuple[int, int, int]]) -> None:
        new = name not in self.counts
        self.counts[name] = self.counts.get(name, 0) + 1
        for d in range(1, self.g.n_name_parts + 1):
            entry = self.prefix.setdefault(name[:d], [0, 0])
            entry[0] += 1
            entry[1] += int(new)
        self.n_docs += 1
        for a, t, v in parsed:
            self.c_at[(a, t)] = self.c_at.get((a, t), 0) + 1
            self.n_a[a] += 1
            self.revealed.setdefault((name, a), v)


def per_token_bits(corpus: Any, n_docs: int | None = None) -> list[float]:
    """Per-token bits (docs/codelength.md#per-token) of the first ``n_docs`` documents (all by
    default)."""
    learner = Learner(Grammar(corpus))
    n_docs = corpus.n_docs if n_docs is None else n_docs
    offsets = corpus.doc_offsets.tolist()
    tokens = corpus.tokens
    out: list[float] = []
    for d in range(n_docs):
        out.extend(learner.read_document(tokens[offsets[d] : offsets[d + 1]].tolist()))
    return out


def structure_function(corpus: Any, n_train: int, k: int) -> tuple[float, float]:
    """docs/codelength.md#structure-function: ``(M, D)`` in bits when the top-``k`` entities
    (count descending, ties by id) of the first ``n_train`` documents are stored."""
    g = Grammar(corpus)
    values = corpus.entity_values.tolist()
    docs = _latent_docs(corpus, n_train)
    counts: dict[int, int] = {}
    c_at: dict[tuple[int, int], int] = {}
    stated: dict[int, set[int]] = {}
    for e, sentences in docs:
        counts[e] = counts.get(e, 0) + 1
        for a, t in sentences:
            c_at[(a, t)] = c_at.get((a, t), 0) + 1
            stated.setdefault(e, set()).add(a)
    order = sorted(counts, key=lambda e: (-counts[e], e))
    stored = set(order[:k])
    n = n_train
    log2 = math.log2
    d_syn = sum(t - 1 for t in g.n_templates)

    def h_bits(a: int, e: int) -> float:
        return -g.log_value_prior(a, values[e][a]) / math.log(2)

    model = d_syn / 2 * log2(n)
    for e in stored:
        model += log2(g.name_space) + sum(h_bits(a, e) for a in stated[e]) + log2(n)
    data = 0.0
    n_a = [0] * g.n_attributes
    for (a, _), c in c_at.items():
        n_a[a] += c
    for (a, _), c in c_at.items():
        data -= c * log2(c / n_a[a])
    if g.shuffled:
        data += n * sum(log2(g.n_attributes - s) for s in range(g.m))
    unstored_docs = n - sum(counts[e] for e in stored)
    for e, sentences in docs:
        if e in stored:
            data -= log2(counts[e] / n)
        else:
            data -= log2(unstored_docs / n)
            data += log2(g.name_space) + sum(h_bits(a, e) for a, _ in sentences)
    return model, data
