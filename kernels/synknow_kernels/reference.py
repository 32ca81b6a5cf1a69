"""Pure-PyTorch references for every op; also the CPU fallback behind ``impl="torch"``.

They compute exactly what the Triton kernels compute (same per-row statistics, same gradient
formula) but chunk over tokens, so peak memory is ``O(chunk x vocab)`` for the logits plus one
fp32 copy of the weight for 16-bit inputs, never ``O(tokens x vocab)``. Math is done in float32
(float64 for float64 inputs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "LN2",
    "TokenEvalStats",
    "ce_grads_torch",
    "ce_stats_torch",
    "chunk_rows",
    "lce_grads_torch",
    "lce_stats_torch",
    "lse_and_nll",
    "softcap_fn",
    "token_eval_torch",
]

LN2 = math.log(2.0)

# Elements of one logits chunk (float32: 64 MiB). Small enough for CPU caches to matter little
# and for GPU fallback use to stay far below the full logits.
_CHUNK_ELEMENTS = 1 << 24


class TokenEvalStats(NamedTuple):
    """Per-token evaluation statistics returned by :func:`synknow_kernels.token_eval`.

    All tensors have the token shape (``hidden.shape[:-1]``).
    """

    nll_bits: torch.Tensor  # -log2 p(target); NaN where the target is ignore_index
    entropy_bits: torch.Tensor  # entropy of the predictive distribution, in bits
    max_prob: torch.Tensor  # probability of the most likely token
    argmax: torch.Tensor  # int64 id of the most likely token (lowest id on ties)
    range_mass: torch.Tensor | None  # probability mass on ids [lo, hi), if a range was given


def chunk_rows(vocab: int, chunk_elements: int = _CHUNK_ELEMENTS) -> int:
    return max(1, chunk_elements // max(1, vocab))


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def softcap_fn(z: torch.Tensor, softcap: float) -> torch.Tensor:
    """``s * tanh(z / s)``; ``softcap <= 0`` means no capping."""
    if softcap > 0.0:
        return softcap * torch.tanh(z / softcap)
    return z


def _target_logit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.long()  # gather/scatter want int64 indices on older PyTorch
    # Out-of-range targets (ignore_index; invalid ids are refused by the public functions, but
    # not while torch.compile traces) read as 0, matching the kernels, which never match them.
    in_range = (t >= 0) & (t < z.shape[1])
    zt = z.gather(1, t.clamp(0, z.shape[1] - 1).unsqueeze(1)).squeeze(1)
    return torch.where(in_range, zt, torch.zeros((), dtype=z.dtype, device=z.device))


def lse_and_nll(z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``log-sum-exp`` and ``nll = lse - z_target`` without cancellation.

    With ``m`` the row max and ``rest = sum_{j != argmax} exp(z_j - m)``:
    ``lse = m + log1p(rest)`` and ``nll = (m - z_t) + log1p(rest)``. For a confident prediction
    (target = argmax, probability near 1) the loss is ``log1p(rest)``, accurate to a few ulps,
    where ``lse - z_t`` would be 0 or one ulp of ``lse``. The kernels compute the same.
    """
    m, arg = z.max(dim=1)
    e = torch.exp(z - m.unsqueeze(1))
    e.scatter_(1, arg.unsqueeze(1), 0.0)
    log1p_rest = torch.log1p(e.sum(dim=1))
    return m + log1p_rest, (m - _target_logit(z, t)) + log1p_rest


def _onehot_add(dz: torch.Tensor, t: torch.Tensor, g: torch.Tensor) -> None:
    t = t.long()
    in_range = (t >= 0) & (t < dz.shape[1])
    g = torch.where(in_range, g, torch.zeros((), dtype=g.dtype, device=g.device))
    dz.scatter_add_(1, t.clamp(0, dz.shape[1] - 1).unsqueeze(1), g.unsqueeze(1))


def _linear_logits(
    h: torch.Tensor, w_acc: torch.Tensor, b_acc: torch.Tensor | None, softcap: float
) -> torch.Tensor:
    z = h.to(w_acc.dtype) @ w_acc.T
    if b_acc is not None:
        z = z + b_acc
    return softcap_fn(z, softcap)


@torch.no_grad()
def lce_stats_torch(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    softcap: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row ``(lse, nll, sum_j z_j)`` of the softcapped logits ``hidden @ weight.T + b``.

    ``nll = lse - z_target`` (see :func:`lse_and_nll`). ``hidden`` is ``(N, H)``, ``weight``
    ``(V, H)``, ``targets`` ``(N,)``; outputs are float32 (float64 for float64 inputs).
    """
    acc = _acc_dtype(hidden.dtype)
    n, v = hidden.shape[0], weight.shape[0]
    w_acc = weight.to(acc)
    b_acc = None if bias is None else bias.to(acc)
    lse = torch.empty(n, dtype=acc, device=hidden.device)
    nll = torch.empty_like(lse)
    zsum = torch.empty_like(lse)
    step = chunk_rows(v)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        z = _linear_logits(hidden[r0:r1], w_acc, b_acc, softcap)
        lse[r0:r1], nll[r0:r1] = lse_and_nll(z, targets[r0:r1])
        zsum[r0:r1] = z.sum(dim=1)
    return lse, nll, zsum


@torch.no_grad()
def lce_grads_torch(
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
    """Gradients of ``sum_i g_lse_i lse_i + g_zt_i z_t,i + g_zsum_i sum_j z_ij``.

    With ``zc = softcap(z)`` and ``p = softmax(zc)``:
    ``dL/dz_ij = (g_lse_i p_ij + g_zt_i [j = t_i] + g_zsum_i) * dzc/dz`` where
    ``dzc/dz = 1 - (zc / s)^2`` under a softcap ``s`` and 1 otherwise. The logits are recomputed
    chunk by chunk; the weight and bias gradients accumulate in float32.
    """
    acc = _acc_dtype(hidden.dtype)
    n, v = hidden.shape[0], weight.shape[0]
    w_acc = weight.to(acc)
    b_acc = None if bias is None else bias.to(acc)
    dh = torch.empty_like(hidden, memory_format=torch.contiguous_format) if need_dh else None
    dw = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_dw else None
    db = torch.zeros(v, dtype=acc, device=weight.device) if (need_db and bias is not None) else None
    step = chunk_rows(v)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        zc = _linear_logits(hidden[r0:r1], w_acc, b_acc, softcap)
        dz = torch.exp(zc - lse[r0:r1, None].to(acc)) * g_lse[r0:r1, None].to(acc)
        dz += g_zsum[r0:r1, None].to(acc)
        _onehot_add(dz, targets[r0:r1], g_zt[r0:r1].to(acc))
        if softcap > 0.0:
            dz *= 1.0 - (zc / softcap).square()
        if dh is not None:
            dh[r0:r1] = (dz @ w_acc).to(hidden.dtype)
        if dw is not None:
            dw.addmm_(dz.T, hidden[r0:r1].to(acc))
        if db is not None:
            db += dz.sum(dim=0)
    return (
        dh,
        None if dw is None else dw.to(weight.dtype),
        None if db is None else db.to(bias.dtype),  # type: ignore[union-attr]
    )


@torch.no_grad()
def ce_stats_torch(
    logits: torch.Tensor, targets: torch.Tensor, softcap: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row ``(lse, nll, sum_j z_j)`` of the (softcapped) ``(N, V)`` logits."""
    acc = _acc_dtype(logits.dtype)
    n, v = logits.shape
    lse = torch.empty(n, dtype=acc, device=logits.device)
    nll = torch.empty_like(lse)
    zsum = torch.empty_like(lse)
    step = chunk_rows(v)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        z = softcap_fn(logits[r0:r1].to(acc), softcap)
        lse[r0:r1], nll[r0:r1] = lse_and_nll(z, targets[r0:r1])
        zsum[r0:r1] = z.sum(dim=1)
    return lse, nll, zsum


@torch.no_grad()
def ce_grads_torch(
    logits: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    g_lse: torch.Tensor,
    g_zt: torch.Tensor,
    g_zsum: torch.Tensor,
    softcap: float,
) -> torch.Tensor:
    """Gradient w.r.t. the logits, same formula as :func:`lce_grads_torch`."""
    acc = _acc_dtype(logits.dtype)
    n, v = logits.shape
    out = torch.empty((n, v), dtype=logits.dtype, device=logits.device)
    step = chunk_rows(v)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        zc = softcap_fn(logits[r0:r1].to(acc), softcap)
        dz = torch.exp(zc - lse[r0:r1, None].to(acc)) * g_lse[r0:r1, None].to(acc)
        dz += g_zsum[r0:r1, None].to(acc)
        _onehot_add(dz, targets[r0:r1], g_zt[r0:r1].to(acc))
        if softcap > 0.0:
            dz *= 1.0 - (zc / softcap).square()
        out[r0:r1] = dz.to(logits.dtype)
    return out


@torch.no_grad()
def token_eval_torch(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    ignore_index: int,
    softcap: float,
    mass_range: tuple[int, int] | None,
) -> TokenEvalStats:
    """Chunked reference for :func:`synknow_kernels.token_eval` on ``(N, H)`` inputs."""
    acc = _acc_dtype(hidden.dtype)
    n, v = hidden.shape[0], weight.shape[0]
    dev = hidden.device
    w_acc = weight.to(acc)
    b_acc = None if bias is None else bias.to(acc)
    nll = torch.empty(n, dtype=acc, device=dev)
    ent = torch.empty_like(nll)
    pmax = torch.empty_like(nll)
    amax = torch.empty(n, dtype=torch.int64, device=dev)
    mass = torch.empty_like(nll) if mass_range is not None else None
    step = chunk_rows(v)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        z = _linear_logits(hidden[r0:r1], w_acc, b_acc, softcap)
        lse = torch.logsumexp(z, dim=1, keepdim=True)
        logp = z - lse
        p = logp.exp()
        t = targets[r0:r1]
        nll_c = lse.squeeze(1) - _target_logit(z, t)
        nll[r0:r1] = torch.where(t == ignore_index, torch.nan, nll_c) / LN2
        # xlogy-style: p == 0 contributes 0 even where logp == -inf.
        ent[r0:r1] = -torch.where(p > 0, p * logp, torch.zeros((), dtype=acc, device=dev)).sum(1)
        ent[r0:r1] /= LN2
        zmax, am = z.max(dim=1)
        pmax[r0:r1] = torch.exp(zmax - lse.squeeze(1))
        amax[r0:r1] = am
        if mass is not None and mass_range is not None:
            lo, hi = mass_range
            mass[r0:r1] = p[:, lo:hi].sum(dim=1)
    return TokenEvalStats(nll, ent, pmax, amax, mass)
