"""The capacity-limited Bayes reference ``L(n, C)`` (docs/capacity.md), in bits.

The Bayes learner of :mod:`synknow.codelength` with a knowledge budget: after ``n`` training
documents it keeps its syntax counts but stores only the most frequent entities whose two-part
model bits fit in ``C`` (names and revealed values, priced as in :mod:`synknow.structure`);
every other entity is predicted from the prior. With ``C = 0`` it is the prior-only predictor,
with ``C = inf`` the full Bayes predictor: its per-document code lengths are then those of
:func:`synknow.bayes_curve` on the same test split.

>>> import synknow
>>> from synknow.capacity import capacity_limited_loss
>>> corpus = synknow.sample(synknow.presets.bios(alpha=0.5), 1200, seed=4)
>>> loss = capacity_limited_loss(corpus, 1000, [1000], [0.0, 2e3, 2e4, float("inf")],
...                              progress=False)
>>> loss["n_stored"].tolist() == sorted(loss["n_stored"].tolist())
True
>>> curve = synknow.bayes_curve(corpus, 1000, [1000], progress=False)
>>> bool(abs(loss["bits_per_token"][-1] - curve["bits_per_token"][0]) < 1e-9)
True
>>> bool(np.all(np.diff(loss["expected_bits_per_doc"]) <= 0))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synknow import _core
from synknow.codelength import Progress, Table, _Bar, _split, _tokens
from synknow.corpus import Corpus

__all__ = ["CapacityLoss", "capacity_limited_loss"]

PARTS = ("syntax", "name", "value")


class CapacityLoss(Table):
    """``L(n, C)``: one row per training prefix ``n`` and capacity ``C`` (capacities vary fastest).

    Columns:

    * ``n_train``, ``capacity_bits``: the prefix length ``n`` and the budget ``C``;
    * ``n_entities``: entities seen in the prefix, ``K(n)``; ``n_stored``: ``|S|``;
      ``model_bits``: ``M(S)`` (it exceeds ``C`` only when ``S`` is empty: the syntax term
      ``(d_syn/2) log2 n`` is always paid); ``full_model_bits``: ``M`` of all ``K(n)`` entities,
      the least capacity that gives the full Bayes predictor;
    * ``stored_doc_fraction``: test documents whose entity is stored;
    * realised on the test split: ``total_bits``, ``bits_per_token`` (over every token of the
      test documents, BOS and EOS included, as in :class:`synknow.BayesCurve`),
      ``bits_per_doc`` and ``{syntax,name,value}_bits_per_doc`` (closed-form parts: syntax is
      the attribute order and templates, name is the entity choice and its name);
    * expected for one document drawn from the full Bayes predictive given the prefix:
      ``expected_bits_per_doc`` and ``expected_{syntax,name,value}_bits_per_doc``. It is
      non-increasing in ``C``; the realised split is a sample of it.

    Also: ``test_start``, ``n_test``, ``n_tokens`` (tokens of the test split), ``checkpoints``,
    ``capacities_bits`` and, when kept, ``doc_bits`` (checkpoints x capacities x test documents).
    """

    def __init__(self, raw: Mapping[str, Any], n_test: int):
        self.test_start: int = int(raw["test_start"])
        self.n_test = n_test
        self.n_tokens: int = int(raw["n_tokens"])
        self.checkpoints: np.ndarray = np.asarray(raw["checkpoints"], dtype=np.int64)
        self.capacities_bits: np.ndarray = np.asarray(raw["capacities_bits"], dtype=np.float64)
        self.doc_bits: np.ndarray | None = raw.get("doc_bits")
        n_cap = len(self.capacities_bits)
        part_bits = np.asarray(raw["part_bits"]).reshape(-1, len(PARTS))
        expected = np.asarray(raw["expected_part_bits"]).reshape(-1, len(PARTS))
        total = part_bits.sum(axis=1)
        cols: dict[str, np.ndarray] = {
            "n_train": np.repeat(self.checkpoints, n_cap),
            "capacity_bits": np.tile(self.capacities_bits, len(self.checkpoints)),
            "n_entities": np.repeat(np.asarray(raw["n_entities"], dtype=np.int64), n_cap),
            "n_stored": np.asarray(raw["n_stored"], dtype=np.int64).reshape(-1),
            "model_bits": np.asarray(raw["model_bits"]).reshape(-1),
            "full_model_bits": np.repeat(np.asarray(raw["full_model_bits"]), n_cap),
            "stored_doc_fraction": np.asarray(raw["stored_docs"]).reshape(-1) / n_test,
            "total_bits": total,
            "bits_per_token": total / self.n_tokens,
            "bits_per_doc": total / n_test,
        }
        for p, part in enumerate(PARTS):
            cols[f"{part}_bits_per_doc"] = part_bits[:, p] / n_test
        cols["expected_bits_per_doc"] = expected.sum(axis=1)
        for p, part in enumerate(PARTS):
            cols[f"expected_{part}_bits_per_doc"] = expected[:, p]
        super().__init__(cols)

    def at(self, n_train: int) -> Table:
        """The rows of one training prefix length, as a :class:`Table` over the capacities."""
        sel = self["n_train"] == n_train
        if not sel.any():
            raise KeyError(f"n_train={n_train} is not a checkpoint: {self.checkpoints.tolist()}")
        return Table({name: col[sel] for name, col in self.to_dict().items()})


def _capacities(capacities_bits: Sequence[float] | np.ndarray) -> list[float]:
    caps = np.asarray(capacities_bits)
    if caps.ndim != 1 or caps.size == 0 or caps.dtype.kind not in "iuf":
        raise ValueError(
            f"capacities_bits must be a non-empty list of numbers, got {capacities_bits!r}"
        )
    caps = caps.astype(np.float64)
    if np.isnan(caps).any():
        raise ValueError(f"capacities_bits must not contain NaN, got {caps.tolist()}")
    if caps.min() < 0:
        raise ValueError(f"capacities_bits must be >= 0 bits, got {float(caps.min())}")
    if np.any(np.diff(caps) <= 0):
        raise ValueError(f"capacities_bits must be strictly increasing, got {caps.tolist()}")
    return [float(c) for c in caps]


def capacity_limited_loss(
    corpus: Corpus,
    n_train: int,
    checkpoints: Sequence[int] | np.ndarray,
    capacities_bits: Sequence[float] | np.ndarray,
    *,
    n_test: int | None = None,
    keep_doc_bits: bool = False,
    threads: int | None = None,
    progress: Progress = True,
) -> CapacityLoss:
    """``L(n, C)`` for each prefix length ``n`` in ``checkpoints`` and each budget ``C`` (bits).

    The split is :func:`synknow.bayes_curve`'s: training prefixes are the first ``n`` documents
    (``checkpoints`` strictly increasing, each in ``[0, n_train]``), the test split is the last
    ``n_test`` documents (default: all documents after the first ``n_train``), and each test
    document is scored on its own against the frozen prefix state. ``capacities_bits`` must be
    strictly increasing and ``>= 0``; ``inf`` stores every entity. ``keep_doc_bits`` keeps the
    code length of every test document at every ``(n, C)`` (``checkpoints x capacities x
    n_test`` floats). The work runs in Rust without the GIL, on ``threads`` threads (default:
    all cores).
    """
    corpus, n_train, n_test, cps = _split(corpus, n_train, n_test, checkpoints)
    caps = _capacities(capacities_bits)
    tokens, offsets = _tokens(corpus)
    bar = _Bar(progress, "capacity-limited loss", "doc")
    try:
        raw = _core.capacity_limited_loss(
            corpus.config.to_json(),
            tokens,
            offsets,
            n_train,
            int(n_test),
            [int(c) for c in cps],
            caps,
            bool(keep_doc_bits),
            threads,
            bar.hook,
        )
    finally:
        bar.close()
    return CapacityLoss(raw, int(n_test))
