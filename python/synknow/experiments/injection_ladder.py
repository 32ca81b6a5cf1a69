"""E4's injection ladder and its control run.

One continued-pre-training run holds new entities at every repetition count at once (``n_new``
entities per count ``r``, each stated in ``r`` documents), the new documents a small share of
every batch and the rest pre-training documents; a control run takes exactly the same steps with
pre-training documents in the new documents' places. Both continue at the pre-training
schedule's final learning rate (re-warmed linearly over the warm-up steps), not at a fresh
constant rate. Forgetting is the control's accuracy minus the injected run's, on the old facts
the model knew before (:func:`synknow.experiments.measures.control_relative_forgetting`), so
drift that any continued training causes is not charged to the injection, and every repetition
count sees the same optimiser steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synknow.experiments.measures import control_relative_forgetting
from synknow.experiments.presets import FinetuneSettings
from synknow.experiments.probes import ValueTargets, sentence_probes, value_stats

__all__ = ["LadderTools", "pretraining_final_lr", "ladder_batches", "entity_probes", "run_ladder"]


@dataclass(frozen=True)
class LadderTools:
    """The document and training helpers of :mod:`synknow.experiments.finetune`, handed in by
    it (this module stays below it in the import order)."""

    new_entities: Callable[..., tuple[np.ndarray, np.ndarray]]
    render_documents: Callable[..., list[list[int]]]
    corpus_documents: Callable[..., list[list[int]]]
    finetune: Callable[..., list[float]]


def pretraining_final_lr(lr: float) -> float:
    """The rate the pre-training schedule ends at (cosine decay to ``min_lr_ratio`` x ``lr``,
    docs/training.md)."""
    from synknow.train.config import OptimConfig

    return float(lr) * OptimConfig().min_lr_ratio


def ladder_batches(
    new_docs: list[list[int]],
    old_docs: list[list[int]],
    batch_size: int,
    new_fraction: float,
    rng: np.random.Generator,
) -> tuple[list[list[list[int]]], list[list[list[int]]]]:
    """``(treated, control)`` batches of equal number and size: each treated batch holds
    ``round(batch_size * new_fraction)`` (at least 1) shuffled new documents and pre-training
    documents for the rest; the control batch has the same pre-training documents and further
    pre-training documents (from ``old_docs``, in order) in the new documents' places."""
    if not 0 < new_fraction < 1:
        raise ValueError(f"ladder_new_fraction must be in (0, 1), got {new_fraction}")
    per = max(1, round(batch_size * new_fraction))
    steps = math.ceil(len(new_docs) / per)
    need = steps * batch_size
    if len(old_docs) < need:
        raise ValueError(f"the ladder needs {need} pre-training documents, got {len(old_docs)}")
    order = rng.permutation(len(new_docs))
    treated, control = [], []
    k = 0
    for i in range(steps):
        new = [new_docs[j] for j in order[i * per : (i + 1) * per]]
        shared = old_docs[k : k + batch_size - len(new)]
        k += batch_size - len(new)
        extra = old_docs[k : k + len(new)]
        k += len(new)
        treated.append(new + shared)
        control.append(extra + shared)
    return treated, control


def entity_probes(corpus: Any, names: np.ndarray, values: np.ndarray, seed: int) -> ValueTargets:
    """Probes of every attribute of the given entities, three templates each."""
    a_count = corpus.config.n_attributes
    per = 3
    attr = np.tile(np.repeat(np.arange(a_count), per), len(names))
    ent = np.repeat(np.arange(len(names)), a_count * per)
    return sentence_probes(
        corpus,
        names[ent],
        values[ent, attr],
        attr,
        ent,
        np.zeros(len(ent), dtype=np.int64),
        np.random.default_rng([seed, 7]),
    )


def run_ladder(
    base: Any,
    corpus: Any,
    old_probes: ValueTargets,
    known_before: np.ndarray,
    s: FinetuneSettings,
    tools: LadderTools,
    *,
    n_train: int,
    pretrain_lr: float,
    warmup_steps: int,
    seed: int,
) -> dict[str, Any]:
    """Both runs from a copy of ``base``; new-fact accuracy per repetition count and the
    control-relative forgetting per bucket of the facts known before."""
    new_entities, render = tools.new_entities, tools.render_documents
    corpus_documents, finetune = tools.corpus_documents, tools.finetune
    rng = np.random.default_rng([seed, 8])
    reps = list(s.repetitions)
    names, values = new_entities(corpus, s.n_new * len(reps), rng)
    rung = np.repeat(np.arange(len(reps)), s.n_new)
    new_docs: list[list[int]] = []
    for i, r in enumerate(reps):
        new_docs += render(corpus, names[rung == i], values[rung == i], r, rng)
    per = max(1, round(s.batch_size * s.ladder_new_fraction))
    steps = math.ceil(len(new_docs) / per)
    old = rng.integers(0, n_train, size=steps * s.batch_size)
    treated_b, control_b = ladder_batches(
        new_docs, corpus_documents(corpus, old), s.batch_size, s.ladder_new_fraction, rng
    )
    lr = pretraining_final_lr(pretrain_lr)
    probes = entity_probes(corpus, names, values, seed)
    results: dict[str, Any] = {"steps": len(treated_b), "lr": lr, "new_docs": len(new_docs)}
    credit = {}
    for tag, batches in (("treated", treated_b), ("control", control_b)):
        model = copy.deepcopy(base)
        finetune(model, batches, lr, warmup_steps=warmup_steps)
        credit[tag] = value_stats(model, old_probes)["credit"]
        if tag == "treated":
            new_credit = value_stats(model, probes)["credit"]
            results["new_accuracy_by_r"] = {
                str(r): float(new_credit[rung[probes.entity] == i].mean())
                for i, r in enumerate(reps)
            }
    forgetting = control_relative_forgetting(
        known_before, credit["control"], credit["treated"], old_probes.bucket
    )
    results["forgetting_by_bucket"] = {str(k): v for k, v in forgetting.items()}
    kb = np.asarray(known_before, dtype=bool)
    results["known_before"] = int(kb.sum())
    results["forgetting"] = (
        float(credit["control"][kb].mean() - credit["treated"][kb].mean()) if kb.any() else None
    )
    return results
