"""Exact Bayesian code lengths of a corpus (docs/codelength.md#formulas), in bits.

The Bayes learner knows the configuration but neither ``theta`` nor the entities; its code length
is the marginal likelihood of the corpus. Two independent routes compute it:

* :func:`code_lengths`: the exact posterior predictive of every token, from the token stream
  alone (docs/codelength.md#per-token);
* :func:`closed_form_per_doc` / :func:`closed_form_total`: the closed forms
  (docs/codelength.md#per-document and #whole-corpus), from the latent records the sampler wrote.

They agree to rounding (the tests hold them to 1e-9 relative). :func:`bayes_curve` gives the
Bayes-optimal learning curve (docs/codelength.md#learning-curve) on the test split.

>>> import synknow
>>> corpus = synknow.sample(synknow.presets.bios(), 500, seed=1)
>>> cl = synknow.code_lengths(corpus)
>>> abs(cl.total - synknow.closed_form_total(corpus)) < 1e-9 * cl.total
True
>>> bool(np.allclose(cl.per_doc, cl.per_token_sums()))
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synknow import _core
from synknow.corpus import ROLE_NAMES, Corpus
from synknow.fsutil import atomic_write_text
from synknow.tokens import bucket_bounds, frequency_bucket, log_grid

__all__ = [
    "BayesCurve",
    "CodeLengths",
    "Table",
    "bayes_curve",
    "closed_form_parts",
    "closed_form_per_doc",
    "closed_form_total",
    "code_lengths",
    "bucket_bounds",
    "frequency_bucket",
    "log_checkpoints",
    "predictive_distribution",
]

Progress = bool | Callable[[int, int], None]


# ------------------------------------------------------------------------------------------------
# helpers


def _check_corpus(corpus: Any) -> Corpus:
    if not isinstance(corpus, Corpus):
        raise TypeError(f"expected a synknow.Corpus, got {type(corpus).__name__}")
    return corpus


def _split(
    corpus: Any, n_train: int, n_test: int | None, checkpoints: Sequence[int] | np.ndarray
) -> tuple[Corpus, int, int, np.ndarray]:
    """The learning-curve split, checked: training prefixes ``checkpoints`` of the first
    ``n_train`` documents, the test split the last ``n_test`` (default: all after ``n_train``).
    Shared by every function that scores test documents against frozen prefixes."""
    corpus = _check_corpus(corpus)
    n_train = _prefix(corpus, n_train, "n_train")
    if n_test is None:
        n_test = corpus.n_docs - n_train
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or n_test < 1:
        raise ValueError(f"n_test must be an integer >= 1, got {n_test!r}")
    cps = np.asarray(checkpoints)
    if cps.ndim != 1 or cps.size == 0 or cps.dtype.kind not in "iu":
        raise ValueError(f"checkpoints must be a non-empty list of integers, got {checkpoints!r}")
    if cps.min() < 0:
        raise ValueError(f"checkpoints must be >= 0, got {int(cps.min())}")
    return corpus, n_train, int(n_test), cps


def _prefix(corpus: Corpus, n_docs: int | None, name: str = "n_docs") -> int:
    if n_docs is None:
        return corpus.n_docs
    if isinstance(n_docs, bool) or not isinstance(n_docs, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {n_docs!r}")
    if not 0 <= n_docs <= corpus.n_docs:
        raise ValueError(f"{name}={n_docs} out of range [0, {corpus.n_docs}]")
    return int(n_docs)


def _flat(a: np.ndarray, dtype: type) -> np.ndarray:
    """A 1-D view (no copy for the corpus's own arrays, memory-mapped or not)."""
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


Latents = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _latents(corpus: Corpus) -> Latents:
    """The latent records in the order the bindings take them (a fixed-length tuple, so that
    ``*_latents(corpus)`` type-checks against ``_core``'s signatures)."""
    return (
        _flat(corpus.doc_entity, np.uint32),
        _flat(corpus.sentence_attribute, np.uint16),
        _flat(corpus.sentence_template, np.uint16),
        _flat(corpus.entity_names, np.uint32),
        _flat(corpus.entity_values, np.uint32),
    )


def _tokens(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    tokens = corpus.tokens
    if tokens.dtype not in (np.uint16, np.uint32):
        raise ValueError(f"tokens must be uint16 or uint32, got {tokens.dtype}")
    return np.ascontiguousarray(tokens), _flat(corpus.doc_offsets, np.uint64)


class _Bar:
    """A progress callback: a tqdm bar (shown after 1 s), a user callable, or nothing."""

    def __init__(self, progress: Progress, desc: str, unit: str):
        self.bar = None
        self.callback: Callable[[int, int], None] | None = None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=None, desc=desc, unit=unit, unit_scale=True, delay=1.0)
        elif callable(progress):
            self.callback = progress
        elif progress is not False and progress is not None:
            raise ValueError(f"progress must be a bool or a callable, got {progress!r}")

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            if self.bar.total != total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)
        elif self.callback is not None:
            self.callback(done, total)

    @property
    def hook(self) -> Callable[[int, int], None] | None:
        return self if (self.bar is not None or self.callback is not None) else None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------------
# per-token code lengths


class CodeLengths:
    """Exact Bayes code lengths of a corpus (bits).

    Attributes:
        per_token: bits of every token, aligned with ``corpus.tokens`` (``None`` when not kept).
        per_doc: bits of every document.
        total: total bits (compensated sum).
        by_role: total bits by role name (``special``, ``syntax``, ``name``, ``value``).
        tokens_by_role: number of tokens by role name.
        n_entities: entities seen in the corpus.

    A token's bits include whatever parse uncertainty it resolves: the first token of a
    sentence pays for the attribute and most of the template choice, a value token for the
    value (and for any parse ambiguity that survives until it).
    """

    def __init__(self, raw: Mapping[str, Any], doc_offsets: np.ndarray):
        self.per_token: np.ndarray | None = raw.get("per_token")
        self.per_doc: np.ndarray = raw["per_doc"]
        self.total: float = float(raw["total"])
        self.by_role: dict[str, float] = {
            r: float(b) for r, b in zip(ROLE_NAMES, raw["bits_by_role"], strict=True)
        }
        self.tokens_by_role: dict[str, int] = {
            r: int(n) for r, n in zip(ROLE_NAMES, raw["tokens_by_role"], strict=True)
        }
        self.n_entities: int = int(raw["n_entities"])
        self._offsets = doc_offsets

    @property
    def n_tokens(self) -> int:
        return sum(self.tokens_by_role.values())

    @property
    def n_docs(self) -> int:
        return len(self.per_doc)

    @property
    def bits_per_token(self) -> float:
        """Total bits over all tokens (BOS and EOS included, as a transformer's loss counts)."""
        return self.total / max(self.n_tokens, 1)

    @property
    def bits_per_doc(self) -> float:
        return self.total / max(self.n_docs, 1)

    @property
    def bits_per_token_by_role(self) -> dict[str, float]:
        """Bits per token of each role (a role's bits over its own token count)."""
        return {r: self.by_role[r] / n if n else 0.0 for r, n in self.tokens_by_role.items()}

    def per_token_sums(self) -> np.ndarray:
        """Per-document sums of ``per_token`` (equal to ``per_doc``)."""
        if self.per_token is None:
            raise ValueError("per-token code lengths were not kept (per_token=False)")
        starts = self._offsets[:-1].astype(np.int64)
        if len(starts) == 0:
            return np.zeros(0)
        return np.add.reduceat(self.per_token, starts) if len(self.per_token) else np.zeros(0)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for printing or JSON."""
        return {
            "total_bits": self.total,
            "n_docs": self.n_docs,
            "n_tokens": self.n_tokens,
            "n_entities": self.n_entities,
            "bits_per_token": self.bits_per_token,
            "bits_per_doc": self.bits_per_doc,
            "bits_by_role": dict(self.by_role),
            "bits_per_token_by_role": self.bits_per_token_by_role,
            "tokens_by_role": dict(self.tokens_by_role),
        }

    def __repr__(self) -> str:
        return (
            f"CodeLengths(total={self.total:.6g} bits, n_docs={self.n_docs}, "
            f"bits_per_token={self.bits_per_token:.4f})"
        )


def code_lengths(
    corpus: Corpus,
    *,
    per_token: bool = True,
    threads: int | None = None,
    progress: Progress = True,
) -> CodeLengths:
    """Exact per-token Bayes code lengths of the whole corpus (docs/codelength.md#per-token).

    Computed from the token stream alone. The work is split into one chunk per thread (a fast
    parse-and-learn pass gives each chunk its starting state); the result is bit-identical for
    every ``threads``. ``per_token=False`` skips the per-token array (8 bytes per token) and keeps
    the sums. Tokens that the model cannot produce (ids outside the vocabulary, broken
    templates, a value that contradicts an earlier statement, ...) raise ``ValueError`` naming
    the document and token.
    """
    corpus = _check_corpus(corpus)
    tokens, offsets = _tokens(corpus)
    bar = _Bar(progress, "code lengths", "doc")
    try:
        raw = _core.code_lengths(
            corpus.config.to_json(), tokens, offsets, per_token, threads, bar.hook
        )
    finally:
        bar.close()
    return CodeLengths(raw, offsets)


def closed_form_per_doc(corpus: Corpus, n_docs: int | None = None) -> np.ndarray:
    """Bits of each of the first ``n_docs`` documents given the earlier ones, from the latent
    records (entity, attributes, templates, entity table): docs/codelength.md#per-document."""
    corpus = _check_corpus(corpus)
    n = _prefix(corpus, n_docs)
    return _core.closed_form_per_doc(corpus.config.to_json(), *_latents(corpus), n)


def closed_form_parts(corpus: Corpus, n_docs: int | None = None) -> dict[str, float]:
    """The whole-corpus closed form (docs/codelength.md#whole-corpus) term by term, in bits:
    ``entities`` (-log2 EPPF), ``names``, ``templates``, ``attribute_order``, ``values`` and their
    ``total``."""
    corpus = _check_corpus(corpus)
    n = _prefix(corpus, n_docs)
    return dict(_core.closed_form_total(corpus.config.to_json(), *_latents(corpus), n))


def closed_form_total(corpus: Corpus, n_docs: int | None = None) -> float:
    """The code length of the first ``n_docs`` documents (default: all) from counts alone, in bits
    (docs/codelength.md#whole-corpus); invariant under any permutation of the documents."""
    return closed_form_parts(corpus, n_docs)["total"]


def predictive_distribution(corpus: Corpus, positions: Iterable[int] | int) -> np.ndarray:
    """The full predictive distribution over the vocabulary of the token at each position
    (indices into ``corpus.tokens``): shape ``(len(positions), vocab_size)``.

    A test and inspection entry point (it replays the corpus up to the last position); the
    rows sum to 1 and ``row[token]`` equals ``2 ** -per_token[position]``.
    """
    corpus = _check_corpus(corpus)
    pos = np.atleast_1d(np.asarray(positions))
    if pos.size and (pos.dtype.kind not in "iu" or pos.min() < 0):
        raise ValueError("positions must be non-negative integers")
    tokens, offsets = _tokens(corpus)
    return _core.predictive_distributions(
        corpus.config.to_json(), tokens, offsets, pos.astype(np.uint64).reshape(-1)
    )


# ------------------------------------------------------------------------------------------------
# tables


class Table:
    """A small column table: equal-length numpy columns by name, with ``to_csv``.

    >>> t = Table({"n": np.array([1, 2]), "bits": np.array([0.5, 0.25])})
    >>> len(t), t.columns, float(t["bits"][1])
    (2, ['n', 'bits'], 0.25)
    """

    def __init__(self, columns: Mapping[str, Sequence[Any] | np.ndarray]):
        self._cols = {name: np.asarray(col) for name, col in columns.items()}
        lengths = {len(c) for c in self._cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns must have equal lengths, got {sorted(lengths)}")

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._cols[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self._cols)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def to_dict(self) -> dict[str, np.ndarray]:
        return dict(self._cols)

    def rows(self) -> list[dict[str, Any]]:
        return [{k: v[i].item() for k, v in self._cols.items()} for i in range(len(self))]

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Writes the table as CSV (atomically: temp file + rename); returns the path."""
        lines = [",".join(self._cols)]
        for i in range(len(self)):
            lines.append(",".join(_csv_cell(c[i]) for c in self._cols.values()))
        return atomic_write_text(path, "\n".join(lines) + "\n")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} rows: {', '.join(self._cols)})"


def _csv_cell(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return str(x.item() if isinstance(x, np.generic) else x)


# ------------------------------------------------------------------------------------------------
# Bayes learning curve


def log_checkpoints(n_train: int, n_points: int = 20, start: int = 100) -> np.ndarray:
    """``n_points`` distinct log-spaced prefix lengths from ``start`` to ``n_train``.

    >>> log_checkpoints(10_000, 5).tolist()
    [100, 316, 1000, 3162, 10000]
    """
    if n_train < 1 or start < 1 or n_points < 1:
        raise ValueError("n_train, start and n_points must be >= 1")
    return log_grid(min(start, n_train), n_train, n_points, integer=True)


class BayesCurve(Table):
    """The Bayes learning curve: one row per training prefix length
    (docs/codelength.md#learning-curve).

    Columns: ``n_train``; ``bits_per_token`` (all tokens of the test documents, BOS and EOS
    included); ``bits_per_doc``; per role ``{role}_bits_per_doc`` and ``{role}_bits_per_token``
    (bits of that role over tokens of that role); ``knowledge_bits_per_doc`` (name + value
    bits) and ``knowledge_bits_per_token`` (the same over all tokens); ``new_entity_fraction``
    (test documents whose entity is unseen in the prefix).

    Also: ``buckets`` (a :class:`Table`, one row per checkpoint and entity-frequency bucket),
    ``doc_bits`` (checkpoints x test documents), ``doc_bits_by_role`` (x 4 roles),
    ``entity_count`` (training count of each test document's entity at each checkpoint) and
    ``tokens_by_role`` (test documents x 4).
    """

    def __init__(self, raw: Mapping[str, Any], alpha: float):
        self.alpha = alpha
        self.test_start: int = int(raw["test_start"])
        self.checkpoints: np.ndarray = np.asarray(raw["checkpoints"], dtype=np.int64)
        self.doc_bits_by_role: np.ndarray = raw["doc_bits"]
        self.doc_bits: np.ndarray = self.doc_bits_by_role.sum(axis=2)
        self.entity_count: np.ndarray = raw["entity_count"]
        self.tokens_by_role: np.ndarray = raw["tokens_by_role"]
        self.n_test = self.doc_bits.shape[1]
        super().__init__(self._per_checkpoint())
        self.buckets = Table(self._per_bucket())

    def _per_checkpoint(self) -> dict[str, np.ndarray]:
        tokens = self.tokens_by_role.sum(axis=0).astype(np.float64)
        n_tokens = tokens.sum()
        bits = self.doc_bits_by_role.sum(axis=1)  # (C, 4)
        cols: dict[str, np.ndarray] = {
            "n_train": self.checkpoints,
            "bits_per_token": bits.sum(axis=1) / n_tokens,
            "bits_per_doc": bits.sum(axis=1) / self.n_test,
        }
        for r, role in enumerate(ROLE_NAMES[1:], start=1):
            cols[f"{role}_bits_per_doc"] = bits[:, r] / self.n_test
            cols[f"{role}_bits_per_token"] = bits[:, r] / max(tokens[r], 1.0)
        knowledge = bits[:, 2] + bits[:, 3]
        cols["knowledge_bits_per_doc"] = knowledge / self.n_test
        cols["knowledge_bits_per_token"] = knowledge / n_tokens
        cols["new_entity_fraction"] = (self.entity_count == 0).mean(axis=1)
        return cols

    def _per_bucket(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            k: []
            for k in (
                "n_train",
                "bucket",
                "count_lo",
                "count_hi",
                "n_docs",
                "n_tokens",
                "bits_per_token",
                "bits_per_doc",
                "syntax_bits_per_token",
                "name_bits_per_token",
                "value_bits_per_token",
                "knowledge_bits_per_doc",
            )
        }
        doc_tokens = self.tokens_by_role.astype(np.float64)
        for c, n in enumerate(self.checkpoints):
            buckets = frequency_bucket(self.entity_count[c])
            for b in np.unique(buckets):
                sel = buckets == b
                bits = self.doc_bits_by_role[c, sel].sum(axis=0)
                toks = doc_tokens[sel].sum(axis=0)
                lo, hi = bucket_bounds(int(b))
                out["n_train"].append(int(n))
                out["bucket"].append(int(b))
                out["count_lo"].append(lo)
                out["count_hi"].append(hi)
                out["n_docs"].append(int(sel.sum()))
                out["n_tokens"].append(int(toks.sum()))
                out["bits_per_token"].append(float(bits.sum() / toks.sum()))
                out["bits_per_doc"].append(float(bits.sum() / sel.sum()))
                for r, role in ((1, "syntax"), (2, "name"), (3, "value")):
                    out[f"{role}_bits_per_token"].append(float(bits[r] / max(toks[r], 1.0)))
                out["knowledge_bits_per_doc"].append(float((bits[2] + bits[3]) / sel.sum()))
        return out

    def to_csv(
        self,
        path: str | os.PathLike[str],
        buckets_path: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Writes the per-checkpoint table (and, if given, the per-bucket table)."""
        if buckets_path is not None:
            self.buckets.to_csv(buckets_path)
        return super().to_csv(path)


def bayes_curve(
    corpus: Corpus,
    n_train: int,
    checkpoints: Sequence[int] | np.ndarray,
    *,
    n_test: int | None = None,
    threads: int | None = None,
    progress: Progress = True,
) -> BayesCurve:
    """The Bayes learning curve in one pass over the training stream
    (docs/codelength.md#learning-curve).

    Training prefixes are the first ``n`` documents for each ``n`` in ``checkpoints`` (strictly
    increasing, each in ``[0, n_train]``); the test split is the last ``n_test`` documents
    (default: all documents after the first ``n_train``). Each test document is scored on its
    own against the frozen prefix state. Works on memory-mapped corpora larger than RAM: the
    training stream is read once, in order.

    >>> import synknow
    >>> corpus = synknow.sample(synknow.presets.bios(), 3000, seed=2)
    >>> curve = synknow.bayes_curve(corpus, 2000, [10, 100, 1000, 2000], progress=False)
    >>> bool(np.all(np.diff(curve["bits_per_doc"]) < 0))
    True
    """
    corpus, n_train, n_test, cps = _split(corpus, n_train, n_test, checkpoints)
    tokens, offsets = _tokens(corpus)
    bar = _Bar(progress, "bayes curve", "doc")
    try:
        raw = _core.bayes_curve(
            corpus.config.to_json(),
            tokens,
            offsets,
            n_train,
            int(n_test),
            [int(c) for c in cps],
            threads,
            bar.hook,
        )
    finally:
        bar.close()
    return BayesCurve(raw, corpus.config.alpha)
