"""``impl`` selection by dtype: float64 never reaches the Triton kernels.

The kernels accumulate in fp32 and cannot compile for fp64 inputs. ``impl="auto"`` used to pick
Triton for any CUDA tensor, so fp64 on CUDA failed inside Triton's compiler. The decision is
tested here without a GPU through stand-in tensors that report ``is_cuda``.
"""

from __future__ import annotations

import pytest
import torch
from synknow_kernels import _dispatch, cross_entropy, linear_cross_entropy, token_eval
from synknow_kernels._dispatch import ENV_VAR, resolve_impl


class _CudaStandIn:
    """Just what resolve_impl reads from a tensor: device kind and dtype."""

    is_cuda = True

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point


@pytest.fixture
def triton_installed(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(_dispatch, "HAS_TRITON", True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_auto_picks_triton_for_supported_cuda_dtypes(triton_installed, dtype):
    x = _CudaStandIn(dtype)
    assert resolve_impl("auto", x, x, None) == "triton"


def test_auto_picks_torch_for_float64_on_cuda(triton_installed):
    x = _CudaStandIn(torch.float64)
    assert resolve_impl("auto", x, x, None) == "torch"
    assert resolve_impl("auto", x) == "torch"  # cross_entropy passes the logits alone


def test_auto_picks_torch_when_any_input_is_float64(triton_installed):
    assert resolve_impl("auto", _CudaStandIn(torch.float32), _CudaStandIn(torch.float64)) == "torch"


def test_explicit_triton_with_float64_is_a_one_line_error(triton_installed):
    with pytest.raises(ValueError, match="float64") as info:
        resolve_impl("triton", _CudaStandIn(torch.float64))
    assert "\n" not in str(info.value)
    assert "impl='torch'" in str(info.value)


def test_float64_error_comes_before_the_device_error():
    """On CPU without the interpreter the message must still name the dtype problem."""
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="float64"):
        resolve_impl("triton", x)


@pytest.mark.parametrize("op", ["linear_cross_entropy", "cross_entropy", "token_eval"])
def test_public_ops_refuse_float64_with_triton(op):
    h = torch.randn(4, 8, dtype=torch.float64)
    w = torch.randn(5, 8, dtype=torch.float64)
    t = torch.tensor([0, 1, 4, -100])
    with pytest.raises(ValueError, match="float64"):
        if op == "linear_cross_entropy":
            linear_cross_entropy(h, w, t, impl="triton")
        elif op == "cross_entropy":
            cross_entropy(h @ w.T, t, impl="triton")
        else:
            token_eval(h, w, t, impl="triton")


@pytest.mark.gpu
def test_auto_float64_on_cuda_runs_the_reference():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, 32, generator=g, dtype=torch.float64)
    w = torch.randn(100, 32, generator=g, dtype=torch.float64)
    t = torch.randint(0, 100, (64,), generator=g)
    hc, wc = (x.cuda().requires_grad_() for x in (h, w))
    loss = linear_cross_entropy(hc, wc, t.cuda())
    assert loss.dtype == torch.float64
    loss.backward()
    ref = torch.nn.functional.cross_entropy(h @ w.T, t)
    torch.testing.assert_close(loss.cpu(), ref, rtol=1e-12, atol=1e-12)
