"""Loss and log-sum-exp against float64 computed from the same 16-bit inputs, tightly.

The 16-bit tests elsewhere allow twice eager PyTorch's error, and eager PyTorch rounds the
logits to 16 bits, so a kernel that kept 16-bit logits would pass them. The kernels multiply
16-bit inputs exactly and accumulate in fp32, so per-token loss and log-sum-exp must match an
fp64 evaluation of the same rounded inputs to about fp32 accuracy: the bound here is ``1e-5``
relative to the log-sum-exp magnitude (fp32 sums over a few hundred terms stay below 1e-6;
rounding the logits to bf16 costs about 4e-3, to fp16 about 5e-4).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from synknow_kernels import cross_entropy, linear_cross_entropy

REL = 1e-5
N, H, V = 70, 96, 300  # two token blocks, several vocab tiles and splits in the interpreter

OPTIONS = {
    "plain": {},
    "smoothing_zloss": {"label_smoothing": 0.1, "z_loss": 1e-3},
    "softcap": {"softcap": 8.0},
}


def _inputs(dtype, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    h = (torch.randn(N, H, generator=g) * scale).to(dtype)
    w = (torch.randn(V, H, generator=g) * H**-0.5 * 3).to(dtype)
    b = (torch.randn(V, generator=g) * 0.5).to(dtype)
    t = torch.randint(0, V, (N,), generator=g)
    t[::9] = -100
    return h, w, b, t


def _truth_from_logits(z, t, **opts):
    """Per-token loss and lse in float64, the documented semantics."""
    z = z.double()
    if opts.get("softcap"):
        z = opts["softcap"] * torch.tanh(z / opts["softcap"])
    lse = torch.logsumexp(z, dim=-1)
    loss = F.cross_entropy(z, t, reduction="none", label_smoothing=opts.get("label_smoothing", 0.0))
    loss = loss + torch.where(t != -100, opts.get("z_loss", 0.0) * lse.square(), 0.0)
    return loss, lse


def _assert_tight(name, got, truth, lse_truth):
    scale = lse_truth.abs().clamp_min(1.0)
    err = ((got.double().cpu() - truth) / scale).abs().max().item()
    assert err <= REL, f"{name}: relative error {err:.2e} > {REL:.0e}"


@pytest.mark.parametrize("opts", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_linear_cross_entropy_matches_fp64_of_16bit_inputs(impl, device, dtype, opts):
    h, w, b, t = _inputs(dtype)
    loss, lse = linear_cross_entropy(
        h.to(device), w.to(device), t.to(device), b.to(device),
        reduction="none", return_lse=True, impl=impl, **opts,
    )  # fmt: skip
    truth, lse_truth = _truth_from_logits(h.double() @ w.double().T + b.double(), t, **opts)
    _assert_tight("lse", lse, lse_truth, lse_truth)
    _assert_tight("loss", loss, truth, lse_truth)
    mean = linear_cross_entropy(
        h.to(device), w.to(device), t.to(device), b.to(device), impl=impl, **opts
    )
    valid = t != -100
    mean_truth = truth[valid].mean().item()
    assert abs(mean.item() - mean_truth) <= REL * max(1.0, abs(mean_truth))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cross_entropy_matches_fp64_of_16bit_logits(impl, device, dtype):
    g = torch.Generator().manual_seed(1)
    z = (torch.randn(N, 700, generator=g) * 4).to(dtype)
    t = torch.randint(0, 700, (N,), generator=g)
    loss, lse = cross_entropy(
        z.to(device), t.to(device), reduction="none", return_lse=True, impl=impl,
        label_smoothing=0.05,
    )  # fmt: skip
    truth, lse_truth = _truth_from_logits(z, t, label_smoothing=0.05)
    _assert_tight("lse", lse, lse_truth, lse_truth)
    _assert_tight("loss", loss, truth, lse_truth)


def test_bound_rejects_16bit_logits():
    """The bound is tight enough to catch logits rounded to bf16 (the failure it exists for)."""
    h, w, b, t = _inputs(torch.bfloat16)
    z16 = F.linear(h, w, b)  # bf16 logits, as a kernel storing 16-bit logits would see them
    loss16, _ = _truth_from_logits(z16, t)
    truth, lse_truth = _truth_from_logits(h.double() @ w.double().T + b.double(), t)
    with pytest.raises(AssertionError, match="relative error"):
        _assert_tight("loss", loss16, truth, lse_truth)


def _confident_problem(seed=2):
    """fp32 inputs whose target logit exceeds the others by 6 to 30: p(target) from about
    1 - 0.5 down to about 1 - 1e-8, where the true loss is ``log1p(sum_{j != t} e^{z_j - z_t})``."""
    n, h, v = 40, 32, 200
    g = torch.Generator().manual_seed(seed)
    hid = torch.randn(n, h, generator=g, dtype=torch.float64)
    w = torch.randn(v, h, generator=g, dtype=torch.float64) * 0.05
    t = torch.randint(0, v, (n,), generator=g)
    boost = torch.linspace(6.0, 30.0, n, dtype=torch.float64)
    wt = w[t]
    hid = hid + (boost / wt.square().sum(1)).unsqueeze(1) * wt
    return hid.float(), w.float(), t


def _nll_without_cancellation(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """fp64 ``-log p_t`` as ``log1p(sum_{j != t} exp(z_j - z_t))``: exact to fp64 rounding when
    the target dominates (``F.cross_entropy`` in fp64 computes ``lse - z_t`` and itself loses
    about 1e-4 relative at a loss of 1e-11)."""
    d = z.double() - z.double().gather(1, t[:, None])
    d.scatter_(1, t[:, None], float("-inf"))
    return torch.log1p(torch.exp(d).sum(1))


@pytest.mark.parametrize("op", ["linear_cross_entropy", "cross_entropy"])
def test_confident_predictions_keep_relative_accuracy(impl, device, op):
    hid, w, t = _confident_problem()
    z = hid.double() @ w.double().T
    truth = _nll_without_cancellation(z, t)
    assert truth.min() < 1e-7  # far below one ulp of lse: lse - z_t would cancel
    if op == "linear_cross_entropy":
        loss = linear_cross_entropy(
            hid.to(device), w.to(device), t.to(device), reduction="none", impl=impl
        )
    else:
        # Logits rounded once to fp32: compare with the truth for those rounded values.
        z32 = (hid @ w.T) if impl == "torch" else (hid.double() @ w.double().T).float()
        truth = _nll_without_cancellation(z32, t)
        loss = cross_entropy(z32.to(device), t.to(device), reduction="none", impl=impl)
    rel = ((loss.double().cpu() - truth) / truth).abs().max().item()
    # fp32 logits carry ~6e-8 relative error each; the loss inherits it through exp: 1e-5 of
    # the loss itself (not of lse) is what "no cancellation" buys. lse - z_t gives 0 here.
    assert rel <= 1e-5, f"max relative error {rel:.2e} of the loss near 0"
