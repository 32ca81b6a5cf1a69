"""linear_cross_entropy against a float64 ground truth, for both implementations.

Under ``TRITON_INTERPRET=1`` (set by tests/conftest.py when there is no GPU) the ``triton``
parametrisation runs the real kernels in the Triton interpreter on CPU; with a GPU it runs them
on CUDA. Shapes are odd on purpose (252 x 123 x 507: no dimension is a multiple of any block
size) and the vocabulary spans several vocab blocks and splits.
"""

from __future__ import annotations

import pytest
import torch
from _kernel_testing import (
    assert_no_worse,
    assert_no_worse_16bit,
    leaf,
    naive_linear_loss,
    triton_runnable,
)
from synknow_kernels import linear_cross_entropy
from synknow_kernels.linear_cross_entropy import BACKWARD_ENV_VAR

N, H, V = 252, 123, 507


def pytest_generate_tests(metafunc):
    """Tests taking ``backward`` run for torch once and for Triton with both strategies."""
    if "backward" not in metafunc.fixturenames:
        return
    combos = [("torch", "chunked")]
    if triton_runnable():
        combos += [("triton", "chunked"), ("triton", "fused")]
    # Direct parametrisation of ``impl`` replaces the conftest fixture for these tests.
    metafunc.parametrize(("impl", "backward"), combos, ids=[f"{i}-{b}" for i, b in combos])


@pytest.fixture(autouse=True)
def _backward_env(request, monkeypatch):
    if "backward" in request.fixturenames:
        monkeypatch.setenv(BACKWARD_ENV_VAR, request.getfixturevalue("backward"))


def _data(n=N, h=H, v=V, seed=0, ignore_every=7, bias=True, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    hid = torch.randn(n, h, generator=g, dtype=torch.float64)
    w = torch.randn(v, h, generator=g, dtype=torch.float64) * scale
    b = torch.randn(v, generator=g, dtype=torch.float64) if bias else None
    t = torch.randint(0, v, (n,), generator=g)
    if ignore_every:
        t[::ignore_every] = -100
    if n >= 128:
        t[64:128] = -100  # a whole token block of ignored rows: the backward skips its tiles
    return hid, w, b, t


def _make_inputs(tensors, dtype, device, transposed):
    leaves, inputs = [], []
    for x in tensors:
        if x is None:
            leaves.append(None)
            inputs.append(None)
        elif transposed and x.dim() == 2:
            lf = leaf(x.T.contiguous().to(device, dtype))
            leaves.append(lf)
            inputs.append(lf.T)  # same values, column-major strides
        else:
            lf = leaf(x.to(device, dtype))
            leaves.append(lf)
            inputs.append(lf)
    return leaves, inputs


def _grads(leaves, transposed):
    out = []
    for lf in leaves:
        if lf is None:
            out.append(None)
        else:
            out.append(lf.grad.T if (transposed and lf.dim() == 2) else lf.grad)
    return out


def check_lce(
    impl,
    device,
    hid,
    w,
    b,
    t,
    *,
    dtype=torch.float32,
    transposed=False,
    seed=1,
    **opts,
):
    """Run ours, naive-in-dtype and naive-in-float64; compare loss, lse and every gradient."""
    g = torch.Generator().manual_seed(seed)
    reduction = opts.get("reduction", "mean")
    if reduction == "none":
        g_out = torch.randn(t.shape, generator=g, dtype=torch.float64)
    else:
        g_out = torch.tensor(1.7, dtype=torch.float64)
    g_lse = torch.randn(t.shape, generator=g, dtype=torch.float64)
    res = {}
    for kind in ("truth", "naive", "ours"):
        dt = torch.float64 if kind == "truth" else dtype
        leaves, (h_in, w_in, b_in) = _make_inputs((hid, w, b), dt, device, transposed)
        tt = t.to(device)
        if kind == "ours":
            out = linear_cross_entropy(h_in, w_in, tt, b_in, impl=impl, **opts)
        else:
            out = naive_linear_loss(h_in, w_in, b_in, tt, **opts)
        loss, lse = out if opts.get("return_lse") else (out, None)
        total = (loss.double() * g_out.to(device)).sum()
        if lse is not None:
            total = total + (lse.double() * g_lse.to(device)).sum()
        total.backward()
        lse = None if lse is None else lse.detach()
        res[kind] = (loss.detach(), lse, _grads(leaves, transposed))
    (l_t, lse_t, g_t), (l_n, lse_n, g_n) = res["truth"], res["naive"]
    l_o, lse_o, g_o = res["ours"]
    assert l_o.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_no_worse("loss", l_o, l_n, l_t, dtype)
    if lse_t is not None:
        assert_no_worse("lse", lse_o, lse_n, lse_t, dtype)
    for name, go, gn, gt in zip(("d_hidden", "d_weight", "d_bias"), g_o, g_n, g_t, strict=True):
        if gt is None:
            assert go is None
            continue
        assert go.dtype == dtype
        assert_no_worse(name, go, gn, gt, dtype)
    return res


OPTION_SETS = {
    "plain": {},
    "bias_smoothing_sum": {"label_smoothing": 0.1, "reduction": "sum"},
    "zloss_softcap_none": {"z_loss": 1e-3, "softcap": 5.0, "reduction": "none"},
    "everything_mean": {"label_smoothing": 0.2, "z_loss": 1e-2, "softcap": 3.0},
    "lse_output_grad": {"return_lse": True, "reduction": "none", "softcap": 4.0},
    "smoothing_none": {"label_smoothing": 0.3, "reduction": "none"},
}


@pytest.mark.parametrize("opts", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_matches_float64(impl, device, backward, opts):
    hid, w, b, t = _data()
    check_lce(impl, device, hid, w, b, t, **opts)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16bit_inputs(impl, device, backward, dtype):
    """bf16/fp16 on small shapes (the interpreter emulates the tensor-core dot exactly)."""
    hid, w, b, t = _data(n=130, v=300)
    opts = {"label_smoothing": 0.1, "z_loss": 1e-4, "softcap": 30.0}
    res = []
    for kind, dt in (("ours", dtype), ("naive", dtype), ("truth", torch.float64)):
        # Round to the 16-bit dtype first so that all three see the same input values.
        leaves = [leaf(x.to(dtype).to(device, dt)) for x in (hid, w, b)]
        tt = t.to(device)
        if kind == "ours":
            loss = linear_cross_entropy(leaves[0], leaves[1], tt, leaves[2], impl=impl, **opts)
        else:
            loss = naive_linear_loss(leaves[0], leaves[1], leaves[2], tt, **opts)
        loss.backward()
        res.append((loss.detach(), *(x.grad for x in leaves)))
    for i, name in enumerate(("loss", "d_hidden", "d_weight", "d_bias")):
        if i:
            assert res[0][i].dtype == dtype
        assert_no_worse_16bit(name, res[0][i], res[1][i], res[2][i])


def test_no_bias(impl, device):
    hid, w, _, t = _data(bias=False)
    check_lce(impl, device, hid, w, None, t, reduction="none")


def test_ignore_index_inside_vocab(impl, device):
    hid, w, b, t = _data(ignore_every=0)
    t[t < 0] = 3
    t[::3] = 5  # class 5 is the ignored id here
    check_lce(impl, device, hid, w, b, t, ignore_index=5, label_smoothing=0.1)


def test_non_contiguous_inputs(impl, device, backward):
    hid, w, b, t = _data()
    # Strided targets and bias: every other element of a longer tensor.
    t2 = torch.stack([t, torch.zeros_like(t)], dim=1)[:, 0]
    b2 = torch.stack([b, torch.zeros_like(b)], dim=1)[:, 0]
    assert not t2.is_contiguous() and not b2.is_contiguous()
    check_lce(impl, device, hid, w, b2, t2, transposed=True, z_loss=1e-3, reduction="none")


def test_three_dim_hidden_from_permuted_tensor(impl, device):
    hid, w, b, t = _data(n=4 * 37)
    base = hid.reshape(37, 4, H)  # (T, B, H) storage, used as a (B, T, H) view
    h_in = leaf(base.to(device, torch.float32))
    targets = t.reshape(37, 4).T.to(device)
    loss = linear_cross_entropy(
        h_in.permute(1, 0, 2), w.float().to(device), targets, impl=impl, reduction="none"
    )
    assert loss.shape == (4, 37)
    truth, naive = (
        naive_linear_loss(
            base.permute(1, 0, 2).to(device, dt), w.to(device, dt), None, targets, reduction="none"
        )
        for dt in (torch.float64, torch.float32)
    )
    assert_no_worse("loss", loss.detach(), naive, truth, torch.float32)
    loss.sum().backward()
    assert h_in.grad.shape == base.shape


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_rows_ignored(impl, device, backward, reduction):
    hid, w, b, t = _data(n=70)
    t[:] = -100
    h_in, w_in, b_in = (leaf(x.to(device, torch.float32)) for x in (hid, w, b))
    loss, lse = linear_cross_entropy(
        h_in, w_in, t.to(device), b_in, reduction=reduction, return_lse=True, impl=impl
    )
    assert torch.all(loss == 0)
    assert torch.isfinite(lse).all()
    loss.sum().backward()
    for x in (h_in, w_in, b_in):
        assert torch.all(x.grad == 0)


@pytest.mark.parametrize("v", [1, 5, 64, 65])
def test_tiny_and_block_edge_vocab(impl, device, backward, v):
    hid, w, b, t = _data(n=33, h=17, v=v, ignore_every=4)
    check_lce(impl, device, hid, w, b, t, label_smoothing=0.1, reduction="none")


@pytest.mark.parametrize("which", ["hidden", "weight", "bias"])
def test_partial_requires_grad(impl, device, backward, which):
    hid, w, b, t = _data(n=40, v=130)
    tensors = {
        "hidden": hid.to(device, torch.float32),
        "weight": w.to(device, torch.float32),
        "bias": b.to(device, torch.float32),
    }
    tensors[which].requires_grad_(True)
    loss = linear_cross_entropy(
        tensors["hidden"], tensors["weight"], t.to(device), tensors["bias"], impl=impl
    )
    loss.backward()
    for name, x in tensors.items():
        assert (x.grad is not None) == (name == which)
    grads = {}
    for dt in (torch.float32, torch.float64):
        ref = {k: leaf(v.detach().to(dt)) for k, v in tensors.items()}
        naive_linear_loss(ref["hidden"], ref["weight"], ref["bias"], t.to(device)).backward()
        grads[dt] = ref[which].grad
    assert_no_worse(
        which, tensors[which].grad, grads[torch.float32], grads[torch.float64], torch.float32
    )


def test_int32_targets(impl, device):
    hid, w, b, t = _data(n=50, v=100)
    check_lce(impl, device, hid, w, b, t.to(torch.int32))


def test_empty_batch(impl, device):
    _, w, b, _ = _data(n=1)
    h_in = leaf(torch.zeros(0, H, device=device))
    w_in = leaf(w.to(device, torch.float32))
    t = torch.zeros(0, dtype=torch.long, device=device)
    for reduction in ("mean", "sum"):
        loss = linear_cross_entropy(h_in, w_in, t, reduction=reduction, impl=impl)
        assert loss.item() == 0.0
        loss.backward()
    assert torch.all(w_in.grad == 0)
    assert linear_cross_entropy(h_in, w_in, t, reduction="none", impl=impl).shape == (0,)


def test_large_vocab_torch_impl():
    # Vocabulary above 65536 (a CUDA grid-dimension limit), not a power of two.
    hid, w, b, t = _data(n=6, h=16, v=70001, ignore_every=3)
    check_lce("torch", torch.device("cpu"), hid, w, b, t, label_smoothing=0.1)


@pytest.mark.slow
def test_large_vocab_triton(impl, device):
    if impl != "triton":
        pytest.skip("torch impl covered by test_large_vocab_torch_impl")
    hid, w, b, t = _data(n=6, h=16, v=70001, ignore_every=3)
    check_lce(impl, device, hid, w, b, t, label_smoothing=0.1)


def test_float64_torch_impl():
    hid, w, b, t = _data(n=40, v=90)
    check_lce("torch", torch.device("cpu"), hid, w, b, t, dtype=torch.float64, z_loss=1e-3)


def test_matches_torch_cross_entropy_semantics():
    """Without our extras, the loss is exactly F.cross_entropy on the logits (torch impl)."""
    hid, w, b, t = _data(n=64, v=97)
    for smoothing in (0.0, 0.25):
        for reduction in ("mean", "sum", "none"):
            ours = linear_cross_entropy(
                hid, w, t, b, label_smoothing=smoothing, reduction=reduction, impl="torch"
            )
            ref = torch.nn.functional.cross_entropy(
                hid @ w.T + b, t, label_smoothing=smoothing, reduction=reduction
            )
            # float64 throughout; the torch impl chunks over tokens (other matmul shapes, so
            # other BLAS blocking), so the two differ by a few roundings of u = 2^-53 ~ 1.1e-16
            # per term of a 123-long dot on values of magnitude <= 10: 1e-12 is ample.
            torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Argument checking and dispatch
# --------------------------------------------------------------------------------------------


def _small():
    h = torch.randn(8, 16)
    w = torch.randn(32, 16)
    t = torch.randint(0, 32, (8,))
    return h, w, t


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reduction": "avg"}, "reduction"),
        ({"impl": "cuda"}, "impl"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"z_loss": -1.0}, "z_loss"),
        ({"softcap": 0.0}, "softcap"),
    ],
)
def test_bad_options_raise(kwargs, match):
    h, w, t = _small()
    with pytest.raises(ValueError, match=match):
        linear_cross_entropy(h, w, t, **kwargs)


def test_bad_shapes_and_dtypes_raise():
    h, w, t = _small()
    with pytest.raises(ValueError, match="hidden size"):
        linear_cross_entropy(h[:, :8], w, t)
    with pytest.raises(ValueError, match="targets shape"):
        linear_cross_entropy(h, w, t[:4])
    with pytest.raises(ValueError, match="int64 or int32"):
        linear_cross_entropy(h, w, t.float())
    with pytest.raises(ValueError, match="dtype"):
        linear_cross_entropy(h, w.double(), t)
    with pytest.raises(ValueError, match="bias"):
        linear_cross_entropy(h, w, t, torch.zeros(31))
    with pytest.raises(ValueError, match="weight must have shape"):
        linear_cross_entropy(h, w[None], t)
    with pytest.raises(ValueError, match="floating-point"):
        linear_cross_entropy(h.long(), w, t)


def test_triton_rejects_float64():
    h, w, t = _small()
    with pytest.raises(ValueError, match="float64"):
        linear_cross_entropy(h.double(), w.double(), t, impl="triton")


def test_env_override(monkeypatch):
    from synknow_kernels._dispatch import ENV_VAR, interpreter_enabled, resolve_impl

    h, w, t = _small()
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_impl("auto", h, w) == "torch"  # CPU tensors
    monkeypatch.setenv(ENV_VAR, "torch")
    assert resolve_impl("auto", h, w) == "torch"
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_impl("auto", h, w)
    monkeypatch.setenv(ENV_VAR, "triton")
    if interpreter_enabled():
        assert resolve_impl("auto", h, w) == "triton"
        assert resolve_impl("torch", h, w) == "torch"  # explicit argument wins over the env
    else:
        with pytest.raises(ValueError, match="CUDA"):
            resolve_impl("auto", h, w)


# --------------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------------


def _compile_roundtrip(backend: str) -> None:
    hid, w, b, t = _data(n=40, v=90)
    h_in, w_in, b_in = (leaf(x.float()) for x in (hid, w, b))

    def step(h_, w_, b_, t_):
        loss = linear_cross_entropy(h_, w_, t_, b_, label_smoothing=0.1, z_loss=1e-3, impl="torch")
        return loss * 2.0

    torch._dynamo.reset()
    compiled = torch.compile(step, backend=backend, fullgraph=True)
    out = compiled(h_in, w_in, b_in, t)
    out.backward()
    ref_leaves = [leaf(x.float()) for x in (hid, w, b)]
    ref = step(*ref_leaves, t)
    ref.backward()
    torch.testing.assert_close(out, ref)
    for a, r in zip((h_in, w_in, b_in), ref_leaves, strict=True):
        torch.testing.assert_close(a.grad, r.grad)


def test_torch_compile_aot_eager():
    _compile_roundtrip("aot_eager")


@pytest.mark.slow
def test_torch_compile_inductor():
    _compile_roundtrip("inductor")


# opcheck's AOT-dispatch harness reads .grad of its own non-leaf copies of the inputs.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_opcheck():
    """torch.library's own consistency checks (schema, fake tensors, autograd registration)."""
    from synknow_kernels.linear_cross_entropy import _lce_stats_op

    hid, w, b, t = _data(n=20, v=40)
    args = (hid.float().requires_grad_(), w.float().requires_grad_(), b.float(), t, 2.0, "torch")
    torch.library.opcheck(_lce_stats_op, args)


def test_bad_backward_strategy(monkeypatch):
    if not triton_runnable():
        pytest.skip("needs the Triton impl")
    hid, w, b, t = _data(n=8, v=20)
    h_in = leaf(hid.float())
    monkeypatch.setenv(BACKWARD_ENV_VAR, "magic")
    loss = linear_cross_entropy(h_in, w.float(), t, impl="triton")
    with pytest.raises(ValueError, match=BACKWARD_ENV_VAR):
        loss.backward()
