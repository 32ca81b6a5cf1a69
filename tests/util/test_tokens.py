"""synknow.tokens: bucket boundaries are exact at every power of two up to 2^64 - 1."""

from __future__ import annotations

import numpy as np
import pytest
from synknow import tokens


def test_bucket_edges_at_every_power_of_two() -> None:
    for k in range(64):
        lo = np.uint64(1) << np.uint64(k)
        hi = np.uint64(2**64 - 1) if k == 63 else (np.uint64(1) << np.uint64(k + 1)) - np.uint64(1)
        got = tokens.frequency_bucket(np.array([lo, hi], dtype=np.uint64)).tolist()
        assert got == [k + 1, k + 1], k
        assert tokens.bucket_bounds(k + 1) == (int(lo), int(hi))


def test_bucket_of_zero_and_labels() -> None:
    assert tokens.frequency_bucket(0).tolist() == 0
    assert [tokens.bucket_label(b) for b in range(5)] == ["0", "1", "2-3", "4-7", "8-15"]


@pytest.mark.parametrize("bad", [np.array([-1]), np.array([1.5])])
def test_bad_counts_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="counts must be"):
        tokens.frequency_bucket(bad)


def test_log_grid() -> None:
    g = tokens.log_grid(1, 1000, 4)
    np.testing.assert_allclose(g, [1, 10, 100, 1000], rtol=1e-12)  # geomspace: a few ulps
    assert tokens.log_grid(1, 10, 50, integer=True).tolist() == list(range(1, 11))
    for lo, hi, n in [(0, 10, 3), (10, 1, 3), (1, float("inf"), 3), (1, 10, 0)]:
        with pytest.raises(ValueError, match="log_grid"):
            tokens.log_grid(lo, hi, n)


def test_special_tokens_are_distinct() -> None:
    assert len({tokens.PAD, tokens.BOS, tokens.EOS, tokens.IGNORE}) == 4
