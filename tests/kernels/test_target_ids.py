"""Target ids outside ``[0, V)`` (other than ``ignore_index``) are a clear one-line error.

They used to pass silently with a target logit of 0: a wrong loss, not an error.
"""

from __future__ import annotations

import pytest
import torch
from synknow_kernels import cross_entropy, linear_cross_entropy, token_eval

V = 10


def _call(op: str, targets: torch.Tensor, impl: str, device, **kw):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(*targets.shape, 8, generator=g).to(device)
    w = torch.randn(V, 8, generator=g).to(device)
    t = targets.to(device)
    if op == "linear_cross_entropy":
        return linear_cross_entropy(h, w, t, impl=impl, **kw)
    if op == "cross_entropy":
        return cross_entropy(h @ w.T, t, impl=impl, **kw)
    return token_eval(h, w, t, impl=impl, **kw)


OPS = ["linear_cross_entropy", "cross_entropy", "token_eval"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("bad", [V, V + 5, -1, -101])
def test_out_of_range_id_raises(impl, device, op, bad):
    t = torch.tensor([[1, 2, 3], [4, bad, -100]])
    with pytest.raises(ValueError) as info:
        _call(op, t, impl, device)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"targets[1, 1] = {bad}" in msg and f"[0, {V})" in msg, msg


@pytest.mark.parametrize("op", OPS)
def test_ignore_index_and_edge_ids_are_accepted(impl, device, op):
    t = torch.tensor([0, V - 1, -100, 5])
    _call(op, t, impl, device)
    t2 = torch.tensor([0, V - 1, 123, 5])
    _call(op, t2, impl, device, ignore_index=123)


def test_default_ignore_index_is_invalid_under_another_ignore_index():
    t = torch.tensor([0, -100])
    with pytest.raises(ValueError, match="ignore_index \\(7\\)"):
        _call("linear_cross_entropy", t, "torch", "cpu", ignore_index=7)
