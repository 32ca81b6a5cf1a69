"""The GPT: shapes, parameter and FLOP counts, document isolation, and the loss path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from synknow.train import GPT, ModelConfig, flops_per_token, param_count
from synknow.train import model as model_mod


def make(vocab=97, **kw) -> GPT:
    torch.manual_seed(0)
    kw = {"size": "tiny", "context_length": 32, **kw}
    return GPT(ModelConfig(**kw).resolved(vocab_size=vocab))


def test_uses_the_real_kernels_package():
    assert model_mod.kernels is not None
    assert model_mod.kernels.__name__ == "synknow_kernels"


@pytest.mark.parametrize("tie", [True, False])
def test_param_counts(tie):
    m = make(vocab=101, tie_embeddings=tie, n_layer=3, d_model=32, n_head=2)
    d, layers, v = 32, 3, 101
    per_block = 4 * d * d + 8 * d * d + 2 * d  # attention, MLP, two RMSNorm gains
    body = layers * per_block + d  # + final norm
    assert param_count(m, with_embeddings=False) == body
    assert param_count(m) == body + v * d * (1 if tie else 2)
    assert param_count(m) == len(torch.nn.utils.parameters_to_vector(m.parameters()))


def test_flops_per_token_formula():
    cfg = ModelConfig(size="1m", context_length=256).resolved(vocab_size=500)
    n = cfg.n_layer * 12 * cfg.d_model**2 + 500 * cfg.d_model
    assert flops_per_token(cfg) == 6 * n + 12 * cfg.n_layer * cfg.d_model * 256
    assert flops_per_token(cfg, attention=False) == 6 * n


def test_named_size_parameter_counts_are_near_their_names():
    targets = {"tiny": 5e4, "1m": 1e6, "5m": 5e6, "20m": 2e7, "50m": 5e7, "100m": 1e8}
    for name, want in targets.items():
        cfg = ModelConfig(size=name).resolved(vocab_size=100)
        body = cfg.n_layer * 12 * cfg.d_model**2
        assert 0.9 < body / want < 1.15, name


def test_isolated_documents_match_documents_alone():
    """Two documents packed in one row with segment ids and restarted positions give exactly
    the hidden states each has on its own (causal attention cannot leak across them)."""
    m = make().eval()
    a = torch.randint(3, 97, (1, 11))
    b = torch.randint(3, 97, (1, 9))
    packed = torch.cat([a, b, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    positions = torch.cat([torch.arange(11), torch.arange(9), torch.zeros(4, dtype=torch.long)])
    segments = torch.tensor([0] * 11 + [1] * 9 + [-1] * 4)
    with torch.no_grad():
        h = m(packed, positions=positions[None], segments=segments[None])
        ha, hb = m(a), m(b)
        h_plain = m(packed)
    torch.testing.assert_close(h[:, :11], ha, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h[:, 11:20], hb, atol=1e-5, rtol=1e-5)
    # Without isolation the second document sees the first: the states differ.
    assert (h_plain[:, 11:20] - hb).abs().max() > 1e-3


def test_causality():
    m = make().eval()
    x = torch.randint(3, 97, (2, 20))
    y = x.clone()
    y[:, 12:] = torch.randint(3, 97, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(m(x)[:, :12], m(y)[:, :12])


def test_fused_loss_equals_full_logits_cross_entropy_and_gradients():
    m = make()
    x = torch.randint(0, 97, (3, 32))
    t = torch.randint(0, 97, (3, 32))
    t[0, 5:] = -100
    loss = m.loss(m(x), t)
    loss.backward()
    g = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    ref = F.cross_entropy(m.logits(m(x)).flatten(0, 1), t.flatten(), ignore_index=-100)
    ref.backward()
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(g, (p.grad for p in m.parameters()), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_chunked_fallback_loss_matches_cross_entropy():
    torch.manual_seed(1)
    h = torch.randn(50, 16, requires_grad=True)
    w = torch.randn(30, 16, requires_grad=True)
    t = torch.randint(0, 30, (50,))
    t[::7] = -100
    for reduction in ("mean", "sum", "none"):
        got = model_mod.chunked_linear_cross_entropy(h, w, t, reduction=reduction, chunk_tokens=8)
        want = F.cross_entropy(h @ w.t(), t, ignore_index=-100, reduction=reduction)
        torch.testing.assert_close(got, want)
    got = model_mod.chunked_linear_cross_entropy(h, w, t, chunk_tokens=8)
    (gh, gw) = torch.autograd.grad(got, (h, w))
    (rh, rw) = torch.autograd.grad(F.cross_entropy(h @ w.t(), t, ignore_index=-100), (h, w))
    torch.testing.assert_close(gh, rh)
    torch.testing.assert_close(gw, rw)


def test_initial_loss_is_near_uniform():
    m = make(vocab=500)
    x = torch.randint(0, 500, (4, 32))
    t = torch.randint(0, 500, (4, 32))  # unrelated to the inputs
    assert abs(m.loss(m(x), t).item() - math.log(500)) < 0.05


def test_too_long_input_and_unresolved_config_are_errors():
    m = make()
    with pytest.raises(ValueError, match="exceeds the context length 32"):
        m(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="resolved ModelConfig"):
        GPT(ModelConfig(size="tiny"))
