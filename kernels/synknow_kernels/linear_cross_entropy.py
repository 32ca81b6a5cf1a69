"""Fused linear + cross-entropy: ``loss(hidden @ weight.T + bias, targets)`` without logits.

Layout of this file: the Triton kernels, their launchers, the custom ops (with fake and autograd
registrations, so ``torch.compile`` treats them as opaque nodes), then the public function.

Design. The forward kernel walks a block of ``BLOCK_M`` tokens across the vocabulary in
``BLOCK_V`` tiles; each tile of logits is produced by ``tl.dot`` over the hidden dimension in
fp32 and immediately folded into an online log-sum-exp (kept as the max and the sum without one
maximal term, so that ``nll = lse - z_target`` needs no cancelling subtraction), the target
logit and the sum of logits (needed by label smoothing). Only those four fp32 numbers per token
leave the kernel. The vocabulary can be split over several programs (``NSPLIT``) so that few
tokens still fill the GPU; the partial results are merged in PyTorch.

The backward gets, per token, the upstream gradients of those three numbers and the saved
log-sum-exp. A backward kernel recomputes one ``(BLOCK_M, BLOCK_V)`` logits tile at a time and
forms ``dlogits = g_lse * softmax + g_zt * onehot(target) + g_zsum`` (times the softcap
derivative); tiles whose tokens all have zero upstream gradient (ignored rows) are skipped.
Two strategies then turn dlogits into gradients (environment variable
``SYNKNOW_KERNELS_LCE_BACKWARD``, read when the backward runs):

* ``chunked`` (default): the kernel writes dlogits for one vocabulary chunk (at most
  ``_DZ_CHUNK_BYTES``, input dtype) and cuBLAS computes ``d_weight[chunk] = dlogits.T @ hidden``
  and ``d_hidden += dlogits @ weight[chunk]`` (fp32 accumulation). Bounded extra memory, and the
  two big contractions run at cuBLAS speed.
* ``fused``: the kernel contracts the tile right away with the weight tile (-> d_hidden) and the
  hidden tile (-> d_weight) and adds both into fp32 buffers with atomics; no dlogits ever reach
  memory, at the price of atomic traffic and of run-to-run differences in the last bits. The
  fp32 weight-gradient buffer covers at most ``_DW_CHUNK_BYTES`` of vocabulary rows at a time.
  Under ``torch.use_deterministic_algorithms(True)`` ``chunked`` runs instead.

In both, the bias gradient is summed deterministically: each token block writes its fp32
partial column sums, which PyTorch adds in a fixed order.
"""

from __future__ import annotations

import functools
import os

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
from .reference import lce_grads_torch, lce_stats_torch

__all__ = ["linear_cross_entropy"]

# Backward strategy, read when the backward runs: "chunked" (default) or "fused".
BACKWARD_ENV_VAR = "SYNKNOW_KERNELS_LCE_BACKWARD"
# Triton path, read at each call: "auto" (default; the recompute path until a GPU measurement
# decides where small_h wins), "recompute" (forward + recomputing backward, any hidden size) or
# "small_h" (lce_small_h.py: hidden gradient from the forward, hidden size <= 1024).
PATH_ENV_VAR = "SYNKNOW_KERNELS_LCE_PATH"
# "fused": largest fp32 weight-gradient accumulation buffer for 16-bit weights (bytes).
_DW_CHUNK_BYTES = 1 << 28
# "chunked": largest dlogits buffer (tokens x vocabulary chunk, input dtype), in bytes.
_DZ_CHUNK_BYTES = 1 << 29


# --------------------------------------------------------------------------------------------
# Triton kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def _tanh(x):
    # libdevice tanh is not available in the interpreter, so build it from exp. The exp form
    # loses relative accuracy near 0 (1 - e^{-2|x|} cancels), where a short odd Taylor series is
    # exact to fp32 rounding instead.
    ax = tl.abs(x)
    e = tl.exp(-2.0 * ax)
    big = (1.0 - e) / (1.0 + e)
    x2 = ax * ax
    small = ax * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))))
    t = tl.where(ax < 0.2, small, big)
    return tl.where(x < 0, -t, t)


@triton.jit
def _online_lse_rest(z, m_i, r_i, c_i):
    """Fold a ``(BLOCK_M, BLOCK_V)`` logits tile into the running ``(m, r, c)`` of each row.

    ``m`` is the running max, ``c`` how many logits equal it and ``r = sum exp(z_j - m)`` over
    the logits below it, so ``sum_j exp(z_j - m) = c + r`` and ``rest = r + (c - 1)`` is the
    sum without one maximal term, with no subtraction of nearly equal numbers. The loss is then
    ``(m - z_t) + log1p(rest)``: accurate also when the target probability is near 1, where
    ``lse - z_t`` would cancel to 0 or one ulp of ``lse``. Masked columns must be ``-inf``.
    """
    m_new = tl.maximum(m_i, tl.max(z, axis=1))
    grew = m_new > m_i
    # Logits that equalled the old max fall below the new one: they move from c to r.
    r_i = tl.where(grew, tl.exp(m_i - m_new) * (r_i + c_i), r_i)
    c_i = tl.where(grew, 0.0, c_i)
    below = z < m_new[:, None]
    r_i += tl.sum(tl.where(below, tl.exp(z - m_new[:, None]), 0.0), axis=1)
    c_i += tl.sum(tl.where(z == m_new[:, None], 1.0, 0.0), axis=1)
    return m_new, r_i, c_i


@triton.jit
def _logits_tile(
    h_ptr,
    w_ptr,
    b_ptr,
    offs_m,
    offs_v,
    row_mask,
    col_mask,
    H,
    stride_hn,
    stride_hk,
    stride_wv,
    stride_wk,
    stride_b,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr,
):
    """fp32 tile ``softcap(h[offs_m] @ w[offs_v].T + b[offs_v])`` of shape (BLOCK_M, BLOCK_V)."""
    acc = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        # int64, because offs_k * stride_hk (or stride_wk) is large for column-major inputs.
        offs_k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        k_mask = offs_k < H
        h = tl.load(
            h_ptr + offs_m[:, None] * stride_hn + offs_k[None, :] * stride_hk,
            mask=row_mask[:, None] & k_mask[None, :],
            other=0.0,
        )
        # Loaded already transposed, (BLOCK_K, BLOCK_V): any weight stride works.
        w = tl.load(
            w_ptr + offs_v[None, :] * stride_wv + offs_k[:, None] * stride_wk,
            mask=col_mask[None, :] & k_mask[:, None],
            other=0.0,
        )
        if DOT_UPCAST:
            h = h.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(h, w, acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        b = tl.load(b_ptr + offs_v * stride_b, mask=col_mask, other=0.0).to(tl.float32)
        acc = acc + b[None, :]
    if SOFTCAP:
        acc = softcap * _tanh(acc / softcap)
    return acc


@triton.jit
def _lce_fwd_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    t_ptr,
    m_ptr,
    rest_ptr,
    zt_ptr,
    zsum_ptr,
    N,
    V,
    H,
    stride_hn,
    stride_hk,
    stride_wv,
    stride_wk,
    stride_b,
    stride_t,
    blocks_per_split,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr,
):
    # int64 from the start: row * stride overflows int32 once tokens x hidden > 2^31.
    pid_m = tl.program_id(0).to(tl.int64)
    pid_s = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = offs_m < N
    tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)

    # A finite "minus infinity" keeps exp(m_old - m_new) and the rescaling free of inf - inf.
    m_i = tl.full((BLOCK_M,), -1.0e30, dtype=tl.float32)
    r_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    c_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zt_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zsum_i = tl.zeros((BLOCK_M,), dtype=tl.float32)

    v_begin = pid_s * blocks_per_split * BLOCK_V
    v_end = tl.minimum((pid_s + 1) * blocks_per_split * BLOCK_V, V)
    for v0 in range(v_begin, v_end, BLOCK_V):
        offs_v = v0 + tl.arange(0, BLOCK_V)
        col_mask = offs_v < v_end
        z = _logits_tile(
            h_ptr,
            w_ptr,
            b_ptr,
            offs_m,
            offs_v,
            row_mask,
            col_mask,
            H,
            stride_hn,
            stride_hk,
            stride_wv,
            stride_wk,
            stride_b,
            softcap,
            HAS_BIAS,
            SOFTCAP,
            BLOCK_M,
            BLOCK_V,
            BLOCK_K,
            DOT_PRECISION,
            DOT_UPCAST,
        )
        zt_i += tl.sum(tl.where(offs_v[None, :] == tgt[:, None], z, 0.0), axis=1)
        zsum_i += tl.sum(tl.where(col_mask[None, :], z, 0.0), axis=1)
        z = tl.where(col_mask[None, :], z, float("-inf"))
        m_i, r_i, c_i = _online_lse_rest(z, m_i, r_i, c_i)

    out = pid_s * N + offs_m
    tl.store(m_ptr + out, m_i, mask=row_mask)
    tl.store(rest_ptr + out, r_i + (c_i - 1.0), mask=row_mask)
    tl.store(zt_ptr + out, zt_i, mask=row_mask)
    tl.store(zsum_ptr + out, zsum_i, mask=row_mask)


@triton.jit
def _lce_bwd_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    t_ptr,
    lse_ptr,
    glse_ptr,
    gzt_ptr,
    gzsum_ptr,
    dh_ptr,
    dw_ptr,
    db_ptr,
    dz_ptr,
    N,
    H,
    v_begin,
    v_end,
    stride_dz,
    stride_db,
    stride_hn,
    stride_hk,
    stride_wv,
    stride_wk,
    stride_b,
    stride_t,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    COMPUTE_DH: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    STORE_DZ: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr,
):
    # Grouped program order: GROUP_M consecutive programs share one weight tile while walking
    # token blocks, so weight tiles are reused from L2 instead of re-read from HBM.
    # All index arithmetic in int64, so that no int32 product can reach a pointer offset.
    # tl.cast rather than .to(): N or v_end may arrive as constexpr (launch value 1).
    pid = tl.program_id(0).to(tl.int64)
    num_m = tl.cast(tl.cdiv(N, BLOCK_M), tl.int64)
    num_v = tl.cast(tl.cdiv(v_end - v_begin, BLOCK_V), tl.int64)
    per_group = GROUP_M * num_v
    first_m = (pid // per_group) * GROUP_M
    group_size = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_size
    pid_v = (pid % per_group) // group_size

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_v = v_begin + pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    row_mask = offs_m < N
    col_mask = offs_v < v_end

    g_lse = tl.load(glse_ptr + offs_m, mask=row_mask, other=0.0)
    g_zt = tl.load(gzt_ptr + offs_m, mask=row_mask, other=0.0)
    g_zsum = tl.load(gzsum_ptr + offs_m, mask=row_mask, other=0.0)
    # Ignored rows have all three upstream gradients exactly 0: a tile made only of such rows
    # contributes nothing, so skip its three matmuls.
    active = tl.max(tl.abs(g_lse) + tl.abs(g_zt) + tl.abs(g_zsum), axis=0) > 0.0
    if active:
        lse = tl.load(lse_ptr + offs_m, mask=row_mask, other=0.0)
        tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)
        z = _logits_tile(
            h_ptr,
            w_ptr,
            b_ptr,
            offs_m,
            offs_v,
            row_mask,
            col_mask,
            H,
            stride_hn,
            stride_hk,
            stride_wv,
            stride_wk,
            stride_b,
            softcap,
            HAS_BIAS,
            SOFTCAP,
            BLOCK_M,
            BLOCK_V,
            BLOCK_K,
            DOT_PRECISION,
            DOT_UPCAST,
        )
        p = tl.exp(z - lse[:, None])
        dz = g_lse[:, None] * p + g_zsum[:, None]
        dz += tl.where(offs_v[None, :] == tgt[:, None], g_zt[:, None], 0.0)
        if SOFTCAP:
            zs = z / softcap
            dz = dz * (1.0 - zs * zs)
        dz = tl.where(row_mask[:, None] & col_mask[None, :], dz, 0.0)
        offs_vl = offs_v - v_begin  # column in this launch's vocabulary chunk
        if COMPUTE_DB:
            # One fp32 partial sum per (token block, vocabulary column), summed in a fixed
            # order afterwards: atomics would make the bias gradient depend on timing.
            tl.store(db_ptr + pid_m * stride_db + offs_vl, tl.sum(dz, axis=0), mask=col_mask)
        if STORE_DZ:
            # "chunked" backward: hand the dlogits tile to cuBLAS (see _grads_chunked).
            tl.store(
                dz_ptr + offs_m[:, None] * stride_dz + offs_vl[None, :],
                dz.to(dz_ptr.dtype.element_ty),
                mask=row_mask[:, None] & col_mask[None, :],
            )
        if COMPUTE_DH or COMPUTE_DW:
            # The two contractions run on the tensor cores in the input dtype, accumulating in fp32,
            # like the eager backward of a 16-bit linear layer.
            dz_in = dz.to(h_ptr.dtype.element_ty)
            if DOT_UPCAST:
                dz_in = dz_in.to(tl.float32)  # keeps the 16-bit rounding, see _dot_upcast
            for k0 in range(0, H, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
                k_mask = offs_k < H
                if COMPUTE_DH:
                    w = tl.load(
                        w_ptr + offs_v[:, None] * stride_wv + offs_k[None, :] * stride_wk,
                        mask=col_mask[:, None] & k_mask[None, :],
                        other=0.0,
                    )
                    if DOT_UPCAST:
                        w = w.to(tl.float32)
                    dh = tl.dot(dz_in, w, input_precision=DOT_PRECISION)
                    tl.atomic_add(
                        dh_ptr + offs_m[:, None] * H + offs_k[None, :],
                        dh,
                        mask=row_mask[:, None] & k_mask[None, :],
                        sem="relaxed",
                    )
                if COMPUTE_DW:
                    h = tl.load(
                        h_ptr + offs_m[:, None] * stride_hn + offs_k[None, :] * stride_hk,
                        mask=row_mask[:, None] & k_mask[None, :],
                        other=0.0,
                    )
                    if DOT_UPCAST:
                        h = h.to(tl.float32)
                    dw = tl.dot(tl.trans(dz_in), h, input_precision=DOT_PRECISION)
                    tl.atomic_add(
                        dw_ptr + offs_vl[:, None] * H + offs_k[None, :],
                        dw,
                        mask=col_mask[:, None] & k_mask[None, :],
                        sem="relaxed",
                    )
    else:
        # Skipped tile: its share of dlogits and of the bias partials is zero. Writing the
        # zeros here (each element has exactly one owner) spares a memset of both buffers.
        offs_vl = offs_v - v_begin
        if STORE_DZ:
            tl.store(
                dz_ptr + offs_m[:, None] * stride_dz + offs_vl[None, :],
                tl.zeros((BLOCK_M, BLOCK_V), dtype=dz_ptr.dtype.element_ty),
                mask=row_mask[:, None] & col_mask[None, :],
            )
        if COMPUTE_DB:
            tl.store(
                db_ptr + pid_m * stride_db + offs_vl,
                tl.zeros((BLOCK_V,), dtype=tl.float32),
                mask=col_mask,
            )


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs follow PyTorch's matmul setting (exact fp32 unless the user lowered
    # torch.set_float32_matmul_precision); the setting is irrelevant for 16-bit inputs.
    if dtype == torch.float32 and torch.get_float32_matmul_precision() == "highest":
        return "ieee"
    return "tf32"


def _dot_upcast(dtype: torch.dtype) -> bool:
    # The Triton interpreter stores bfloat16 as uint16 and its tl.dot multiplies those raw bit
    # patterns as integers. Under the interpreter, bf16 operands are therefore converted to fp32
    # right before each dot: products of bf16 values are exact in fp32, so this reproduces the
    # tensor-core result (bf16 inputs, fp32 accumulation). Compiled kernels never do this.
    return dtype == torch.bfloat16 and interpreter_enabled()


def _config(dtype: torch.dtype, backward: bool) -> dict[str, int]:
    if interpreter_enabled():
        # Small tiles so that CPU tests cover several vocab/token/hidden blocks per row.
        return {"BLOCK_M": 32, "BLOCK_V": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 1}
    # Not timed on a GPU yet: picked so that the sm_90 build (tests/kernels/_compile_sm90.py)
    # is pipelined, uses wgmma for 16-bit inputs, fits shared memory and spills no registers.
    # fp_fusion is passed explicitly because Triton warns when it has to pick the default.
    if dtype == torch.float32:
        # fp32 "ieee" dots run on FMA units and hold whole tiles in registers: fewer rows in
        # the backward, which keeps three tiles alive.
        # 8 warps: on 4, the forward with softcap spilled 36 bytes (ptxas) and the fused
        # backward 164.
        bm = 32 if backward else 64
        cfg = {"BLOCK_M": bm, "BLOCK_V": 64, "BLOCK_K": 32, "num_warps": 8, "num_stages": 2}
    elif backward:
        cfg = {"BLOCK_M": 128, "BLOCK_V": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 2}
    else:
        cfg = {"BLOCK_M": 128, "BLOCK_V": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3}
    return {**cfg, "enable_fp_fusion": True}


def _num_splits(num_m: int, num_v: int, device: torch.device) -> int:
    if interpreter_enabled() or device.type != "cuda":
        return min(2, num_v)  # exercise the split merge in CPU tests without many programs
    # Aim for a few waves of programs; never more splits than vocab blocks.
    want = 4 * _sm_count(device.index if device.index is not None else 0)
    return max(1, min(num_v, -(-want // max(1, num_m))))


def lce_stats_triton(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    softcap: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, h = hidden.shape
    v = weight.shape[0]
    dev = hidden.device
    if n == 0:
        empty = torch.empty(0, dtype=torch.float32, device=dev)
        return empty, empty.clone(), empty.clone()
    cfg = _config(hidden.dtype, backward=False)
    num_m = triton.cdiv(n, cfg["BLOCK_M"])
    num_v = triton.cdiv(v, cfg["BLOCK_V"])
    nsplit = _num_splits(num_m, num_v, dev)
    blocks_per_split = triton.cdiv(num_v, nsplit)
    nsplit = triton.cdiv(num_v, blocks_per_split)  # every split owns at least one vocab block
    part = torch.empty((4, nsplit, n), dtype=torch.float32, device=dev)
    b_arg = bias if bias is not None else hidden  # dummy pointer, never read
    _lce_fwd_kernel[(num_m, nsplit)](
        hidden,
        weight,
        b_arg,
        targets,
        part[0],
        part[1],
        part[2],
        part[3],
        n,
        v,
        h,
        hidden.stride(0),
        hidden.stride(1),
        weight.stride(0),
        weight.stride(1),
        bias.stride(0) if bias is not None else 0,
        targets.stride(0),
        blocks_per_split,
        softcap,
        HAS_BIAS=bias is not None,
        SOFTCAP=softcap > 0.0,
        DOT_PRECISION=_dot_precision(hidden.dtype),
        DOT_UPCAST=_dot_upcast(hidden.dtype),
        **cfg,
    )
    return merge_lse_rest(*part.unbind(0))


def merge_lse_rest(
    m: torch.Tensor, rest: torch.Tensor, zt: torch.Tensor, zsum: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lse, nll, sum_j z_j)`` per row from ``(splits, rows)`` partials of the kernels.

    Split ``s`` holds the max ``m_s`` of its logits, ``rest_s`` (its sum of ``exp(z - m_s)``
    without one maximal term), its part of the target logit (0 unless the target is in it) and
    of the logit sum. The split holding the overall max contributes its ``rest`` as is, the
    others ``exp(m_s - M) (1 + rest_s)``, so no step subtracts nearly equal numbers.
    """
    top, best = m.max(dim=0)
    owns_max = torch.arange(m.shape[0], device=m.device)[:, None] == best[None, :]
    rest_all = torch.where(owns_max, rest, torch.exp(m - top) * (1.0 + rest)).sum(dim=0)
    log1p_rest = torch.log1p(rest_all)
    return top + log1p_rest, (top - zt.sum(dim=0)) + log1p_rest, zsum.sum(dim=0)


def _triton_path(hidden_size: int) -> str:
    path = os.environ.get(PATH_ENV_VAR, "auto").strip().lower() or "auto"
    if path not in ("auto", "recompute", "small_h"):
        raise ValueError(f"{PATH_ENV_VAR} must be 'auto', 'recompute' or 'small_h', got {path!r}")
    if path == "small_h" and hidden_size > _small_h.MAX_HIDDEN:
        raise ValueError(
            f"{PATH_ENV_VAR}=small_h supports hidden sizes up to {_small_h.MAX_HIDDEN}, "
            f"got {hidden_size}"
        )
    return "recompute" if path == "auto" else path


def _backward_mode() -> str:
    """The backward strategy: ``fused`` only if asked for and results may depend on timing.

    ``fused`` adds into the weight and hidden gradients with atomics, so its results vary in
    the last bits from run to run; under ``torch.use_deterministic_algorithms(True)`` the
    deterministic ``chunked`` strategy runs instead.
    """
    mode = os.environ.get(BACKWARD_ENV_VAR, "chunked").strip().lower() or "chunked"
    if mode not in ("chunked", "fused"):
        raise ValueError(f"{BACKWARD_ENV_VAR} must be 'chunked' or 'fused', got {mode!r}")
    if mode == "fused" and torch.are_deterministic_algorithms_enabled():
        return "chunked"
    return mode


def _bias_grad_partials(n: int, v0: int, v1: int, cfg: dict, device: torch.device):
    """``(token blocks, v1 - v0)`` fp32 buffer for the kernel's bias-gradient partials.

    Uninitialised: every entry has exactly one owning program, which writes it (zeros for
    skipped tiles).
    """
    num_m = triton.cdiv(n, cfg["BLOCK_M"])
    return torch.empty((num_m, v1 - v0), dtype=torch.float32, device=device)


# PyTorch >= 2.8 has aten::mm.dtype: cuBLAS's 16-bit-in / fp32-out GEMM. Decided from the
# operator schema, never from a caught exception (an exception may be out-of-memory).
_MM_HAS_OUT_DTYPE = "dtype" in torch.ops.aten.mm.overloads()


def _mm_out_dtype_usable(a: torch.Tensor) -> bool:
    """True when ``torch.mm(a, b, out_dtype=torch.float32)`` is implemented for ``a``.

    PyTorch implements it for float16/bfloat16 CUDA tensors only (CPU raises
    NotImplementedError).
    """
    return _MM_HAS_OUT_DTYPE and a.is_cuda and a.dtype in (torch.float16, torch.bfloat16)


def _addmm_fp32_(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``acc += a @ b`` with ``acc`` fp32 and 16-bit ``a``/``b``, accumulating in fp32.

    On CUDA the product comes from cuBLAS's 16-bit-in / fp32-out GEMM; elsewhere (the CPU
    interpreter, PyTorch without ``mm(out_dtype=)``) the operands are upcast first, which is
    exact (16-bit products are exact in fp32) at the cost of fp32 copies. Errors, out-of-memory
    included, propagate: no path silently rounds the product to 16 bits.
    """
    if a.dtype == acc.dtype:
        acc.addmm_(a, b)
    elif _mm_out_dtype_usable(a):
        acc.add_(torch.mm(a, b, out_dtype=acc.dtype))
    else:
        acc.addmm_(a.to(acc.dtype), b.to(acc.dtype))


def _launch_bwd(
    hidden, weight, bias, targets, lse, g, softcap, v0, v1, dh, dw, db, dz, cfg, upcast_dot
) -> None:
    n, h = hidden.shape
    dummy = g[0]  # placeholder pointer for disabled outputs, never touched
    grid = (triton.cdiv(n, cfg["BLOCK_M"]) * triton.cdiv(v1 - v0, cfg["BLOCK_V"]),)
    _lce_bwd_kernel[grid](
        hidden,
        weight,
        bias if bias is not None else dummy,
        targets,
        lse,
        g[0],
        g[1],
        g[2],
        dh if dh is not None else dummy,
        dw if dw is not None else dummy,
        db if db is not None else dummy,
        dz if dz is not None else dummy,
        n,
        h,
        v0,
        v1,
        dz.stride(0) if dz is not None else 0,
        db.stride(0) if db is not None else 0,
        hidden.stride(0),
        hidden.stride(1),
        weight.stride(0),
        weight.stride(1),
        bias.stride(0) if bias is not None else 0,
        targets.stride(0),
        softcap,
        HAS_BIAS=bias is not None,
        SOFTCAP=softcap > 0.0,
        COMPUTE_DH=dh is not None,
        COMPUTE_DW=dw is not None,
        COMPUTE_DB=db is not None,
        STORE_DZ=dz is not None,
        GROUP_M=8,
        DOT_PRECISION=_dot_precision(hidden.dtype),
        DOT_UPCAST=upcast_dot,
        **cfg,
    )


def _grads_fused(hidden, weight, bias, targets, lse, g, softcap, need_dh, need_dw, need_db):
    """Everything in one kernel: the dlogits tile never leaves registers; fp32 atomics.

    The bias gradient is deterministic (fixed-order partial sums); the hidden and weight
    gradients are not (atomics).
    """
    n, h = hidden.shape
    v = weight.shape[0]
    f32 = torch.float32
    dh_acc = torch.zeros((n, h), dtype=f32, device=hidden.device) if need_dh else None
    dw_out = torch.zeros((v, h), dtype=weight.dtype, device=weight.device) if need_dw else None
    db_acc = torch.zeros(v, dtype=f32, device=weight.device) if need_db else None
    cfg = _config(hidden.dtype, backward=True)
    bv = cfg["BLOCK_V"]
    # fp32 weights: accumulate straight into the returned gradient; 16-bit: through an fp32
    # buffer of at most _DW_CHUNK_BYTES. Either way the bias partials stay under that size.
    cols = v if weight.dtype == f32 else _DW_CHUNK_BYTES // (4 * max(1, h))
    if need_db:
        cols = min(cols, _DW_CHUNK_BYTES // (4 * triton.cdiv(n, cfg["BLOCK_M"])))
    chunk = max(bv, cols // bv * bv)
    for v0 in range(0, v, chunk):
        v1 = min(v, v0 + chunk)
        if dw_out is None or weight.dtype == f32:
            dw_acc = None if dw_out is None else dw_out[v0:v1]
        else:
            dw_acc = torch.zeros((v1 - v0, h), dtype=f32, device=weight.device)
        db_part = _bias_grad_partials(n, v0, v1, cfg, hidden.device) if need_db else None
        _launch_bwd(
            hidden, weight, bias, targets, lse, g, softcap, v0, v1,
            dh_acc, dw_acc, db_part, None, cfg, _dot_upcast(hidden.dtype),
        )  # fmt: skip
        if dw_out is not None and dw_acc is not None and weight.dtype != f32:
            dw_out[v0:v1].copy_(dw_acc)
        if db_acc is not None and db_part is not None:
            torch.sum(db_part, dim=0, out=db_acc[v0:v1])
    return dh_acc, dw_out, db_acc


def _grads_chunked(hidden, weight, bias, targets, lse, g, softcap, need_dh, need_dw, need_db):
    """Kernel writes dlogits for a vocabulary chunk, cuBLAS does the two big contractions.

    ``d_weight[chunk] = dlogits.T @ hidden`` is complete in one GEMM (fp32 accumulation inside
    cuBLAS); ``d_hidden`` accumulates ``dlogits @ weight[chunk]`` over chunks in fp32.
    """
    n, h = hidden.shape
    v = weight.shape[0]
    f32 = torch.float32
    dev = hidden.device
    dh_acc = torch.zeros((n, h), dtype=f32, device=dev) if need_dh else None
    dw_out = torch.empty((v, h), dtype=weight.dtype, device=dev) if need_dw else None
    db_acc = torch.zeros(v, dtype=f32, device=dev) if need_db else None
    # Recompute + store is shaped like the forward; fp32 needs the smaller backward tile (the
    # dlogits tile stays live next to the logits tile) to avoid register spills.
    cfg = _config(hidden.dtype, backward=hidden.dtype == torch.float32)
    bv = cfg["BLOCK_V"]
    elem = hidden.element_size()
    chunk = max(bv, (_DZ_CHUNK_BYTES // (elem * max(1, n))) // bv * bv)
    for v0 in range(0, v, chunk):
        v1 = min(v, v0 + chunk)
        # No memset: the kernel writes every element (zeros for skipped tiles).
        dz = torch.empty((n, v1 - v0), dtype=hidden.dtype, device=dev)
        db_part = _bias_grad_partials(n, v0, v1, cfg, dev) if need_db else None
        _launch_bwd(
            hidden, weight, bias, targets, lse, g, softcap, v0, v1,
            None, None, db_part, dz, cfg, _dot_upcast(hidden.dtype),
        )  # fmt: skip
        if db_acc is not None and db_part is not None:
            torch.sum(db_part, dim=0, out=db_acc[v0:v1])
        if dh_acc is not None:
            _addmm_fp32_(dh_acc, dz, weight[v0:v1])
        if dw_out is not None:
            torch.mm(dz.T, hidden, out=dw_out[v0:v1])
    return dh_acc, dw_out, db_acc


def lce_grads_triton(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    g_lse: torch.Tensor,
    g_zt: torch.Tensor,
    g_zsum: torch.Tensor,
    softcap: float,
    need_dh: bool = True,
    need_dw: bool = True,
    need_db: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    n = hidden.shape[0]
    need_db = need_db and bias is not None
    g = tuple(x.contiguous().to(torch.float32) for x in (g_lse, g_zt, g_zsum))
    if n == 0 or not (need_dh or need_dw or need_db):
        dh = hidden.new_zeros(hidden.shape) if need_dh else None
        dw = torch.zeros_like(weight) if need_dw else None
        db = torch.zeros_like(bias) if need_db else None  # type: ignore[arg-type]
        return dh, dw, db
    fn = _grads_fused if _backward_mode() == "fused" else _grads_chunked
    dh, dw, db = fn(
        hidden, weight, bias, targets, lse.contiguous(), g, softcap, need_dh, need_dw, need_db
    )
    return (
        None if dh is None else dh.to(hidden.dtype),
        dw,
        None if db is None else db.to(bias.dtype),  # type: ignore[union-attr]
    )


# --------------------------------------------------------------------------------------------
# Custom ops (opaque to torch.compile) and autograd
# --------------------------------------------------------------------------------------------


@torch.library.custom_op("synknow_kernels::lce_stats", mutates_args=())
def _lce_stats_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    softcap: float,
    impl: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if impl == "triton":
        out = lce_stats_triton(hidden, weight, bias, targets, softcap)
    else:
        out = lce_stats_torch(hidden, weight, bias, targets, softcap)
    # Custom ops must not return views of each other or of inputs.
    return tuple(t.contiguous().clone() if t._base is not None else t for t in out)  # type: ignore[return-value]


@_lce_stats_op.register_fake
def _(hidden, weight, bias, targets, softcap, impl):
    dt = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    n = hidden.shape[0]
    return tuple(hidden.new_empty((n,), dtype=dt) for _ in range(3))


@torch.library.custom_op("synknow_kernels::lce_grads", mutates_args=())
def _lce_grads_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    g_lse: torch.Tensor,
    g_zt: torch.Tensor,
    g_zsum: torch.Tensor,
    softcap: float,
    impl: str,
    need_dh: bool,
    need_dw: bool,
    need_db: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    fn = lce_grads_triton if impl == "triton" else lce_grads_torch
    dh, dw, db = fn(
        hidden, weight, bias, targets, lse, g_lse, g_zt, g_zsum, softcap, need_dh, need_dw, need_db
    )
    # Disabled gradients come back as empty tensors (custom ops cannot return None).
    empty = hidden.new_empty((0,))
    return (
        dh if dh is not None else empty,
        dw if dw is not None else empty.clone(),
        db if db is not None else empty.clone(),
    )


@_lce_grads_op.register_fake
def _(hidden, weight, bias, targets, lse, g_lse, g_zt, g_zsum, softcap, impl, dh, dw, db):
    dh_t = hidden.new_empty(hidden.shape) if dh else hidden.new_empty((0,))
    dw_t = weight.new_empty(weight.shape) if dw else hidden.new_empty((0,))
    db_t = bias.new_empty(bias.shape) if (db and bias is not None) else hidden.new_empty((0,))
    return dh_t, dw_t, db_t


def _setup_context(ctx, inputs, output):
    hidden, weight, bias, targets, softcap, impl = inputs
    ctx.save_for_backward(hidden, weight, bias, targets, output[0])
    ctx.softcap = softcap
    ctx.impl = impl


def _backward(ctx, g_lse, g_nll, g_zsum):
    hidden, weight, bias, targets, lse = ctx.saved_tensors
    need_dh, need_dw, need_db = ctx.needs_input_grad[:3]
    if not (need_dh or need_dw or need_db):
        return None, None, None, None, None, None
    g_lse, g_nll, g_zsum = (
        torch.zeros_like(lse) if g is None else g for g in (g_lse, g_nll, g_zsum)
    )
    # nll = lse - z_target: its gradient reaches the logits through both (the grads kernels
    # take the upstream gradients of lse, z_target and sum_j z_j).
    g_lse, g_zt = g_lse + g_nll, -g_nll
    dh, dw, db = _lce_grads_op(
        hidden,
        weight,
        bias,
        targets,
        lse,
        g_lse,
        g_zt,
        g_zsum,
        ctx.softcap,
        ctx.impl,
        need_dh,
        need_dw,
        need_db and bias is not None,
    )
    return (
        dh if need_dh else None,
        dw if need_dw else None,
        db if (need_db and bias is not None) else None,
        None,
        None,
        None,
    )


_lce_stats_op.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    impl: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of ``hidden @ weight.T + bias`` against ``targets``, never forming logits.

    Args:
        hidden: ``(..., H)`` activations, any strides, float16/bfloat16/float32 (float64 with
            ``impl="torch"``).
        weight: ``(V, H)`` classifier / unembedding matrix, same dtype as ``hidden``.
        targets: ``hidden.shape[:-1]`` int64 or int32 class ids in ``[0, V)`` or
            ``ignore_index``; any other id raises ValueError (on CUDA the check reads one flag
            back to the host; it is skipped while ``torch.compile`` traces).
        bias: optional ``(V,)`` bias, same dtype.
        ignore_index: target value whose rows contribute 0 loss and 0 gradient.
        reduction: ``"mean"`` (over non-ignored rows; 0 if all are ignored), ``"sum"`` or
            ``"none"`` (per-token loss of shape ``targets.shape``).
        label_smoothing: ``eps`` in ``(1-eps) CE(target) + eps CE(uniform)``, as in
            :func:`torch.nn.functional.cross_entropy`.
        z_loss: coefficient of the auxiliary ``lse^2`` term added to each non-ignored row.
        softcap: if given, logits ``z`` become ``softcap * tanh(z / softcap)`` first.
        return_lse: also return the per-token float32 log-sum-exp (of the softcapped logits),
            computed for every row including ignored ones; it is differentiable.
        impl: ``"auto"`` (Triton on CUDA, PyTorch reference elsewhere; overridden by the
            ``SYNKNOW_KERNELS_IMPL`` environment variable), ``"triton"`` or ``"torch"``.

    Returns:
        The float32 loss (float64 for float64 inputs), or ``(loss, lse)`` with ``return_lse``.
    """
    check_float("hidden", hidden)
    check_float("weight", weight)
    if hidden.dim() < 1:
        raise ValueError("hidden must have shape (..., H)")
    if weight.dim() != 2:
        raise ValueError(f"weight must have shape (V, H), got {tuple(weight.shape)}")
    v, h = weight.shape
    if hidden.shape[-1] != h:
        raise ValueError(f"hidden size mismatch: hidden {tuple(hidden.shape)}, weight {(v, h)}")
    if v == 0:
        raise ValueError("weight must have at least one row (vocabulary size 0)")
    if weight.dtype != hidden.dtype:
        raise ValueError(f"weight dtype {weight.dtype} != hidden dtype {hidden.dtype}")
    if weight.device != hidden.device:
        raise ValueError(f"weight is on {weight.device}, hidden on {hidden.device}")
    if bias is not None:
        check_float("bias", bias)
        if bias.shape != (v,):
            raise ValueError(f"bias must have shape ({v},), got {tuple(bias.shape)}")
        if bias.dtype != hidden.dtype or bias.device != hidden.device:
            raise ValueError("bias must have the dtype and device of hidden")
    check_targets(targets, hidden.shape[:-1], hidden.device)
    cap = check_options(reduction, label_smoothing, z_loss, softcap)
    backend = resolve_impl(impl, hidden, weight, bias)
    check_target_ids(targets, v, ignore_index)

    token_shape = targets.shape
    h2 = hidden.reshape(-1, h)
    t1 = targets.reshape(-1)
    if backend == "triton" and _triton_path(h) == "small_h":
        lse, nll, zsum = _small_h.lce_small_h(h2, weight, bias, t1, cap, label_smoothing > 0.0)
    else:
        lse, nll, zsum = _lce_stats_op(h2, weight, bias, t1, cap, backend)
    loss = assemble_loss(lse, nll, zsum, t1, v, ignore_index, reduction, label_smoothing, z_loss)
    if reduction == "none":
        loss = loss.reshape(token_shape)
    if return_lse:
        return loss, lse.reshape(token_shape)
    return loss


# At the end: lce_small_h imports the helpers above from this (by then complete) module.
from . import lce_small_h as _small_h  # noqa: E402
