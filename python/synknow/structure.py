"""The two-part code of a training corpus and its structure function (docs/codelength.md).

A model stores the syntax parameters and the ``k`` most frequent entities; the data are then coded
with the maximum-likelihood syntax parameters, stored entities by their empirical frequency, and
every document about an unstored entity as "unstored" followed by its name and its stated values.
``h(C)`` is the least data code length over models of at most ``C`` bits.

>>> import synknow
>>> corpus = synknow.sample(synknow.presets.bios(), 2000, seed=3)
>>> sf = synknow.structure_function(corpus, 2000)
>>> bool(np.all(np.diff(sf.model_bits) > 0)), int(sf.k[0]), int(sf.k[-1]) == corpus.n_entities
(True, 0, True)
>>> bool(sf.h(sf.model_bits[-1]) == sf.data_bits.min())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synknow import _core
from synknow.codelength import Table, _check_corpus, _latents, _prefix
from synknow.corpus import Corpus

__all__ = ["StructureFunction", "structure_function"]


@dataclass(frozen=True)
class StructureFunction:
    """Model and data bits of the two-part codes storing the top-``k`` entities, ``k = 0..K``.

    Attributes:
        k: number of stored entities, ``0..K``.
        model_bits: ``M(S_k)``: ``(d_syn/2) log2 N`` plus, per stored entity, its name
            (``log2 U``), its stated values (``-log2 H_a``) and its frequency (``log2 N``).
        data_bits: ``D(S_k)``: the corpus coded with the model.
        total: ``M + D``, the two-part code length.
        entity_order: entity ids in storage order (count descending, ties by id).
        entity_counts: their counts in the training corpus.
        n_train: training documents ``N``.
    """

    k: np.ndarray
    model_bits: np.ndarray
    data_bits: np.ndarray
    total: np.ndarray
    entity_order: np.ndarray
    entity_counts: np.ndarray
    n_train: int

    @property
    def mdl_index(self) -> int:
        """``k`` of the shortest two-part code (the MDL point)."""
        return int(np.argmin(self.total))

    @property
    def mdl_bits(self) -> float:
        return float(self.total[self.mdl_index])

    @property
    def mdl_model_bits(self) -> float:
        return float(self.model_bits[self.mdl_index])

    def h(self, capacity: float | np.ndarray) -> np.ndarray | float:
        """``h(C) = min D(S_k)`` over ``M(S_k) <= C`` (``inf`` below the syntax-only model)."""
        c = np.asarray(capacity, dtype=np.float64)
        # Model bits increase with k, so the feasible set is a prefix of k.
        feasible = np.searchsorted(self.model_bits, c, side="right")
        best = np.concatenate([[np.inf], np.minimum.accumulate(self.data_bits)])
        out = best[feasible]
        return float(out) if out.ndim == 0 else out

    def table(self) -> Table:
        """The curve as a :class:`~synknow.codelength.Table` (``to_csv`` ready)."""
        return Table(
            {
                "k": self.k,
                "model_bits": self.model_bits,
                "data_bits": self.data_bits,
                "total_bits": self.total,
            }
        )


def structure_function(corpus: Corpus, n_train: int | None = None) -> StructureFunction:
    """The two-part code and structure function (docs/codelength.md#structure-function) of the
    first ``n_train`` documents (default: all), from the latent records.

    An entity's model cost charges only the attributes stated about it in the training corpus
    (a value never stated cannot be learnt); with ``m = A`` that is every attribute.
    """
    corpus = _check_corpus(corpus)
    n = _prefix(corpus, n_train, "n_train")
    raw = _core.structure_function(corpus.config.to_json(), *_latents(corpus), n)
    model_bits = raw["model_bits"]
    data_bits = raw["data_bits"]
    return StructureFunction(
        k=np.arange(len(model_bits)),
        model_bits=model_bits,
        data_bits=data_bits,
        total=model_bits + data_bits,
        entity_order=raw["order"],
        entity_counts=raw["counts"],
        n_train=int(raw["n_docs"]),
    )
