"""The small-hidden-size path (``SYNKNOW_KERNELS_LCE_PATH=small_h``) against float64.

It computes the hidden gradient in the forward (softmax-weighted sums of weight rows) and the
weight and bias gradients in a backward that owns vocabulary blocks, so every option must be
checked with arbitrary upstream gradients of both the loss and the log-sum-exp: a wrong ``A``,
``B`` or target term shows up in ``d_hidden``, a wrong recompute in ``d_weight``/``d_bias``.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from _kernel_testing import (
    assert_no_worse,
    assert_no_worse_16bit,
    naive_linear_loss,
    triton_runnable,
)
from synknow_kernels import linear_cross_entropy

lce_mod = importlib.import_module("synknow_kernels.linear_cross_entropy")

pytestmark = pytest.mark.skipif(not triton_runnable(), reason="needs the Triton impl")

N, H, V = 45, 40, 130  # three token blocks, five vocab blocks in the interpreter; H not 2^k


@pytest.fixture(autouse=True)
def _small_h_path(monkeypatch):
    monkeypatch.setenv(lce_mod.PATH_ENV_VAR, "small_h")


@pytest.fixture
def dev():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _data(n=N, h=H, v=V, seed=0, ignore_every=6):
    g = torch.Generator().manual_seed(seed)
    hid = torch.randn(n, h, generator=g, dtype=torch.float64)
    w = torch.randn(v, h, generator=g, dtype=torch.float64) * 0.4
    b = torch.randn(v, generator=g, dtype=torch.float64) * 0.2
    t = torch.randint(0, v, (n,), generator=g)
    if ignore_every:
        t[::ignore_every] = -100
    if n >= 32:
        t[16:32] = -100  # a whole token block of ignored rows (skipped in the backward)
    return hid, w, b, t


def _compare(dev, hid, w, b, t, dtype=torch.float32, requires=(True, True, True), **opts):
    g = torch.Generator().manual_seed(7)
    g_out = torch.randn(t.shape, generator=g, dtype=torch.float64)
    g_lse = torch.randn(t.shape, generator=g, dtype=torch.float64)
    res = {}
    for kind, dt in (("ours", dtype), ("naive", dtype), ("truth", torch.float64)):
        leaves = []
        for x, rg in zip((hid, w, b), requires, strict=True):
            leaves.append(None if x is None else x.to(dtype).to(dev, dt).requires_grad_(rg))
        tt = t.to(dev)
        fn = linear_cross_entropy if kind == "ours" else None
        if fn is not None:
            loss, lse = fn(*leaves[:2], tt, leaves[2], impl="triton", return_lse=True, **opts)
        else:
            loss, lse = naive_linear_loss(*leaves, tt, return_lse=True, **opts)
        go = g_out.to(dev) if loss.dim() else torch.tensor(1.3, dtype=torch.float64)
        total = (loss.double() * go.to(dev)).sum() + (lse.double() * g_lse.to(dev)).sum()
        if any(x is not None and x.requires_grad for x in leaves):
            total.backward()
        grads = [None if x is None or not x.requires_grad else x.grad for x in leaves]
        res[kind] = (loss.detach(), lse.detach(), grads)
    names = ("loss", "lse")
    for i, name in enumerate(names):
        _check(name, res["ours"][i], res["naive"][i], res["truth"][i], dtype)
    for name, go_, gn, gt in zip(
        ("d_hidden", "d_weight", "d_bias"),
        *(res[k][2] for k in ("ours", "naive", "truth")),
        strict=True,
    ):
        if gt is None:
            assert go_ is None, name
        else:
            assert go_.dtype == dtype, name
            _check(name, go_, gn, gt, dtype)


def _check(name, got, naive, truth, dtype):
    if dtype == torch.float32:
        assert_no_worse(name, got, naive, truth, dtype)
    else:
        assert_no_worse_16bit(name, got, naive, truth)


OPTIONS = {
    "mean": {},
    "sum_smoothing": {"reduction": "sum", "label_smoothing": 0.2},
    "none_zloss": {"reduction": "none", "z_loss": 1e-2},
    "softcap": {"softcap": 2.5},
    "softcap_smoothing_none": {"softcap": 3.0, "label_smoothing": 0.3, "reduction": "none"},
    "everything": {"softcap": 4.0, "label_smoothing": 0.1, "z_loss": 1e-3},
}


@pytest.mark.parametrize("opts", OPTIONS.values(), ids=OPTIONS.keys())
def test_every_option_matches_float64(dev, opts):
    hid, w, b, t = _data()
    _compare(dev, hid, w, b, t, **opts)


def test_no_bias_and_custom_ignore_index(dev):
    hid, w, _, t = _data(ignore_every=0)
    t[t == -100] = 3
    t[::4] = 7
    _compare(dev, hid, w, None, t, ignore_index=7, label_smoothing=0.1, softcap=5.0)


@pytest.mark.parametrize(
    "which", [(True, False, False), (False, True, False), (False, False, True)]
)
def test_partial_requires_grad(dev, which):
    hid, w, b, t = _data(n=20, v=70)
    _compare(dev, hid, w, b, t, requires=which, softcap=3.0, label_smoothing=0.1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16bit_inputs(dev, dtype):
    hid, w, b, t = _data()
    _compare(dev, hid, w, b, t, dtype=dtype, softcap=6.0, label_smoothing=0.1, z_loss=1e-4)


@pytest.mark.parametrize("v", [1, 5, 33])
@pytest.mark.parametrize("h", [3, 16, 70])
def test_edge_sizes(dev, v, h):
    hid, w, b, t = _data(n=19, h=h, v=v, ignore_every=4)
    _compare(dev, hid, w, b, t, reduction="none", label_smoothing=0.1)


def test_all_ignored_and_empty(dev):
    hid, w, b, t = _data(n=20)
    t[:] = -100
    leaves = [x.float().to(dev).requires_grad_() for x in (hid, w, b)]
    loss = linear_cross_entropy(leaves[0], leaves[1], t.to(dev), leaves[2], impl="triton")
    assert loss.item() == 0.0
    loss.backward()
    assert all(torch.all(x.grad == 0) for x in leaves)
    empty = torch.zeros(0, H, device=dev, requires_grad=True)
    w0 = w.float().to(dev).requires_grad_()
    loss = linear_cross_entropy(
        empty, w0, torch.zeros(0, dtype=torch.long, device=dev), impl="triton"
    )
    loss.backward()
    assert loss.item() == 0.0 and torch.all(w0.grad == 0)


def test_no_grad_forward_matches(dev):
    hid, w, b, t = _data()
    args = [x.float().to(dev) for x in (hid, w)] + [t.to(dev), b.float().to(dev)]
    with torch.no_grad():
        ours = linear_cross_entropy(*args, reduction="none", impl="triton", softcap=3.0)
    ref = linear_cross_entropy(*args, reduction="none", impl="torch", softcap=3.0)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_repeat_runs_are_bit_identical(dev):
    hid, w, b, t = _data()
    grads = []
    for _ in range(2):
        leaves = [x.float().to(dev).requires_grad_() for x in (hid, w, b)]
        linear_cross_entropy(leaves[0], leaves[1], t.to(dev), leaves[2], impl="triton").backward()
        grads.append([x.grad for x in leaves])
    for a, b_ in zip(*grads, strict=True):
        assert torch.equal(a, b_)


def test_path_setting_is_validated(monkeypatch, dev):
    hid, w, b, t = _data(n=4, v=10)
    monkeypatch.setenv(lce_mod.PATH_ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=lce_mod.PATH_ENV_VAR):
        linear_cross_entropy(hid.float().to(dev), w.float().to(dev), t.to(dev), impl="triton")
    monkeypatch.setenv(lce_mod.PATH_ENV_VAR, "small_h")
    big = torch.zeros(2, 1025, device=dev)
    with pytest.raises(ValueError, match="1024"):
        linear_cross_entropy(
            big,
            torch.zeros(3, 1025, device=dev),
            torch.zeros(2, dtype=torch.long, device=dev),
            impl="triton",
        )


def test_torch_compile_fullgraph(dev):
    hid, w, _, t = _data(n=20, v=50)

    def step(h_, w_, t_):
        return linear_cross_entropy(h_, w_, t_, impl="triton", label_smoothing=0.1, softcap=3.0)

    torch._dynamo.reset()
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    a = [x.float().to(dev).requires_grad_() for x in (hid, w)]
    b = [x.float().to(dev).requires_grad_() for x in (hid, w)]
    out = compiled(a[0], a[1], t.to(dev))
    out.backward()
    ref = step(b[0], b[1], t.to(dev))
    ref.backward()
    torch.testing.assert_close(out, ref)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.grad, y.grad)


# opcheck's AOT-dispatch harness reads .grad of its own non-leaf copies of the inputs.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_opcheck(dev):
    """torch.library's consistency checks (schema, fake tensors, autograd registration)."""
    small_h = importlib.import_module("synknow_kernels.lce_small_h")
    hid, w, b, t = _data(n=12, h=16, v=24)
    args = (
        hid.float().to(dev).requires_grad_(),
        w.float().to(dev).requires_grad_(),
        b.float().to(dev),
        t.to(dev),
        2.0,
        True,
        True,
    )
    torch.library.opcheck(small_h._small_h_op, args)
