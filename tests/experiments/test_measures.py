"""The model-free measurements of E3-E6 against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synknow.experiments.measures import (
    balanced_selection,
    bayes_confidence_threshold,
    bucket_token_counts,
    calibration_by_bucket,
    control_relative_forgetting,
    converged,
    expected_calibration_error,
    exposure_threshold,
    exposures,
    prequential_code_length,
    singleton_rate,
)


def test_exposures_are_count_times_epochs() -> None:
    assert exposures([0, 1, 7], 3).tolist() == [0.0, 3.0, 21.0]
    assert exposures([4], 0.5).tolist() == [2.0]
    with pytest.raises(ValueError, match="epochs"):
        exposures([1], 0)
    with pytest.raises(ValueError, match="non-negative"):
        exposures([-1], 1)


def test_exposure_threshold_finds_the_step() -> None:
    # Facts seen at least 10 times are known, fewer are not: the threshold is the bin edge 10.
    e = np.repeat([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0], 30)
    known = (e >= 10).astype(float)
    res = exposure_threshold(e, known, level=0.5, min_tokens=20, bins_per_decade=1)
    assert res["threshold"] == pytest.approx(10.0)
    assert [b["accuracy"] for b in res["bins"]] == [0.0, 1.0, 1.0]


def test_exposure_threshold_needs_every_higher_bin_known() -> None:
    e = np.repeat([1.0, 10.0, 100.0], 30)
    known = np.repeat([1.0, 0.0, 1.0], 30)  # a dip at 10: only the top bin counts
    res = exposure_threshold(e, known, min_tokens=20, bins_per_decade=1)
    assert res["threshold"] == pytest.approx(100.0)
    none = exposure_threshold(e, np.zeros_like(e), min_tokens=20, bins_per_decade=1)
    assert none["threshold"] is None


def test_exposure_threshold_drops_thin_bins_and_unseen() -> None:
    e = np.array([0.0] * 50 + [10.0] * 5 + [100.0] * 30)
    k = np.array([0.0] * 50 + [0.0] * 5 + [1.0] * 30)
    res = exposure_threshold(e, k, min_tokens=20, bins_per_decade=1)
    assert [b["tokens"] for b in res["bins"]] == [30]
    assert res["threshold"] == pytest.approx(100.0)


def test_balanced_selection_reaches_the_minimum_per_bucket() -> None:
    rng = np.random.default_rng(0)
    # Rare bucket 2 appears in 1 document of 10; the others everywhere.
    docs = [[0] * 3 + [1] * 2 + ([2] * 4 if rng.random() < 0.1 else []) for _ in range(2000)]
    tokens = bucket_token_counts(docs, 3)
    chosen, totals = balanced_selection(tokens, 200)
    assert np.all(totals >= 200)
    assert np.array_equal(totals, tokens[chosen].sum(axis=0))
    # Once buckets 0 and 1 have their 200, only documents adding to bucket 2 are taken.
    assert np.all(tokens[chosen[100:], 2] > 0)


def test_balanced_selection_reports_a_shortfall() -> None:
    tokens = bucket_token_counts([[0, 0], [0, 1]], 3)
    chosen, totals = balanced_selection(tokens, 5)
    assert chosen.tolist() == [0, 1]
    assert totals.tolist() == [3, 1, 0]


def test_control_relative_forgetting() -> None:
    known = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    control = np.array([1, 1, 1, 0, 0, 1.0])
    treated = np.array([1, 0, 0, 0, 1, 1.0])
    buckets = np.array([1, 1, 2, 2, 1, 2])
    out = control_relative_forgetting(known, control, treated, buckets)
    assert out[1] == {"facts": 2.0, "control": 1.0, "treated": 0.5, "forgetting": 0.5}
    assert out[2]["forgetting"] == pytest.approx(0.5)  # control 0.5, treated 0
    with pytest.raises(ValueError, match="shape"):
        control_relative_forgetting(known, control[:3], treated, buckets)


def test_expected_calibration_error_by_hand() -> None:
    conf = np.array([0.95, 0.95, 0.15, 0.15])
    correct = np.array([1, 0, 0, 0])
    # bin 0.9-1: |0.95 - 0.5| * 1/2; bin 0.1-0.2: |0.15 - 0| * 1/2.
    assert expected_calibration_error(conf, correct) == pytest.approx(0.225 + 0.075)
    assert expected_calibration_error(np.array([0.7] * 10), np.array([1] * 7 + [0] * 3)) == (
        pytest.approx(0.0)
    )
    per = calibration_by_bucket(conf, correct, np.array([3, 3, 0, 0]))
    assert per[3]["ece"] == pytest.approx(0.45)
    assert per[0]["accuracy"] == 0.0


def test_bayes_confidence_threshold_lies_above_the_prior() -> None:
    p = np.array([0.04, 0.3, 0.6, 0.9, 1.0, 1.0])
    revealed = np.array([0, 0, 1, 1, 1, 1], dtype=bool)
    t = bayes_confidence_threshold(p, revealed)
    assert 0.3 < t < 0.3 + 1e-12
    assert not (p[~revealed] >= t).any() and (p[revealed] >= t).all()
    with pytest.raises(ValueError, match="every fact"):
        bayes_confidence_threshold(p, np.ones(6, dtype=bool))


def test_singleton_rate() -> None:
    # Facts stated 1, 1, 2 and 4 times: 2 of 8 statements are of a singleton fact.
    assert singleton_rate([1, 1, 2, 4, 0]) == pytest.approx(2 / 8)


def test_prequential_code_length_by_hand() -> None:
    # Add-one (Laplace) unigram over {0, 1}, documents [0], [0, 1], [1]; each document is coded
    # with the counts from before it: 1 bit, -log2(2/3) - log2(1/3), -log2(2/5).
    counts = [1, 1]

    def code(doc: list[int]) -> float:
        total = sum(counts)
        return -sum(math.log2(counts[t] / total) for t in doc)

    def update(doc: list[int]) -> None:
        for t in doc:
            counts[t] += 1

    res = prequential_code_length([[0], [0, 1], [1]], code, update)
    assert res["per_batch"] == pytest.approx([1.0, math.log2(4.5), math.log2(2.5)])
    assert res["bits"] == pytest.approx(math.log2(22.5))


def test_converged() -> None:
    assert converged([3.0, 2.0, 1.99])[0]
    assert not converged([3.0, 2.0])[0]
    assert not converged([1.0])[0]
