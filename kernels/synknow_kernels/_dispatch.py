"""Implementation selection, argument validation and the small pure-PyTorch glue shared by ops.

Every public op is split the same way:

* a *stats* custom op (Triton kernel or chunked PyTorch reference) that reduces each row of the
  implicit logits to a few fp32 numbers (log-sum-exp, ``nll = lse - z_target`` computed
  without cancellation, sum of logits, ...);
* a *grads* custom op that recomputes the logits tile by tile and turns per-row upstream
  gradients of those numbers into input gradients;
* ordinary PyTorch code (here) that turns the per-row numbers into the loss. Because that last
  step is plain autograd-visible arithmetic on ``(tokens,)`` vectors, reductions, ignore masks,
  label smoothing and z-loss never need their own kernel code or hand-written gradients.
"""

from __future__ import annotations

import os

import torch

try:  # Triton is a Linux-only dependency; the PyTorch reference works without it.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised only on platforms without Triton
    HAS_TRITON = False

    class _TritonStub:
        """Lets the op modules define their ``@triton.jit`` kernels even when Triton is absent.

        The decorated functions are never launched: dispatch refuses ``impl="triton"`` first.
        """

        @staticmethod
        def jit(fn=None, **_kwargs):
            return fn if fn is not None else (lambda f: f)

        @staticmethod
        def cdiv(a: int, b: int) -> int:
            return -(-a // b)

        @staticmethod
        def next_power_of_2(n: int) -> int:
            return 1 << max(0, (n - 1).bit_length())

    class _TLStub:
        constexpr = int  # only used in annotations

    triton = _TritonStub()  # type: ignore[assignment]
    tl = _TLStub()  # type: ignore[assignment]

__all__ = [
    "HAS_TRITON",
    "IMPLS",
    "ENV_VAR",
    "triton",
    "tl",
    "interpreter_enabled",
    "resolve_impl",
    "assemble_loss",
    "check_target_ids",
]

IMPLS = ("auto", "triton", "torch")
REDUCTIONS = ("mean", "sum", "none")
ENV_VAR = "SYNKNOW_KERNELS_IMPL"
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def interpreter_enabled() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def resolve_impl(impl: str, *tensors: torch.Tensor | None) -> str:
    """Pick ``"triton"`` or ``"torch"`` for the given inputs.

    ``impl="auto"`` uses Triton when every tensor lives on a CUDA device, every floating-point
    tensor has a dtype the kernels support (float16, bfloat16, float32) and Triton imports; it
    uses the PyTorch reference otherwise (so float64 on CUDA runs in PyTorch). The environment
    variable ``SYNKNOW_KERNELS_IMPL`` (``torch`` or ``triton``) overrides ``auto`` only, so an
    explicit ``impl=`` argument always wins. ``impl="triton"`` on CPU tensors is accepted only
    under ``TRITON_INTERPRET=1``, and never for float64.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env in ("", "auto"):
            usable = HAS_TRITON and _on_cuda(tensors) and _unsupported_dtype(tensors) is None
            return "triton" if usable else "torch"
        if env not in ("torch", "triton"):
            raise ValueError(f"{ENV_VAR} must be 'torch', 'triton' or 'auto', got {env!r}")
        impl = env
    if impl == "triton":
        if not HAS_TRITON:
            raise RuntimeError("impl='triton' requested but Triton is not installed")
        bad = _unsupported_dtype(tensors)
        if bad is not None:
            raise ValueError(
                f"impl='triton' supports float16, bfloat16 and float32 inputs, got {bad}; "
                "use impl='torch' (or 'auto') for float64"
            )
        if not _on_cuda(tensors) and not interpreter_enabled():
            raise ValueError(
                "impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before Triton is "
                "imported, to run the kernels in the CPU interpreter)"
            )
    return impl


def _on_cuda(tensors: tuple[torch.Tensor | None, ...]) -> bool:
    return all(t is None or t.is_cuda for t in tensors)


def _unsupported_dtype(tensors: tuple[torch.Tensor | None, ...]) -> torch.dtype | None:
    """The first floating-point dtype among ``tensors`` that the Triton kernels cannot take."""
    for t in tensors:
        if t is not None and t.is_floating_point() and t.dtype not in TRITON_DTYPES:
            return t.dtype
    return None


def check_options(
    reduction: str, label_smoothing: float, z_loss: float, softcap: float | None
) -> float:
    """Validate the loss options shared by both cross-entropy ops; return softcap as a float.

    A softcap of ``0.0`` means "no softcap" inside the custom ops (their schema has no
    optional floats).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if float(z_loss) < 0.0:
        raise ValueError(f"z_loss must be >= 0, got {z_loss}")
    if softcap is None:
        return 0.0
    if not float(softcap) > 0.0:
        raise ValueError(f"softcap must be None or > 0, got {softcap}")
    return float(softcap)


def check_targets(targets: torch.Tensor, expected_shape: torch.Size, device: torch.device) -> None:
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"targets must be a tensor, got {type(targets).__name__}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets must be int64 or int32 class indices, got {targets.dtype}")
    if targets.shape != expected_shape:
        raise ValueError(
            f"targets shape {tuple(targets.shape)} does not match the token shape "
            f"{tuple(expected_shape)}"
        )
    if targets.device != device:
        raise ValueError(f"targets are on {targets.device}, inputs on {device}")


def check_target_ids(targets: torch.Tensor, vocab: int, ignore_index: int) -> None:
    """Raise a one-line ValueError naming the first target outside ``[0, vocab)``.

    ``ignore_index`` is allowed anywhere. On CUDA the check is a device-side assertion, as in
    ``F.cross_entropy``: reading a flag back would synchronise every training step with the
    host. While ``torch.compile`` traces, the check is skipped because a data-dependent branch
    would break the graph.
    """
    if targets.numel() == 0 or torch.compiler.is_compiling():
        return
    flat = targets.reshape(-1)
    bad = ((flat < 0) | (flat >= vocab)) & (flat != ignore_index)
    if flat.is_cuda:
        torch._assert_async(~bad.any())
        return
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), targets.shape))
        raise ValueError(
            f"targets{list(where)} = {int(flat[first])} is not a class id in [0, {vocab}) "
            f"nor ignore_index ({ignore_index})"
        )


def check_float(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")


def assemble_loss(
    lse: torch.Tensor,
    nll: torch.Tensor,
    z_sum: torch.Tensor,
    targets: torch.Tensor,
    vocab: int,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
) -> torch.Tensor:
    """Per-row stats -> loss, with every option expressed as differentiable PyTorch arithmetic.

    ``nll_i = lse_i - z_t`` comes from the stats op already, computed without cancellation.
    ``loss_i = (1-eps) nll_i + eps (lse_i - sum_j z_j / V) + z_loss lse_i^2`` for rows
    whose target is not ``ignore_index``, and 0 for ignored rows. ``mean`` divides by the number
    of non-ignored rows, clamped to at least 1 so that an all-ignored batch gives 0 (not NaN)
    without reading the count back to the host.
    """
    valid = targets != ignore_index
    loss = nll
    if label_smoothing > 0.0:
        eps = float(label_smoothing)
        loss = (1.0 - eps) * loss + eps * (lse - z_sum / vocab)
    if z_loss > 0.0:
        loss = loss + float(z_loss) * lse.square()
    # torch.where (not multiplication) so that inf/nan in ignored rows cannot leak into the sum
    # or into the gradient.
    loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    count = valid.sum().clamp_min(1).to(total.dtype)
    return total / count
