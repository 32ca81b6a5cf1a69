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


# float32 unit roundoff.
U32 = 2.0**-24


def _logits_and_error_bound(hid, w, b=None, softcap=None):
    """float64 logits and a rigorous bound on the error of any float32 evaluation of them.

    A dot product of length H accumulated in float32 in any order is within
    ``gamma_H * sum_k |h_k w_k|`` of the exact value (Higham, Accuracy and Stability of
    Numerical Algorithms, 2nd ed., eq. 3.5, ``gamma_H = H u / (1 - H u)``); rounding the inputs
    to float32, adding the bias and the softcap's divide, tanh and multiply (tanh is
    1-Lipschitz) add a few more roundings, covered by ``H + 8`` in place of ``H``.
    """
    h = hid.shape[-1]
    z = hid @ w.T + (b if b is not None else 0)
    scale = hid.abs() @ w.abs().T + (b.abs() if b is not None else 0)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    bound = (h + 8) * U32 / (1 - (h + 8) * U32) * scale + 8 * U32 * z.abs()
    return z, bound


def _check(got, naive, truth, valid, logits, bound):
    for name in ("nll_bits", "entropy_bits", "max_prob", "range_mass"):
        g, n, tr = getattr(got, name), getattr(naive, name), getattr(truth, name)
        if tr is None:
            assert g is None
            continue
        assert g.shape == tr.shape and g.dtype == torch.float32
        if name == "nll_bits":
            assert torch.isnan(g[~valid]).all()
            g, n, tr = g[valid], n[valid], tr[valid]
        bound_stat = max_err(n, tr) + 2e-6 * max(1.0, tr.abs().max().item())
        assert max_err(g, tr) <= bound_stat, f"{name}: {max_err(g, tr):.3e} > {bound_stat:.3e}"
    # Argmax: a maximiser of the float64 logits up to float32 rounding. Which of two logits
    # closer than their rounding error wins depends on the summation order (tiling, BLAS, CPU),
    # so only that envelope is checked, never agreement with one machine's argmax.
    assert got.argmax.dtype == torch.int64
    assert got.argmax.shape == logits.shape[:-1]
    pick = got.argmax.unsqueeze(-1)
    z_pick = logits.gather(-1, pick).squeeze(-1)
    z_max, best = logits.max(dim=-1)
    slack = bound.gather(-1, pick).squeeze(-1) + bound.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    assert torch.all(z_pick >= z_max - slack), (z_max - z_pick - slack).max().item()


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
    logits, bound = _logits_and_error_bound(hid, w, b, opts.get("softcap"))
    _check(got, naive, truth, t != -100, logits, bound)


def test_no_bias_non_contiguous_3d(impl, device):
    hid, w, _, t = _data(n=2 * 61)
    h3 = hid.reshape(61, 2, H).permute(1, 0, 2)  # (2, 61, H) view of (61, 2, H) storage
    t3 = t.reshape(61, 2).T
    h_in = hid.reshape(61, 2, H).to(device, torch.float32).permute(1, 0, 2)
    w_in = w.T.contiguous().to(device, torch.float32).T  # column-major weight
    assert not h_in.is_contiguous() and not w_in.is_contiguous()
    got = token_eval(h_in, w_in, t3.to(device), impl=impl, mass_range=(3, 9))
    assert got.nll_bits.shape == (2, 61)
    got = TokenEvalStats(*(x.cpu() for x in got))
    # Same criterion as test_matches_float64: no less accurate than plain float32 PyTorch.
    naive = _explicit(h3.float(), w.float(), None, t3, mass_range=(3, 9))
    truth = _explicit(h3, w, None, t3, mass_range=(3, 9))
    logits, bound = _logits_and_error_bound(h3, w)
    _check(got, naive, truth, t3 != -100, logits, bound)


def test_argmax_ties_pick_lowest_id(impl, device):
    # Ties must be exact by construction: with small integer hidden states and weights every
    # product and every partial sum is an integer far below 2^24, so each logit is exact in fp32
    # (and in tf32/bf16 dot inputs) whatever the summation order, tiling or CPU. Random float
    # data would make the duplicated rows differ in the last bit depending on the tile they land
    # in, and the test would then check rounding instead of the tie rule.
    g = torch.Generator().manual_seed(0)
    n, v = 40, 300
    hid = torch.randint(1, 4, (n, H), generator=g).float()  # positive: row sums are > 0
    w = torch.randint(-2, 3, (v, H), generator=g).float()
    t = torch.randint(0, v, (n,), generator=g)
    # Rows 17 and 30 share a vocabulary tile, 250 lies in another one (tiles are 64 or 128 wide),
    # so both the in-tile and the across-tile tie rules are exercised. All three hold the unique
    # maximum logit 3 * sum(hid) > 2 * sum(hid) >= any other logit.
    tied = (17, 30, 250)
    for row in tied:
        w[row] = 3.0
    got = token_eval(hid.to(device), w.to(device), t.to(device), impl=impl)
    assert torch.all(got.argmax.cpu() == min(tied))
    # The tied tokens share the top probability; every other logit is at least sum(hid) >= 123
    # below, so max_prob is 1/3 up to float32 rounding of the normaliser.
    torch.testing.assert_close(got.max_prob.cpu(), torch.full((n,), 1.0 / 3.0))


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
    got = TokenEvalStats(*(x.cpu() for x in got))
    # The inputs are exactly representable in float32 (bf16 values), so the criterion is the
    # float32 one: no less accurate than plain float32 PyTorch on the same values.
    hf, wf, bf = hb.double(), wb.double(), bb.double()
    naive = _explicit(hf.float(), wf.float(), bf.float(), t, mass_range=(5, 50))
    truth = _explicit(hf, wf, bf, t, mass_range=(5, 50))
    logits, bound = _logits_and_error_bound(hf, wf, bf)
    _check(got, naive, truth, t != -100, logits, bound)


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
