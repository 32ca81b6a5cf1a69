"""token_eval against float64 statistics of the explicit softmax, for both impls."""

from __future__ import annotations

import math

import pytest
import torch
from _kernel_testing import max_err
from synknow_kernels import TokenEvalStats, token_eval

N, H, V = 252, 123, 507
LN2 = math.log(2.0)


def _data(n=N, h=H, v=V, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    hid = torch.randn(n, h, generator=g, dtype=torch.float64)
    w = torch.randn(v, h, generator=g, dtype=torch.float64) * scale
    b = torch.randn(v, generator=g, dtype=torch.float64)
    t = torch.randint(0, v, (n,), generator=g)
    t[::6] = -100
    return hid, w, b, t


def _explicit(hid, w, b, t, softcap=None, mass_range=None, ignore_index=-100):
    """Statistics from the materialised softmax, in the inputs' dtype."""
    z = hid @ w.T + (b if b is not None else 0)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp()
    valid = t != ignore_index
    nll = -logp.gather(-1, t.clamp_min(0).unsqueeze(-1)).squeeze(-1) / LN2
    nll = torch.where(valid, nll, torch.nan)
    ent = -(p * logp).sum(-1) / LN2
    mass = p[..., mass_range[0] : mass_range[1]].sum(-1) if mass_range else None
    return TokenEvalStats(nll, ent, p.max(-1).values, z.argmax(-1), mass)


def _check(got, naive, truth, valid):
    for name in ("nll_bits", "entropy_bits", "max_prob", "range_mass"):
        g, n, tr = getattr(got, name), getattr(naive, name), getattr(truth, name)
        if tr is None:
            assert g is None
            continue
        assert g.shape == tr.shape and g.dtype == torch.float32
        if name == "nll_bits":
            assert torch.isnan(g[~valid]).all()
            g, n, tr = g[valid], n[valid], tr[valid]
        bound = max_err(n, tr) + 2e-6 * max(1.0, tr.abs().max().item())
        assert max_err(g, tr) <= bound, f"{name}: {max_err(g, tr):.3e} > {bound:.3e}"
    # Argmax: must be a maximiser of the float64 logits up to float32 rounding.
    assert got.argmax.dtype == torch.int64
    agree = (got.argmax == truth.argmax).float().mean().item()
    assert agree > 0.99


@pytest.mark.parametrize(
    "opts",
    [{}, {"softcap": 4.0}, {"mass_range": (100, 371)}, {"softcap": 2.0, "mass_range": (0, 1)}],
    ids=["plain", "softcap", "range", "softcap_range"],
)
def test_matches_float64(impl, device, opts):
    hid, w, b, t = _data()
    got = token_eval(
        hid.to(device, torch.float32),
        w.to(device, torch.float32),
        t.to(device),
        bias=b.to(device, torch.float32),
        impl=impl,
        **opts,
    )
    got = TokenEvalStats(*(x.cpu() if x is not None else None for x in got))
    naive = _explicit(hid.float(), w.float(), b.float(), t, **opts)
    truth = _explicit(hid, w, b, t, **opts)
    _check(got, naive, truth, t != -100)


def test_no_bias_non_contiguous_3d(impl, device):
    hid, w, _, t = _data(n=2 * 61)
    h3 = hid.reshape(61, 2, H).to(device, torch.float32).permute(1, 0, 2)  # (2, 61, H) view
    wt = w.T.contiguous().to(device, torch.float32).T  # column-major weight
    t3 = t.reshape(61, 2).T.to(device)
    got = token_eval(h3, wt, t3, impl=impl, mass_range=(3, 9))
    assert got.nll_bits.shape == (2, 61)
    ref = _explicit(hid.reshape(61, 2, H).permute(1, 0, 2), w, None, t.reshape(61, 2).T, None)
    ref_mass = _explicit(
        hid.reshape(61, 2, H).permute(1, 0, 2), w, None, t.reshape(61, 2).T, None, (3, 9)
    ).range_mass
    valid = t3.cpu() != -100
    torch.testing.assert_close(
        got.nll_bits.cpu()[valid].double(), ref.nll_bits[valid], atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        got.entropy_bits.cpu().double(), ref.entropy_bits, atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(got.range_mass.cpu().double(), ref_mass, atol=1e-6, rtol=1e-5)


def test_argmax_ties_pick_lowest_id(impl, device):
    hid, w, _, t = _data(n=40, v=300)
    w[250] = w[17]  # exact duplicate rows -> identical logits
    w[17] *= 1.0
    hid = hid.abs()
    w[17] = w[17].abs() * 10 + 1  # make the duplicated row the unique max
    w[250] = w[17]
    got = token_eval(
        hid.to(device, torch.float32), w.to(device, torch.float32), t.to(device), impl=impl
    )
    assert torch.all(got.argmax.cpu() == 17)
    assert torch.all(got.max_prob <= 0.5 + 1e-6)  # two tokens share the top probability


def test_custom_ignore_index_and_all_ignored(impl, device):
    hid, w, b, t = _data(n=30, v=50)
    t[:] = 7
    got = token_eval(
        hid.to(device, torch.float32),
        w.to(device, torch.float32),
        t.to(device),
        bias=b.to(device, torch.float32),
        ignore_index=7,
        impl=impl,
    )
    assert torch.isnan(got.nll_bits).all()
    assert torch.isfinite(got.entropy_bits).all() and (got.entropy_bits >= 0).all()


def test_no_grad_and_validation():
    hid, w, b, t = _data(n=5, v=10)
    h = hid.float().requires_grad_()
    out = token_eval(h, w.float(), t)
    assert not out.nll_bits.requires_grad
    with pytest.raises(ValueError, match="mass_range"):
        token_eval(h, w.float(), t, mass_range=(3, 11))
    with pytest.raises(ValueError, match="targets shape"):
        token_eval(h, w.float(), t[:2])
    with pytest.raises(ValueError, match="dtype"):
        token_eval(h, w, t)
    with pytest.raises(ValueError, match="softcap"):
        token_eval(h, w.float(), t, softcap=-1.0)


def test_bf16_inputs(impl, device):
    hid, w, b, t = _data(n=70, v=200)
    hb, wb, bb = (x.to(torch.bfloat16) for x in (hid, w, b))
    got = token_eval(
        hb.to(device),
        wb.to(device),
        t.to(device),
        bias=bb.to(device),
        mass_range=(5, 50),
        impl=impl,
    )
    # Products of bf16 values are exact in fp32, so fp32 accumulation stays close to float64.
    truth = _explicit(hb.double(), wb.double(), bb.double(), t, mass_range=(5, 50))
    valid = t != -100
    for name in ("nll_bits", "entropy_bits", "max_prob", "range_mass"):
        a, r = getattr(got, name).cpu().double(), getattr(truth, name)
        if name == "nll_bits":
            a, r = a[valid], r[valid]
        torch.testing.assert_close(a, r, atol=2e-5, rtol=2e-5, msg=name)


def test_torch_compile_aot_eager():
    hid, w, b, t = _data(n=12, v=30)

    def f(h_, w_, t_):
        out = token_eval(h_, w_, t_, mass_range=(0, 10), impl="torch")
        return out.entropy_bits * 2.0, out.range_mass

    torch._dynamo.reset()
    got = torch.compile(f, backend="aot_eager", fullgraph=True)(hid.float(), w.float(), t)
    ref = f(hid.float(), w.float(), t)
    for a, r in zip(got, ref, strict=True):
        torch.testing.assert_close(a, r)
