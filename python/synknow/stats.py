"""Corpus statistics (Heaps, Zipf, counts of counts, roles) against the PYCRP theory.

The laws are stated in docs/model.md, "4. What the theory predicts". They have no offset, so
each is a straight line in log-log space, and every fit here is an ordinary least-squares line
through ``(log x, log y)`` (:func:`fit_loglog`, returning a :class:`LogLogFit`). Losses, which
decay towards a floor ``E``, need the non-linear fit with an offset of
:func:`synknow.fit.fit_scaling_law` instead.

* **Heaps' law**: the number of distinct entities ``K_n`` among the first ``n`` documents grows
  like ``n^alpha``. :func:`fit_heaps` fits the log-log slope of the empirical curve; the same
  fit on the exact ``E[K_n]`` (:func:`expected_entities`) over the same ``n`` grid gives the
  slope the theory predicts at these finite ``n`` (it tends to ``alpha`` as ``n`` grows).
* **Zipf's law**: the entity with frequency rank ``r`` is seen ``~ r^(-1/alpha)`` times.
  :func:`fit_zipf` fits the rank-frequency slope over a window of counts (default 10..100:
  below, counts are too discrete; above, the few head entities carry the randomness of their
  weights). The theory curve at finite counts is the large-``n`` limit ``#{k: c_k >= c} / K =
  Gamma(c - alpha) / (Gamma(1 - alpha) Gamma(c))`` (:func:`zipf_theory_exponent`).
* **Counts of counts**: the fraction of entities seen exactly ``c`` times tends to
  ``alpha Gamma(c - alpha) / (Gamma(1 - alpha) Gamma(c + 1)) ~ c^(-1-alpha)``.
* Per-role token counts (special, syntax, name, value).

>>> import synknow
>>> corpus = synknow.sample(synknow.presets.bios(alpha=0.6), 50_000, seed=3)
>>> s = corpus_stats(corpus)
>>> abs(s.heaps.exponent - s.heaps_theory_exponent) < 0.05
True
>>> s.role_counts["special"] == 2 * corpus.n_docs
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synknow import theory
from synknow.corpus import ROLE_NAMES
from synknow.tokens import log_grid

if TYPE_CHECKING:
    from synknow.corpus import Corpus

__all__ = [
    "LogLogFit",
    "PowerLawFit",
    "CorpusStats",
    "corpus_stats",
    "heaps_curve",
    "heaps_grid",
    "fit_heaps",
    "expected_entities",
    "rank_frequency",
    "fit_zipf",
    "zipf_theory_exponent",
    "log_fraction_at_least",
    "counts_of_counts",
    "fit_counts_of_counts",
    "counts_of_counts_theory",
    "role_counts",
    "fit_loglog",
]

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


@dataclass(frozen=True)
class LogLogFit:
    """``y ~ prefactor * x^slope``, fitted by least squares on ``log y`` against ``log x``.

    ``exponent`` is the conventional positive exponent: ``slope`` for Heaps' law, ``-slope`` for
    the decaying laws (Zipf, counts of counts).
    """

    slope: float
    prefactor: float
    exponent: float
    x_min: float
    x_max: float
    n_points: int

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=np.float64) ** self.slope


PowerLawFit = LogLogFit  # the name before fit.py's scaling laws and these lines were told apart


def fit_loglog(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, decaying: bool = False
) -> LogLogFit:
    """Least-squares line through ``(log x, log y)``; needs two distinct positive ``x``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    keep = (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        raise ValueError(
            f"a power-law fit needs at least two distinct positive x, got {len(x)} points"
        )
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    return LogLogFit(
        slope=float(slope),
        prefactor=float(math.exp(intercept)),
        exponent=float(-slope if decaying else slope),
        x_min=float(x.min()),
        x_max=float(x.max()),
        n_points=int(len(x)),
    )


# ---- Heaps -------------------------------------------------------------------------------------


def heaps_curve(doc_entity: np.ndarray) -> np.ndarray:
    """``K_n`` for ``n = 1..N``: distinct entities among the first ``n`` documents.

    Entities are numbered in order of first appearance (docs/model.md, "3.2 Knowledge
    (PYCRP)"), so ``K_n`` is the running
    maximum of the entity ids plus one.
    """
    z = np.asarray(doc_entity)
    if z.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.maximum.accumulate(z).astype(np.int64) + 1


def heaps_grid(n_docs: int, *, n_min: int | None = None, points: int = 40) -> np.ndarray:
    """Geometric grid of prefix lengths in ``[n_min, n_docs]``; ``n_min`` defaults to
    ``min(100, N/10)``."""
    if n_docs < 2:
        raise ValueError(f"Heaps' law needs at least 2 documents, got {n_docs}")
    lo = max(1, min(100, n_docs // 10)) if n_min is None else n_min
    if not 1 <= lo < n_docs:
        raise ValueError(f"n_min must be in [1, {n_docs}), got {lo}")
    return log_grid(lo, n_docs, points, integer=True)


def expected_entities(n: np.ndarray | Sequence[int] | int, alpha: float, beta: float) -> np.ndarray:
    """The exact ``E[K_n]`` for each ``n``, always as a 1-D array: :func:`synknow.theory.
    expected_entities` (docs/model.md, "Expected number of entities"), which checks
    ``alpha`` and ``beta``."""
    return np.atleast_1d(np.asarray(theory.expected_entities(n, alpha, beta), dtype=np.float64))


def fit_heaps(doc_entity: np.ndarray, *, n_min: int | None = None, points: int = 40) -> LogLogFit:
    """Heaps exponent: slope of ``log K_n`` against ``log n`` on :func:`heaps_grid`."""
    k = heaps_curve(doc_entity)
    grid = heaps_grid(len(k), n_min=n_min, points=points)
    return fit_loglog(grid, k[grid - 1])


# ---- Zipf and counts of counts ------------------------------------------------------------------


def rank_frequency(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks ``1..K`` and the entity counts sorted in decreasing order."""
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    c = c[c > 0]
    return np.arange(1, len(c) + 1), c


def _zipf_window(counts: np.ndarray, min_count: int, max_count: int | None) -> tuple[int, int]:
    hi = int(counts.max()) if max_count is None else max_count
    if not 1 <= min_count < hi:
        raise ValueError(f"need 1 <= min_count < max_count, got {min_count} and {hi}")
    return min_count, hi


def fit_zipf(counts: np.ndarray, *, min_count: int = 10, max_count: int | None = 100) -> LogLogFit:
    """Zipf exponent: minus the slope of ``log count`` against ``log rank``, over the entities
    whose counts lie in ``[min_count, max_count]`` (``None``: no upper limit). Raises
    ``ValueError`` when fewer than 5 entities fall in the window."""
    ranks, c = rank_frequency(counts)
    if len(c) == 0:
        raise ValueError("no entities with a positive count")
    lo, hi = _zipf_window(c, min_count, max_count)
    sel = (c >= lo) & (c <= hi)
    if sel.sum() < 5:
        raise ValueError(
            f"only {int(sel.sum())} entities have counts in [{lo}, {hi}]; a Zipf fit needs 5 "
            "(sample more documents or widen the window)"
        )
    return fit_loglog(ranks[sel], c[sel], decaying=True)


def log_fraction_at_least(c: np.ndarray, alpha: float) -> np.ndarray:
    """``log P(count >= c)`` over entities in the large-n limit:
    ``lgamma(c - alpha) - lgamma(1 - alpha) - lgamma(c)`` (a telescoping sum of the
    counts-of-counts law)."""
    return _lgamma(c - alpha) - math.lgamma(1.0 - alpha) - _lgamma(c)


def zipf_theory_exponent(alpha: float, min_count: int = 10, max_count: int = 100) -> float:
    """The Zipf exponent the theory predicts for a fit over counts ``[min_count, max_count]``:
    the slope of ``log c`` against ``log rank(c)``, ``rank(c) ∝ Gamma(c-alpha)/Gamma(c)``. It
    tends to ``1/alpha`` for large counts. Needs ``0 < alpha < 1``."""
    if not 0 < alpha < 1:
        raise ValueError(f"the Zipf law needs 0 < alpha < 1, got {alpha}")
    c = log_grid(min_count, max_count, 64, integer=True).astype(np.float64)
    log_rank = log_fraction_at_least(c, alpha)
    slope = np.polyfit(log_rank, np.log(c), 1)[0]
    return float(-slope)


def counts_of_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``c`` and the number of entities seen exactly ``c`` times, for every ``c`` that occurs."""
    n_c = np.bincount(np.asarray(counts, dtype=np.int64))
    c = np.nonzero(n_c)[0]
    c = c[c > 0]
    return c, n_c[c]


def counts_of_counts_theory(c: np.ndarray, alpha: float) -> np.ndarray:
    """Large-n fraction of entities seen exactly ``c`` times:
    ``alpha Gamma(c - alpha) / (Gamma(1 - alpha) Gamma(c + 1))`` (``~ c^(-1-alpha)``)."""
    c = np.asarray(c, dtype=np.float64)
    return alpha * np.exp(_lgamma(c - alpha) - math.lgamma(1.0 - alpha) - _lgamma(c + 1.0))


def fit_counts_of_counts(counts: np.ndarray, *, max_count: int = 20) -> LogLogFit:
    """Minus the slope of ``log #{k: c_k = c}`` against ``log c`` for ``c = 1..max_count``."""
    c, n_c = counts_of_counts(counts)
    sel = c <= max_count
    return fit_loglog(c[sel], n_c[sel], decaying=True)


# ---- roles ---------------------------------------------------------------------------------------


def role_counts(roles: np.ndarray) -> dict[str, int]:
    """Tokens per role (docs/model.md, "3.3 Documents"): special, syntax, name, value."""
    r = np.asarray(roles)
    # One comparison pass per role: bincount would first widen the bytes to 8-byte integers.
    counts = {name: int(np.count_nonzero(r == code)) for code, name in enumerate(ROLE_NAMES)}
    if sum(counts.values()) != r.size:
        raise ValueError(f"roles must be in 0..{len(ROLE_NAMES) - 1}")
    return counts


# ---- everything at once --------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusStats:
    """The statistics ``synknow inspect`` and the demo print (see :func:`corpus_stats`)."""

    n_docs: int
    n_tokens: int
    n_entities: int
    expected_entities: float
    alpha: float
    beta: float
    heaps: LogLogFit
    heaps_theory_exponent: float
    zipf: LogLogFit | None
    zipf_window: tuple[int, int]
    zipf_theory_exponent: float | None
    counts_of_counts: LogLogFit | None
    counts_of_counts_theory_exponent: float | None
    role_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        a = self.alpha
        out = [
            f"documents: {self.n_docs:,}   tokens: {self.n_tokens:,}   "
            f"tokens/doc: {self.n_tokens / max(self.n_docs, 1):.2f}",
            f"entities K: {self.n_entities:,}   E[K_N] (theory): {self.expected_entities:,.1f}   "
            f"ratio: {self.n_entities / self.expected_entities:.3f}",
            f"Heaps exponent: fitted {self.heaps.exponent:.3f} over n in "
            f"[{self.heaps.x_min:.0f}, {self.heaps.x_max:.0f}]; theory alpha = {a:g} "
            f"(exact E[K_n] fitted on the same grid: {self.heaps_theory_exponent:.3f})",
        ]
        if self.zipf is not None and self.zipf_theory_exponent is not None:
            out.append(
                f"Zipf exponent: fitted {self.zipf.exponent:.3f} over counts in "
                f"[{self.zipf_window[0]}, {self.zipf_window[1]}]; theory 1/alpha = {1 / a:.3f} "
                f"(at these counts: {self.zipf_theory_exponent:.3f})"
            )
        elif a > 0:
            out.append("Zipf exponent: too few entities with counts in the fit window")
        if self.counts_of_counts is not None and self.counts_of_counts_theory_exponent is not None:
            out.append(
                f"counts of counts: fitted exponent {self.counts_of_counts.exponent:.3f} for "
                f"c = 1..{self.counts_of_counts.x_max:.0f}; theory 1 + alpha = {1 + a:.3f} "
                f"(at these c: {self.counts_of_counts_theory_exponent:.3f})"
            )
        total = max(self.n_tokens, 1)
        out.append(
            "tokens by role: "
            + ", ".join(f"{k} {v:,} ({100 * v / total:.1f}%)" for k, v in self.role_counts.items())
        )
        return out


def corpus_stats(
    corpus: Corpus,
    *,
    zipf_window: tuple[int, int] = (10, 100),
    coc_max: int = 20,
) -> CorpusStats:
    """Heaps, Zipf, counts-of-counts and role statistics of a corpus, with the theory values
    for its ``alpha`` and ``beta``."""
    cfg = corpus.config
    alpha, beta = cfg.alpha, cfg.beta
    n = corpus.n_docs
    z = np.asarray(corpus.doc_entity)
    counts = np.asarray(corpus.entity_counts)
    heaps = fit_heaps(z)
    grid = heaps_grid(n)
    heaps_theory = fit_loglog(grid, expected_entities(grid, alpha, beta)).exponent
    zipf = zipf_theory = coc = coc_theory = None
    if alpha > 0:
        try:
            zipf = fit_zipf(counts, min_count=zipf_window[0], max_count=zipf_window[1])
            zipf_theory = zipf_theory_exponent(alpha, *zipf_window)
        except ValueError:
            zipf = None
        try:
            coc = fit_counts_of_counts(counts, max_count=coc_max)
            cs = np.arange(1, int(coc.x_max) + 1)
            coc_theory = fit_loglog(cs, counts_of_counts_theory(cs, alpha), decaying=True).exponent
        except ValueError:
            coc = None
    return CorpusStats(
        n_docs=n,
        n_tokens=corpus.n_tokens,
        n_entities=corpus.n_entities,
        expected_entities=float(theory.expected_entities(n, alpha, beta)),
        alpha=alpha,
        beta=beta,
        heaps=heaps,
        heaps_theory_exponent=heaps_theory,
        zipf=zipf,
        zipf_window=zipf_window,
        zipf_theory_exponent=zipf_theory,
        counts_of_counts=coc,
        counts_of_counts_theory_exponent=coc_theory,
        role_counts=role_counts(corpus.roles),
    )
