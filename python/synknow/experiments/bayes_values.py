"""The exact Bayes predictive at value positions (docs/codelength.md#per-token), as a full
distribution.

The code-length engine gives the Bayes code length of the *true* token; hallucination (E5) and
acquisition (E3) also need what the Bayes predictor would *answer*: its top token, confidence and
value distribution. At a value position the entity is known (its name came first and names are
unique), so the predictive is a mixture over the parse states ``(a, t)`` that match the sentence
so far, weighted by ``P(a | earlier sentences) * P_DM(t | a)``; each state predicts either its
next syntax word or, at its ``[VALUE]`` slot, the revealed value of ``(k, a)`` (a point mass) or
``H_a`` when ``(k, a)`` was never stated in the training prefix. This module computes that
mixture for test documents scored against the frozen prefix of ``n`` documents
(docs/codelength.md#learning-curve);
``tests/experiments/test_probes.py`` checks it against ``synknow.code_lengths``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synknow.experiments.probes import (
    ValueTargets,
    document_targets,
    summarise_distribution,
)

__all__ = ["bayes_value_distributions", "bayes_value_stats"]


def _template_counts(corpus: Any, n: int) -> list[np.ndarray]:
    theta = corpus.theta
    attrs = np.asarray(corpus.sentence_attribute[:n], dtype=np.int64).reshape(-1)
    temps = np.asarray(corpus.sentence_template[:n], dtype=np.int64).reshape(-1)
    out = []
    for a in range(len(theta)):
        out.append(np.bincount(temps[attrs == a], minlength=len(theta[a])).astype(np.float64))
    return out


def bayes_value_distributions(
    corpus: Any, n: int, docs: np.ndarray
) -> tuple[ValueTargets, np.ndarray]:
    """Targets (every value token of ``docs``) and the Bayes predictive over the vocabulary at
    each, given the first ``n`` documents (rows sum to 1)."""
    cfg = corpus.config
    if not 0 <= n <= corpus.n_docs:
        raise ValueError(f"prefix length n={n} out of range [0, {corpus.n_docs}]")
    docs = np.asarray(docs, dtype=np.int64)
    targets = document_targets(corpus, docs, n)
    layout = targets.layout
    skeletons = corpus.grammar["skeletons"]
    n_attr = cfg.n_attributes
    gamma = float(cfg.template_prior)
    shuffled = cfg.attribute_order == "shuffled"
    counts0 = _template_counts(corpus, n)
    # Revealed (entity, attribute) pairs of the prefix, as a set of keys.
    m = corpus.sentence_attribute.shape[1]
    ent = np.repeat(np.asarray(corpus.doc_entity[:n], dtype=np.int64), m)
    attr = np.asarray(corpus.sentence_attribute[:n], dtype=np.int64).reshape(-1)
    revealed = set(np.unique(ent * n_attr + attr).tolist())
    vocab = int(corpus.grammar["vocab_size"])
    dist = np.zeros((len(targets), vocab))
    h = [np.exp(lh) for lh in layout.log_h]
    t_index = 0
    for d in docs.tolist():
        k = int(corpus.doc_entity[d])
        counts = [c.copy() for c in counts0]
        used: list[int] = []
        for s in range(m):
            a_s = int(corpus.sentence_attribute[d, s])
            t_s = int(corpus.sentence_template[d, s])
            skel = skeletons[a_s][t_s]
            p = skel.index(-2)
            prefix = skel[:p]
            if shuffled:
                candidates = [a for a in range(n_attr) if a not in used]
            else:
                candidates = [s]
            row = dist[t_index]
            total = 0.0
            for a in candidates:
                denom = counts[a].sum() + len(counts[a]) * gamma
                for t, sk in enumerate(skeletons[a]):
                    if len(sk) <= p or sk[:p] != prefix:
                        continue
                    w = (counts[a][t] + gamma) / denom
                    total += w
                    nxt = sk[p]
                    if nxt == -2:
                        if k * n_attr + a in revealed:
                            row[int(corpus.entity_values[k, a])] += w
                        else:
                            start, size = layout.start[a], layout.size[a]
                            row[start : start + size] += w * h[a]
                    else:
                        row[nxt] += w
            row /= total
            counts[a_s][t_s] += 1.0
            used.append(a_s)
            t_index += 1
    return targets, dist


def bayes_value_stats(corpus: Any, n: int, docs: np.ndarray) -> tuple[ValueTargets, dict]:
    """The same per-target statistics as :func:`synknow.experiments.probes.value_stats`, for
    the Bayes predictor (ties decided on exact probabilities)."""
    import torch

    targets, dist = bayes_value_distributions(corpus, n, docs)
    with np.errstate(divide="ignore"):
        logp = torch.from_numpy(np.log(dist))
    out = {
        k: np.zeros(len(targets))
        for k in (
            "bits",
            "pool_bits",
            "credit",
            "max_prob",
            "pool_mass",
            "kl_bits",
            "prior_bits",
            "chance",
        )
    }
    out["argmax"] = np.zeros(len(targets), dtype=np.int64)
    summarise_distribution(logp, logp, targets, np.arange(len(targets)), out)
    return targets, out
