"""E5's two parts beside the per-bucket comparison (docs/experiments.md, "E5 hallucination").

* **Across alpha.** E1's corpora at every alpha (the same corpora, seeds and training prefix as
  E1's transformer leg): the singleton (monofact) rate of the training facts, the share of
  held-out value tokens whose fact was never stated (the missing mass it estimates), and the
  rate of confident errors of the Bayes predictor and, where E1 kept them, of E1's transformers
  trained on the full prefix. The Bayes predictor's part is exact and cheap at every alpha; the
  models cost nothing new (E1 trained them).
* **Shared name parts.** Unseen names made from a seen entity's name with one part replaced,
  against unseen names that share as few parts as the corpus allows
  (:mod:`synknow.experiments.name_overlap`); values drawn from ``H_a``. The Bayes predictor
  answers ``H_a`` for both (names are atomic), so its excess code length over the prior is 0
  and it is never confident above the prior; the model's difference between the groups is the
  effect of the shared parts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synknow.experiments.measures import (
    MIN_BUCKET_TOKENS,
    MIN_SEEDS,
    bayes_confidence_threshold,
    confident_error_rate,
)
from synknow.experiments.report import fmt, markdown_table
from synknow.experiments.seeds import summarise
from synknow.experiments.verdict import Precondition

__all__ = [
    "prior_threshold",
    "group_metrics",
    "alpha_checks",
    "alpha_preconditions",
    "name_checks",
    "name_preconditions",
    "alpha_point",
    "alpha_table",
    "name_part_probe",
]


# Knowledge accuracy from which a model counts as knowing the source entities' facts (the level
# E3 uses for a known fact).
SOURCE_KNOWN = 0.5


def prior_threshold(log_h: list[np.ndarray]) -> float:
    """Just above the largest probability any prior ``H_a`` gives a value: the Bayes
    predictor's top probability on an unseen entity never reaches it."""
    top = max(float(np.exp(np.asarray(lh, dtype=np.float64)).max()) for lh in log_h)
    return float(np.nextafter(top, np.inf))


def group_metrics(
    stats: dict[str, np.ndarray], value: np.ndarray, mask: np.ndarray, threshold: float
) -> dict[str, float]:
    """Tokens, accuracy (tie credit), confident-error rate and the excess code length over the
    prior (bits) of the predictions selected by ``mask``."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return {"tokens": 0, "accuracy": math.nan, "confident_error": math.nan, "excess": math.nan}
    return {
        "tokens": int(m.sum()),
        "accuracy": float(stats["credit"][m].mean()),
        "confident_error": confident_error_rate(
            stats["max_prob"][m], stats["argmax"][m], np.asarray(value)[m], threshold
        ),
        "excess": float((stats["bits"] - stats["prior_bits"])[m].mean()),
    }


# ------------------------------------------------------------------------------------------------
# Across alpha


def alpha_point(
    corpus: Any,
    n_train: int,
    docs: np.ndarray,
    singleton: float,
    model: Any | None,
    fallback_threshold: float,
) -> dict[str, Any]:
    """One corpus: the Bayes predictor (and ``model`` when given) on the value tokens of the
    held-out ``docs``."""
    from synknow.experiments.bayes_values import bayes_value_stats
    from synknow.experiments.probes import revealed_pairs, value_stats

    targets, bayes = bayes_value_stats(corpus, n_train, docs)
    ent, att = revealed_pairs(corpus, n_train)
    a_count = corpus.config.n_attributes
    revealed = np.isin(targets.entity * a_count + targets.attribute, ent * a_count + att)
    threshold = (
        bayes_confidence_threshold(bayes["max_prob"], revealed)
        if revealed.any() and not revealed.all()
        else fallback_threshold
    )
    every = np.ones(len(targets), dtype=bool)
    out: dict[str, Any] = {
        "singleton_rate": singleton,
        "missing_mass": float(1 - revealed.mean()) if len(targets) else math.nan,
        "threshold": threshold,
        "unstated_tokens": int((~revealed).sum()),
        "bayes_all": group_metrics(bayes, targets.value, every, threshold),
        "bayes_unstated": group_metrics(bayes, targets.value, ~revealed, threshold),
    }
    if model is not None:
        ours = value_stats(model, targets)
        out["model_all"] = group_metrics(ours, targets.value, every, threshold)
        out["model_unstated"] = group_metrics(ours, targets.value, ~revealed, threshold)
    return out


def _per_alpha(points: list[dict[str, Any]], key: str, field: str) -> dict[float, float]:
    """Mean over seeds of ``point[key][field]`` per alpha (seeds lacking ``key`` left out)."""
    out: dict[float, list[float]] = {}
    for p in points:
        if key in p and math.isfinite(p[key][field]):
            out.setdefault(p["alpha"], []).append(p[key][field])
    return {a: float(np.mean(v)) for a, v in sorted(out.items())}


def alpha_checks(points: list[dict[str, Any]]) -> tuple[dict[str, bool], str]:
    """The model's confident-error rate against the singleton rate across alpha."""
    from synknow.experiments.acquisition import spearman

    model = _per_alpha(points, "model_all", "confident_error")
    bayes = _per_alpha(points, "bayes_all", "confident_error")
    single: dict[float, list[float]] = {}
    for p in points:
        single.setdefault(p["alpha"], []).append(p["singleton_rate"])
    sing = {a: float(np.mean(v)) for a, v in single.items()}
    if not model:
        return {}, "no transformer of E1 found at any alpha (Bayes predictor only)"
    alphas = sorted(model)
    rho = spearman([sing[a] for a in alphas], [model[a] for a in alphas])
    checks = {
        "model's confident-error rate rises with the singleton rate across alpha (Spearman > 0)": (
            rho is not None and rho > 0
        ),
        "model confidently wrong more often than the Bayes predictor at every alpha": all(
            model[a] > bayes.get(a, math.inf) for a in alphas
        ),
    }
    text = "Across alpha (mean over seeds): " + "; ".join(
        f"alpha {a:g}: singleton rate {fmt(sing[a])}, confident errors model {fmt(model[a])} / "
        f"Bayes {fmt(bayes.get(a))}"
        for a in alphas
    )
    return checks, text + f" (Spearman {fmt(rho)})"


def alpha_preconditions(points: list[dict[str, Any]]) -> list[Precondition]:
    """Alphas with a model, seeds per alpha, held-out tokens of unstated facts, converged
    models."""
    with_model = [p for p in points if "model_all" in p]
    alphas = sorted({p["alpha"] for p in with_model})
    seeds = min((sum(p["alpha"] == a for p in with_model) for a in alphas), default=0)
    # Unstated facts are rare at small alpha (about 1% of held-out value tokens at alpha 0.3 in
    # cpu-small's E1 corpus), so their tokens are pooled over the seeds of an alpha.
    pooled: dict[float, int] = {}
    for p in points:
        pooled[p["alpha"]] = pooled.get(p["alpha"], 0) + int(p["unstated_tokens"])
    unstated = min(pooled.values(), default=0)
    converged = [bool(p.get("model_converged")) for p in with_model]
    return [
        Precondition.at_least("alphas with a trained transformer (E1)", len(alphas), 3),
        Precondition.at_least("seeds per alpha (fewest)", seeds, MIN_SEEDS),
        Precondition.at_least(
            "held-out value tokens of facts not stated in training (fewest alpha, all seeds)",
            unstated,
            MIN_BUCKET_TOKENS,
        ),
        Precondition(
            "E1 runs converged (E1's criterion)",
            f"{sum(converged)} of {len(converged)}",
            "all",
            bool(converged) and all(converged),
        ),
    ]


def alpha_table(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        m_all, m_un = p.get("model_all"), p.get("model_unstated")
        rows.append(
            [
                f"{p['alpha']:g}",
                p["seed_index"],
                p["singleton_rate"],
                p["missing_mass"],
                p["unstated_tokens"],
                m_all["confident_error"] if m_all else "-",
                m_un["confident_error"] if m_un else "-",
                m_un["excess"] if m_un else "-",
                p["bayes_all"]["confident_error"],
            ]
        )
    return markdown_table(
        [
            "alpha",
            "corpus",
            "singleton rate",
            "held-out share of unstated facts",
            "unstated tokens",
            "confident errors, model (all)",
            "model (unstated)",
            "model excess over prior, unstated (bits)",
            "confident errors, Bayes (all)",
        ],
        rows,
    )


# ------------------------------------------------------------------------------------------------
# Shared name parts


def name_part_probe(
    model: Any, corpus: Any, n_train: int, count: int, seed: int
) -> dict[str, dict[str, float]]:
    """The model on unseen names sharing parts with a seen entity and on names sharing as few
    as possible, every attribute, values drawn from ``H_a``. Per group: tokens, the largest
    number of parts a name shares with one seen entity (max and min over the group), accuracy,
    confident errors (threshold :func:`prior_threshold`), excess over the prior; for the shared
    group also how often the model answers the value of the entity the name was made from."""
    from synknow.experiments.name_overlap import (
        max_shared_parts,
        shared_part_names,
        unshared_part_names,
    )
    from synknow.experiments.probes import ValueLayout, sentence_probes, value_stats

    g = corpus.grammar
    starts = np.asarray(g["name_start"], dtype=np.int64)
    sizes = np.asarray(g["name_size"], dtype=np.int64)
    names_all = np.asarray(corpus.entity_names, dtype=np.int64)
    values_all = np.asarray(corpus.entity_values, dtype=np.int64)
    counts = np.asarray(corpus.entity_counts_at(n_train), dtype=np.int64)
    seen_ix = np.flatnonzero(counts > 0)
    seen = names_all[seen_ix]
    used = {tuple(r) for r in names_all.tolist()}
    rng = np.random.default_rng([seed, 0x5A4E])
    shared, source = shared_part_names(seen, used, starts, sizes, count, rng)
    unshared = unshared_part_names(
        seen, used | {tuple(r) for r in shared.tolist()}, starts, sizes, count, rng
    )
    layout = ValueLayout.of(corpus)
    a_count = corpus.config.n_attributes
    threshold = prior_threshold(layout.log_h)
    out: dict[str, dict[str, float]] = {}
    for label, names in (("shared", shared), ("unshared", unshared)):
        values = np.zeros((count, a_count), dtype=np.int64)
        for a in range(a_count):
            h = np.exp(layout.log_h[a])
            values[:, a] = layout.start[a] + rng.choice(h.size, size=count, p=h / h.sum())
        attr = np.tile(np.arange(a_count), count)
        ent = np.repeat(np.arange(count), a_count)
        probes = sentence_probes(
            corpus, names[ent], values[ent, attr], attr, ent, np.zeros(ent.size, np.int64), rng
        )
        stats = value_stats(model, probes)
        overlap = max_shared_parts(names, seen)
        row = {
            **group_metrics(stats, probes.value, np.ones(len(probes), dtype=bool), threshold),
            "overlap_max": int(overlap.max()),
            "overlap_min": int(overlap.min()),
            "threshold": threshold,
        }
        if label == "shared":
            neighbour = values_all[seen_ix[source[ent]], attr]
            row["neighbour_answer_rate"] = float((stats["argmax"] == neighbour).mean())
            # The same facts asked about the source entities under their own names: a model that
            # does not know them has nothing to carry over to a name that shares their parts.
            own = sentence_probes(
                corpus,
                seen[source[ent]],
                neighbour,
                attr,
                ent,
                np.zeros(ent.size, np.int64),
                rng,
            )
            own_stats = value_stats(model, own)
            row["source_accuracy"] = float((own_stats["argmax"] == own.value).mean())
        out[label] = row
    return out


def name_checks(per_seed: list[dict[str, dict[str, float]]]) -> tuple[dict[str, bool], str]:
    """Names sharing parts against names sharing (almost) none, over seeds."""
    if not per_seed:
        return {}, "no seed measured"
    diff_x = summarise([s["shared"]["excess"] - s["unshared"]["excess"] for s in per_seed])
    diff_c = summarise(
        [s["shared"]["confident_error"] - s["unshared"]["confident_error"] for s in per_seed]
    )

    def lower(x: Any) -> float:
        return float(x.ci[0] if x.n >= 2 else x.mean)

    checks = {
        "names sharing parts: larger excess code length over the prior than names sharing "
        "(almost) none (lower end of the interval over seeds of the difference > 0)": lower(diff_x)
        > 0,
        "names sharing parts: confidently wrong more often (lower end of the interval > 0)": lower(
            diff_c
        )
        > 0,
    }
    first = per_seed[0]
    text = (
        f"Unseen names, shared - unshared: excess over the prior {diff_x.describe()} bits, "
        f"confident errors {diff_c.describe()}; first seed: shared {fmt(first['shared']['excess'])}"
        f" bits / {fmt(first['shared']['confident_error'])} (answers the source entity's value "
        f"{fmt(first['shared'].get('neighbour_answer_rate'))}), unshared "
        f"{fmt(first['unshared']['excess'])} bits / {fmt(first['unshared']['confident_error'])}; "
        "the Bayes predictor: 0 bits and no confident answer for both"
    )
    return checks, text


def name_preconditions(per_seed: list[dict[str, dict[str, float]]]) -> list[Precondition]:
    """Seeds, value tokens per group, and groups that differ in what they share."""
    tokens = min((min(s["shared"]["tokens"], s["unshared"]["tokens"]) for s in per_seed), default=0)
    shared_min = min((s["shared"]["overlap_min"] for s in per_seed), default=0)
    unshared_max = max((s["unshared"]["overlap_max"] for s in per_seed), default=0)
    known = min((s["shared"].get("source_accuracy", 0.0) for s in per_seed), default=0.0)
    return [
        Precondition.at_least("seeds (corpus and init)", len(per_seed), MIN_SEEDS),
        Precondition.at_least("value tokens per name group (fewest)", tokens, MIN_BUCKET_TOKENS),
        Precondition(
            "parts shared with one seen entity: shared group (fewest) > unshared group (most)",
            f"{shared_min} > {unshared_max}",
            "true",
            shared_min > unshared_max,
        ),
        Precondition(
            "the model knows the facts of the entities the shared names come from (accuracy "
            "under their own names, lowest seed)",
            f"{known:.3f}",
            f">= {SOURCE_KNOWN}",
            known >= SOURCE_KNOWN,
        ),
    ]
