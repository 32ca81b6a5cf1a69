#!/usr/bin/env python
"""Benchmark synknow_kernels.linear_cross_entropy against every baseline available in this run.

Measures, per shape (tokens x hidden x vocab, bf16 by default) and method: forward, backward and
forward+backward wall time (median over repeats, CUDA events), the peak CUDA memory of one
forward+backward on top of the inputs, and effective TFLOP/s of forward+backward counted as the
model's ``6 * tokens * hidden * vocab`` flops (recomputation not counted), also as a fraction of
a dense peak (989 TFLOP/s, H100 SXM bf16, by default). Before timing, every method runs one
forward+backward that is compared with a float64 reference of the same inputs (loss and the
gradients of hidden, weight and bias): the maximum relative errors and the bound they must stay
under go into the JSON and the table, and a method above the bound is flagged ``inaccurate``.
Liger-Kernel computes its gradients inside the forward pass, so its forward time includes the
backward work (and its backward time is almost nothing).

Methods: ``synknow`` (Triton, default "chunked" backward), ``synknow_fused`` (Triton with the
"fused" atomics backward), ``eager`` (F.linear + F.cross_entropy on fp32 logits),
``compile`` (the same under torch.compile), ``torch_lce`` / ``torch_lce_chunked`` (PyTorch's own
F.linear_cross_entropy, reference and chunked paths, when the installed version has it),
``liger`` (Liger-Kernel) and ``cce`` (cut-cross-entropy) when installed, and ``synknow_torch``
(our chunked PyTorch fallback) on request. Baselines are imported, never vendored; a method that
is missing, fails or runs out of memory is recorded as such and the run goes on.

Results go to ``benches/results/kernels_<device>_<utc-time>.json`` (device name, versions, date,
git commit, every measurement) and a PNG next to it.

    python benches/bench_kernels.py                      # all shapes, all available methods
    python benches/bench_kernels.py --shapes llm --repeats 20
    python benches/bench_kernels.py --methods synknow,eager,compile --shapes small
    python benches/bench_kernels.py --cpu-smoke --out /tmp/smoke.json   # no GPU: tiny CPU run

Without a CUDA device the script prints a message and exits 0; ``--cpu-smoke`` instead runs a
tiny CPU comparison (our torch fallback vs eager, plus the Triton kernels when
``TRITON_INTERPRET=1``) that exercises the harness, the accuracy check and the output files,
labelled as CPU numbers, which must never be read as GPU results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "kernels"))  # run from a checkout without installing the package

import synknow_kernels  # noqa: E402
from synknow_kernels._dispatch import interpreter_enabled  # noqa: E402

SHAPES = {
    # the project's own heads: vocabulary about 2.5k, hidden 64-768, 16k-64k tokens per step
    "small": [
        ("synknow-h64", 16384, 64, 2560),
        ("synknow-h256", 32768, 256, 2560),
        ("synknow-h768", 65536, 768, 2560),
    ],
    # standard LLM heads: GPT-2-like and Gemma-like
    "llm": [
        ("gpt2", 16384, 768, 50304),
        ("gemma", 8192, 2304, 256000),
    ],
    # CPU smoke test only
    "tiny": [("tiny", 512, 64, 1000), ("tiny-oddvocab", 384, 96, 3001)],
    # CPU smoke test of the Triton kernels in the interpreter (slow there, so smaller)
    "tiny-interp": [("tiny-interp", 64, 32, 300)],
}
DEFAULT_METHODS = (
    "synknow",
    "synknow_fused",
    "eager",
    "compile",
    "torch_lce",
    "torch_lce_chunked",
    "liger",
    "cce",
)
# Environment set while a method runs (the backward strategy is read when backward runs).
METHOD_ENV = {"synknow_fused": {"SYNKNOW_KERNELS_LCE_BACKWARD": "fused"}}
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
# Test hook: name -> factory returning (loss function or None, note), consulted before the
# built-in methods, so a test can inject a deliberately wrong method and see it flagged.
EXTRA_METHODS: dict[str, Callable[[], tuple[Loss | None, str]]] = {}
LIGER_NOTE = (
    "Liger computes the gradients inside its forward pass, so its forward time includes the "
    "backward work and its backward time is only a copy/scale of stored gradients"
)


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def _eager(
    h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, b: torch.Tensor | None = None
) -> torch.Tensor:
    return F.cross_entropy(F.linear(h, w, b).float(), t)


def _synknow_loss(impl: str) -> Loss:
    def loss(
        h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, b: torch.Tensor | None
    ) -> torch.Tensor:
        out = synknow_kernels.linear_cross_entropy(h, w, t, b, impl=impl)
        assert isinstance(out, torch.Tensor)  # a tuple only with return_lse=True
        return out

    return loss


def make_method(name: str) -> tuple[Loss | None, str]:
    """Return (loss function, note); the function is None when the method is unavailable."""
    if name in EXTRA_METHODS:
        return EXTRA_METHODS[name]()
    if name in ("synknow", "synknow_fused"):
        note = "backward=fused (atomics)" if name == "synknow_fused" else "backward=chunked"
        return _synknow_loss("triton"), note
    if name == "synknow_torch":
        return _synknow_loss("torch"), ""
    if name == "eager":
        return _eager, ""
    if name == "compile":
        return torch.compile(_eager, dynamic=False), ""
    if name in ("torch_lce", "torch_lce_chunked"):
        if not hasattr(F, "linear_cross_entropy"):
            return None, f"torch {torch.__version__} has no F.linear_cross_entropy"
        if name == "torch_lce":
            return (
                lambda h, w, t, b: F.linear_cross_entropy(h, w, t, linear_bias=b)
            ), "options=None"
        opts_cls = getattr(torch.nn, "LinearCrossEntropyOptions", None)
        if opts_cls is None:
            return None, "no torch.nn.LinearCrossEntropyOptions"
        opts = opts_cls()
        return (
            lambda h, w, t, b: F.linear_cross_entropy(h, w, t, linear_bias=b, options=opts)
        ), "default options"
    if name == "liger":
        try:
            from liger_kernel.transformers.fused_linear_cross_entropy import (
                LigerFusedLinearCrossEntropyLoss,
            )
        except ImportError as exc:
            return None, f"liger-kernel not importable ({exc})"
        loss_fn = LigerFusedLinearCrossEntropyLoss()
        return (lambda h, w, t, b: loss_fn(w, h, t, b)), LIGER_NOTE
    if name == "cce":
        try:
            from cut_cross_entropy import linear_cross_entropy as cce_lce
        except ImportError as exc:
            return None, f"cut-cross-entropy not importable ({exc})"
        # bias only when given: releases before bias support reject the keyword itself
        return (lambda h, w, t, b: cce_lce(h, w, t, **({} if b is None else {"bias": b}))), ""
    raise SystemExit(f"unknown method {name!r}")


# --------------------------------------------------------------------------------------------
# Accuracy against fp64
# --------------------------------------------------------------------------------------------

UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24}
# Why 8: a method that keeps fp32 internally but rounds the logits and the gradients to the input
# dtype errs by u|z| per logit; that moves lse and z_target by u*max|z| each (2), each softmax
# probability by a relative 2u*max|z| (2, entering dlogits = p - onehot), and rounding dlogits
# and the output gradient to the input dtype adds u twice (2). For bf16 and |z| up to 4 that is
# about 0.13; correct methods measure 10-50x below it, while a wrong one (a gradient scaled by
# 1.5, a missing 1/N, a dropped bias) errs by 50% or more.
BOUND_FACTOR = 8.0
FP32_UNIT_ROUNDOFF = 2.0**-24
# fp64 logits per reference chunk; bounds the reference's memory to a few hundred MiB on top of
# the fp64 copies of the weight and its gradient.
REFERENCE_CHUNK_ELEMENTS = 2**25


def error_bound(dtype: str, hidden: int, tokens: int, max_abs_logit: float) -> float:
    """Largest max-relative error a correct method may show against fp64 of the same inputs.

    ``u`` is the input dtype's unit roundoff plus the worst-case fp32 accumulation error of the
    sums inside (``hidden`` terms per logit, ``tokens`` terms per weight-gradient entry).
    """
    u = UNIT_ROUNDOFF[dtype] + FP32_UNIT_ROUNDOFF * (hidden + tokens)
    return BOUND_FACTOR * u * max(1.0, max_abs_logit)


def fp64_reference(
    h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, b: torch.Tensor | None
) -> dict[str, Any]:
    """Mean cross-entropy and its gradients in fp64, chunked over tokens (never all logits)."""
    h64, w64 = h.detach().double(), w.detach().double()
    b64 = None if b is None else b.detach().double()
    n, v = h.shape[0], w.shape[0]
    grad_h = torch.empty_like(h64)
    grad_w = torch.zeros_like(w64)
    grad_b = None if b64 is None else torch.zeros_like(b64)
    loss_sum = torch.zeros((), dtype=torch.float64, device=h.device)
    max_abs_logit = 0.0
    chunk = max(1, REFERENCE_CHUNK_ELEMENTS // v)
    for start in range(0, n, chunk):
        hs, ts = h64[start : start + chunk], t[start : start + chunk]
        z = hs @ w64.T
        if b64 is not None:
            z += b64
        max_abs_logit = max(max_abs_logit, float(z.abs().max()))
        lse = torch.logsumexp(z, dim=1)
        loss_sum += (lse - z.gather(1, ts[:, None]).squeeze(1)).sum()
        dz = torch.exp(z - lse[:, None])
        dz[torch.arange(len(ts), device=h.device), ts] -= 1.0
        dz /= n
        grad_h[start : start + chunk] = dz @ w64
        grad_w += dz.T @ hs
        if grad_b is not None:
            grad_b += dz.sum(0)
    return {
        "loss": loss_sum / n,
        "grads": {"hidden": grad_h, "weight": grad_w, "bias": grad_b},
        "max_abs_logit": max_abs_logit,
        "chunk_tokens": chunk,
    }


def max_rel_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max|value - reference| / max|reference| (normwise, so near-zero entries do not blow up)."""
    scale = float(reference.abs().max())
    err = float((value.detach().double() - reference).abs().max())
    return err / scale if scale > 0 else err


def check_accuracy(
    loss_fn: Loss,
    h: torch.Tensor,
    w: torch.Tensor,
    t: torch.Tensor,
    b: torch.Tensor | None,
    reference: dict[str, Any],
    bound: float,
) -> dict[str, Any]:
    """One forward+backward of ``loss_fn`` on fresh leaves, compared with the fp64 reference."""
    leaves = {"hidden": h.detach().clone().requires_grad_(True)}
    leaves["weight"] = w.detach().clone().requires_grad_(True)
    if b is not None:
        leaves["bias"] = b.detach().clone().requires_grad_(True)
    loss = loss_fn(leaves["hidden"], leaves["weight"], t, leaves.get("bias"))
    loss.backward()
    ref_loss = reference["loss"]
    errors: dict[str, float | None] = {
        "loss": float((loss.detach().double() - ref_loss).abs() / ref_loss.abs())
    }
    for name, leaf in leaves.items():
        ref_grad = reference["grads"][name]
        if leaf.grad is None:
            errors[f"grad_{name}"] = None  # no gradient at all: recorded, and flagged below
        else:
            errors[f"grad_{name}"] = max_rel_error(leaf.grad, ref_grad)
    missing = [k for k, e in errors.items() if e is None]
    worst = missing[0] if missing else max(errors, key=lambda k: errors[k] or 0.0)
    return {
        "max_rel_error": errors,
        "error_bound": bound,
        "accuracy_ok": not missing and all(e is not None and e <= bound for e in errors.values()),
        "worst": worst,
    }


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


class Timer:
    """CUDA events on a GPU, perf_counter (after no sync) on CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def measure(self, before: Callable[[], object], fn: Callable[[], object]) -> float:
        """Milliseconds spent in ``fn`` (``before`` runs first, untimed)."""
        before()
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def bench_one(
    loss_fn: Loss,
    h: torch.Tensor,
    w: torch.Tensor,
    t: torch.Tensor,
    b: torch.Tensor | None,
    *,
    warmup: int,
    repeats: int,
    cuda: bool,
) -> dict[str, float | None]:
    timer = Timer(cuda)
    state: dict[str, torch.Tensor | None] = {"loss": None}

    def clear() -> None:
        h.grad = None
        w.grad = None
        if b is not None:
            b.grad = None
        state["loss"] = None

    def fwd() -> None:
        state["loss"] = loss_fn(h, w, t, b)

    def bwd() -> None:
        state["loss"].backward()  # type: ignore[union-attr]

    def fwd_bwd() -> None:
        loss_fn(h, w, t, b).backward()

    for _ in range(warmup):
        clear()
        fwd_bwd()
    clear()
    loss_value = float(loss_fn(h, w, t, b).detach().float())
    fwd_ms, bwd_ms, both_ms = [], [], []
    for _ in range(repeats):
        fwd_ms.append(timer.measure(clear, fwd))
        bwd_ms.append(timer.measure(lambda: None, bwd))
        both_ms.append(timer.measure(clear, fwd_bwd))
    clear()

    peak = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fwd_bwd()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        clear()
    # The hidden, weight (and bias) gradients are outputs every method must allocate; what is
    # left is the memory the loss itself needs (logits, softmax, buffers).
    grad_bytes = sum(x.numel() * x.element_size() for x in (h, w, b) if x is not None)
    return {
        "fwd_ms": statistics.median(fwd_ms),
        "bwd_ms": statistics.median(bwd_ms),
        "fwd_bwd_ms": statistics.median(both_ms),
        "peak_mem_bytes": peak,
        "grad_bytes": grad_bytes,
        "loss_mem_bytes": None if peak is None else peak - grad_bytes,
        "loss": loss_value,
    }


# --------------------------------------------------------------------------------------------
# Environment description
# --------------------------------------------------------------------------------------------


def _version(mod: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return None


def _git_commit() -> dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def environment(cuda: bool) -> dict[str, object]:
    env: dict[str, object] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "synknow_kernels": synknow_kernels.__version__,
        "liger_kernel": _version("liger-kernel"),
        "cut_cross_entropy": _version("cut-cross-entropy"),
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        env.update(
            device=torch.cuda.get_device_name(0),
            capability=f"{props.major}.{props.minor}",
            sm_count=props.multi_processor_count,
            memory_bytes=props.total_memory,
            cuda=torch.version.cuda,
        )
    else:
        env.update(device=f"CPU ({platform.processor() or platform.machine()})", cuda=None)
    return env


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def write_plot(results: list[dict], path: Path, title: str) -> bool:
    from synknow.plots import MatplotlibMissingError, new_subplots, save_figure

    shapes = list(dict.fromkeys(r["shape"] for r in results))
    methods = list(dict.fromkeys(r["method"] for r in results))
    panels = [("fwd_bwd_ms", "forward+backward (ms)", 1.0)]
    if any(r.get("peak_mem_bytes") for r in results):  # CUDA runs only
        panels.append(("peak_mem_bytes", "peak memory (GiB)", 2**-30))
    try:
        fig, axes = new_subplots(1, len(panels), len(panels) * max(4.5, 1.1 * len(shapes) + 3), 4.5)
    except MatplotlibMissingError as e:
        print(f"{e}: no PNG written")
        return False
    axes = axes[0]
    width = 0.8 / max(1, len(methods))
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        for j, m in enumerate(methods):
            ys = []
            for s in shapes:
                row = next((r for r in results if r["shape"] == s and r["method"] == m), None)
                v = None if row is None else row.get(key)
                ys.append(math.nan if v is None else v * scale)
            xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(shapes))]
            ax.bar(xs, ys, width=width, label=m)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes, rotation=20, ha="right")
        ax.set_ylabel(label)
        if any(r.get(key) for r in results):
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return True


def print_table(results: list[dict]) -> None:
    """Time, peak memory and accuracy per shape and method (errors: max relative vs fp64)."""
    head = f"{'shape':<15}{'method':<18}{'fwd ms':>9}{'bwd ms':>9}{'f+b ms':>9}"
    head += f"{'TFLOP/s':>8}{'%peak':>6}{'peakGiB':>8}{'lossGiB':>8}{'vs eager':>9}"
    head += f"{'err loss':>9}{'err dh':>9}{'err dW':>9}{'err db':>9}{'bound':>9}  status"
    print(head)

    def fmt(v: object, spec: str) -> str:
        if isinstance(v, (int, float)):
            return format(v, spec)
        return "-".rjust(int(spec.split(".")[0]))

    for r in results:
        peak, mem = r.get("peak_mem_bytes"), r.get("loss_mem_bytes")
        acc = r.get("accuracy") or {}
        errs = acc.get("max_rel_error") or {}
        print(
            f"{r['shape']:<15}{r['method']:<18}{fmt(r.get('fwd_ms'), '9.2f')}"
            f"{fmt(r.get('bwd_ms'), '9.2f')}{fmt(r.get('fwd_bwd_ms'), '9.2f')}"
            f"{fmt(r.get('tflops_fwd_bwd'), '8.1f')}"
            f"{fmt(None if r.get('frac_peak') is None else 100 * r['frac_peak'], '6.1f')}"
            f"{fmt(None if peak is None else peak / 2**30, '8.2f')}"
            f"{fmt(None if mem is None else mem / 2**30, '8.2f')}"
            f"{fmt(r.get('mem_vs_eager'), '9.3f')}"
            f"{fmt(errs.get('loss'), '9.1e')}{fmt(errs.get('grad_hidden'), '9.1e')}"
            f"{fmt(errs.get('grad_weight'), '9.1e')}{fmt(errs.get('grad_bias'), '9.1e')}"
            f"{fmt(acc.get('error_bound'), '9.1e')}  {r['status']}"
        )
    if any(r["method"] == "liger" for r in results):
        print(f"note: {LIGER_NOTE}.")
    flagged = [f"{r['shape']}/{r['method']}" for r in results if _flagged(r)]
    if flagged:
        print(f"ACCURACY FLAGGED (outside the fp64 error bound): {', '.join(flagged)}")


def _flagged(row: dict) -> bool:
    acc = row.get("accuracy")
    return acc is not None and not acc["accuracy_ok"]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="small,llm", help="comma list of: " + ", ".join(SHAPES))
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma list of methods")
    p.add_argument(
        "--dtype",
        default=None,
        choices=sorted(UNIT_ROUNDOFF),
        help="input dtype (default bfloat16; float32 with --cpu-smoke)",
    )
    p.add_argument("--bias", action="store_true", help="add a (V,) bias and check its gradient")
    p.add_argument(
        "--check-tokens",
        type=int,
        default=0,
        help="check accuracy against fp64 on the first N tokens of each shape (0: all tokens)",
    )
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense peak for --dtype")
    p.add_argument("--out", type=Path, default=None, help="JSON path (PNG written next to it)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="no GPU needed: tiny shapes, synknow_torch vs eager on CPU (harness and accuracy "
        "check only; with TRITON_INTERPRET=1 also synknow in the Triton interpreter)",
    )
    return p.parse_args(argv)


def _bench_method(
    m: str,
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    check: dict[str, Any],
    args: argparse.Namespace,
    cuda: bool,
) -> dict[str, object]:
    """One method on one shape: accuracy against fp64 first, then timings, memory and status.

    A failure is recorded, not raised; a method outside the error bound is still timed but its
    status says ``inaccurate`` and names the worst quantity, so it cannot pass unnoticed.
    """
    h, w, t, b = inputs
    n, hdim = h.shape
    v = w.shape[0]
    row: dict[str, object] = {
        "tokens": n,
        "hidden": hdim,
        "vocab": v,
        "bias": b is not None,
        "dtype": args.dtype,
        "method": m,
    }
    fn, note = make_method(m)
    row["note"] = note
    if fn is None:
        row["status"] = "unavailable"
        return row
    saved_env = {k: os.environ.get(k) for k in METHOD_ENV.get(m, {})}
    os.environ.update(METHOD_ENV.get(m, {}))
    try:
        hc, wc, tc, bc = check["inputs"]
        acc = check_accuracy(fn, hc, wc, tc, bc, check["reference"], check["bound"])
        row["accuracy"] = acc
        timings = bench_one(fn, h, w, t, b, warmup=args.warmup, repeats=args.repeats, cuda=cuda)
        row.update(timings)
        if acc["accuracy_ok"]:
            row["status"] = "ok"
        else:
            worst = acc["worst"]
            err = acc["max_rel_error"][worst]
            shown = "missing" if err is None else f"{err:.2e}"
            row["status"] = f"inaccurate: {worst} error {shown} > bound {acc['error_bound']:.2e}"
        tflops = 6.0 * n * hdim * v / (float(timings["fwd_bwd_ms"] or math.nan) * 1e-3) / 1e12
        row["tflops_fwd_bwd"] = tflops
        row["frac_peak"] = tflops / args.peak_tflops if cuda else None
    except torch.cuda.OutOfMemoryError:
        row["status"] = "oom"
    except Exception as exc:  # record and go on: one broken baseline must not end the run
        row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        for k, old in saved_env.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old
        for x in (h, w, b):
            if x is not None:
                x.grad = None
        if cuda:
            torch.cuda.empty_cache()
    return row


def _accuracy_setup(
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The fp64 reference for one shape, on the first ``--check-tokens`` tokens (0: all)."""
    h, w, t, b = inputs
    n = h.shape[0]
    k = n if args.check_tokens <= 0 else min(n, args.check_tokens)
    sliced = (h.detach()[:k], w.detach(), t[:k], None if b is None else b.detach())
    reference = fp64_reference(*sliced)
    bound = error_bound(args.dtype, h.shape[1], k, reference["max_abs_logit"])
    return {
        "inputs": sliced,
        "reference": reference,
        "bound": bound,
        "summary": {
            "check_tokens": k,
            "tokens": n,
            "sliced": k < n,
            "max_abs_logit": reference["max_abs_logit"],
            "error_bound": bound,
            "reference_chunk_tokens": reference["chunk_tokens"],
        },
    }


def _bench_shape(
    shape: tuple[str, int, int, int],
    methods: list[str],
    args: argparse.Namespace,
    device: torch.device,
    cuda: bool,
) -> list[dict]:
    """Every method on one shape, with speed, memory and accuracy, and ratios to eager PyTorch."""
    shape_name, n, hdim, v = shape
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    h = (torch.randn(n, hdim, generator=gen, device=device) * 0.5).to(dtype)
    w = (torch.randn(v, hdim, generator=gen, device=device) * hdim**-0.5).to(dtype)
    t = torch.randint(0, v, (n,), generator=gen, device=device)
    b = None
    if args.bias:
        b = (torch.randn(v, generator=gen, device=device) * 0.5).to(dtype).requires_grad_(True)
    h.requires_grad_(True)
    w.requires_grad_(True)
    check = _accuracy_setup((h, w, t, b), args)
    summary = check["summary"]
    print(
        f"  {shape_name}: fp64 reference on {summary['check_tokens']} of {n} tokens, "
        f"error bound {summary['error_bound']:.2e}",
        flush=True,
    )
    rows: list[dict] = []
    for m in methods:
        row: dict[str, Any] = {"shape": shape_name}
        row.update(_bench_method(m, (h, w, t, b), check, args, cuda))
        if "accuracy" in row:
            row["accuracy"].update(
                check_tokens=summary["check_tokens"], reference_sliced=summary["sliced"]
            )
        rows.append(row)
        print(f"  {shape_name} {m}: {row['status']}", flush=True)
    del check
    eager = next((r for r in rows if r["method"] == "eager" and r.get("status") == "ok"), None)
    for r in rows:
        if eager is None or "fwd_bwd_ms" not in r:
            continue
        if eager.get("loss_mem_bytes"):
            r["mem_vs_eager"] = r["loss_mem_bytes"] / eager["loss_mem_bytes"]
        r["speedup_vs_eager"] = eager["fwd_bwd_ms"] / r["fwd_bwd_ms"]
        r["loss_rel_diff_vs_eager"] = abs(r["loss"] - eager["loss"]) / abs(eager["loss"])
    return rows


def _write_results(
    out: Path,
    results: list[dict],
    env: dict[str, Any],
    args: argparse.Namespace,
    argv: list[str] | None,
    cuda: bool,
) -> None:
    from synknow.fsutil import atomic_write_text

    payload = {
        "benchmark": "synknow_kernels.linear_cross_entropy",
        "kind": "cpu-smoke (not GPU results)" if args.cpu_smoke else "gpu",
        "environment": env,
        "settings": {
            "dtype": args.dtype,
            "bias": args.bias,
            "check_tokens": args.check_tokens,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "peak_tflops": args.peak_tflops,
            "flops_counted": "6 * tokens * hidden * vocab per forward+backward",
            "timing": "median of repeats; CUDA events" if cuda else "median; perf_counter",
            "accuracy": "before timing, each method runs one forward+backward on the first "
            "check_tokens tokens of the shape (all of them unless --check-tokens caps it; "
            "accuracy.reference_sliced says when it did) and is compared with a float64 "
            "reference of the same (already rounded) inputs, computed in token chunks so no "
            "fp64 tokens x vocab logits exist. max_rel_error = max|x - ref| / max|ref| for the "
            "loss and the gradients of hidden, weight and bias (when --bias). error_bound = "
            f"{BOUND_FACTOR:g} * (u + 2^-24 * (hidden + check_tokens)) * max(1, max|logit|), "
            "u = unit roundoff of the input dtype (bf16 2^-8, fp16 2^-11, fp32 2^-24); a method "
            "above it has status 'inaccurate' and is listed in accuracy_flagged",
            "liger": LIGER_NOTE,
            "peak_mem": "peak_mem_bytes: max_memory_allocated during one fwd+bwd minus memory "
            "allocated before (includes the hidden and weight gradients); loss_mem_bytes: the "
            "same minus the size of those two gradients; mem_vs_eager: ratio of loss_mem_bytes",
            "argv": sys.argv[1:] if argv is None else argv,
            "env_overrides": {k: v for k, v in os.environ.items() if k.startswith("SYNKNOW_")},
        },
        "accuracy_flagged": [f"{r['shape']}/{r['method']}" for r in results if _flagged(r)],
        "results": results,
    }
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {out}")
    if not args.no_plot:
        title = f"{env['device']} - {args.dtype} - linear cross-entropy fwd+bwd"
        if args.cpu_smoke:
            title += " (CPU smoke test, not GPU results)"
        if write_plot(results, out.with_suffix(".png"), title):
            print(f"wrote {out.with_suffix('.png')}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    if args.cpu_smoke:
        cuda = False
        args.dtype = args.dtype or "float32"
        if args.methods == ",".join(DEFAULT_METHODS):
            args.methods = "synknow_torch,eager"
            if interpreter_enabled():
                args.methods = "synknow,synknow_fused," + args.methods
        triton_methods = {"synknow", "synknow_fused"} & set(args.methods.split(","))
        # the interpreter runs each Triton program in Python: minutes at the "tiny" shapes
        args.shapes = "tiny-interp" if triton_methods and interpreter_enabled() else "tiny"
        args.repeats, args.warmup = min(args.repeats, 3), min(args.warmup, 1)
    elif not cuda:
        print(
            "bench_kernels: no CUDA device, so there is nothing to benchmark here (the Triton "
            "kernels need a GPU; CPU timings would say nothing about them).\n"
            "On a GPU machine run:  python benches/bench_kernels.py\n"
            "To check the harness on CPU:  python benches/bench_kernels.py --cpu-smoke --out "
            "/tmp/bench_smoke.json"
        )
        return 0

    args.dtype = args.dtype or "bfloat16"
    device = torch.device("cuda" if cuda else "cpu")
    env = environment(cuda)
    methods = [m for m in args.methods.split(",") if m]
    shapes = [s for group in args.shapes.split(",") for s in SHAPES[group]]
    print(f"device: {env['device']}  torch {env['torch']}  triton {env['triton']}")
    results: list[dict] = []
    for shape in shapes:
        results += _bench_shape(shape, methods, args, device, cuda)

    print()
    print_table(results)
    out = args.out
    if out is None and not args.cpu_smoke:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", str(env["device"])).strip("-").lower()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = REPO / "benches" / "results" / f"kernels_{slug}_{stamp}.json"
    if out is None:
        print("\n(--cpu-smoke without --out: nothing written)")
        return 0
    _write_results(out, results, env, args, argv, cuda)
    return 0


if __name__ == "__main__":
    sys.exit(main())
