"""``_addmm_fp32_``: fp32 accumulation of 16-bit products, with no silent lossy fallback.

It used to try ``torch.addmm(..., out_dtype=)`` and, on any RuntimeError (out-of-memory
included, and the NotImplementedError of backends without that kernel), fall back for good to
rounding each product to 16 bits. Now the path is chosen from what the installed PyTorch
implements, and errors propagate.
"""

from __future__ import annotations

import importlib

import pytest
import torch

# The package re-exports a function named like this module, so import the module by path.
lce_mod = importlib.import_module("synknow_kernels.linear_cross_entropy")


def _operands(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(48, 300, generator=g).to(dtype)
    b = torch.randn(300, 24, generator=g).to(dtype)
    acc = torch.randn(48, 24, generator=g)
    return acc, a, b


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_product_is_accumulated_in_fp32(dtype):
    acc, a, b = _operands(dtype)
    truth = acc.double() + a.double() @ b.double()
    lce_mod._addmm_fp32_(acc, a, b)
    # fp32 accumulation of exact products: error a few fp32 ulps of the sum of |terms|; rounding
    # the product to 16 bits would cost about 2^-9 of it (2^-12 for fp16), far above this bound.
    scale = 1.0 + a.double().abs() @ b.double().abs()
    assert ((acc.double() - truth).abs() / scale).max().item() < 1e-6


def test_unsupported_out_dtype_kernel_is_not_swallowed(monkeypatch):
    # Pretend cuBLAS's fp32-output GEMM applies: on CPU PyTorch raises NotImplementedError.
    monkeypatch.setattr(lce_mod, "_mm_out_dtype_usable", lambda a: True)
    acc, a, b = _operands(torch.bfloat16)
    with pytest.raises(NotImplementedError):
        lce_mod._addmm_fp32_(acc, a, b)


def test_out_of_memory_propagates(monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(lce_mod, "_mm_out_dtype_usable", lambda a: True)
    monkeypatch.setattr(torch, "mm", out_of_memory)
    acc, a, b = _operands(torch.bfloat16)
    with pytest.raises(torch.OutOfMemoryError):
        lce_mod._addmm_fp32_(acc, a, b)


def test_fast_path_only_for_16bit_cuda_tensors():
    _, a, _ = _operands(torch.bfloat16)
    assert not lce_mod._mm_out_dtype_usable(a)  # CPU
    assert not lce_mod._mm_out_dtype_usable(a.float())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_product_is_accumulated_in_fp32_on_cuda(dtype):
    acc, a, b = (x.cuda() for x in _operands(dtype))
    truth = acc.double() + a.double() @ b.double()
    lce_mod._addmm_fp32_(acc, a, b)
    scale = 1.0 + a.double().abs() @ b.double().abs()
    assert ((acc.double() - truth).abs() / scale).max().item() < 1e-6
