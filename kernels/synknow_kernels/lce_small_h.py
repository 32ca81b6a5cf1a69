"""Small-hidden-size path of :func:`synknow_kernels.linear_cross_entropy` (hidden size <= 1024).

FlashAttention-style: the hidden states play the queries and the weight rows both keys and
values. One program keeps a block of ``BLOCK_M`` token rows (the whole hidden dimension) on chip
and walks the vocabulary once. Besides the loss statistics it accumulates, with the same online
rescaling as the log-sum-exp,

* ``A_i = sum_j p_ij s'_ij W_j``  (softmax-weighted sum of weight rows),
* ``B_i = sum_j s'_ij W_j``       (only with a softcap and label smoothing),

where ``s'`` is the softcap derivative (1 without softcap). With the per-row upstream gradients
``g_lse``, ``g_zt`` (target logit) and ``g_zsum`` (sum of logits), the hidden gradient is then
exact for any upstream gradient, without recomputing anything:

    ``dh_i = g_lse_i A_i + g_zt_i s'_it W_t + g_zsum_i B_i``   (``B = sum_j W_j`` without softcap).

The backward only needs the weight and bias gradients: one program owns a block of vocabulary
rows, recomputes its logits for a share of the tokens and accumulates ``dW`` and ``db`` in fp32
registers. Shares of tokens are summed afterwards in a fixed order: no logits in memory, no
atomics, deterministic. Compared with the recompute design (forward, then a backward that
recomputes the logits and runs two more GEMMs) this saves one logits recomputation and the
dlogits round trip through memory; it pays with an ``(N, H)`` fp32 buffer saved for the
backward. Selected with ``SYNKNOW_KERNELS_LCE_PATH=small_h`` until a GPU measurement decides
where ``auto`` should use it.
"""

from __future__ import annotations

import functools

import torch

from ._dispatch import interpreter_enabled, tl, triton
from .linear_cross_entropy import (
    _dot_precision,
    _dot_upcast,
    _online_lse_rest,
    _sm_count,
    _tanh,
    merge_lse_rest,
)

__all__ = ["MAX_HIDDEN", "lce_small_h"]

MAX_HIDDEN = 1024  # the whole hidden dimension of a token block stays on chip


@triton.jit
def _small_h_fwd_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    t_ptr,
    m_ptr,
    rest_ptr,
    zt_ptr,
    zsum_ptr,
    a_ptr,
    bsum_ptr,
    N,
    V,
    H,
    stride_hn,
    stride_hk,
    stride_wv,
    stride_wk,
    stride_b,
    stride_t,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    COMPUTE_A: tl.constexpr,
    COMPUTE_B: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr,
):
    pid_m = tl.program_id(0).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = offs_m < N
    offs_h = tl.arange(0, BLOCK_H).to(tl.int64)
    h_mask = offs_h < H
    tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)
    hq = tl.load(
        h_ptr + offs_m[:, None] * stride_hn + offs_h[None, :] * stride_hk,
        mask=row_mask[:, None] & h_mask[None, :],
        other=0.0,
    )
    if DOT_UPCAST:
        hq = hq.to(tl.float32)

    m_i = tl.full((BLOCK_M,), -1.0e30, dtype=tl.float32)
    r_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    c_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zt_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zsum_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc_a = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        offs_v = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = offs_v < V
        # (BLOCK_H, BLOCK_V): the weight block, loaded transposed for the logits dot.
        wt = tl.load(
            w_ptr + offs_v[None, :] * stride_wv + offs_h[:, None] * stride_wk,
            mask=col_mask[None, :] & h_mask[:, None],
            other=0.0,
        )
        if DOT_UPCAST:
            wt = wt.to(tl.float32)
        z = tl.dot(hq, wt, input_precision=DOT_PRECISION)
        if HAS_BIAS:
            z += tl.load(b_ptr + offs_v * stride_b, mask=col_mask, other=0.0).to(tl.float32)[
                None, :
            ]
        if SOFTCAP:
            z = softcap * _tanh(z / softcap)
            zs = z / softcap
            deriv = tl.where(col_mask[None, :], 1.0 - zs * zs, 0.0)
        zt_i += tl.sum(tl.where(offs_v[None, :] == tgt[:, None], z, 0.0), axis=1)
        zsum_i += tl.sum(tl.where(col_mask[None, :], z, 0.0), axis=1)
        z = tl.where(col_mask[None, :], z, float("-inf"))
        m_old = m_i
        m_i, r_i, c_i = _online_lse_rest(z, m_i, r_i, c_i)
        if COMPUTE_A:
            # Same rescaling as the softmax denominator: acc_a is sum_j exp(z_j - m) s'_j W_j.
            p = tl.exp(z - m_i[:, None])
            if SOFTCAP:
                p = p * deriv
            # Like the recompute path's dlogits, the weights of the weight rows are rounded to
            # the input dtype for the tensor cores (exact products, fp32 accumulation).
            p_in = p.to(w_ptr.dtype.element_ty)
            if DOT_UPCAST:
                p_in = p_in.to(tl.float32)
            acc_a = acc_a * tl.exp(m_old - m_i)[:, None]
            acc_a = tl.dot(p_in, tl.trans(wt), acc_a, input_precision=DOT_PRECISION)
            if COMPUTE_B:
                d_in = deriv.to(w_ptr.dtype.element_ty)
                if DOT_UPCAST:
                    d_in = d_in.to(tl.float32)
                acc_b = tl.dot(d_in, tl.trans(wt), acc_b, input_precision=DOT_PRECISION)

    tl.store(m_ptr + offs_m, m_i, mask=row_mask)
    tl.store(rest_ptr + offs_m, r_i + (c_i - 1.0), mask=row_mask)
    tl.store(zt_ptr + offs_m, zt_i, mask=row_mask)
    tl.store(zsum_ptr + offs_m, zsum_i, mask=row_mask)
    if COMPUTE_A:
        out = offs_m[:, None] * H + offs_h[None, :]
        mask = row_mask[:, None] & h_mask[None, :]
        tl.store(a_ptr + out, acc_a / (r_i + c_i)[:, None], mask=mask)
        if COMPUTE_B:
            tl.store(bsum_ptr + out, acc_b, mask=mask)


@triton.jit
def _small_h_bwd_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    t_ptr,
    lse_ptr,
    glse_ptr,
    gzt_ptr,
    gzsum_ptr,
    dw_ptr,
    db_ptr,
    N,
    V,
    H,
    tokens_per_split,
    stride_hn,
    stride_hk,
    stride_wv,
    stride_wk,
    stride_b,
    stride_t,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr,
):
    # Program (vocab block, token share): partial dW and db of those rows over those tokens,
    # written to slot ``pid_s`` of the (splits, V, H) / (splits, V) fp32 partial buffers.
    pid_v = tl.program_id(0).to(tl.int64)
    pid_s = tl.program_id(1).to(tl.int64)
    offs_v = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    col_mask = offs_v < V
    offs_h = tl.arange(0, BLOCK_H).to(tl.int64)
    h_mask = offs_h < H
    wt = tl.load(
        w_ptr + offs_v[None, :] * stride_wv + offs_h[:, None] * stride_wk,
        mask=col_mask[None, :] & h_mask[:, None],
        other=0.0,
    )
    if DOT_UPCAST:
        wt = wt.to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_v * stride_b, mask=col_mask, other=0.0).to(tl.float32)
    acc_dw = tl.zeros((BLOCK_V, BLOCK_H), dtype=tl.float32)
    acc_db = tl.zeros((BLOCK_V,), dtype=tl.float32)
    m_begin = pid_s * tokens_per_split
    m_end = tl.minimum((pid_s + 1) * tokens_per_split, N)
    for m0 in range(m_begin, m_end, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        row_mask = offs_m < m_end
        g_lse = tl.load(glse_ptr + offs_m, mask=row_mask, other=0.0)
        g_zt = tl.load(gzt_ptr + offs_m, mask=row_mask, other=0.0)
        g_zsum = tl.load(gzsum_ptr + offs_m, mask=row_mask, other=0.0)
        # Token blocks made only of ignored rows (all upstream gradients 0) contribute nothing.
        if tl.max(tl.abs(g_lse) + tl.abs(g_zt) + tl.abs(g_zsum), axis=0) > 0.0:
            lse = tl.load(lse_ptr + offs_m, mask=row_mask, other=0.0)
            tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)
            hq = tl.load(
                h_ptr + offs_m[:, None] * stride_hn + offs_h[None, :] * stride_hk,
                mask=row_mask[:, None] & h_mask[None, :],
                other=0.0,
            )
            if DOT_UPCAST:
                hq = hq.to(tl.float32)
            z = tl.dot(hq, wt, input_precision=DOT_PRECISION)
            if HAS_BIAS:
                z += bias[None, :]
            if SOFTCAP:
                z = softcap * _tanh(z / softcap)
            dz = g_lse[:, None] * tl.exp(z - lse[:, None]) + g_zsum[:, None]
            dz += tl.where(offs_v[None, :] == tgt[:, None], g_zt[:, None], 0.0)
            if SOFTCAP:
                zs = z / softcap
                dz = dz * (1.0 - zs * zs)
            dz = tl.where(row_mask[:, None] & col_mask[None, :], dz, 0.0)
            if COMPUTE_DB:
                acc_db += tl.sum(dz, axis=0)
            if COMPUTE_DW:
                dz_in = dz.to(h_ptr.dtype.element_ty)
                if DOT_UPCAST:
                    dz_in = dz_in.to(tl.float32)
                acc_dw = tl.dot(tl.trans(dz_in), hq, acc_dw, input_precision=DOT_PRECISION)
    if COMPUTE_DW:
        out = (pid_s * V + offs_v)[:, None] * H + offs_h[None, :]
        tl.store(dw_ptr + out, acc_dw, mask=col_mask[:, None] & h_mask[None, :])
    if COMPUTE_DB:
        tl.store(db_ptr + pid_s * V + offs_v, acc_db, mask=col_mask)


def _block_h(h: int) -> int:
    return max(16, triton.next_power_of_2(h))  # tl.dot needs every dimension >= 16


# (BLOCK_H limit, 16-bit forward, 16-bit backward, fp32 forward, fp32 backward), each entry
# (BLOCK_M, BLOCK_V, num_warps). Not timed on a GPU yet: the largest tiles that the sm_90 build
# (tests/kernels/_compile_sm90.py) compiles without register spills, with every option on.
_GPU_CONFIGS = (
    (128, (64, 64, 4), (64, 64, 4), (32, 32, 4), (32, 32, 4)),
    (256, (64, 32, 8), (64, 32, 4), (16, 32, 8), (16, 16, 8)),
    (512, (16, 32, 8), (32, 16, 8), (16, 16, 8), (16, 16, 8)),
    (1024, (16, 16, 8), (32, 16, 8), (16, 16, 8), (16, 16, 8)),
)


def _config(h: int, backward: bool, dtype: torch.dtype = torch.bfloat16) -> dict[str, int]:
    bh = _block_h(h)
    if interpreter_enabled():
        return {"BLOCK_M": 16, "BLOCK_V": 32, "BLOCK_H": bh, "num_warps": 4, "num_stages": 1}
    row = next(r for r in _GPU_CONFIGS if bh <= r[0])
    fp32 = dtype == torch.float32
    bm, bv, warps = row[1 + 2 * fp32 + backward]
    return {
        "BLOCK_M": bm,
        "BLOCK_V": bv,
        "BLOCK_H": bh,
        "num_warps": warps,
        "num_stages": 2,
        "enable_fp_fusion": True,
    }


@functools.lru_cache(maxsize=64)
def _token_splits(num_v: int, num_m: int, device_index: int | None) -> int:
    if device_index is None:
        return min(2, num_m)  # interpreter / CPU: exercise the fixed-order merge
    want = 4 * _sm_count(device_index)
    return max(1, min(num_m, -(-want // max(1, num_v))))


def small_h_forward(hidden, weight, bias, targets, softcap, compute_a, compute_b):
    """``(lse, nll, zsum, z_target, A, B)``; A and B are ``(N, H)`` fp32 or empty."""
    n, h = hidden.shape
    v = weight.shape[0]
    dev = hidden.device
    f32 = torch.float32
    part = torch.empty((4, 1, n), dtype=f32, device=dev)
    a = torch.empty((n, h) if compute_a else (0,), dtype=f32, device=dev)
    b_rows = torch.empty((n, h) if compute_a and compute_b else (0,), dtype=f32, device=dev)
    if n > 0:
        cfg = _config(h, backward=False, dtype=hidden.dtype)
        _small_h_fwd_kernel[(triton.cdiv(n, cfg["BLOCK_M"]),)](
            hidden, weight, bias if bias is not None else hidden, targets,
            part[0], part[1], part[2], part[3], a, b_rows,
            n, v, h,
            hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1),
            bias.stride(0) if bias is not None else 0, targets.stride(0), softcap,
            HAS_BIAS=bias is not None, SOFTCAP=softcap > 0.0,
            COMPUTE_A=compute_a, COMPUTE_B=compute_a and compute_b,
            DOT_PRECISION=_dot_precision(hidden.dtype), DOT_UPCAST=_dot_upcast(hidden.dtype),
            **cfg,
        )  # fmt: skip
    lse, nll, zsum = merge_lse_rest(*part.unbind(0))
    return lse, nll, zsum, part[2, 0].clone(), a, b_rows


def small_h_weight_grads(hidden, weight, bias, targets, lse, g, softcap, need_dw, need_db):
    """``(dW, db)`` (weight/bias dtype, or None) from the per-row upstream gradients ``g``."""
    n, h = hidden.shape
    v = weight.shape[0]
    f32 = torch.float32
    dev = hidden.device
    cfg = _config(h, backward=True, dtype=hidden.dtype)
    num_v = triton.cdiv(v, cfg["BLOCK_V"])
    num_m = triton.cdiv(max(n, 1), cfg["BLOCK_M"])
    splits = _token_splits(num_v, num_m, None if interpreter_enabled() else dev.index or 0)
    tokens_per_split = triton.cdiv(num_m, splits) * cfg["BLOCK_M"]
    splits = max(1, triton.cdiv(n, tokens_per_split))
    dw_part = torch.empty((splits, v, h) if need_dw else (0,), dtype=f32, device=dev)
    db_part = torch.empty((splits, v) if need_db else (0,), dtype=f32, device=dev)
    if n == 0:
        dw_part = torch.zeros_like(dw_part)
        db_part = torch.zeros_like(db_part)
    else:
        _small_h_bwd_kernel[(num_v, splits)](
            hidden, weight, bias if bias is not None else g[0], targets, lse, g[0], g[1], g[2],
            dw_part, db_part,
            n, v, h, tokens_per_split,
            hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1),
            bias.stride(0) if bias is not None else 0, targets.stride(0), softcap,
            HAS_BIAS=bias is not None, SOFTCAP=softcap > 0.0,
            COMPUTE_DW=need_dw, COMPUTE_DB=need_db,
            DOT_PRECISION=_dot_precision(hidden.dtype), DOT_UPCAST=_dot_upcast(hidden.dtype),
            **cfg,
        )  # fmt: skip
    # Fixed-order sums over the token shares: deterministic.
    dw = dw_part.sum(dim=0).to(weight.dtype) if need_dw else None
    db = db_part.sum(dim=0).to(bias.dtype) if need_db and bias is not None else None
    return dw, db


def hidden_grad(weight, targets, zt, a, b_rows, g_lse, g_zt, g_zsum, softcap, dtype):
    """``dh = g_lse A + g_zt s'_t W_t + g_zsum B`` in fp32, returned in ``dtype``."""
    f32 = torch.float32
    v = weight.shape[0]
    t = targets.long()
    valid = (t >= 0) & (t < v)
    w_t = weight.index_select(0, t.clamp(0, v - 1)).to(f32)
    coef_t = torch.where(valid, g_zt.to(f32), torch.zeros((), dtype=f32, device=t.device))
    if softcap > 0.0:
        coef_t = coef_t * (1.0 - (zt.to(f32) / softcap).square())
    dh = g_lse.to(f32)[:, None] * a + coef_t[:, None] * w_t
    if b_rows.numel():
        dh += g_zsum.to(f32)[:, None] * b_rows
    else:  # no softcap: B_i = sum_j W_j for every row
        dh += g_zsum.to(f32)[:, None] * weight.to(f32).sum(dim=0)[None, :]
    return dh.to(dtype)


# --------------------------------------------------------------------------------------------
# Custom ops (opaque to torch.compile) and autograd
# --------------------------------------------------------------------------------------------


@torch.library.custom_op("synknow_kernels::lce_small_h", mutates_args=())
def _small_h_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    softcap: float,
    compute_a: bool,
    compute_b: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    lse, nll, zsum, zt, a, b_rows = small_h_forward(
        hidden, weight, bias, targets, softcap, compute_a, compute_b
    )
    return lse, nll, zsum, a, b_rows, zt


@_small_h_op.register_fake
def _(hidden, weight, bias, targets, softcap, compute_a, compute_b):
    n, h = hidden.shape
    f32 = torch.float32
    vec = [hidden.new_empty((n,), dtype=f32) for _ in range(3)]
    a = hidden.new_empty((n, h) if compute_a else (0,), dtype=f32)
    b_rows = hidden.new_empty((n, h) if compute_a and compute_b else (0,), dtype=f32)
    return vec[0], vec[1], vec[2], a, b_rows, hidden.new_empty((n,), dtype=f32)


@torch.library.custom_op("synknow_kernels::lce_small_h_weight_grads", mutates_args=())
def _small_h_weight_grads_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    g_lse: torch.Tensor,
    g_zt: torch.Tensor,
    g_zsum: torch.Tensor,
    softcap: float,
    need_dw: bool,
    need_db: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    g = tuple(x.contiguous().to(torch.float32) for x in (g_lse, g_zt, g_zsum))
    dw, db = small_h_weight_grads(
        hidden, weight, bias, targets, lse.contiguous(), g, softcap, need_dw, need_db
    )
    empty = hidden.new_empty((0,))
    return (dw if dw is not None else empty), (db if db is not None else empty.clone())


@_small_h_weight_grads_op.register_fake
def _(hidden, weight, bias, targets, lse, g_lse, g_zt, g_zsum, softcap, need_dw, need_db):
    dw = weight.new_empty(weight.shape) if need_dw else hidden.new_empty((0,))
    db = bias.new_empty(bias.shape) if (need_db and bias is not None) else hidden.new_empty((0,))
    return dw, db


def _setup_context(ctx, inputs, output):
    hidden, weight, bias, targets, softcap, compute_a, compute_b = inputs
    lse, _, _, a, b_rows, zt = output
    ctx.save_for_backward(hidden, weight, bias, targets, lse, a, b_rows, zt)
    ctx.softcap = softcap
    ctx.compute_a = compute_a
    ctx.mark_non_differentiable(a, b_rows, zt)


def _backward(ctx, g_lse, g_nll, g_zsum, _g_a, _g_b, _g_zt):
    hidden, weight, bias, targets, lse, a, b_rows, zt = ctx.saved_tensors
    need_dh, need_dw, need_db = ctx.needs_input_grad[:3]
    g_lse, g_nll, g_zsum = (
        torch.zeros_like(lse) if g is None else g for g in (g_lse, g_nll, g_zsum)
    )
    g_lse, g_zt = g_lse + g_nll, -g_nll  # nll = lse - z_target
    dh = dw = db = None
    if need_dh:
        if not ctx.compute_a:
            raise RuntimeError(
                "linear_cross_entropy small_h path: hidden needs a gradient but the forward ran "
                "without grad mode (A not computed)"
            )
        dh = hidden_grad(
            weight, targets, zt, a, b_rows, g_lse, g_zt, g_zsum, ctx.softcap, hidden.dtype
        )
    need_db = need_db and bias is not None
    if need_dw or need_db:
        dw_t, db_t = _small_h_weight_grads_op(
            hidden, weight, bias, targets, lse, g_lse, g_zt, g_zsum, ctx.softcap, need_dw, need_db
        )
        dw = dw_t if need_dw else None
        db = db_t if need_db else None
    return dh, dw, db, None, None, None, None


_small_h_op.register_autograd(_backward, setup_context=_setup_context)


def lce_small_h(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    softcap: float,
    zsum_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lse, nll, zsum)`` per row of ``(N, H)`` hidden states through the small-H kernels.

    ``zsum_grad``: the loss uses the sum of logits (label smoothing), so with a softcap the
    forward also accumulates ``B``.
    """
    h = hidden.shape[1]
    if h > MAX_HIDDEN:
        raise ValueError(f"the small_h path supports hidden sizes up to {MAX_HIDDEN}, got {h}")
    compute_a = hidden.requires_grad and torch.is_grad_enabled()
    lse, nll, zsum, _, _, _ = _small_h_op(
        hidden, weight, bias, targets, softcap, compute_a, zsum_grad and softcap > 0.0
    )
    return lse, nll, zsum
