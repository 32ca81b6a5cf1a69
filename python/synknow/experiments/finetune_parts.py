"""E4's two comparisons beside the injection ladder (docs/experiments.md, "E4 finetune").

* **Capacity-bound against unbound base model.** The ladder and its control run on two base
  sizes: one whose capacity binds (E2's arithmetic: the learnable knowledge is at least twice
  its capacity at 2 bits per parameter) and one that is not bound (its capacity covers the
  learnable knowledge and E2's probes measure it holding most of it). The theory predicts
  eviction of rare knowledge only in the first.
* **Mixed QA pre-training.** A base size pre-trained from scratch twice on the same documents
  and steps: once with QA sequences about a third of the frequent entities mixed into every
  batch, once with pre-training documents in their places; both are then QA-fine-tuned on a
  second third and asked about the last third (Allen-Zhu & Li, "Physics of Language Models
  3.1": extraction generalises to held-out entities only with QA mixed into pre-training).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from synknow.experiments.capacity_check import BIND_FACTOR, BITS_PER_PARAM, capacity_binds
from synknow.experiments.measures import MIN_BUCKET_TOKENS, MIN_SEEDS
from synknow.experiments.report import fmt
from synknow.experiments.seeds import summarise
from synknow.experiments.verdict import Precondition

__all__ = [
    "capacity_models",
    "rare_forgetting",
    "capacity_checks",
    "capacity_preconditions",
    "split_entities",
    "mix_batches",
    "qa_mix_checks",
    "qa_mix_preconditions",
    "UNBOUND_FORGETTING",
]

# Forgetting of rare known facts (accuracy, relative to the control) up to which a model counts
# as not evicting them: about the standard error of an accuracy over 200 facts (0.035) halved.
UNBOUND_FORGETTING = 0.02


# ------------------------------------------------------------------------------------------------
# Capacity-bound against unbound


def capacity_models(names: list[str], bound: str, unbound: str) -> tuple[str, str] | None:
    """The bound and the unbound model among the finished base sizes ``names`` (smallest
    first): the named ones, or the smallest and the largest."""
    if not names:
        return None
    return (bound if bound in names else names[0], unbound if unbound in names else names[-1])


def rare_forgetting(forgetting_by_bucket: dict[str, dict[str, float]]) -> tuple[float, float]:
    """Control-relative forgetting over the rarer half of the seen buckets (bucket keys are the
    bucket indices; ``"0"``, unseen, is left out), weighted by the facts known before in each;
    returns ``(forgetting, facts)`` (``(nan, 0)`` with no seen bucket)."""
    keys = sorted(int(k) for k in forgetting_by_bucket if k != "0")
    rare = keys[: math.ceil(len(keys) / 2)]
    facts = sum(forgetting_by_bucket[str(k)]["facts"] for k in rare)
    if facts <= 0:
        return float("nan"), 0.0
    total = sum(
        forgetting_by_bucket[str(k)]["facts"] * forgetting_by_bucket[str(k)]["forgetting"]
        for k in rare
    )
    return float(total / facts), float(facts)


def _rare(ladders: list[dict[str, Any]]) -> list[float]:
    vals = [rare_forgetting(lad["forgetting_by_bucket"])[0] for lad in ladders]
    return [v for v in vals if math.isfinite(v)]


def capacity_checks(
    bound: list[dict[str, Any]], unbound: list[dict[str, Any]]
) -> tuple[dict[str, bool], str]:
    """The prediction's checks from the ladders (one per seed) of both models: the bound model
    forgets rare known facts beyond the control, the unbound one does not, and the bound one
    forgets them more."""
    rb, ru = _rare(bound), _rare(unbound)
    if not rb or not ru:
        return {}, "no ladder of both models with facts known before in the rarer buckets"
    sb, su = summarise(rb), summarise(ru)
    lower = sb.ci[0] if sb.n >= 2 else sb.mean
    checks = {
        "bound model: rare known facts forgotten beyond the control (lower end of the interval "
        "over seeds > 0)": bool(lower > 0),
        f"unbound model: rare known facts not forgotten beyond the control (mean <= "
        f"{UNBOUND_FORGETTING})": bool(su.mean <= UNBOUND_FORGETTING),
        "bound model forgets rare known facts more than the unbound one (means)": bool(
            sb.mean > su.mean
        ),
    }
    text = (
        f"Forgetting of the known facts of the rarer half of the seen buckets, relative to the "
        f"control: bound {sb.describe()}, unbound {su.describe()}"
    )
    return checks, text


def capacity_preconditions(
    *,
    names: tuple[str, str],
    learnable_bits: float,
    params: tuple[int, int],
    unbound_stored_bits: float | None,
    fill: float,
    bound: list[dict[str, Any]],
    unbound: list[dict[str, Any]],
) -> list[Precondition]:
    """The bound model binds, the unbound one does not and holds at least ``fill`` of the
    learnable knowledge (E2's probes), both have the seeds, rare known facts and converged
    runs a forgetting comparison needs."""
    capacity = BITS_PER_PARAM * params[1]
    ratio = learnable_bits / capacity if capacity > 0 else float("nan")
    stored = (
        unbound_stored_bits / learnable_bits
        if unbound_stored_bits is not None and learnable_bits > 0
        else float("nan")
    )
    rare_facts = [rare_forgetting(lad["forgetting_by_bucket"])[1] for lad in bound + unbound]
    runs = bound + unbound
    return [
        Precondition(
            "two different base models", f"{names[0]} / {names[1]}", "differ", names[0] != names[1]
        ),
        dataclasses.replace(
            capacity_binds(learnable_bits, params[0]),
            name=f"bound model's capacity binds ({names[0]}: learnable / ({BITS_PER_PARAM:g} x "
            "params))",
        ),
        Precondition(
            f"unbound model's capacity covers the learnable knowledge ({names[1]}: learnable / "
            f"({BITS_PER_PARAM:g} x params))",
            f"{learnable_bits:.3g} / ({BITS_PER_PARAM:g} x {params[1]:,}) = {ratio:.3g}",
            f"<= {1 / BIND_FACTOR:g}",
            bool(ratio <= 1 / BIND_FACTOR),
        ),
        Precondition(
            "unbound model holds the learnable knowledge (E2 probe bits / learnable bits)",
            f"{stored:.3g}",
            f">= {fill:g}",
            bool(stored >= fill),
        ),
        Precondition.at_least(
            "seeds of each model (fewest)", min(len(bound), len(unbound)), MIN_SEEDS
        ),
        Precondition.at_least(
            "known facts of the rarer buckets per ladder (fewest)",
            int(min(rare_facts, default=0)),
            MIN_BUCKET_TOKENS,
        ),
        Precondition(
            "base runs converged (loss change over the last two evaluations)",
            f"{sum(bool(lad['converged']) for lad in runs)} of {len(runs)}",
            "all",
            bool(runs) and all(lad["converged"] for lad in runs),
        ),
    ]


# ------------------------------------------------------------------------------------------------
# Mixed QA pre-training


def split_entities(
    counts: np.ndarray, per_group: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``3 * per_group`` most frequent seen entities (ties broken at random; fewer when
    fewer are seen), shuffled and cut into thirds: QA mixed into pre-training, QA fine-tuning,
    held out."""
    c = np.asarray(counts)
    order = rng.permutation(c.size)
    ranked = order[np.argsort(-c[order], kind="stable")]
    top = ranked[: min(3 * per_group, int((c > 0).sum()))]
    top = rng.permutation(top)
    third = len(top) // 3
    return top[:third], top[third : 2 * third], top[2 * third : 3 * third]


def mix_batches(
    n_docs: int,
    n_qa: int,
    steps: int,
    batch_size: int,
    fraction: float,
    seed: int,
    *,
    mixed: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per step ``(document ids, QA ids)``. Both arms draw the same stream: with ``mixed``,
    ``round(batch_size * fraction)`` (at least 1) rows of every batch are QA sequences and the
    rest documents; without, those rows are further documents, so both see the same documents
    in the other rows and the same number of steps."""
    if not 0 < fraction < 1:
        raise ValueError(f"qa_mix_fraction must be in (0, 1), got {fraction}")
    if n_qa < 1 or n_docs < 1:
        raise ValueError(f"mixed QA needs documents and QA sequences, got {n_docs} and {n_qa}")
    per = max(1, round(batch_size * fraction))
    rng = np.random.default_rng([seed, 12])
    for _ in range(steps):
        docs = rng.integers(0, n_docs, size=batch_size)
        qa = rng.integers(0, n_qa, size=per)
        if mixed:
            yield docs[: batch_size - per], qa
        else:
            yield docs, np.zeros(0, dtype=np.int64)


def qa_mix_checks(per_seed: list[dict[str, Any]]) -> tuple[dict[str, bool], str]:
    """Held-out QA accuracy after QA fine-tuning, mixed against plain pre-training."""
    if not per_seed:
        return {}, "no mixed-QA run finished"
    diff = [r["mixed"]["answer_accuracy"] - r["plain"]["answer_accuracy"] for r in per_seed]
    sd = summarise(diff)
    lower = sd.ci[0] if sd.n >= 2 else sd.mean
    checks = {
        "held-out QA accuracy higher with QA mixed into pre-training (lower end of the interval "
        "over seeds of the difference > 0)": bool(lower > 0)
    }
    mixed = summarise([r["mixed"]["answer_accuracy"] for r in per_seed])
    plain = summarise([r["plain"]["answer_accuracy"] for r in per_seed])
    text = (
        f"QA answer accuracy on held-out entities after QA fine-tuning: mixed pre-training "
        f"{mixed.describe()}, plain {plain.describe()} (difference {sd.describe()})"
    )
    return checks, text


def qa_mix_preconditions(per_seed: list[dict[str, Any]]) -> list[Precondition]:
    """Seeds, held-out QA pairs, the held-out facts known in the pre-training format (else
    there is nothing to extract) and the format learned by both arms."""
    known = [
        min(r["mixed"]["statement_accuracy"], r["plain"]["statement_accuracy"]) for r in per_seed
    ]
    fmt_bits = [max(r["mixed"]["format_bits"], r["plain"]["format_bits"]) for r in per_seed]
    return [
        Precondition.at_least("seeds (corpus and init)", len(per_seed), MIN_SEEDS),
        Precondition.at_least(
            "held-out QA pairs (fewest over seeds)",
            min((r["heldout_pairs"] for r in per_seed), default=0),
            MIN_BUCKET_TOKENS,
        ),
        Precondition(
            "held-out facts known in the pre-training format (accuracy, lower of both arms)",
            fmt(min(known)) if known else "-",
            ">= 0.5 in every seed",
            bool(known) and min(known) >= 0.5,
        ),
        Precondition(
            "QA format learned by both arms (format loss after QA fine-tuning, bits/token)",
            fmt(max(fmt_bits)) if fmt_bits else "-",
            "<= 0.5 in every seed",
            bool(fmt_bits) and max(fmt_bits) <= 0.5,
        ),
    ]
