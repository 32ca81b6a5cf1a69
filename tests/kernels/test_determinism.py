"""Gradients are bit-identical from run to run.

The bias gradient used to be summed with atomics in both backward strategies, so its last bits
depended on thread timing on a GPU; it is now a fixed-order sum of per-token-block partials.
The opt-in "fused" backward still adds the hidden and weight gradients with atomics, so under
``torch.use_deterministic_algorithms(True)`` the "chunked" strategy runs instead.

The interpreter runs programs one after another, so the repeat test below can only fail on a
GPU; what a CPU can check is that the default kernels contain no atomics (the sm_90 build in
``test_compile_sm90.py``) and that the deterministic setting changes the strategy (here).
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from _kernel_testing import triton_runnable
from synknow_kernels import linear_cross_entropy

lce_mod = importlib.import_module("synknow_kernels.linear_cross_entropy")

needs_triton = pytest.mark.skipif(not triton_runnable(), reason="needs the Triton impl")


@pytest.fixture
def deterministic(monkeypatch):
    # PyTorch refuses cuBLAS calls in deterministic mode unless cuBLAS gets a fixed workspace.
    monkeypatch.setenv(
        "CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    )
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before, warn_only=warn_only)


def _grads(device, dtype, n=70, h=40, v=150, seed=0):
    g = torch.Generator().manual_seed(seed)
    leaves = [
        x.to(device, dtype).requires_grad_()
        for x in (torch.randn(n, h, generator=g), torch.randn(v, h, generator=g) * 0.3)
    ]
    bias = (torch.randn(v, generator=g) * 0.1).to(device, dtype).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    t[::5] = -100
    loss = linear_cross_entropy(
        leaves[0], leaves[1], t.to(device), bias, label_smoothing=0.1, impl="triton"
    )
    loss.backward()
    return [x.grad for x in (*leaves, bias)]


def test_strategy_is_fused_only_when_asked_and_allowed(monkeypatch, request):
    monkeypatch.setenv(lce_mod.BACKWARD_ENV_VAR, "fused")
    assert lce_mod._backward_mode() == "fused"
    request.getfixturevalue("deterministic")
    assert lce_mod._backward_mode() == "chunked"
    monkeypatch.delenv(lce_mod.BACKWARD_ENV_VAR)
    assert lce_mod._backward_mode() == "chunked"


@needs_triton
def test_deterministic_mode_never_runs_the_atomic_backward(monkeypatch, deterministic):
    def atomic_backward(*args, **kwargs):
        raise AssertionError("the atomic 'fused' backward ran under deterministic algorithms")

    monkeypatch.setenv(lce_mod.BACKWARD_ENV_VAR, "fused")
    monkeypatch.setattr(lce_mod, "_grads_fused", atomic_backward)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    grads = _grads(device, torch.float32)
    assert all(torch.isfinite(g).all() for g in grads)


@needs_triton
@pytest.mark.parametrize("backward", ["chunked", "fused"])
def test_repeat_runs_are_bit_identical(monkeypatch, backward):
    monkeypatch.setenv(lce_mod.BACKWARD_ENV_VAR, backward)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    first, second = _grads(device, torch.float32), _grads(device, torch.float32)
    # fused: only the bias gradient is promised to be deterministic.
    names = ["d_hidden", "d_weight", "d_bias"] if backward == "chunked" else ["d_bias"]
    for name, a, b in zip(["d_hidden", "d_weight", "d_bias"], first, second, strict=True):
        if name in names:
            assert torch.equal(a, b), name


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_repeat_runs_are_bit_identical_on_gpu_at_scale(monkeypatch, dtype):
    """Thousands of programs race for the same bias entries here; atomics would show."""
    monkeypatch.delenv(lce_mod.BACKWARD_ENV_VAR, raising=False)
    runs = [_grads("cuda", dtype, n=8192, h=256, v=8000, seed=3) for _ in range(3)]
    for other in runs[1:]:
        for name, a, b in zip(("d_hidden", "d_weight", "d_bias"), runs[0], other, strict=True):
            assert torch.equal(a, b), name


@pytest.mark.gpu
def test_deterministic_mode_bit_identical_on_gpu(monkeypatch, deterministic):
    monkeypatch.setenv(lce_mod.BACKWARD_ENV_VAR, "fused")
    runs = [_grads("cuda", torch.bfloat16, n=8192, h=256, v=8000, seed=4) for _ in range(2)]
    for name, a, b in zip(("d_hidden", "d_weight", "d_bias"), *runs, strict=True):
        assert torch.equal(a, b), name


@needs_triton
@pytest.mark.parametrize("backward", ["chunked", "fused"])
def test_skipped_tiles_write_zeros_into_uninitialised_buffers(monkeypatch, backward):
    """dlogits and bias partials are allocated without a memset; tiles of ignored rows must
    write their zeros. Poison fresh buffers with NaN so that a missed tile cannot hide."""
    real_empty = torch.empty

    def poisoned_empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setenv(lce_mod.BACKWARD_ENV_VAR, backward)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(1)
    n, h, v = 100, 24, 90
    hid = torch.randn(n, h, generator=g).to(device).requires_grad_()
    w = torch.randn(v, h, generator=g).to(device).requires_grad_()
    b = torch.randn(v, generator=g).to(device).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    t[:70] = -100  # whole token blocks with no gradient: their tiles are skipped
    monkeypatch.setattr(torch, "empty", poisoned_empty)
    linear_cross_entropy(hid, w, t.to(device), b, impl="triton").backward()
    monkeypatch.setattr(torch, "empty", real_empty)
    ref = [x.detach().clone().requires_grad_() for x in (hid, w, b)]
    linear_cross_entropy(ref[0], ref[1], t.to(device), ref[2], impl="torch").backward()
    for name, x, r in zip(("d_hidden", "d_weight", "d_bias"), (hid, w, b), ref, strict=True):
        assert torch.isfinite(x.grad).all(), name
        torch.testing.assert_close(x.grad, r.grad, rtol=1e-5, atol=1e-6, msg=name)
