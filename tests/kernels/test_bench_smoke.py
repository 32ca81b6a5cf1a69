"""The benchmark script stays runnable without a GPU (harness, accuracy check, JSON and PNG)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[2] / "benches" / "bench_kernels.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _ScaledGradient(torch.autograd.Function):
    """Identity forward, gradient times 1.5 backward: a loss whose value is right but not its
    gradients, the kind of defect a loss-only check misses."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.5


def _wrong_gradient_loss(h, w, t, b):
    return F.cross_entropy(F.linear(_ScaledGradient.apply(h), w, b).float(), t)


def test_cpu_smoke_writes_results(tmp_path):
    bench = _load()
    out = tmp_path / "smoke.json"
    assert bench.main(["--cpu-smoke", "--repeats", "1", "--out", str(out), "--no-plot"]) == 0
    data = json.loads(out.read_text())
    assert data["kind"].startswith("cpu-smoke")
    env = data["environment"]
    for key in ("device", "torch", "date_utc", "git"):
        assert key in env
    assert "fp64" in data["settings"]["accuracy"] or "float64" in data["settings"]["accuracy"]
    rows = data["results"]
    expected = {"synknow_torch", "eager"}
    if bench.interpreter_enabled():  # the Triton kernels join in, in the CPU interpreter
        expected |= {"synknow", "synknow_fused"}
    assert {r["method"] for r in rows} == expected
    assert all(r["status"] == "ok" for r in rows), rows
    assert all(r["fwd_bwd_ms"] > 0 and r["loss_rel_diff_vs_eager"] < 1e-4 for r in rows)
    assert data["accuracy_flagged"] == []
    for r in rows:
        acc = r["accuracy"]
        assert set(acc["max_rel_error"]) == {"loss", "grad_hidden", "grad_weight"}
        assert acc["accuracy_ok"] and acc["check_tokens"] == r["tokens"]
        assert not acc["reference_sliced"]
        # fp32 inputs: both methods agree with fp64 to fp32 accumulation error, far below the
        # bound (which allows for the worst case of that accumulation)
        assert max(acc["max_rel_error"].values()) < acc["error_bound"] / 10


def test_wrong_gradient_is_flagged_and_bias_checked(tmp_path, monkeypatch):
    bench = _load()
    monkeypatch.setitem(bench.EXTRA_METHODS, "scaled_grad", lambda: (_wrong_gradient_loss, ""))
    out = tmp_path / "smoke.json"
    argv = ["--cpu-smoke", "--dtype", "bfloat16", "--bias", "--repeats", "1", "--no-plot"]
    argv += ["--methods", "synknow_torch,eager,scaled_grad", "--check-tokens", "200"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    by_method: dict[str, list[dict]] = {}
    for r in data["results"]:
        by_method.setdefault(r["method"], []).append(r)
    for r in by_method["synknow_torch"] + by_method["eager"]:
        acc = r["accuracy"]
        assert r["status"] == "ok", r
        assert set(acc["max_rel_error"]) == {"loss", "grad_hidden", "grad_weight", "grad_bias"}
        assert acc["check_tokens"] == 200 and acc["reference_sliced"]
    for r in by_method["scaled_grad"]:
        acc = r["accuracy"]
        assert r["status"].startswith("inaccurate: grad_hidden"), r["status"]
        # the loss value itself is right: only the gradient check catches this method
        assert acc["max_rel_error"]["loss"] < acc["error_bound"]
        assert acc["max_rel_error"]["grad_hidden"] == pytest.approx(0.5, rel=0.05)
        assert r["fwd_bwd_ms"] > 0  # still timed, but flagged
    assert sorted(data["accuracy_flagged"]) == ["tiny-oddvocab/scaled_grad", "tiny/scaled_grad"]


def test_triton_kernels_checked_in_interpreter(tmp_path):
    bench = _load()
    if not bench.interpreter_enabled():
        pytest.skip("needs TRITON_INTERPRET=1 (set by tests/conftest.py without CUDA)")
    out = tmp_path / "interp.json"
    argv = ["--cpu-smoke", "--dtype", "bfloat16", "--bias", "--repeats", "1", "--warmup", "0"]
    argv += ["--methods", "synknow,synknow_fused,eager", "--no-plot", "--out", str(out)]
    assert bench.main(argv) == 0
    data = json.loads(out.read_text())
    assert {r["shape"] for r in data["results"]} == {"tiny-interp"}
    for r in data["results"]:
        assert r["status"] == "ok", r
        assert set(r["accuracy"]["max_rel_error"]) == {
            "loss",
            "grad_hidden",
            "grad_weight",
            "grad_bias",
        }


def test_error_bound_scales_with_input_precision():
    bench = _load()
    bf16 = bench.error_bound("bfloat16", 64, 512, 2.0)
    fp32 = bench.error_bound("float32", 64, 512, 2.0)
    assert fp32 < bf16 / 100
    assert bench.error_bound("bfloat16", 64, 512, 4.0) == pytest.approx(2 * bf16)


def test_fp64_reference_matches_autograd():
    bench = _load()
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(37, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(11, 8, generator=gen, dtype=torch.float64)
    b = torch.randn(11, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 11, (37,), generator=gen)
    monkey_chunk = bench.REFERENCE_CHUNK_ELEMENTS
    bench.REFERENCE_CHUNK_ELEMENTS = 5 * 11  # several chunks, the last one partial
    try:
        ref = bench.fp64_reference(h, w, t, b)
    finally:
        bench.REFERENCE_CHUNK_ELEMENTS = monkey_chunk
    leaves = [x.clone().requires_grad_(True) for x in (h, w, b)]
    loss = F.cross_entropy(F.linear(leaves[0], leaves[1], leaves[2]), t)
    loss.backward()
    # both in fp64 with a few dozen terms per sum: agreement to ~1e-15, 1e-12 leaves margin
    assert abs(float(ref["loss"]) - float(loss.detach())) < 1e-12
    for name, leaf in zip(("hidden", "weight", "bias"), leaves, strict=True):
        assert torch.allclose(ref["grads"][name], leaf.grad, rtol=0, atol=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_without_gpu_exits_cleanly(capsys):
    assert _load().main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
