"""Measurements shared by E3-E6 that need no model: exposures and the exposure at which a fact
becomes known (E3), test sets balanced over frequency buckets (E3, E5), forgetting relative to a
control run (E4), calibration and a confidence threshold taken from the Bayes predictor, the
singleton (monofact) rate (E5), and prequential code lengths (E6).

Every function takes plain arrays, so each is tested against a hand computation
(tests/experiments/test_measures.py); docs/experiments.md explains why each is measured so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "MIN_BUCKET_TOKENS",
    "MIN_SEEDS",
    "exposures",
    "exposure_threshold",
    "balanced_selection",
    "bucket_token_counts",
    "control_relative_forgetting",
    "expected_calibration_error",
    "calibration_by_bucket",
    "bayes_confidence_threshold",
    "singleton_rate",
    "prequential_code_length",
    "converged",
    "level_step",
    "confident_error_rate",
]

# A bucket's accuracy from n tokens has a standard error of at most 0.5 / sqrt(n); with 200 tokens
# that is 0.035, small enough to tell a known bucket (accuracy near 1) from a guessed one.
MIN_BUCKET_TOKENS = 200
MIN_SEEDS = 3

Batch = TypeVar("Batch")


def exposures(train_counts: np.ndarray | Sequence[float], epochs: float) -> np.ndarray:
    """How often the model saw each entity: its count in the training documents times the
    number of passes over them (fractional epochs see that fraction of the documents)."""
    if not math.isfinite(epochs) or epochs <= 0:
        raise ValueError(f"epochs must be a positive number, got {epochs}")
    counts = np.asarray(train_counts, dtype=np.float64)
    if counts.size and (np.any(counts < 0) or not np.all(np.isfinite(counts))):
        raise ValueError("train_counts must be finite and non-negative")
    return counts * float(epochs)


def exposure_threshold(
    exposure: np.ndarray | Sequence[float],
    known: np.ndarray | Sequence[float],
    *,
    level: float = 0.5,
    min_tokens: int = 20,
    bins_per_decade: int = 4,
) -> dict[str, Any]:
    """The smallest exposure from which on facts are known.

    Tokens with a positive exposure are grouped in log-spaced bins (``bins_per_decade`` a
    decade); bins with fewer than ``min_tokens`` tokens are dropped. The threshold is the lower
    edge of the first bin from which *every* higher bin has mean ``known`` (accuracy, or the
    tie credit) at least ``level``; ``None`` when the most-exposed bin is below it. Returns the
    threshold with the bins (``lo``, ``hi``, ``tokens``, ``accuracy``)."""
    e = np.asarray(exposure, dtype=np.float64).reshape(-1)
    k = np.asarray(known, dtype=np.float64).reshape(-1)
    if e.shape != k.shape:
        raise ValueError(f"exposure and known differ in length: {e.size} != {k.size}")
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    seen = e > 0
    e, k = e[seen], k[seen]
    bins: list[dict[str, float]] = []
    if e.size:
        step = 1.0 / bins_per_decade
        lo_exp = math.floor(math.log10(e.min()) / step) * step
        hi_exp = math.floor(math.log10(e.max()) / step) * step + step
        edges = 10 ** np.arange(lo_exp, hi_exp + step / 2, step)
        idx = np.clip(np.searchsorted(edges, e, side="right") - 1, 0, len(edges) - 2)
        for i in range(len(edges) - 1):
            m = idx == i
            if int(m.sum()) >= min_tokens:
                bins.append(
                    {
                        "lo": float(edges[i]),
                        "hi": float(edges[i + 1]),
                        "tokens": int(m.sum()),
                        "accuracy": float(k[m].mean()),
                    }
                )
    threshold = None
    for b in reversed(bins):
        if b["accuracy"] < level:
            break
        threshold = b["lo"]
    return {"threshold": threshold, "level": level, "bins": bins}


def bucket_token_counts(buckets_per_doc: Iterable[Sequence[int]], n_buckets: int) -> np.ndarray:
    """``(documents, n_buckets)``: how many value tokens of each bucket each document holds,
    from the bucket index of every value token of every document."""
    rows = [
        np.bincount(np.asarray(b, dtype=np.int64), minlength=n_buckets) for b in buckets_per_doc
    ]
    if any(r.size > n_buckets for r in rows):
        raise ValueError(f"a bucket index is >= n_buckets ({n_buckets})")
    return np.stack(rows) if rows else np.zeros((0, n_buckets), dtype=np.int64)


def balanced_selection(tokens: np.ndarray, min_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents chosen (in their order) so that every bucket holds at least ``min_tokens``
    value tokens where the candidates allow it.

    ``tokens[d, b]`` is the number of value tokens of bucket ``b`` in candidate ``d``. A
    candidate is taken when it adds tokens to a bucket that is still short; the others are
    skipped, so frequent buckets are not inflated beyond what balancing the rare ones needs.
    Returns the chosen indices and the per-bucket totals (a total below ``min_tokens`` means the
    candidates held too few; the caller reports it)."""
    t = np.asarray(tokens, dtype=np.int64)
    if t.ndim != 2:
        raise ValueError(f"tokens must be (documents, buckets), got shape {t.shape}")
    if min_tokens < 1:
        raise ValueError(f"min_tokens must be >= 1, got {min_tokens}")
    totals = np.zeros(t.shape[1], dtype=np.int64)
    chosen = []
    for d in range(t.shape[0]):
        short = totals < min_tokens
        if not short.any():
            break
        if np.any(t[d][short] > 0):
            chosen.append(d)
            totals += t[d]
    return np.asarray(chosen, dtype=np.int64), totals


def control_relative_forgetting(
    known_before: np.ndarray,
    correct_control: np.ndarray,
    correct_treated: np.ndarray,
    buckets: np.ndarray,
) -> dict[int, dict[str, float]]:
    """Forgetting caused by a treatment (e.g. injecting new facts), per bucket.

    Only facts the model knew before (``known_before``) count. Forgetting is the drop of the
    treated run's accuracy below the control run's (same steps, no treatment) on those facts,
    so drift that continued training causes anyway is not charged to the treatment. Returns,
    per bucket, ``facts`` (known before), ``control`` and ``treated`` accuracy on them and
    ``forgetting = control - treated``."""
    kb = np.asarray(known_before, dtype=bool)
    c = np.asarray(correct_control, dtype=np.float64)
    t = np.asarray(correct_treated, dtype=np.float64)
    b = np.asarray(buckets)
    if not (kb.shape == c.shape == t.shape == b.shape):
        raise ValueError(f"arrays differ in shape: {kb.shape}, {c.shape}, {t.shape}, {b.shape}")
    out: dict[int, dict[str, float]] = {}
    for v in np.unique(b[kb]).tolist():
        m = kb & (b == v)
        out[int(v)] = {
            "facts": float(m.sum()),
            "control": float(c[m].mean()),
            "treated": float(t[m].mean()),
            "forgetting": float(c[m].mean() - t[m].mean()),
        }
    return out


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10
) -> float:
    """ECE: the token-weighted mean of |accuracy - mean confidence| over equal-width confidence
    bins (``nan`` with no tokens)."""
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    ok = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence and correct differ in length: {conf.size} != {ok.size}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if conf.size == 0:
        return float("nan")
    idx = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    ece = 0.0
    for i in range(n_bins):
        m = idx == i
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - ok[m].mean())
    return float(ece)


def calibration_by_bucket(
    confidence: np.ndarray, correct: np.ndarray, buckets: np.ndarray, n_bins: int = 10
) -> dict[int, dict[str, float]]:
    """Per bucket: tokens, mean confidence, accuracy and ECE."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    b = np.asarray(buckets)
    return {
        int(v): {
            "tokens": float((b == v).sum()),
            "confidence": float(conf[b == v].mean()),
            "accuracy": float(ok[b == v].mean()),
            "ece": expected_calibration_error(conf[b == v], ok[b == v], n_bins),
        }
        for v in np.unique(b).tolist()
    }


def bayes_confidence_threshold(bayes_max_prob: np.ndarray, revealed: np.ndarray) -> float:
    """The confidence above which a prediction claims more than the prior warrants: just above
    the Bayes predictor's largest top probability on facts *not* stated in training (where it
    predicts the prior ``H_a``). The Bayes predictor reaches it on what it knows and never on
    what it does not; a fixed 0.5 can instead lie above everything the Bayes predictor ever
    says when value pools are large, which would make "the model is confidently wrong more
    often than Bayes" true by construction."""
    p = np.asarray(bayes_max_prob, dtype=np.float64)
    r = np.asarray(revealed, dtype=bool)
    if p.shape != r.shape:
        raise ValueError(f"bayes_max_prob and revealed differ in shape: {p.shape} != {r.shape}")
    if r.all():
        raise ValueError("every fact was revealed: the prior's confidence is undefined")
    return float(np.nextafter(p[~r].max(), np.inf))


def singleton_rate(fact_counts: np.ndarray | Sequence[int]) -> float:
    """The share of training fact statements whose fact is stated exactly once (the monofact
    rate): a calibrated model must hallucinate on about this share of new queries."""
    c = np.asarray(fact_counts, dtype=np.int64).reshape(-1)
    c = c[c > 0]
    if c.size == 0:
        return float("nan")
    return float((c == 1).sum() / c.sum())


def prequential_code_length(
    batches: Iterable[Batch],
    code_bits: Callable[[Batch], float],
    update: Callable[[Batch], None],
) -> dict[str, Any]:
    """The prequential (predictive-sequential) code length of a data stream: each batch is
    encoded with the model as it stands before it has seen that batch (``code_bits``), and
    only then learned (``update``). The sum is a real code length of the whole stream that a
    decoder can reproduce by running the same learner, with no separate model part to pay."""
    per_batch = []
    for batch in batches:
        bits = float(code_bits(batch))
        if not math.isfinite(bits) or bits < 0:
            raise ValueError(f"a code length must be finite and >= 0, got {bits}")
        per_batch.append(bits)
        update(batch)
    return {"bits": float(sum(per_batch)), "per_batch": per_batch}


def converged(values: Sequence[float], tolerance: float = 0.02) -> tuple[bool, float]:
    """Whether a loss curve has flattened: the relative change between its last two
    evaluations is below ``tolerance``. Returns the decision and the change."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if len(v) < 2:
        return False, float("nan")
    change = abs(v[-1] - v[-2]) / max(abs(v[-2]), 1e-12)
    return change < tolerance, change


def level_step(
    steps: Sequence[float],
    values: Sequence[float | None],
    start: float,
    fraction: float = 0.9,
) -> tuple[float | None, bool]:
    """The step at which a curve first covers ``fraction`` of its whole change, from ``start``
    (its value before training) to its last value: for a loss the drop, for an accuracy the
    gain. Between two evaluations the step is interpolated linearly in log(step), as the
    evaluations are log-spaced. Returns ``(step, censored)``: ``censored`` when the first
    evaluation already covers the fraction (the crossing lies somewhere before it; the step
    returned is that first evaluation's); ``(None, False)`` when the curve does not move away
    from ``start`` or has no finite values."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    pts = [
        (float(s), float(v))
        for s, v in zip(steps, values, strict=True)
        if v is not None and math.isfinite(float(v)) and float(s) > 0
    ]
    if not pts:
        return None, False
    total = pts[-1][1] - float(start)
    if total == 0 or not math.isfinite(total):
        return None, False
    progress = [(s, (v - float(start)) / total) for s, v in pts]
    if progress[0][1] >= fraction:
        return progress[0][0], True
    for (s0, f0), (s1, f1) in zip(progress, progress[1:], strict=False):
        if f1 >= fraction:
            t = (fraction - f0) / (f1 - f0)
            return float(math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))), False
    return progress[-1][0], False  # reached at the last evaluation (fraction 1 there)


def confident_error_rate(
    max_prob: np.ndarray, argmax: np.ndarray, value: np.ndarray, threshold: float
) -> float:
    """The share of predictions that are wrong (top token is not the true value) while the top
    probability is at least ``threshold`` (``nan`` with no predictions)."""
    p = np.asarray(max_prob, dtype=np.float64).reshape(-1)
    a = np.asarray(argmax).reshape(-1)
    v = np.asarray(value).reshape(-1)
    if not (p.shape == a.shape == v.shape):
        raise ValueError(
            f"max_prob, argmax and value differ in length: {p.size}, {a.size}, {v.size}"
        )
    if p.size == 0:
        return float("nan")
    return float(((a != v) & (p >= threshold)).mean())
