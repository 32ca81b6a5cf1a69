"""Cross-entropy on precomputed ``(..., V)`` logits, with the options of the fused op.

Layout: Triton kernels, launchers, custom ops with fake/autograd registrations, public function.

One program handles ``BLOCK_M`` rows and walks the vocabulary in ``BLOCK_V`` chunks with an
online log-sum-exp, so any vocabulary size works with bounded registers. The forward stores four
fp32 numbers per row (max logit, the softmax denominator without one maximal term, target logit,
sum of logits), from which PyTorch forms the log-sum-exp and ``nll = lse - z_target`` without
cancellation, and the loss exactly as for :func:`synknow_kernels.linear_cross_entropy`. The
backward re-reads the row and writes ``dlogits = g_lse * softmax + g_zt * onehot + g_zsum``
(times the softcap derivative) in the logits dtype.
"""

from __future__ import annotations

import torch

from ._dispatch import (
    assemble_loss,
    check_float,
    check_options,
    check_target_ids,
    check_targets,
    interpreter_enabled,
    resolve_impl,
    tl,
    triton,
)
from .linear_cross_entropy import _online_lse_rest, _tanh, merge_lse_rest
from .reference import ce_grads_torch, ce_stats_torch

__all__ = ["cross_entropy"]


@triton.jit
def _ce_fwd_kernel(
    x_ptr,
    t_ptr,
    m_ptr,
    rest_ptr,
    zt_ptr,
    zsum_ptr,
    N,
    V,
    stride_xn,
    stride_xv,
    stride_t,
    softcap,
    SOFTCAP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    # int64 from the start: row * stride exceeds 2^31 once rows x vocab does.
    offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = offs_m < N
    tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)
    # A finite "minus infinity" keeps exp(m_old - m_new) free of inf - inf.
    m_i = tl.full((BLOCK_M,), -1.0e30, dtype=tl.float32)
    r_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    c_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zt_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zsum_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        offs_v = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = offs_v < V
        mask = row_mask[:, None] & col_mask[None, :]
        z = tl.load(
            x_ptr + offs_m[:, None] * stride_xn + offs_v[None, :] * stride_xv,
            mask=mask,
            other=0.0,
        ).to(tl.float32)
        if SOFTCAP:
            z = softcap * _tanh(z / softcap)
        zt_i += tl.sum(tl.where(offs_v[None, :] == tgt[:, None], z, 0.0), axis=1)
        zsum_i += tl.sum(tl.where(col_mask[None, :], z, 0.0), axis=1)
        z = tl.where(col_mask[None, :], z, float("-inf"))
        m_i, r_i, c_i = _online_lse_rest(z, m_i, r_i, c_i)
    # (max, sum without one maximal term): see _online_lse_rest and merge_lse_rest.
    tl.store(m_ptr + offs_m, m_i, mask=row_mask)
    tl.store(rest_ptr + offs_m, r_i + (c_i - 1.0), mask=row_mask)
    tl.store(zt_ptr + offs_m, zt_i, mask=row_mask)
    tl.store(zsum_ptr + offs_m, zsum_i, mask=row_mask)


@triton.jit
def _ce_bwd_kernel(
    x_ptr,
    t_ptr,
    lse_ptr,
    glse_ptr,
    gzt_ptr,
    gzsum_ptr,
    dx_ptr,
    N,
    V,
    stride_xn,
    stride_xv,
    stride_t,
    softcap,
    SOFTCAP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = offs_m < N
    tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)
    lse = tl.load(lse_ptr + offs_m, mask=row_mask, other=0.0)
    g_lse = tl.load(glse_ptr + offs_m, mask=row_mask, other=0.0)
    g_zt = tl.load(gzt_ptr + offs_m, mask=row_mask, other=0.0)
    g_zsum = tl.load(gzsum_ptr + offs_m, mask=row_mask, other=0.0)
    for v0 in range(0, V, BLOCK_V):
        offs_v = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        mask = row_mask[:, None] & (offs_v < V)[None, :]
        z = tl.load(
            x_ptr + offs_m[:, None] * stride_xn + offs_v[None, :] * stride_xv,
            mask=mask,
            other=0.0,
        ).to(tl.float32)
        if SOFTCAP:
            z = softcap * _tanh(z / softcap)
        dz = g_lse[:, None] * tl.exp(z - lse[:, None]) + g_zsum[:, None]
        dz += tl.where(offs_v[None, :] == tgt[:, None], g_zt[:, None], 0.0)
        if SOFTCAP:
            zs = z / softcap
            dz = dz * (1.0 - zs * zs)
        # The gradient is allocated contiguous (row stride V).
        tl.store(
            dx_ptr + offs_m[:, None] * V + offs_v[None, :],
            dz.to(dx_ptr.dtype.element_ty),
            mask=mask,
        )


def _config(v: int) -> dict[str, int]:
    if interpreter_enabled():
        return {"BLOCK_M": 16, "BLOCK_V": 128, "num_warps": 4}
    # About 8k elements per tile: long rows get a wide vocab chunk, short rows get several
    # rows per program so small vocabularies still launch big enough tiles. One row per
    # program from 4096 columns up: the 2 x 4096 bf16 backward tile spilled registers (ptxas,
    # sm_90).
    block_v = min(triton.next_power_of_2(v), 8192)
    block_m = 1 if block_v >= 4096 else min(16, 8192 // block_v)
    return {"BLOCK_M": block_m, "BLOCK_V": block_v, "num_warps": 8, "enable_fp_fusion": True}


def ce_stats_triton(
    logits: torch.Tensor, targets: torch.Tensor, softcap: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, v = logits.shape
    part = torch.empty((4, 1, n), dtype=torch.float32, device=logits.device)
    if n == 0:
        return merge_lse_rest(*part.unbind(0))
    cfg = _config(v)
    _ce_fwd_kernel[(triton.cdiv(n, cfg["BLOCK_M"]),)](
        logits,
        targets,
        part[0],
        part[1],
        part[2],
        part[3],
        n,
        v,
        logits.stride(0),
        logits.stride(1),
        targets.stride(0),
        softcap,
        SOFTCAP=softcap > 0.0,
        **cfg,
    )
    return merge_lse_rest(*part.unbind(0))


def ce_grads_triton(
    logits: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    g_lse: torch.Tensor,
    g_zt: torch.Tensor,
    g_zsum: torch.Tensor,
    softcap: float,
) -> torch.Tensor:
    n, v = logits.shape
    dx = torch.empty((n, v), dtype=logits.dtype, device=logits.device)
    if n > 0:
        f32 = torch.float32
        cfg = _config(v)
        _ce_bwd_kernel[(triton.cdiv(n, cfg["BLOCK_M"]),)](
            logits,
            targets,
            lse.contiguous(),
            g_lse.contiguous().to(f32),
            g_zt.contiguous().to(f32),
            g_zsum.contiguous().to(f32),
            dx,
            n,
            v,
            logits.stride(0),
            logits.stride(1),
            targets.stride(0),
            softcap,
            SOFTCAP=softcap > 0.0,
            **cfg,
        )
    return dx


@torch.library.custom_op("synknow_kernels::ce_stats", mutates_args=())
def _ce_stats_op(
    logits: torch.Tensor, targets: torch.Tensor, softcap: float, impl: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if impl == "triton":
        return ce_stats_triton(logits, targets, softcap)
    return ce_stats_torch(logits, targets, softcap)


@_ce_stats_op.register_fake
def _(logits, targets, softcap, impl):
    dt = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return tuple(logits.new_empty((logits.shape[0],), dtype=dt) for _ in range(3))


@torch.library.custom_op("synknow_kernels::ce_grads", mutates_args=())
def _ce_grads_op(
    logits: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    g_lse: torch.Tensor,
    g_zt: torch.Tensor,
    g_zsum: torch.Tensor,
    softcap: float,
    impl: str,
) -> torch.Tensor:
    if impl == "triton":
        return ce_grads_triton(logits, targets, lse, g_lse, g_zt, g_zsum, softcap)
    return ce_grads_torch(logits, targets, lse, g_lse, g_zt, g_zsum, softcap)


@_ce_grads_op.register_fake
def _(logits, targets, lse, g_lse, g_zt, g_zsum, softcap, impl):
    return logits.new_empty(logits.shape)  # contiguous, like the real gradient


def _setup_context(ctx, inputs, output):
    logits, targets, softcap, impl = inputs
    ctx.save_for_backward(logits, targets, output[0])
    ctx.softcap = softcap
    ctx.impl = impl


def _backward(ctx, g_lse, g_nll, g_zsum):
    logits, targets, lse = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None, None
    g_lse, g_nll, g_zsum = (
        torch.zeros_like(lse) if g is None else g for g in (g_lse, g_nll, g_zsum)
    )
    # nll = lse - z_target: its gradient reaches the logits through both (the grads kernels
    # take the upstream gradients of lse, z_target and sum_j z_j).
    g_lse, g_zt = g_lse + g_nll, -g_nll
    dx = _ce_grads_op(logits, targets, lse, g_lse, g_zt, g_zsum, ctx.softcap, ctx.impl)
    return dx, None, None, None


_ce_stats_op.register_autograd(_backward, setup_context=_setup_context)


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    impl: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on precomputed ``(..., V)`` logits (any strides) against ``targets``.

    Same semantics and options as :func:`synknow_kernels.linear_cross_entropy`;
    ``reduction="none"`` gives the per-token loss with shape ``targets.shape``. The loss is
    float32 (float64 for float64 logits); the logits gradient has the logits dtype.
    """
    check_float("logits", logits)
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V > 0, got {tuple(logits.shape)}")
    check_targets(targets, logits.shape[:-1], logits.device)
    cap = check_options(reduction, label_smoothing, z_loss, softcap)
    backend = resolve_impl(impl, logits)
    v = logits.shape[-1]
    check_target_ids(targets, v, ignore_index)
    token_shape = targets.shape
    x2 = logits.reshape(-1, v)
    t1 = targets.reshape(-1)
    lse, nll, zsum = _ce_stats_op(x2, t1, cap, backend)
    loss = assemble_loss(lse, nll, zsum, t1, v, ignore_index, reduction, label_smoothing, z_loss)
    if reduction == "none":
        loss = loss.reshape(token_shape)
    if return_lse:
        return loss, lse.reshape(token_shape)
    return loss
