"""Per-token evaluation statistics of ``softmax(hidden @ weight.T + bias)`` in one pass.

Layout: Triton kernel, launcher, custom op (so ``torch.compile`` sees one opaque node), public
function.

The kernel walks the vocabulary exactly like the fused cross-entropy forward (tiles of
``tl.dot`` logits, never stored) and keeps, per token, online accumulators relative to the
running max ``m``:

* ``s  = sum_j exp(z_j - m)``                 -> log-sum-exp and max probability ``1 / s``
* ``sz = sum_j exp(z_j - m) (z_j - m)``       -> entropy ``log s - sz / s``
* ``r  = sum_{j in range} exp(z_j - m)``      -> probability mass on a token range ``r / s``
* the target logit and the running argmax.

When ``m`` grows to ``m'`` every accumulator is rescaled by ``exp(m - m')``, and ``sz`` also
picks up ``(m - m') s`` because its terms are measured from ``m``. Measuring from the max keeps
the entropy free of the cancellation that ``lse - E[z]`` would suffer for large logits.
"""

from __future__ import annotations

import torch

from ._dispatch import (
    check_float,
    check_target_ids,
    check_targets,
    interpreter_enabled,
    resolve_impl,
    tl,
    triton,
)
from .linear_cross_entropy import _dot_precision, _dot_upcast, _logits_tile, _num_splits
from .reference import LN2, TokenEvalStats, token_eval_torch

__all__ = ["TokenEvalStats", "token_eval"]


@triton.jit
def _token_eval_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    t_ptr,
    part_ptr,
    amax_ptr,
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
    range_lo,
    range_hi,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    HAS_RANGE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr,
):
    pid_m = tl.program_id(0).to(tl.int64)  # int64 offsets: row * stride may exceed 2^31
    pid_s = tl.program_id(1).to(tl.int64)
    nsplit = tl.num_programs(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = offs_m < N
    tgt = tl.load(t_ptr + offs_m * stride_t, mask=row_mask, other=-1).to(tl.int64)

    m_i = tl.full((BLOCK_M,), -1.0e30, dtype=tl.float32)
    s_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    sz_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    r_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    zt_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    am_i = tl.zeros((BLOCK_M,), dtype=tl.int64)

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
        z = tl.where(col_mask[None, :], z, float("-inf"))
        blk_max = tl.max(z, axis=1)
        blk_arg = tl.argmax(z, axis=1).to(tl.int64) + v0  # lowest id among ties
        # Strict '>' keeps the earlier (lower) id when a later block only ties the max.
        am_i = tl.where(blk_max > m_i, blk_arg, am_i)
        m_new = tl.maximum(m_i, blk_max)
        alpha = tl.exp(m_i - m_new)
        # Masked columns: d = 0 and e = 0 (not -inf and exp(-inf)), so that e * d stays finite.
        d = tl.where(col_mask[None, :], z - m_new[:, None], 0.0)
        e = tl.where(col_mask[None, :], tl.exp(d), 0.0)
        sz_i = alpha * (sz_i + (m_i - m_new) * s_i) + tl.sum(e * d, axis=1)
        s_i = alpha * s_i + tl.sum(e, axis=1)
        if HAS_RANGE:
            in_range = (offs_v >= range_lo) & (offs_v < range_hi)
            r_i = alpha * r_i + tl.sum(tl.where(in_range[None, :], e, 0.0), axis=1)
        m_i = m_new

    # Partials laid out as (5, nsplit, N): m, s, sz, r, z_target.
    plane = nsplit * N
    out = pid_s * N + offs_m
    tl.store(part_ptr + out, m_i, mask=row_mask)
    tl.store(part_ptr + plane + out, s_i, mask=row_mask)
    tl.store(part_ptr + 2 * plane + out, sz_i, mask=row_mask)
    tl.store(part_ptr + 3 * plane + out, r_i, mask=row_mask)
    tl.store(part_ptr + 4 * plane + out, zt_i, mask=row_mask)
    tl.store(amax_ptr + out, am_i, mask=row_mask)


def _te_config(dtype: torch.dtype) -> dict[str, int]:
    if interpreter_enabled():
        return {"BLOCK_M": 32, "BLOCK_V": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 1}
    # Six running accumulators per row (vs three in the loss forward): a 64-row tile keeps them
    # in registers (checked with ptxas for sm_90: no spills).
    if dtype == torch.float32:
        # BLOCK_K 16, not 32: with int64 offsets the 32-wide tile spilled 12 bytes.
        cfg = {"BLOCK_M": 64, "BLOCK_V": 64, "BLOCK_K": 16, "num_warps": 8, "num_stages": 2}
    else:
        cfg = {"BLOCK_M": 64, "BLOCK_V": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3}
    return {**cfg, "enable_fp_fusion": True}


def token_eval_triton(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    ignore_index: int,
    softcap: float,
    mass_range: tuple[int, int] | None,
) -> TokenEvalStats:
    n, h = hidden.shape
    v = weight.shape[0]
    dev = hidden.device
    cfg = _te_config(hidden.dtype)
    num_m = triton.cdiv(n, cfg["BLOCK_M"])
    num_v = triton.cdiv(v, cfg["BLOCK_V"])
    nsplit = _num_splits(num_m, num_v, dev)
    blocks_per_split = triton.cdiv(num_v, nsplit)
    nsplit = triton.cdiv(num_v, blocks_per_split)
    part = torch.zeros((5, nsplit, n), dtype=torch.float32, device=dev)
    amax = torch.zeros((nsplit, n), dtype=torch.int64, device=dev)
    lo, hi = mass_range if mass_range is not None else (0, 0)
    if n > 0:
        _token_eval_kernel[(num_m, nsplit)](
            hidden,
            weight,
            bias if bias is not None else hidden,
            targets,
            part,
            amax,
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
            lo,
            hi,
            softcap,
            HAS_BIAS=bias is not None,
            SOFTCAP=softcap > 0.0,
            HAS_RANGE=mass_range is not None,
            DOT_PRECISION=_dot_precision(hidden.dtype),
            DOT_UPCAST=_dot_upcast(hidden.dtype),
            **cfg,
        )
    # Merge the vocabulary splits (O(nsplit x tokens) work).
    m, s, sz, r, zt = part.unbind(0)
    m_max, best = m.max(dim=0)
    w = torch.exp(m - m_max)
    s_tot = (w * s).sum(dim=0)
    sz_tot = (w * (sz + (m - m_max) * s)).sum(dim=0)
    lse = m_max + torch.log(s_tot)
    nll = lse - zt.sum(dim=0)
    nll = torch.where(targets == ignore_index, torch.nan, nll)
    entropy = (torch.log(s_tot) - sz_tot / s_tot).clamp_min(0.0)
    mass = (w * r).sum(dim=0) / s_tot if mass_range is not None else None
    return TokenEvalStats(
        nll / LN2,
        entropy / LN2,
        1.0 / s_tot,
        amax.gather(0, best.unsqueeze(0)).squeeze(0),
        mass,
    )


@torch.library.custom_op("synknow_kernels::token_eval", mutates_args=())
def _token_eval_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    ignore_index: int,
    softcap: float,
    range_lo: int,
    range_hi: int,
    has_range: bool,
    impl: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = (range_lo, range_hi) if has_range else None
    fn = token_eval_triton if impl == "triton" else token_eval_torch
    out = fn(hidden, weight, bias, targets, ignore_index, softcap, rng)
    mass = out.range_mass if out.range_mass is not None else hidden.new_empty((0,))
    return out.nll_bits, out.entropy_bits, out.max_prob, out.argmax, mass


@_token_eval_op.register_fake
def _(hidden, weight, bias, targets, ignore_index, softcap, range_lo, range_hi, has_range, impl):
    n = hidden.shape[0]
    dt = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    f = [hidden.new_empty((n,), dtype=dt) for _ in range(3)]
    mass = hidden.new_empty((n,) if has_range else (0,), dtype=dt)
    return f[0], f[1], f[2], hidden.new_empty((n,), dtype=torch.int64), mass


def token_eval(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
    mass_range: tuple[int, int] | None = None,
    impl: str = "auto",
) -> TokenEvalStats:
    """Per-token NLL, entropy, max probability, argmax and range mass, without logits in memory.

    Args:
        hidden: ``(..., H)`` activations; weight ``(V, H)``; bias optional ``(V,)``; all one
            dtype (float16/bfloat16/float32, or float64 with ``impl="torch"``).
        targets: ``hidden.shape[:-1]`` int64/int32 ids; rows equal to ``ignore_index`` get a NaN
            ``nll_bits`` (use ``torch.nanmean`` or mask) and valid values elsewhere.
        softcap: optional ``s`` applied as ``s * tanh(z / s)`` to the logits first.
        mass_range: optional ``(lo, hi)``: also return ``sum_{lo <= j < hi} p_j`` per token.
        impl: ``"auto"``, ``"triton"`` or ``"torch"``, as for the loss ops.

    Returns:
        :class:`TokenEvalStats` of float32 tensors (``argmax`` int64) with the token shape:
        ``nll_bits = -log2 p(target)``, ``entropy_bits = -sum_j p_j log2 p_j``,
        ``max_prob = max_j p_j``, ``argmax`` (lowest id among exact ties) and ``range_mass`` (or
        ``None``). Computed under ``torch.no_grad``.
    """
    check_float("hidden", hidden)
    check_float("weight", weight)
    if weight.dim() != 2 or hidden.dim() < 1 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"expected hidden (..., H) and weight (V, H), got {tuple(hidden.shape)} and "
            f"{tuple(weight.shape)}"
        )
    v, h = weight.shape
    if v == 0:
        raise ValueError("weight must have at least one row (vocabulary size 0)")
    if weight.dtype != hidden.dtype or weight.device != hidden.device:
        raise ValueError("weight must have the dtype and device of hidden")
    if bias is not None:
        check_float("bias", bias)
        if bias.shape != (v,) or bias.dtype != hidden.dtype or bias.device != hidden.device:
            raise ValueError(f"bias must be a ({v},) tensor with the dtype and device of hidden")
    check_targets(targets, hidden.shape[:-1], hidden.device)
    if softcap is not None and not float(softcap) > 0.0:
        raise ValueError(f"softcap must be None or > 0, got {softcap}")
    if mass_range is not None:
        lo, hi = (int(x) for x in mass_range)
        if not 0 <= lo <= hi <= v:
            raise ValueError(f"mass_range must satisfy 0 <= lo <= hi <= {v}, got {mass_range}")
    else:
        lo, hi = 0, 0
    backend = resolve_impl(impl, hidden, weight, bias)
    check_target_ids(targets, v, ignore_index)
    shape = targets.shape
    with torch.no_grad():
        nll, ent, pmax, amax, mass = _token_eval_op(
            hidden.reshape(-1, h),
            weight,
            bias,
            targets.reshape(-1),
            int(ignore_index),
            0.0 if softcap is None else float(softcap),
            lo,
            hi,
            mass_range is not None,
            backend,
        )
    return TokenEvalStats(
        nll.reshape(shape),
        ent.reshape(shape),
        pmax.reshape(shape),
        amax.reshape(shape),
        mass.reshape(shape) if mass_range is not None else None,
    )
