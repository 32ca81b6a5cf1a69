"""Token constants, entity-frequency buckets and log-spaced grids: one definition each.

The training and evaluation code prepends special tokens to the corpus vocabulary; their ids
and the loss's ignore index live here so that the data pipeline, the trainer and the probes
cannot disagree.

Frequency buckets group entities by how often they occur in the training documents:
bucket 0 holds unseen entities, bucket ``b >= 1`` holds counts in ``[2^(b-1), 2^b - 1]``
(``1``, ``2-3``, ``4-7``, ...). See docs/codelength.md, "Per-bucket code lengths".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "IGNORE",
    "frequency_bucket",
    "bucket_bounds",
    "bucket_label",
    "log_grid",
    "pad_rows",
]

PAD, BOS, EOS = 0, 1, 2
IGNORE = -100  # target id skipped by the loss (PyTorch's cross_entropy default ignore_index)


def frequency_bucket(counts: np.ndarray | int) -> np.ndarray:
    """Entity-frequency bucket of training counts: 0 for unseen, else ``1 + floor(log2 c)``.

    Exact for every count up to ``2^64 - 1`` (an integer bit length, not a float log2, which
    rounds ``2^k - 1`` up to ``2^k`` for ``k > 53``). Negative counts are an error.

    >>> frequency_bucket(np.array([0, 1, 2, 3, 4, 7, 8])).tolist()
    [0, 1, 2, 2, 3, 3, 4]
    """
    arr = np.asarray(counts)
    if arr.dtype.kind not in "iu":
        if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError("frequency_bucket: counts must be integers")
    if arr.dtype.kind != "u" and arr.size and (arr < 0).any():
        raise ValueError("frequency_bucket: counts must be >= 0")
    c = arr.astype(np.uint64)
    out = np.zeros(c.shape, dtype=np.int64)
    pos = c > 0
    # frexp's exponent is the bit length, except where the float rounds c up to a power of
    # two: 2^64 - 1 becomes 2^64 (exponent 65, and 1 << 64 overflows), so clamp, then correct.
    bits = np.minimum(np.frexp(c[pos].astype(np.float64))[1].astype(np.int64), 64)
    too_high = (np.uint64(1) << (bits - 1).astype(np.uint64)) > c[pos]
    out[pos] = bits - too_high
    return out


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """``(lo, hi)`` training counts of a bucket, both inclusive: ``3 -> (4, 7)``."""
    if bucket < 0:
        raise ValueError(f"bucket must be >= 0, got {bucket}")
    return (0, 0) if bucket == 0 else (2 ** (bucket - 1), 2**bucket - 1)


def bucket_label(bucket: int) -> str:
    """``0 -> "0"``, ``1 -> "1"``, ``2 -> "2-3"``, ``3 -> "4-7"``, ..."""
    lo, hi = bucket_bounds(bucket)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def log_grid(lo: float, hi: float, points: int, *, integer: bool = False) -> np.ndarray:
    """``points`` log-spaced values from ``lo`` to ``hi`` (both included, ``0 < lo <= hi``).

    With ``integer=True`` the values are rounded and de-duplicated (int64), as needed for
    prefix lengths and document counts; the result may then hold fewer than ``points``.
    """
    if not (lo > 0 and hi >= lo and np.isfinite(hi)):
        raise ValueError(f"log_grid needs 0 < lo <= hi < inf, got lo={lo}, hi={hi}")
    if points < 1:
        raise ValueError(f"log_grid needs points >= 1, got {points}")
    grid = np.geomspace(lo, hi, points)
    if integer:
        return np.unique(grid.round().astype(np.int64))
    return grid


def pad_rows(rows: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
    """Token rows of different lengths as one ``int64`` matrix, right-padded with ``PAD``."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
