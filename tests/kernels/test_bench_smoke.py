"""The benchmark script stays runnable without a GPU (harness, JSON and PNG output)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benches" / "bench_kernels.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_smoke_writes_results(tmp_path):
    bench = _load()
    out = tmp_path / "smoke.json"
    assert bench.main(["--cpu-smoke", "--repeats", "1", "--out", str(out), "--no-plot"]) == 0
    data = json.loads(out.read_text())
    assert data["kind"].startswith("cpu-smoke")
    env = data["environment"]
    for key in ("device", "torch", "date_utc", "git"):
        assert key in env
    rows = data["results"]
    assert {r["method"] for r in rows} == {"synknow_torch", "eager"}
    assert all(r["status"] == "ok" for r in rows), rows
    assert all(r["fwd_bwd_ms"] > 0 and r["loss_rel_diff_vs_eager"] < 1e-4 for r in rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_without_gpu_exits_cleanly(capsys):
    assert _load().main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
