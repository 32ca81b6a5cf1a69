"""Non-contiguous inputs that reach the kernels as strided views, never as copies.

The existing 3-D test permutes ``(T, B, H)`` storage to ``(B, T, H)``; flattening that to
``(B*T, H)`` is not expressible with strides, so ``reshape`` copies it and the kernels only
ever see a contiguous tensor. Here every input is laid out so that the flattened 2-D tensor is
still a view of the original storage (asserted), with non-unit strides on the hidden dimension
or a row stride larger than the row, and loss and all gradients are checked against float64.
"""

from __future__ import annotations

import pytest
import torch
from _kernel_testing import assert_no_worse, naive_linear_loss
from synknow_kernels import linear_cross_entropy, token_eval

B, T, H, V = 3, 23, 40, 150


def _values(seed=0):
    g = torch.Generator().manual_seed(seed)
    hid = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    w = torch.randn(V, H, generator=g, dtype=torch.float64) * 0.3
    b = torch.randn(V, generator=g, dtype=torch.float64) * 0.1
    t = torch.randint(0, V, (B, T), generator=g)
    t[:, ::5] = -100
    return hid, w, b, t


def _hidden_view(hid: torch.Tensor, layout: str, dtype, device):
    """(leaf holding the storage, (B, T, H) view of it with the values of ``hid``)."""
    if layout == "hidden_major":  # storage (H, B, T): flattened view has strides (1, B*T)
        base = hid.permute(2, 0, 1).contiguous().to(device, dtype).requires_grad_()
        return base, base.permute(1, 2, 0)
    if layout == "every_other_feature":  # storage (B, T, 2H), features at even positions
        wide = torch.zeros(B, T, 2 * H, dtype=torch.float64)
        wide[..., ::2] = hid
        base = wide.to(device, dtype).requires_grad_()
        return base, base[..., ::2]
    if layout == "padded_rows":  # storage (B, T, H + 7): row stride larger than the row
        wide = torch.zeros(B, T, H + 7, dtype=torch.float64)
        wide[..., :H] = hid
        base = wide.to(device, dtype).requires_grad_()
        return base, base[..., :H]
    raise AssertionError(layout)


def _weight_view(w: torch.Tensor, layout: str, dtype, device):
    if layout == "column_major":
        base = w.T.contiguous().to(device, dtype).requires_grad_()
        return base, base.T
    if layout == "slice_of_wider":  # storage (V, 3H), the weight is the middle third
        wide = torch.zeros(V, 3 * H, dtype=torch.float64)
        wide[:, H : 2 * H] = w
        base = wide.to(device, dtype).requires_grad_()
        return base, base[:, H : 2 * H]
    raise AssertionError(layout)


@pytest.mark.parametrize("h_layout", ["hidden_major", "every_other_feature", "padded_rows"])
@pytest.mark.parametrize("w_layout", ["column_major", "slice_of_wider"])
def test_strided_views_match_float64(impl, device, h_layout, w_layout):
    hid, w, b, t = _values()
    g_out = torch.randn(B, T, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    results = {}
    for kind, dt in (("ours", torch.float32), ("naive", torch.float32), ("truth", torch.float64)):
        h_base, h_in = _hidden_view(hid, h_layout, dt, device)
        w_base, w_in = _weight_view(w, w_layout, dt, device)
        b_in = b.to(device, dt).requires_grad_()
        flat = h_in.reshape(-1, H)
        assert flat.data_ptr() == h_in.data_ptr() and not flat.is_contiguous()
        assert not w_in.is_contiguous()
        tt = t.to(device)
        if kind == "ours":
            loss = linear_cross_entropy(h_in, w_in, tt, b_in, reduction="none", impl=impl)
        else:
            loss = naive_linear_loss(h_in, w_in, b_in, tt, reduction="none")
        (loss.double() * g_out.to(device)).sum().backward()
        dh = _hidden_view_grad(h_base, h_layout)
        dw = w_base.grad.T if w_layout == "column_major" else w_base.grad[:, H : 2 * H]
        results[kind] = (loss.detach(), dh, dw, b_in.grad)
    for i, name in enumerate(("loss", "d_hidden", "d_weight", "d_bias")):
        got, naive, truth = (results[k][i] for k in ("ours", "naive", "truth"))
        assert_no_worse(name, got, naive, truth, torch.float32)


def _hidden_view_grad(base: torch.Tensor, layout: str) -> torch.Tensor:
    g = base.grad
    if layout == "hidden_major":
        return g.permute(1, 2, 0)
    if layout == "every_other_feature":
        assert torch.all(g[..., 1::2] == 0)  # nothing leaks into the unused features
        return g[..., ::2]
    assert torch.all(g[..., H:] == 0)
    return g[..., :H]


def test_token_eval_on_strided_views(impl, device):
    hid, w, b, t = _values(seed=1)
    _, h_in = _hidden_view(hid, "hidden_major", torch.float32, device)
    _, w_in = _weight_view(w, "column_major", torch.float32, device)
    got = token_eval(h_in.detach(), w_in.detach(), t.to(device), impl=impl)
    ref = token_eval(hid, w, t, impl="torch")
    valid = t != -100
    torch.testing.assert_close(
        got.nll_bits.cpu()[valid].double(), ref.nll_bits[valid], rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        got.entropy_bits.cpu().double(), ref.entropy_bits, rtol=1e-5, atol=1e-5
    )
