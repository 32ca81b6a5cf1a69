"""E2's preconditions: the knowledge a corpus offers at sufficient exposure against the largest
model's capacity (a set-up that cannot bind capacity is "not tested"; gpu-small binds it on
paper), saturation, sizes, and the hook for the capacity-limited Bayes reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import synknow
import torch
from _experiments_testing import needs_codelength
from synknow.experiments.capacity_check import (
    capacity_binds,
    entity_knowledge_bits,
    knowledge_available,
    lr_bracketed_precondition,
    lr_precondition,
    reference_comparison,
    saturation_precondition,
    seeds_precondition,
    size_preconditions,
)
from synknow.experiments.model_scaling import exponent_verdict
from synknow.experiments.presets import PRESETS
from synknow.experiments.verdict import NOT_TESTED
from synknow.fit import fit_power_law
from synknow.train.config import ModelConfig
from synknow.train.model import GPT, param_count


def preset_params(name: str, vocab: int) -> list[int]:
    """Total parameters of each base model of a preset (built on the meta device: no memory)."""
    p = PRESETS[name]
    out = []
    for m in p.base.models:
        cfg = ModelConfig(
            n_layer=m.n_layer,
            n_head=m.n_head,
            d_model=m.d_model,
            context_length=p.base.train.context_length,
        ).resolved(vocab_size=vocab)
        with torch.device("meta"):
            out.append(param_count(GPT(cfg)))
    return out


def base_knowledge(name: str) -> tuple[dict, list[int], list[int]]:
    p = PRESETS[name]
    b = p.base
    corpus = synknow.sample(p.corpus.config(b.alpha, p.seed), b.n_train, seed=p.seed)
    available = knowledge_available(corpus, b.n_train, b.train.epochs, b.min_exposures)
    return available, preset_params(name, len(corpus.vocab)), [m.n_layer for m in b.models]


def agreeing_fit():
    x = np.geomspace(1e3, 1e5, 6)
    return fit_power_law(x, 0.5 + 40 * x**-1.0, fixed_E=0.5, n_boot=50)


def test_cpu_tiny_cannot_bind_capacity_so_e2_is_not_tested() -> None:
    # cpu-tiny: ~2e4 bits of knowledge in 4000 documents, of which only entities seen >= 100
    # times over 6 epochs (count >= 17) are learnable, against 2.8e5 parameters x 2 bits.
    available, params, _ = base_knowledge("cpu-tiny")
    binds = capacity_binds(available["bits_learnable"], max(params))
    assert not binds.met
    assert available["bits_learnable"] < 0.01 * 2 * max(params)
    v = exponent_verdict(agreeing_fit(), "gamma", 1.0, preconditions=[binds])
    assert v.status == NOT_TESTED and "capacity binds" in v.text()
    # the same fit with its preconditions met agrees
    assert exponent_verdict(agreeing_fit(), "gamma", 1.0).status == "agrees"


def test_gpu_small_binds_capacity_on_paper() -> None:
    # The arithmetic: 300k documents of 8 facts (8 bits each) + a 23-bit name per entity,
    # 50 epochs, so entities seen >= 2 times reach 100 exposures; the largest model (4 x 64)
    # has ~2.8e5 parameters, 5.6e5 bits at 2 bits/parameter. Learnable knowledge must be at
    # least twice that.
    p = PRESETS["gpu-small"]
    available, params, layers = base_knowledge("gpu-small")
    assert available["min_count"] == 2
    ratio = available["bits_learnable"] / (2 * max(params))
    assert ratio >= 2, (available, params)
    assert capacity_binds(available["bits_learnable"], max(params)).met
    assert all(pre.met for pre in size_preconditions(layers, params)), (layers, params)
    assert lr_precondition([len(p.base.lr_sweep)] * len(params)).met
    assert seeds_precondition(p.base.seeds).met
    # tokens per parameter of the largest model: every document is 66 tokens
    tokens = p.base.n_train * p.base.train.epochs * 66
    assert tokens / max(params) > 1000


def test_entity_knowledge_bits_match_the_two_part_code() -> None:
    cfg = synknow.presets.procedural(
        n_attributes=3,
        pool_sizes=(6, 7),
        attribute_pool=(0, 1, 1),
        name_parts=(15, 15, 30),
        value_prior="zipf(1.1)",
        alpha=0.5,
        beta=3.0,
    )
    corpus = synknow.sample(cfg, 400, seed=3)
    bits, counts = entity_knowledge_bits(corpus, 300)
    assert np.all(bits[counts == 0] == 0) and np.all(bits[counts > 0] >= math.log2(15 * 15 * 30))
    assert np.array_equal(counts, np.asarray(corpus.entity_counts_at(300)))
    a = knowledge_available(corpus, 300, epochs=2, min_exposures=4)
    assert a["min_count"] == 2 and a["bits_learnable"] == pytest.approx(bits[counts >= 2].sum())
    assert a["bits_total"] == pytest.approx(bits.sum())


@needs_codelength
def test_entity_knowledge_bits_equal_the_structure_functions_model_bits() -> None:
    # M(S) = (d_syn/2) log2 N + sum_{k in S} (entity bits + log2 N): storing every entity costs
    # the sum of the entity bits plus log2 N each.
    cfg = synknow.presets.procedural(
        n_attributes=2, pool_sizes=(5, 9), name_parts=(20, 20, 40), alpha=0.5, beta=3.0
    )
    corpus = synknow.sample(cfg, 300, seed=4)
    sf = synknow.structure_function(corpus, 300)
    bits, counts = entity_knowledge_bits(corpus, 300)
    model_bits = np.asarray(sf.model_bits)
    k = int((counts > 0).sum())
    stored = model_bits[-1] - model_bits[0] - k * math.log2(300)
    assert stored == pytest.approx(bits.sum(), rel=1e-9)


def test_saturation_sizes_and_seed_preconditions() -> None:
    base = {"bits_per_token": 1.00, "knowledge_bits": 1000.0}
    assert saturation_precondition(
        "d64", base, {"bits_per_token": 0.99, "knowledge_bits": 1030}
    ).met
    late = saturation_precondition("d64", base, {"bits_per_token": 0.90, "knowledge_bits": 1000})
    assert not late.met and "10.0%" in late.measured
    assert not saturation_precondition("d64", base, None).met
    ok = size_preconditions([1, 2, 2, 3, 4], [2e4, 4e4, 8e4, 1.5e5, 3e5])
    assert all(p.met for p in ok)
    wide_only = size_preconditions([2, 2, 2, 2, 2], [2e4, 4e4, 8e4, 1.5e5, 3e5])
    assert not wide_only[2].met and wide_only[0].met
    assert not size_preconditions([1, 2, 4], [1e4, 2e4, 1e6])[0].met  # too few, gap of 50x
    assert not size_preconditions([1, 2, 4], [1e4, 2e4, 1e6])[1].met
    assert not lr_precondition([3, 2, 3]).met and lr_precondition([3, 4]).met
    assert not seeds_precondition(1).met


def test_reference_hook_with_a_stand_in() -> None:
    # A stand-in for L(n, C): the full Bayes loss plus an excess C^-1 (alpha = 0.5). The hook
    # recovers the exponent and the gap of each model to its reference.
    limit = 0.8
    caps = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    ref = limit + 50.0 * caps**-1.0
    models = ref + 0.1
    r = reference_comparison(caps, models, ref, limit)
    assert r["reference_exponent"] == pytest.approx(1.0, abs=1e-9)
    assert r["gap_bits"] == pytest.approx([0.1] * 5)
    with pytest.raises(ValueError, match="differ in length"):
        reference_comparison(caps[:2], models, ref, limit)


def test_cpu_small_binds_capacity_on_paper() -> None:
    # 1,200 documents of 8 facts (6 bits each) + a 19-bit name, beta 1000: ~960 entities, nearly
    # all seen once; with 150 epochs every entity seen once reaches 100 exposures (~6.4e4 bits),
    # against 2 x 11,256 bits in the largest model (4 layers x 12): ratio 2.86.
    p = PRESETS["cpu-small"]
    b = p.base
    available, params, layers = base_knowledge("cpu-small")
    assert available["min_count"] == 1
    binds = capacity_binds(available["bits_learnable"], max(params))
    assert binds.met and available["bits_learnable"] >= 2.5 * 2 * max(params), (available, params)
    assert all(pre.met for pre in size_preconditions(layers, params)), (layers, params)
    assert lr_precondition([len(b.lr_sweep)] * len(params)).met and seeds_precondition(b.seeds).met
    # The base corpus with its validation documents keeps the sampler's name-supply rule.
    synknow.sample(p.corpus.config(b.alpha, p.seed), b.n_train + b.n_test + b.n_val, seed=p.seed)
    # Training tokens: 50-token documents, 150 epochs: 9e6 tokens per run (~800 per parameter
    # of the largest model); 5 sizes x 3 seeds + one run twice as long + the sweep (3 rates x
    # 10 epochs per size, once for all seeds): 1.6e8 tokens for E2.
    per_run = b.n_train * 50 * b.train.epochs
    assert per_run == 9_000_000 and per_run / max(params) > 750
    total = per_run * (len(params) * b.seeds + 2) + b.n_train * 50 * b.lr_sweep_epochs * len(
        b.lr_sweep
    ) * len(params)
    assert total == pytest.approx(1.62e8, rel=0.01)


@needs_codelength
def test_reference_hook_adds_the_syntax_term_and_keeps_the_order() -> None:
    from synknow.capacity import capacity_limited_loss
    from synknow.experiments.model_scaling import capacity_reference

    corpus = synknow.sample(synknow.presets.procedural(alpha=0.5), 600, seed=3)
    n_train, n_test = 500, 100

    def loss(c: float) -> float:
        t = capacity_limited_loss(corpus, n_train, [n_train], [c], n_test=n_test, progress=False)
        return float(t["bits_per_token"][0])

    got = capacity_reference(corpus, n_train, n_test, [1e12, 0.0, -3.0])
    # A knowledge budget of 0 stores nothing (a negative probe estimate counts as 0); a huge one
    # stores everything: the full Bayes loss. Same arithmetic on the same test split: exact.
    assert got[0] == loss(math.inf)
    assert got[1] == got[2] == loss(0.0)
    assert got[0] < got[1]


def test_learning_rate_must_be_bracketed_by_the_grid() -> None:
    grid = [1e-2, 3e-2, 1e-1]
    assert lr_bracketed_precondition([3e-2, 3e-2], [grid, grid]).met
    edge = lr_bracketed_precondition([3e-2, 1e-1], [grid, grid])
    assert not edge.met and "1 / 2 sizes" in edge.measured and "0.1" in edge.measured
    assert not lr_bracketed_precondition([1e-2], [grid]).met  # the low edge too
    assert not lr_bracketed_precondition([3e-2], [[1e-2, 3e-2]]).met  # two values bracket nothing
    assert not lr_bracketed_precondition([None], [[]]).met  # no sweep
