"""Evaluation numbers against a direct, unfused PyTorch computation, and the tie rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from synknow.train import GPT, ModelConfig, evaluate, format_report
from synknow.train.eval import token_stats

N_TRAIN, N_TEST = 2000, 60
# Logits here are O(1..10) and reach the evaluation through float32 matmuls whose blocking
# depends on the batch shape and the CPU, so a logit can move by ~1e-5 between two correct
# computations. Where the top two logits are closer than this margin, which one is the argmax
# (and so the tie-rule credit) is a rounding accident: such rows are compared separately.
TIE_MARGIN = 1e-3


@pytest.fixture(scope="module")
def model(corpus) -> GPT:
    torch.manual_seed(11)
    m = GPT(ModelConfig(size="tiny", context_length=64).resolved(len(corpus.vocab)))
    with torch.no_grad():  # a non-trivial output distribution
        m.tok_emb.weight.normal_(0.0, 0.5)
    return m.eval()


def reference(model: GPT, corpus) -> dict[str, np.ndarray]:
    """Each test document alone through the model; full float64 softmax over the logits."""
    lo, hi = corpus.vocab.value_range.start, corpus.vocab.value_range.stop
    counts = corpus.entity_counts_at(N_TRAIN)
    out: dict[str, list] = {
        k: [] for k in ("nll", "ent", "pmax", "mass", "credit", "gap", "role", "count")
    }
    out["doc_len"] = []
    for doc in range(corpus.n_docs - N_TEST, corpus.n_docs):
        x = torch.as_tensor(np.asarray(corpus.document(doc), dtype=np.int64))[None]
        with torch.no_grad():
            z = (model(x)[0] @ model.lm_head.weight.t()).double()[:-1]
        t = x[0, 1:]
        logp = torch.log_softmax(z, dim=-1)
        p = logp.exp()
        start = int(corpus.doc_offsets[doc])
        out["nll"].append((-logp[torch.arange(len(t)), t] / math.log(2)).numpy())
        out["ent"].append((-(p * logp).sum(1) / math.log(2)).numpy())
        out["pmax"].append(p.max(1).values.numpy())
        out["mass"].append(p[:, lo:hi].sum(1).numpy())
        tied = z == z.max(1, keepdim=True).values
        out["credit"].append((tied[torch.arange(len(t)), t] / tied.sum(1)).double().numpy())
        top2 = z.topk(2, dim=1).values
        out["gap"].append((top2[:, 0] - top2[:, 1]).numpy())
        out["role"].append(np.asarray(corpus.roles[start + 1 : start + x.shape[1]]))
        out["count"].append(np.full(len(t), counts[corpus.doc_entity[doc]]))
        out["doc_len"].append(x.shape[1])
    return {k: np.concatenate(v) if k != "doc_len" else np.array(v) for k, v in out.items()}


def test_report_equals_direct_pytorch_computation(model, corpus):
    rep = evaluate(model, corpus, N_TRAIN, N_TEST, batch_size=16, per_token=True, bayes=False)
    ref = reference(model, corpus)
    tok = rep["tokens"]
    np.testing.assert_allclose(tok["nll_bits"], ref["nll"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tok["entropy_bits"], ref["ent"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tok["max_prob"], ref["pmax"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(tok["value_mass"], ref["mass"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(tok["role"], ref["role"])
    value = ref["role"] == 3
    clear = value & (ref["gap"] > TIE_MARGIN)
    assert clear.sum() > 0.98 * value.sum()  # near-ties are rare in a random model
    np.testing.assert_array_equal(tok["credit"][clear], ref["credit"][clear])
    assert np.isnan(tok["credit"][~value]).all()
    # A near-tie row can swing a mean by at most 1 / (rows averaged); no more than that.
    swing = (value & ~clear).sum()

    n_tokens, n_docs = ref["doc_len"].sum(), N_TEST
    assert rep["n_tokens"] == n_tokens and rep["n_test_docs"] == n_docs
    assert rep["bits_per_token"] == pytest.approx(ref["nll"].sum() / n_tokens, rel=1e-6)
    assert rep["bits_per_doc"] == pytest.approx(ref["nll"].sum() / n_docs, rel=1e-6)
    assert rep["loss_bits"] == pytest.approx(ref["nll"].mean(), rel=1e-6)
    for r, name in enumerate(("special", "syntax", "name", "value")):
        sel = ref["role"] == r
        denom = sel.sum() + (n_docs if name == "special" else 0)  # BOS: 0 bits
        assert rep["roles"][name]["tokens"] == denom
        assert rep["roles"][name]["bits"] == pytest.approx(ref["nll"][sel].sum() / denom, rel=1e-6)
    v = rep["value"]
    assert v["accuracy"] == pytest.approx(
        ref["credit"][value].mean(), abs=1e-12 + swing / value.sum()
    )
    assert v["confidence"] == pytest.approx(ref["pmax"][value].mean(), rel=1e-5)
    assert v["mass"] == pytest.approx(ref["mass"][value].mean(), rel=1e-5)
    # Buckets: recompute from the counts.
    bucket = np.where(ref["count"] > 0, np.floor(np.log2(np.maximum(ref["count"], 1))) + 1, 0)
    total_docs = 0
    for label, b in rep["buckets"].items():
        lo = b["min_count"]
        k = 0 if lo == 0 else int(math.log2(lo)) + 1
        sel = bucket == k
        assert b["value_tokens"] == (sel & value).sum() > 0, label
        assert b["value_bits"] == pytest.approx(ref["nll"][sel & value].mean(), rel=1e-5)
        assert b["value_accuracy"] == pytest.approx(
            ref["credit"][sel & value].mean(), abs=1e-12 + swing / (sel & value).sum()
        )
        total_docs += b["docs"]
    assert total_docs == n_docs
    assert "bits/token" in format_report(rep)


def test_batch_size_does_not_change_the_numbers(model, corpus):
    """Batch shapes change only float32 rounding (see TIE_MARGIN): the credit of every row
    with a clear argmax is the same, and the accuracy moves by at most the near-tie rows."""
    a = evaluate(model, corpus, N_TRAIN, N_TEST, batch_size=7, bayes=False, per_token=True)
    b = evaluate(model, corpus, N_TRAIN, N_TEST, batch_size=60, bayes=False, per_token=True)
    assert a["bits_per_token"] == pytest.approx(b["bits_per_token"], rel=1e-6)
    ref = reference(model, corpus)
    value = ref["role"] == 3
    clear = value & (ref["gap"] > TIE_MARGIN)
    np.testing.assert_array_equal(a["tokens"]["credit"][clear], b["tokens"]["credit"][clear])
    swing = (value & ~clear).sum() / value.sum()
    assert a["value"]["accuracy"] == pytest.approx(b["value"]["accuracy"], abs=1e-12 + swing)


def test_tie_rule_credits_one_over_the_number_tied():
    """Logits 2d on a tied set S, 0 elsewhere: credit 1/|S| for targets in S, 0 otherwise."""
    d, v = 8, 20
    hidden = torch.ones(6, d)
    weight = torch.zeros(v, d)
    tied = [3, 5, 11]
    weight[tied] = 2.0
    targets = torch.tensor([3, 5, 11, 0, 19, 4])
    s = token_stats(hidden, weight, targets, (10, 20))
    np.testing.assert_allclose(s["top_credit"].numpy(), [1 / 3, 1 / 3, 1 / 3, 0, 0, 0])
    only = torch.tensor([False, True, False, False, False, False])
    s = token_stats(hidden, weight, targets, (10, 20), credit_rows=only)
    np.testing.assert_allclose(s["top_credit"].numpy(), [0, 1 / 3, 0, 0, 0, 0])
    # Uniform prediction: every token ties, credit 1/V, and the value mass is the range share.
    s = token_stats(hidden, torch.zeros(v, d), targets, (10, 20))
    np.testing.assert_allclose(s["top_credit"].numpy(), np.full(6, 1 / v))
    np.testing.assert_allclose(s["value_mass"].numpy(), np.full(6, 0.5), rtol=1e-6)
    np.testing.assert_allclose(s["nll_bits"].numpy(), np.full(6, math.log2(v)), rtol=1e-6)


def test_uniform_model_has_chance_accuracy(model, corpus):
    """A zero output head predicts uniformly: accuracy is exactly 1/V by the tie rule."""
    m = GPT(model.config)
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        m.lm_head.weight.zero_()  # tied: the embedding too
    rep = evaluate(m.eval(), corpus, N_TRAIN, N_TEST, bayes=False)
    v = len(corpus.vocab)
    assert rep["value"]["accuracy"] == pytest.approx(1 / v, rel=1e-12)
    assert rep["loss_bits"] == pytest.approx(math.log2(v), rel=1e-6)


def test_vocabulary_mismatch_is_an_error(corpus):
    m = GPT(ModelConfig(size="tiny", context_length=64).resolved(len(corpus.vocab) + 1))
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        evaluate(m, corpus, N_TRAIN, N_TEST)


def test_context_too_short_for_test_documents_is_an_error(corpus):
    m = GPT(ModelConfig(size="tiny", context_length=16).resolved(len(corpus.vocab)))
    with pytest.raises(ValueError, match="more than the model's context length 16"):
        evaluate(m, corpus, N_TRAIN, N_TEST)


def test_bayes_summary_arithmetic_and_split_check(model, corpus):
    """The Bayes columns: role sums over role token counts, on the same documents."""
    from synknow.train import EvalData
    from synknow.train.eval import bayes_summary

    data = EvalData(corpus, N_TRAIN, N_TEST)
    rng = np.random.default_rng(0)
    off = np.asarray(corpus.doc_offsets, dtype=np.int64)
    tokens = np.stack(
        [np.bincount(corpus.roles[off[d] : off[d + 1]], minlength=4) for d in data.docs]
    )
    bits = rng.uniform(0, 10, size=(N_TEST, 4))
    ref = {"doc_bits": bits, "tokens_by_role": tokens, "count": data.count.copy()}
    s = bayes_summary(ref, data)
    assert s["bits_per_token"] == pytest.approx(bits.sum() / tokens.sum())
    assert s["roles"]["name"]["bits"] == pytest.approx(bits[:, 2].sum() / tokens[:, 2].sum())
    rep = evaluate(model, corpus, N_TRAIN, N_TEST, bayes=ref)
    assert {k: v["tokens"] for k, v in rep["roles"].items()} == {
        k: v["tokens"] for k, v in rep["bayes"]["roles"].items()
    }
    assert "Bayes-optimal" in format_report(rep)
    ref["count"] = ref["count"] + 1
    with pytest.raises(ValueError, match="does not describe these test documents"):
        bayes_summary(ref, data)


def test_bayes_reference_from_the_code_length_engine(model, corpus):
    from synknow.train.eval import bayes_reference

    ref = bayes_reference(corpus, N_TRAIN, N_TEST)
    rep = evaluate(model, corpus, N_TRAIN, N_TEST, bayes=ref)
    bayes = rep["bayes"]
    # Both engines count the same tokens per role (BOS with the specials) and the same
    # entity training counts.
    for name in ("special", "syntax", "name", "value"):
        assert bayes["roles"][name]["tokens"] == rep["roles"][name]["tokens"]
    assert bayes["roles"]["special"]["bits"] >= 0.0
    # The Bayes predictor knows the grammar: an untrained model pays far more per token.
    assert bayes["bits_per_token"] < rep["bits_per_token"]
