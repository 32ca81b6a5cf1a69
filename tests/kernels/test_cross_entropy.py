"""cross_entropy on precomputed logits against a float64 ground truth, for both impls."""

from __future__ import annotations

import pytest
import torch
from _kernel_testing import assert_no_worse, leaf, naive_loss_from_logits
from synknow_kernels import cross_entropy

N, V = 252, 507


def _data(n=N, v=V, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, v, generator=g, dtype=torch.float64) * scale
    t = torch.randint(0, v, (n,), generator=g)
    t[::5] = -100
    return z, t


def check_ce(impl, device, z, t, *, transposed=False, dtype=torch.float32, seed=1, **opts):
    g = torch.Generator().manual_seed(seed)
    reduction = opts.get("reduction", "mean")
    g_out = (
        torch.randn(t.shape, generator=g, dtype=torch.float64)
        if reduction == "none"
        else torch.tensor(0.6, dtype=torch.float64)
    )
    g_lse = torch.randn(t.shape, generator=g, dtype=torch.float64)
    res = {}
    for kind in ("truth", "naive", "ours"):
        dt = torch.float64 if kind == "truth" else dtype
        if transposed:  # (V, N) storage viewed as (N, V): column-major logits
            lf = leaf(z.T.contiguous().to(device, dt))
            x = lf.T
        else:
            lf = leaf(z.to(device, dt))
            x = lf
        tt = t.to(device)
        if kind == "ours":
            out = cross_entropy(x, tt, impl=impl, **opts)
        else:
            out = naive_loss_from_logits(x, tt, **opts)
        loss, lse = out if opts.get("return_lse") else (out, None)
        total = (loss.double() * g_out.to(device)).sum()
        if lse is not None:
            total = total + (lse.double() * g_lse.to(device)).sum()
        total.backward()
        grad = lf.grad.T if transposed else lf.grad
        res[kind] = (loss.detach(), None if lse is None else lse.detach(), grad)
    (l_t, lse_t, g_t), (l_n, lse_n, g_n), (l_o, lse_o, g_o) = (
        res["truth"],
        res["naive"],
        res["ours"],
    )
    assert_no_worse("loss", l_o, l_n, l_t, dtype)
    if lse_t is not None:
        assert_no_worse("lse", lse_o, lse_n, lse_t, dtype)
    assert g_o.dtype == dtype
    assert_no_worse("d_logits", g_o, g_n, g_t, dtype)


OPTION_SETS = {
    "plain": {},
    "smoothing_sum": {"label_smoothing": 0.1, "reduction": "sum"},
    "zloss_softcap_none": {"z_loss": 1e-3, "softcap": 5.0, "reduction": "none"},
    "everything_lse": {
        "label_smoothing": 0.2,
        "z_loss": 1e-2,
        "softcap": 2.0,
        "return_lse": True,
        "reduction": "none",
    },
}


@pytest.mark.parametrize("opts", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_matches_float64(impl, device, opts):
    z, t = _data()
    check_ce(impl, device, z, t, **opts)


def test_transposed_logits(impl, device):
    z, t = _data(n=100, v=300)
    check_ce(impl, device, z, t, transposed=True, label_smoothing=0.1, reduction="none")


def test_three_dim_logits(impl, device):
    z, t = _data(n=2 * 45, v=130)
    z3, t3 = z.reshape(2, 45, 130), t.reshape(2, 45)
    check_ce(impl, device, z3, t3, reduction="none", z_loss=1e-3)


def test_all_rows_ignored(impl, device):
    z, t = _data(n=40, v=70)
    t[:] = -100
    x = leaf(z.to(device, torch.float32))
    loss = cross_entropy(x, t.to(device), impl=impl)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(x.grad == 0)


@pytest.mark.parametrize("v", [1, 3, 129])
def test_small_vocab(impl, device, v):
    z, t = _data(n=21, v=v)
    check_ce(impl, device, z, t, label_smoothing=0.1, reduction="none")


def test_large_vocab(impl, device):
    z, t = _data(n=3, v=70001)
    check_ce(impl, device, z, t, label_smoothing=0.05)


def test_bad_arguments():
    z, t = _data(n=4, v=8)
    with pytest.raises(ValueError, match="targets shape"):
        cross_entropy(z, t[:2])
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(z, t, reduction="avg")
    with pytest.raises(ValueError, match="int64 or int32"):
        cross_entropy(z, t.double())
    with pytest.raises(ValueError, match="impl"):
        cross_entropy(z, t, impl="fast")


def test_torch_compile_aot_eager():
    z, t = _data(n=16, v=40)
    x = leaf(z.float())

    def f(x_, t_):
        return cross_entropy(x_, t_, label_smoothing=0.1, impl="torch") * 3.0

    torch._dynamo.reset()
    out = torch.compile(f, backend="aot_eager", fullgraph=True)(x, t)
    out.backward()
    x2 = leaf(z.float())
    ref = f(x2, t)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, x2.grad)
