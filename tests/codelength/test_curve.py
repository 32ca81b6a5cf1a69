"""The Bayes learning curve (docs/codelength.md#learning-curve): each test document scored on its
own against the frozen prefix state equals the sequential engine's code length of that document
placed right after the prefix; the tables add up; bad arguments are refused; and the knowledge part
decays with the exponent 1 - alpha (docs/codelength.md#data-scaling-law)."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
from _codelength_testing import ambiguous_config, reordered
from synknow.codelength import bucket_bounds, frequency_bucket, log_checkpoints
from synknow.fit import fit_scaling_law


@pytest.fixture(scope="module")
def corpus() -> synknow.Corpus:
    return synknow.sample(synknow.presets.bios(alpha=0.5, beta=1.0), 420, seed=21)


@pytest.mark.parametrize("make", ["bios", "ambiguous"])
def test_curve_equals_document_appended_to_prefix(make, corpus) -> None:
    if make == "ambiguous":
        corpus = synknow.sample(ambiguous_config(name_parts=(300, 400)), 420, seed=3)
    n_train, n_test = 400, 20
    checkpoints = [0, 1, 7, 60, 400]
    curve = synknow.bayes_curve(corpus, n_train, checkpoints, n_test=n_test, progress=False)
    assert curve.test_start == 400
    assert curve.doc_bits.shape == (len(checkpoints), n_test)
    for c, n in enumerate(checkpoints):
        counts = corpus.entity_counts_at(n)
        for j in range(n_test):
            d = curve.test_start + j
            alone = reordered(corpus, [*range(n), d])
            cl = synknow.code_lengths(alone, progress=False)
            assert curve.doc_bits[c, j] == pytest.approx(cl.per_doc[-1], rel=1e-12)
            lo = int(alone.doc_offsets[-2])
            roles = alone.roles[lo:]
            for r in range(4):
                expect = cl.per_token[lo:][roles == r].sum()
                assert curve.doc_bits_by_role[c, j, r] == pytest.approx(
                    expect, rel=1e-12, abs=1e-12
                )
            assert curve.entity_count[c, j] == counts[corpus.doc_entity[d]]


def test_tables_add_up(corpus) -> None:
    checkpoints = log_checkpoints(300, 6, 3)
    curve = synknow.bayes_curve(corpus, 300, checkpoints, progress=False)
    n_test = corpus.n_docs - 300
    tokens = curve.tokens_by_role.sum()
    assert tokens == int(corpus.doc_offsets[-1] - corpus.doc_offsets[300])
    np.testing.assert_array_equal(curve["n_train"], checkpoints)
    np.testing.assert_allclose(curve["bits_per_token"] * tokens, curve.doc_bits.sum(axis=1))
    np.testing.assert_allclose(curve["bits_per_doc"] * n_test, curve.doc_bits.sum(axis=1))
    parts = sum(curve[f"{r}_bits_per_doc"] for r in ("syntax", "name", "value"))
    np.testing.assert_allclose(parts, curve["bits_per_doc"])
    np.testing.assert_allclose(
        curve["knowledge_bits_per_doc"], curve["name_bits_per_doc"] + curve["value_bits_per_doc"]
    )
    np.testing.assert_allclose(curve["new_entity_fraction"], (curve.entity_count == 0).mean(1))
    b = curve.buckets
    for n in checkpoints:
        sel = b["n_train"] == n
        assert b["n_docs"][sel].sum() == n_test
        assert b["n_tokens"][sel].sum() == tokens
        total = (b["bits_per_doc"][sel] * b["n_docs"][sel]).sum()
        assert total == pytest.approx(curve.doc_bits[list(checkpoints).index(n)].sum(), rel=1e-12)
    for bucket, lo, hi in zip(b["bucket"], b["count_lo"], b["count_hi"], strict=True):
        assert (lo, hi) == bucket_bounds(int(bucket))


def test_frequency_buckets() -> None:
    c = np.array([0, 1, 2, 3, 4, 7, 8, 15, 16, 2**40 - 1, 2**40, 2**63 - 1])
    expect = [0, 1, 2, 2, 3, 3, 4, 4, 5, 40, 41, 63]
    assert frequency_bucket(c).tolist() == expect
    for b in range(1, 40):
        lo, hi = bucket_bounds(b)
        assert frequency_bucket(np.array([lo, hi])).tolist() == [b, b]


def test_frequency_buckets_are_the_shared_ones() -> None:
    """codelength re-exports synknow.tokens' buckets, which refuse negative counts (the local
    copy cast them to uint64 and put -1 in bucket 64)."""
    import synknow.tokens

    assert frequency_bucket is synknow.tokens.frequency_bucket
    assert bucket_bounds is synknow.tokens.bucket_bounds
    with pytest.raises(ValueError, match=">= 0"):
        frequency_bucket(np.array([3, -1]))


def test_to_csv_uses_a_private_temporary(tmp_path) -> None:
    """The table is written through synknow.fsutil: a temporary of its own, not the fixed
    ``.NAME.tmp-PID`` that a second writer in the same process would share (and that the old
    code took over and deleted)."""
    import os

    from synknow.codelength import Table

    other = tmp_path / f".t.csv.tmp-{os.getpid()}"
    other.write_text("another writer's half-written file")
    Table({"n": np.array([1, 2])}).to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "n\n1\n2\n"
    assert other.read_text() == "another writer's half-written file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "t.csv"]


def test_to_csv(tmp_path, corpus) -> None:
    curve = synknow.bayes_curve(corpus, 300, [10, 100, 300], progress=False)
    path = curve.to_csv(tmp_path / "out" / "curve.csv", tmp_path / "out" / "buckets.csv")
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == curve.columns
    assert len(lines) == 4
    back = np.genfromtxt(path, delimiter=",", names=True)
    np.testing.assert_allclose(back["bits_per_token"], curve["bits_per_token"], rtol=1e-15)
    assert (tmp_path / "out" / "buckets.csv").read_text().startswith("n_train,bucket,")
    assert not list((tmp_path / "out").glob(".*tmp*"))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_train": 300, "checkpoints": [10, 5]}, "strictly increasing"),
        ({"n_train": 300, "checkpoints": [10, 10]}, "strictly increasing"),
        ({"n_train": 300, "checkpoints": [10, 301]}, "out of range"),
        ({"n_train": 300, "checkpoints": [-1, 10]}, ">= 0"),
        ({"n_train": 300, "checkpoints": []}, "non-empty"),
        ({"n_train": 300, "checkpoints": [1.5]}, "integers"),
        ({"n_train": 400, "checkpoints": [10], "n_test": 30}, "exceeds"),
        ({"n_train": 421, "checkpoints": [10]}, "out of range"),
        ({"n_train": 420, "checkpoints": [10]}, "n_test"),
        ({"n_train": 300, "checkpoints": [10], "n_test": 0}, "n_test"),
    ],
)
def test_bad_arguments(corpus, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        synknow.bayes_curve(corpus, progress=False, **kwargs)


# One seed: the tolerances of docs/codelength.md#data-scaling-law over n = 1e2..2e5 (the spread
# comes from the sampled weights).
SINGLE_SEED_TOLERANCE = {0.3: 0.25, 0.5: 0.18, 0.7: 0.13}


def _knowledge_curve(alpha: float, seed: int, checkpoints: np.ndarray, n_test: int) -> np.ndarray:
    n_train = int(checkpoints[-1])
    corpus = synknow.sample(
        synknow.presets.bios(alpha=alpha, beta=10.0), n_train + n_test, seed=seed
    )
    curve = synknow.bayes_curve(corpus, n_train, checkpoints, progress=False)
    return curve["knowledge_bits_per_doc"]


@pytest.mark.slow
def test_knowledge_exponent_is_one_minus_alpha() -> None:
    """Fit ``E + A n^-gamma`` (synknow.fit, Huber on log residuals) to the knowledge (name +
    value) bits per test document over 16 log-spaced prefixes n = 1e2..2e5, 5e3-1e4 test
    documents: one seed per alpha within the one-seed tolerance, and the mean curve of 16 seeds
    (alpha = 0.7) within +-0.05 of 1 - alpha."""
    checkpoints = log_checkpoints(200_000, 16, 100)
    for alpha, tol in SINGLE_SEED_TOLERANCE.items():
        y = _knowledge_curve(alpha, 0, checkpoints, 10_000)
        gamma = fit_scaling_law(checkpoints, y, n_boot=0).params["gamma"]
        assert abs(gamma - (1 - alpha)) < tol, (alpha, gamma)
    mean = np.mean([_knowledge_curve(0.7, s, checkpoints, 5_000) for s in range(16)], axis=0)
    gamma = fit_scaling_law(checkpoints, mean, n_boot=0).params["gamma"]
    assert abs(gamma - 0.3) < 0.05, gamma
