"""E4-E6 verdict logic on synthetic measurements: a set-up that misses a precondition (one seed,
thin buckets, runs still moving) yields "not tested", and the checks read the right numbers."""

from __future__ import annotations

from synknow.experiments.finetune import ladder_checks
from synknow.experiments.hallucination import _verdict as hallucination_verdict
from synknow.experiments.hallucination import preconditions_for as hallucination_pre
from synknow.experiments.structure_function import preconditions_for as structure_pre
from synknow.experiments.verdict import NOT_TESTED, Verdict


def _seed(seed: int, tokens: int, wrong: float, change: float = 0.01) -> dict:
    row = {
        "bucket": "0",
        "wrong_confident_rate": wrong,
        "excess_prior_bits": 2.0,
        "ece": 0.3,
        "kl_to_prior_bits": 1.0,
    }
    bayes = {**row, "wrong_confident_rate": 0.0, "excess_prior_bits": 0.0, "ece": 0.02}
    return {
        "seed": seed,
        "tokens": {0: tokens, 1: tokens + 50},
        "loss_change": change,
        "converged": change < 0.02,
        "bayes_confident_on_known": 0.9,
        "singleton_rate": 0.1,
        "model": [row],
        "bayes": [bayes],
    }


def test_hallucination_needs_seeds_and_tokens() -> None:
    good = [_seed(s, 250, 0.7 + 0.01 * s) for s in range(3)]
    verdict, _ = hallucination_verdict(good, hallucination_pre(good, 200))
    assert verdict.status == "agrees"
    thin = [_seed(s, 150, 0.7) for s in range(3)]
    verdict, _ = hallucination_verdict(thin, hallucination_pre(thin, 200))
    assert verdict.status == NOT_TESTED and "thinnest" in verdict.text()
    one = good[:1]
    assert hallucination_verdict(one, hallucination_pre(one, 200))[0].status == NOT_TESTED
    moving = [_seed(s, 250, 0.7, change=0.1) for s in range(3)]
    assert hallucination_verdict(moving, hallucination_pre(moving, 200))[0].status == NOT_TESTED


def test_hallucination_disagrees_when_the_model_is_not_confidently_wrong() -> None:
    seeds = [_seed(s, 250, 0.0) for s in range(3)]
    verdict, _ = hallucination_verdict(seeds, hallucination_pre(seeds, 200))
    assert verdict.status == "partly agrees"
    assert not verdict.checks["unseen: confidently wrong more often than the Bayes predictor"]


def test_structure_preconditions() -> None:
    placed = [
        {"seed": s, "model": "m", "loss_change": 0.01, "converged": True, "measured_model_bits": 10}
        for s in range(3)
    ]
    assert all(p.met for p in structure_pre(placed, 100.0))
    # every model placed past everything storable: the placement cannot test the claim
    assert not structure_pre(placed, 5.0)[2].met
    one_seed = structure_pre(placed[:1], 100.0)
    assert not one_seed[0].met
    assert Verdict.from_checks({"x": True}, preconditions=one_seed).status == NOT_TESTED


def test_ladder_checks_read_forgetting_against_the_control() -> None:
    def lad(seed: int, f: float) -> dict:
        return {
            "seed": seed,
            "new_accuracy_by_r": {"1": 0.1, "10": 0.9},
            "forgetting": f,
            "forgetting_by_bucket": {
                "1": {"facts": 300, "forgetting": 0.3},
                "2": {"facts": 300, "forgetting": 0.2},
                "3": {"facts": 300, "forgetting": 0.0},
            },
        }

    checks, text = ladder_checks([lad(s, 0.1 + 0.01 * s) for s in range(3)], [1, 10])
    assert all(checks.values()), checks
    assert "r=1: 0.1" in text
    checks, _ = ladder_checks([lad(s, f) for s, f in enumerate([0.1, -0.1, 0.0])], [1, 10])
    assert not checks["injection forgets known facts beyond the control run"]
