"""GPU-only checks: 16-bit inputs, LLM-sized shapes, int64 offsets, torch.compile with inductor.

Every test here is marked ``gpu`` and skipped without CUDA (``benches/gpu_check.sh`` runs
them). The small fp32 tests in the other files also run on the GPU when one is present (their
``triton`` parametrisation uses CUDA).

16-bit criterion (``assert_no_worse_16bit``): against a float64 evaluation of the same (rounded)
16-bit inputs, our error may be at most twice the error of eager PyTorch in that dtype
(``F.linear`` in 16 bit, logits upcast to float32 for the loss) plus ``1e-3`` of the largest true
value.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _kernel_testing import assert_no_worse_16bit, naive_linear_loss
from synknow_kernels import cross_entropy, linear_cross_entropy, token_eval

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")


def _problem(n, h, v, dtype, seed=0, ignore_every=11):
    g = torch.Generator(device=CUDA).manual_seed(seed)
    hid = torch.randn(n, h, generator=g, device=CUDA).to(dtype)
    w = (torch.randn(v, h, generator=g, device=CUDA) * h**-0.5 * 2).to(dtype)
    b = (torch.randn(v, generator=g, device=CUDA) * 0.1).to(dtype)
    t = torch.randint(0, v, (n,), generator=g, device=CUDA)
    t[::ignore_every] = -100
    return hid, w, b, t


def _naive(h, w, t, b, **kw):
    return naive_linear_loss(h, w, b, t, **kw)


def _run(fn, tensors, **kw):
    """``fn(hidden, weight, targets, bias, **kw)`` on fresh leaves; returns loss and grads.

    Leaves keep the strides of the given tensors (a column-major input stays column-major);
    a ``None`` bias stays ``None`` and gets a ``None`` gradient.
    """
    leaves = [None if x is None else _leaf_like(x) for x in tensors[:3]]
    loss = fn(leaves[0], leaves[1], tensors[3], leaves[2], **kw)
    loss.backward()
    return loss.detach(), [None if x is None else x.grad for x in leaves]


def _leaf_like(x: torch.Tensor) -> torch.Tensor:
    leaf = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    return leaf.copy_(x.detach()).requires_grad_()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "shape", [(4096, 1024, 50257), (1024, 2304, 131072 + 77)], ids=["gpt2", "bigvocab"]
)
@pytest.mark.parametrize(
    "opts",
    [{}, {"label_smoothing": 0.1, "z_loss": 1e-4, "softcap": 30.0}],
    ids=["plain", "all_options"],
)
def test_linear_ce_16bit(dtype, shape, opts):
    n, h, v = shape
    data = _problem(n, h, v, dtype)
    ours, g_ours = _run(linear_cross_entropy, data, impl="triton", **opts)
    naive, g_naive = _run(_naive, data, **opts)
    truth, g_truth = _run(_naive, [x.double() for x in data[:3]] + [data[3]], **opts)
    assert_no_worse_16bit("loss", ours, naive, truth)
    for name, a, b, c in zip(("dh", "dw", "db"), g_ours, g_naive, g_truth, strict=True):
        assert a.dtype == dtype
        assert_no_worse_16bit(name, a, b, c)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cross_entropy_16bit(dtype):
    g = torch.Generator(device=CUDA).manual_seed(0)
    z = (torch.randn(4096, 128256, generator=g, device=CUDA) * 3).to(dtype)
    t = torch.randint(0, 128256, (4096,), generator=g, device=CUDA)
    t[::7] = -100
    res = []
    for x, fn in (
        (z, lambda x_: cross_entropy(x_, t, label_smoothing=0.1, impl="triton")),
        (z, lambda x_: F.cross_entropy(x_.float(), t, label_smoothing=0.1)),
        (z.double(), lambda x_: F.cross_entropy(x_, t, label_smoothing=0.1)),
    ):
        leaf = x.detach().clone().requires_grad_()
        loss = fn(leaf)
        loss.backward()
        res.append((loss.detach(), leaf.grad))
    assert_no_worse_16bit("loss", res[0][0], res[1][0], res[2][0])
    assert_no_worse_16bit("dlogits", res[0][1], res[1][1], res[2][1])


def test_token_eval_bf16():
    hid, w, b, t = _problem(2048, 1024, 50257, torch.bfloat16)
    got = token_eval(hid, w, t, bias=b, mass_range=(1000, 2000), impl="triton")
    ref = token_eval(hid.double(), w.double(), t, bias=b.double(), mass_range=(1000, 2000))
    valid = t != -100
    for name in ("nll_bits", "entropy_bits", "max_prob", "range_mass"):
        a, r = getattr(got, name), getattr(ref, name)
        if name == "nll_bits":
            a, r = a[valid], r[valid]
        torch.testing.assert_close(a.double(), r, atol=2e-4, rtol=2e-4, msg=name)
    assert (got.argmax == ref.argmax).float().mean() > 0.999


def test_int64_offsets_tokens_times_hidden():
    """hidden and d_hidden with more than 2^31 elements."""
    h, v = 1024, 1000
    n = 2**31 // h + 4099
    data = _problem(n, h, v, torch.bfloat16, ignore_every=1000)
    ours, (dh, dw, db) = _run(linear_cross_entropy, data, impl="triton", reduction="sum")
    ref, (dh_r, dw_r, db_r) = _run(linear_cross_entropy, data, impl="torch", reduction="sum")
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=0.0)
    # The last rows live beyond int32 element offsets: compare them explicitly.
    torch.testing.assert_close(dh[-4096:].float(), dh_r[-4096:].float(), rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(dw.float(), dw_r.float(), rtol=2e-2, atol=2e-2 * dw_r.abs().max())
    torch.testing.assert_close(db.float(), db_r.float(), rtol=2e-2, atol=2e-2 * db_r.abs().max())


def test_int64_offsets_vocab_times_hidden():
    """weight and d_weight with more than 2^31 elements (vocab x hidden)."""
    h = 512
    v = 2**31 // h + 1000
    data = _problem(512, h, v, torch.bfloat16)
    ours, (dh, dw, _) = _run(linear_cross_entropy, data, impl="triton")
    ref, (dh_r, dw_r, _) = _run(linear_cross_entropy, data, impl="torch")
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(dh.float(), dh_r.float(), rtol=2e-2, atol=2e-2 * dh_r.abs().max())
    tail = slice(v - 4096, v)  # rows whose element offsets exceed 2^31
    torch.testing.assert_close(
        dw[tail].float(), dw_r[tail].float(), rtol=2e-2, atol=2e-2 * dw_r[tail].abs().max()
    )


def test_int64_offsets_logits():
    v = 65536 + 3
    n = 2**31 // v + 257
    g = torch.Generator(device=CUDA).manual_seed(0)
    z = torch.randn(n, v, generator=g, device=CUDA, dtype=torch.bfloat16)
    t = torch.randint(0, v, (n,), generator=g, device=CUDA)
    x = z.clone().requires_grad_()
    loss = cross_entropy(x, t, reduction="none", impl="triton")
    ref = cross_entropy(z, t, reduction="none", impl="torch")
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    loss[-3:].sum().backward()
    assert torch.isfinite(x.grad[-3:].float()).all()
    assert x.grad[-3:].abs().max() > 0
    assert x.grad[:-3].abs().max() == 0


def test_torch_compile_inductor_gpu():
    """Compiled with inductor, the op still matches an independent reference.

    This used to compare the compiled kernel with the same kernel run eagerly, which cannot
    catch a wrong kernel; the references here are eager PyTorch in bf16 and float64.
    """
    data = _problem(1024, 256, 4099, torch.bfloat16)
    opts = {"label_smoothing": 0.1}

    def step(h_, w_, t_, b_):
        return linear_cross_entropy(h_, w_, t_, b_, **opts) * 2.0

    def eager(h_, w_, t_, b_):
        return _naive(h_, w_, t_, b_, **opts) * 2.0

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    out, grads = _run(compiled, data)
    naive, naive_grads = _run(eager, data)
    truth, truth_grads = _run(eager, [x.double() for x in data[:3]] + [data[3]])
    assert_no_worse_16bit("loss", out, naive, truth)
    for name, a, b, c in zip(("dh", "dw", "db"), grads, naive_grads, truth_grads, strict=True):
        assert a.dtype == torch.bfloat16
        assert_no_worse_16bit(name, a, b, c)
    # And compiling changes nothing about the result of the op itself.
    ref, ref_grads = _run(step, data)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=0.0)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2 * b.abs().max())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loss_and_lse_tight_against_fp64_of_16bit_inputs(dtype):
    """Per token, 1e-5 of |lse| from float64 of the same 16-bit inputs (16-bit logits: ~4e-3)."""
    h, w, b, t = _problem(4096, 1024, 50257, dtype)
    opts = {"label_smoothing": 0.1, "z_loss": 1e-4, "softcap": 30.0}
    loss, lse = linear_cross_entropy(h, w, t, b, reduction="none", return_lse=True, **opts)
    truth, lse_truth = naive_linear_loss(
        h.double(), w.double(), b.double(), t, reduction="none", return_lse=True, **opts
    )
    scale = lse_truth.abs().clamp_min(1.0)
    assert ((lse.double() - lse_truth) / scale).abs().max().item() <= 1e-5
    assert ((loss.double() - truth) / scale).abs().max().item() <= 1e-5


def _column_major(x: torch.Tensor) -> torch.Tensor:
    return x.T.contiguous().T


def test_int64_offsets_column_major_weight():
    """Column-major weight with vocab x hidden > 2^31: offs_k * stride_wk exceeds int32."""
    h = 512
    v = 2**31 // h + 1000
    hid, w, _, t = _problem(256, h, v, torch.bfloat16)
    w_cm = _column_major(w)
    assert w_cm.stride() == (1, v)
    ours, (dh, dw, _) = _run(
        lambda h_, w_, t_, b_: linear_cross_entropy(h_, w_, t_, reduction="sum"),
        [hid, w_cm, None, t],
    )
    ref, (dh_r, dw_r, _) = _run(
        lambda h_, w_, t_, b_: linear_cross_entropy(h_, w_, t_, reduction="sum", impl="torch"),
        [hid, w, None, t],
    )
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(dh.float(), dh_r.float(), rtol=2e-2, atol=2e-2 * dh_r.abs().max())
    tail = slice(v - 4096, v)
    torch.testing.assert_close(
        dw[tail].float(), dw_r[tail].float(), rtol=2e-2, atol=2e-2 * dw_r[tail].abs().max()
    )


def test_int64_offsets_column_major_hidden():
    """Column-major hidden with tokens x hidden > 2^31: offs_k * stride_hk exceeds int32."""
    h, v = 1024, 1000
    n = 2**31 // h + 4099
    hid, w, b, t = _problem(n, h, v, torch.bfloat16, ignore_every=1000)
    h_cm = _column_major(hid)
    assert h_cm.stride() == (1, n)
    ours, (dh, dw, db) = _run(
        lambda h_, w_, t_, b_: linear_cross_entropy(h_, w_, t_, b_, reduction="sum"),
        [h_cm, w, b, t],
    )
    ref, (dh_r, dw_r, db_r) = _run(
        lambda h_, w_, t_, b_: linear_cross_entropy(h_, w_, t_, b_, reduction="sum", impl="torch"),
        [hid, w, b, t],
    )
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(dh[-4096:].float(), dh_r[-4096:].float(), rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(dw.float(), dw_r.float(), rtol=2e-2, atol=2e-2 * dw_r.abs().max())
    torch.testing.assert_close(db.float(), db_r.float(), rtol=2e-2, atol=2e-2 * db_r.abs().max())


def test_auto_uses_triton_on_cuda(monkeypatch):
    from synknow_kernels._dispatch import ENV_VAR, resolve_impl

    monkeypatch.delenv(ENV_VAR, raising=False)
    x = torch.zeros(2, 2, device=CUDA)
    assert resolve_impl("auto", x) == "triton"
    monkeypatch.setenv(ENV_VAR, "torch")
    assert resolve_impl("auto", x) == "torch"


@pytest.mark.parametrize("hidden", [64, 256, 768])
def test_small_h_path_at_project_shapes(monkeypatch, hidden):
    """The small-H path against eager bf16 and float64 at the project's own shapes."""
    from synknow_kernels.linear_cross_entropy import PATH_ENV_VAR

    monkeypatch.setenv(PATH_ENV_VAR, "small_h")
    data = _problem(16384, hidden, 2500, torch.bfloat16)
    opts = {"label_smoothing": 0.1, "softcap": 15.0}
    ours, g_ours = _run(linear_cross_entropy, data, impl="triton", **opts)
    naive, g_naive = _run(_naive, data, **opts)
    truth, g_truth = _run(_naive, [x.double() for x in data[:3]] + [data[3]], **opts)
    assert_no_worse_16bit("loss", ours, naive, truth)
    assert abs(ours.item() - truth.item()) <= 1e-5 * abs(truth.item())
    for name, a, b, c in zip(("dh", "dw", "db"), g_ours, g_naive, g_truth, strict=True):
        assert a.dtype == torch.bfloat16
        assert_no_worse_16bit(name, a, b, c)
