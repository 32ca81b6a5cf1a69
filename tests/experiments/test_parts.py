"""E3's timing, E4's capacity and mixed-QA comparisons and E5's alpha sweep and name-part
control: each measurement against a hand computation, each part verdict on synthetic
measurements ("not tested" when a precondition fails)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synknow.experiments.acquisition import run_timing, timing_checks, timing_preconditions
from synknow.experiments.finetune_parts import (
    capacity_checks,
    capacity_models,
    capacity_preconditions,
    mix_batches,
    qa_mix_checks,
    qa_mix_preconditions,
    rare_forgetting,
    split_entities,
)
from synknow.experiments.hallucination_parts import (
    alpha_checks,
    alpha_preconditions,
    group_metrics,
    name_checks,
    name_preconditions,
    prior_threshold,
)
from synknow.experiments.measures import confident_error_rate, level_step
from synknow.experiments.name_overlap import (
    max_shared_parts,
    shared_part_names,
    unshared_part_names,
)
from synknow.experiments.verdict import NOT_TESTED, Precondition, Verdict

# ------------------------------------------------------------------------------------------------
# Measurements


def test_level_step_interpolates_in_log_step() -> None:
    # Loss 10 -> 8, 4, 2 at steps 1, 10, 100: fractions of the drop 0.25, 0.75, 1. The 90% level
    # lies 0.6 of the way from 0.75 to 1, i.e. at 10^(1 + 0.6) = 39.81 on a log axis.
    step, censored = level_step([1, 10, 100], [8.0, 4.0, 2.0], start=10.0, fraction=0.9)
    assert step == pytest.approx(10**1.6)
    assert not censored
    # An accuracy 0 -> 0.2, 0.8, 1.0: the gain direction works the same way (50% at step
    # 10^(0.5) between 0.2 at 1 and 0.8 at 10).
    step, _ = level_step([1, 10, 100], [0.2, 0.8, 1.0], start=0.0, fraction=0.5)
    assert step == pytest.approx(10**0.5)


def test_level_step_censored_flat_and_missing() -> None:
    assert level_step([4, 40], [1.0, 1.0], start=10.0) == (4.0, True)
    assert level_step([4, 40], [10.0, 10.0], start=10.0) == (None, False)
    assert level_step([4, 40], [None, None], start=10.0) == (None, False)
    # A missing evaluation is skipped, not read as zero.
    step, _ = level_step([1, 10, 100], [8.0, None, 2.0], start=10.0, fraction=0.5)
    assert step == pytest.approx(10 ** ((0.5 - 0.25) / 0.75 * 2))
    with pytest.raises(ValueError, match="fraction"):
        level_step([1], [1.0], start=0.0, fraction=0.0)


def test_confident_error_rate_by_hand() -> None:
    p = np.array([0.9, 0.9, 0.2, 0.6])
    a = np.array([1, 2, 3, 4])
    v = np.array([1, 5, 6, 7])
    # wrong: rows 1, 2, 3; confident (>= 0.5): rows 0, 1, 3 -> rows 1 and 3: 2 / 4.
    assert confident_error_rate(p, a, v, 0.5) == pytest.approx(0.5)
    assert math.isnan(confident_error_rate(p[:0], a[:0], v[:0], 0.5))
    with pytest.raises(ValueError, match="differ"):
        confident_error_rate(p, a[:2], v, 0.5)


def test_max_shared_parts_by_hand() -> None:
    seen = np.array([[1, 2, 3], [4, 5, 6]])
    names = np.array([[1, 2, 9], [1, 5, 9], [7, 8, 9], [4, 5, 6]])
    assert max_shared_parts(names, seen).tolist() == [2, 1, 0, 3]
    assert max_shared_parts(names, seen[:0]).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="slots"):
        max_shared_parts(names, np.array([[1, 2]]))


def test_shared_and_unshared_names_share_what_they_promise() -> None:
    rng = np.random.default_rng(0)
    starts, sizes = np.array([0, 10, 20]), np.array([10, 10, 10])
    seen = np.array([[0, 10, 20], [1, 11, 21], [2, 12, 22]])
    used = {tuple(r) for r in seen.tolist()}
    shared, source = shared_part_names(seen, used, starts, sizes, 20, rng)
    assert not ({tuple(r) for r in shared.tolist()} & used)
    same = (shared == seen[source]).sum(axis=1)
    assert same.tolist() == [2] * 20  # one slot replaced, by another part
    # Parts 3..9, 13..19, 23..29 are unused: the unshared names share no part at all.
    unshared = unshared_part_names(seen, used, starts, sizes, 20, rng)
    assert max_shared_parts(unshared, seen).max() == 0
    # With every part of slot 0 used, the least overlap left is one part.
    full = np.array([[i, 10 + i % 3, 20 + i % 3] for i in range(10)])
    fewest = unshared_part_names(full, {tuple(r) for r in full.tolist()}, starts, sizes, 20, rng)
    assert max_shared_parts(fewest, full).max() <= 1


# ------------------------------------------------------------------------------------------------
# E3 timing


def _records(syntax: list[float], buckets: list[dict[str, float]]) -> list[dict]:
    steps = [1, 10, 100, 1000][: len(syntax)]
    return [
        {"step": s, "syntax_bits": x, "balanced_buckets": b}
        for s, x, b in zip(steps, syntax, buckets, strict=True)
    ]


def test_run_timing_reads_syntax_and_known_buckets() -> None:
    # V = 16: the untrained syntax loss is 4 bits; it falls to 1 (drop 3, 90% at 1.3 bits).
    recs = _records(
        [2.0, 1.3, 1.0],
        [
            {"0": 0.0, "1": 0.0, "3": 0.1},
            {"0": 0.0, "1": 0.1, "3": 0.5},
            {"0": 0, "1": 0.2, "3": 1},
        ],
    )
    t = run_timing(recs, 16, fraction=0.9, level=0.5)
    assert t["syntax_step"] == pytest.approx(10.0)
    assert t["knowledge_steps"]["1"] is None  # never reaches 0.5: never known
    # bucket 3: 0.1, 0.5, 1.0 -> 90% of the gain between 10 (0.5) and 100 (1.0): 10^(1 + 0.8).
    assert t["knowledge_steps"]["3"] == pytest.approx(10**1.8)
    assert "0" not in t["knowledge_steps"] and t["has_balanced"] and t["evals"] == 3
    checks, _ = timing_checks({"m": [t]})
    syntax_first, frequent_first = checks.values()
    assert syntax_first
    assert not frequent_first  # one known bucket: no order to check


def test_timing_verdict_needs_seeds_evaluations_and_records() -> None:
    recs = _records(
        [3.0, 2.0, 1.1, 1.0], [{"1": 0.0, "2": 0.0}, {"1": 0, "2": 0.1}, {"1": 0.6, "2": 0.4},
                               {"1": 0.9, "2": 1.0}],
    )  # fmt: skip
    t = run_timing(recs, 16, fraction=0.9, level=0.5)
    tokens = Precondition.at_least("tokens", 300, 200)
    timing = {"a": [t] * 3, "b": [t] * 3}
    checks, _ = timing_checks(timing)
    # syntax reaches 90% (1.3 bits) between steps 10 and 100; bucket 2 (frequent) reaches 90%
    # of its gain only between 100 and 1000, bucket 1 (rarer) also: the frequent one is later.
    syntax_first, frequent_first = checks.values()
    assert syntax_first and not frequent_first
    assert t["knowledge_steps"]["1"] == pytest.approx(10 ** (2 + 0.7))
    assert t["knowledge_steps"]["2"] == pytest.approx(10 ** (2 + 0.5 / 0.6))
    pre = timing_preconditions(timing, 4, tokens)
    assert Verdict.from_checks(checks, preconditions=pre).status != NOT_TESTED
    assert all(p.met for p in pre)
    few = timing_preconditions(timing, 6, tokens)
    assert not next(p for p in few if p.name.startswith("evaluation steps")).met
    lacking = {"a": [{**t, "has_balanced": False}] * 3}
    assert not timing_preconditions(lacking, 4, tokens)[2].met
    assert not timing_preconditions({"a": [t]}, 4, tokens)[0].met
    # A size that never comes to know any bucket leaves nothing to compare: not tested (the
    # checks alone would read "no"), as at cpu-small where no bucket reaches accuracy 0.5.
    unknowing = {**t, "knowledge_steps": {k: None for k in t["knowledge_steps"]}}
    blank = {"a": [t] * 3, "b": [unknowing] * 3}
    pre_blank = timing_preconditions(blank, 4, tokens)
    knows = next(p for p in pre_blank if p.name.startswith("sizes in which"))
    assert not knows.met and knows.measured == "1 of 2"
    verdict = Verdict.from_checks(timing_checks(blank)[0], preconditions=pre_blank)
    assert verdict.status == NOT_TESTED


# ------------------------------------------------------------------------------------------------
# E4 capacity and mixed QA


def _ladder(rare: float, common: float, facts: float = 300, converged: bool = True) -> dict:
    return {
        "forgetting_by_bucket": {
            "0": {"facts": 5, "forgetting": 0.9},
            "1": {"facts": facts, "forgetting": rare},
            "2": {"facts": facts, "forgetting": rare},
            "5": {"facts": facts, "forgetting": common},
            "6": {"facts": facts, "forgetting": common},
        },
        "converged": converged,
    }


def test_rare_forgetting_weights_the_rarer_half_by_facts() -> None:
    by_bucket = {
        "0": {"facts": 100, "forgetting": 1.0},  # unseen: left out
        "1": {"facts": 10, "forgetting": 0.2},
        "2": {"facts": 30, "forgetting": 0.1},
        "4": {"facts": 50, "forgetting": 0.0},
    }
    # Seen buckets 1, 2, 4: the rarer half (ceil(3/2) = 2) is 1 and 2:
    # (10 x 0.2 + 30 x 0.1) / 40 = 0.125.
    value, facts = rare_forgetting(by_bucket)
    assert value == pytest.approx(0.125) and facts == 40
    assert math.isnan(rare_forgetting({})[0])


def test_capacity_models_and_checks() -> None:
    assert capacity_models(["s", "m", "l"], "", "") == ("s", "l")
    assert capacity_models(["s", "m", "l"], "m", "x") == ("m", "l")
    assert capacity_models([], "", "") is None
    bound = [_ladder(0.2 + 0.01 * i, 0.0) for i in range(3)]
    unbound = [_ladder(0.0 + 0.005 * i, 0.0) for i in range(3)]
    checks, text = capacity_checks(bound, unbound)
    assert all(checks.values()) and "bound" in text
    flipped, _ = capacity_checks(unbound, bound)
    assert not any(flipped.values())


def test_capacity_preconditions_measure_the_unbound_model() -> None:
    ladders = [_ladder(0.2, 0.0) for _ in range(3)]

    def pre(stored: float, unbound_params: int) -> list[Precondition]:
        return capacity_preconditions(
            names=("s", "l"),
            learnable_bits=10_000.0,
            params=(1_000, unbound_params),
            unbound_stored_bits=stored,
            fill=0.9,
            bound=ladders,
            unbound=ladders,
        )

    # learnable 10,000 bits: the bound model (2,000 bits of capacity) binds (5 >= 2); an
    # unbound model of 20,000 params has 40,000 bits (ratio 0.25 <= 0.5) and holds 95%.
    assert all(p.met for p in pre(9_500.0, 20_000))
    # Half of the learnable knowledge stored: not unbound, whatever its parameter count says.
    held = pre(5_000.0, 20_000)
    assert [p.met for p in held].count(False) == 1 and "0.5" in str(held[3].measured)
    small = pre(9_500.0, 6_000)  # 12,000 bits: ratio 0.83 > 0.5
    assert not small[2].met


def test_split_entities_and_mix_batches() -> None:
    counts = np.array([0, 9, 1, 5, 7, 4, 6, 8, 2, 5])
    a, b, c = split_entities(counts, 2, np.random.default_rng(0))
    # The six most frequent (counts 9, 8, 7, 6 and both 5s), thirds of 2, disjoint.
    assert len(a) == len(b) == len(c) == 2
    assert {*a, *b, *c} == {1, 7, 4, 6, 3, 9}
    few = split_entities(np.array([0, 3, 1, 0]), 5, np.random.default_rng(0))
    assert [len(g) for g in few] == [0, 0, 0]  # two seen entities do not make three groups
    mixed = list(mix_batches(100, 7, 5, 10, 0.2, 3, mixed=True))
    plain = list(mix_batches(100, 7, 5, 10, 0.2, 3, mixed=False))
    assert len(mixed) == len(plain) == 5
    for (md, mq), (pd, pq) in zip(mixed, plain, strict=True):
        assert len(md) == 8 and len(mq) == 2 and len(pd) == 10 and len(pq) == 0
        assert md.tolist() == pd[:8].tolist()  # the same documents in the shared rows
        assert mq.max() < 7 and pd.max() < 100
    with pytest.raises(ValueError, match="qa_mix_fraction"):
        next(mix_batches(100, 7, 5, 10, 1.0, 3, mixed=True))


def _qa_seed(mixed: float, plain: float, known: float = 0.9, fmt: float = 0.1) -> dict:
    arm = {"statement_accuracy": known, "format_bits": fmt}
    return {
        "heldout_pairs": 300,
        "mixed": {**arm, "answer_accuracy": mixed},
        "plain": {**arm, "answer_accuracy": plain},
    }


def test_qa_mix_verdict() -> None:
    good = [_qa_seed(0.6 + 0.01 * i, 0.1) for i in range(3)]
    checks, _ = qa_mix_checks(good)
    verdict = Verdict.from_checks(checks, preconditions=qa_mix_preconditions(good))
    assert verdict.status == "agrees"
    same = [_qa_seed(0.1 + 0.01 * i, 0.1) for i in range(3)]
    checks, _ = qa_mix_checks(same)
    assert Verdict.from_checks(checks).status == "does not agree"
    unknown = [_qa_seed(0.6, 0.1, known=0.3) for _ in range(3)]
    pre = qa_mix_preconditions(unknown)
    assert Verdict.from_checks(checks, preconditions=pre).status == NOT_TESTED


# ------------------------------------------------------------------------------------------------
# E5 alpha sweep and name parts


def test_prior_threshold_and_group_metrics_by_hand() -> None:
    log_h = [np.log([0.5, 0.25, 0.25]), np.log([0.1, 0.9])]
    assert prior_threshold(log_h) == pytest.approx(0.9) and prior_threshold(log_h) > 0.9
    stats = {
        "credit": np.array([1.0, 0.0, 0.0]),
        "max_prob": np.array([0.95, 0.95, 0.3]),
        "argmax": np.array([4, 4, 4]),
        "bits": np.array([1.0, 3.0, 2.0]),
        "prior_bits": np.array([1.0, 1.0, 1.0]),
    }
    value = np.array([4, 5, 5])
    row = group_metrics(stats, value, np.array([True, True, True]), 0.9)
    assert row["confident_error"] == pytest.approx(1 / 3)  # row 1: wrong at 0.95
    assert row["excess"] == pytest.approx(1.0)  # (0 + 2 + 1) / 3
    assert group_metrics(stats, value, np.zeros(3, bool), 0.9)["tokens"] == 0


def _point(alpha: float, j: int, single: float, model: float | None, unstated: int = 300) -> dict:
    p = {
        "alpha": alpha,
        "seed_index": j,
        "singleton_rate": single,
        "unstated_tokens": unstated,
        "bayes_all": {"confident_error": 0.0},
        "model_converged": True,
    }
    if model is not None:
        p["model_all"] = {"confident_error": model}
    return p


def test_alpha_verdict() -> None:
    pts = [
        _point(a, j, s, m)
        for a, s, m in ((0.3, 0.05, 0.1), (0.5, 0.1, 0.2), (0.7, 0.3, 0.4))
        for j in range(3)
    ]
    checks, _ = alpha_checks(pts)
    assert Verdict.from_checks(checks, preconditions=alpha_preconditions(pts)).status == "agrees"
    falling = [{**p, "model_all": {"confident_error": 1 - p["singleton_rate"]}} for p in pts]
    assert not alpha_checks(falling)[0][
        "model's confident-error rate rises with the singleton rate across alpha (Spearman > 0)"
    ]
    bayes_only = [_point(a, 0, 0.1, None) for a in (0.3, 0.5, 0.7)]
    checks, text = alpha_checks(bayes_only)
    assert checks == {} and "Bayes predictor only" in text
    assert not alpha_preconditions(bayes_only)[0].met


def test_name_verdict() -> None:
    def seed(shared: float, unshared: float, overlap: int = 1, known: float = 0.9) -> dict:
        row = {"tokens": 800, "confident_error": 0.0, "overlap_min": 2, "overlap_max": 2}
        return {
            "shared": {
                **row,
                "excess": shared,
                "confident_error": shared / 10,
                "source_accuracy": known,
            },
            "unshared": {**row, "excess": unshared, "overlap_min": 0, "overlap_max": overlap},
        }

    good = [seed(1.0 + 0.1 * i, 0.2) for i in range(3)]
    checks, _ = name_checks(good)
    assert Verdict.from_checks(checks, preconditions=name_preconditions(good)).status == "agrees"
    same_overlap = [seed(1.0, 0.2, overlap=2) for _ in range(3)]
    assert not name_preconditions(same_overlap)[2].met
    # A model that does not know the source entities' facts cannot carry them over to names
    # sharing their parts: not tested (at cpu-small the base models know ~1% of facts).
    unknowing = [seed(0.2, 0.2, known=0.02) for _ in range(3)]
    pre = name_preconditions(unknowing)
    assert not pre[3].met and pre[3].measured == "0.020"
    assert Verdict.from_checks(name_checks(unknowing)[0], preconditions=pre).status == "not tested"


def test_alpha_preconditions_pool_unstated_tokens_over_seeds() -> None:
    three = [_point(a, j, 0.1, 0.2, unstated=80) for a in (0.3, 0.5, 0.7) for j in range(3)]
    tokens = alpha_preconditions(three)[2]
    assert tokens.met and tokens.measured == 240  # 3 x 80 per alpha
    one = [_point(a, 0, 0.1, 0.2, unstated=80) for a in (0.3, 0.5, 0.7)]
    assert not alpha_preconditions(one)[2].met
