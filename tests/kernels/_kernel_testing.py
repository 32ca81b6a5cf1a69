"""Shared helpers for the synknow-kernels tests: naive references and error comparisons.

Correctness criterion used throughout: against a float64 ground truth computed by plain PyTorch,
the op under test may not be less accurate than plain PyTorch evaluated in the same dtype as the
op's inputs, up to a stated tolerance ``tol * max(1, max|truth|)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from synknow_kernels._dispatch import HAS_TRITON, interpreter_enabled

CUDA = torch.cuda.is_available()


def triton_runnable() -> bool:
    """Triton kernels can run here: on a GPU, or on CPU in the interpreter."""
    return HAS_TRITON and (CUDA or interpreter_enabled())


# Allowance on top of naive PyTorch's own error, relative to max(1, |ground truth|). The op sums
# in another order than PyTorch (tiles, splits), and naive's error is one sample that may happen
# to be small, so "no worse" needs a few units of roundoff u of slack: float32 2e-6 = 34 u
# (u = 2^-24), bfloat16 2e-2 = 5 u, float16 4e-3 = 8 u, float64 1e-12 (u = 2^-53) for the
# float64 torch impl, whose only difference from naive is the chunking over tokens.
TOL = {torch.float32: 2e-6, torch.float64: 1e-12, torch.bfloat16: 2e-2, torch.float16: 4e-3}


def naive_loss_from_logits(
    z: torch.Tensor,
    t: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
):
    """The documented semantics written with F.cross_entropy, computed in ``z``'s dtype."""
    shape = t.shape
    z = z.reshape(-1, z.shape[-1])
    t = t.reshape(-1).long()
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    valid = t != ignore_index
    loss = F.cross_entropy(
        z, t, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    lse = torch.logsumexp(z, dim=-1)
    if z_loss:
        loss = loss + torch.where(valid, z_loss * lse.square(), torch.zeros_like(lse))
    if reduction == "none":
        out = loss.reshape(shape)
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = loss.sum() / valid.sum().clamp_min(1)
    if return_lse:
        return out, lse.reshape(shape)
    return out


def naive_linear_loss(h, w, b, t, **opts):
    z = F.linear(h, w, b)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()  # what a careful eager user does: upcast the logits for the loss
    return naive_loss_from_logits(z, t, **opts)


def max_err(a: torch.Tensor, truth: torch.Tensor) -> float:
    return (a.double() - truth.double()).abs().max().item() if truth.numel() else 0.0


def assert_no_worse(
    name: str, got: torch.Tensor, naive: torch.Tensor, truth: torch.Tensor, dtype: torch.dtype
) -> None:
    assert got.shape == truth.shape, f"{name}: shape {tuple(got.shape)} != {tuple(truth.shape)}"
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    scale = max(1.0, truth.abs().max().item() if truth.numel() else 0.0)
    e_got, e_naive = max_err(got, truth), max_err(naive, truth)
    bound = e_naive + TOL[dtype] * scale
    assert e_got <= bound, (
        f"{name}: error {e_got:.3e} > naive {e_naive:.3e} + tol {TOL[dtype] * scale:.3e}"
    )


def leaf(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return x.detach().clone().requires_grad_(grad)


def assert_no_worse_16bit(name: str, got, naive, truth) -> None:
    """16-bit inputs: at most twice eager PyTorch's error plus 1e-3 of the largest true value.

    Eager PyTorch here means ``F.linear`` in the 16-bit dtype with the logits upcast to float32
    for the loss; gradients of both come back in the 16-bit dtype, whose rounding dominates.
    """
    scale = truth.abs().max().item() if truth.numel() else 0.0
    e_got, e_naive = max_err(got, truth), max_err(naive, truth)
    bound = 2.0 * e_naive + 1e-3 * scale
    assert e_got <= bound, f"{name}: {e_got:.3e} > 2 x naive {e_naive:.3e} + {1e-3 * scale:.3e}"
