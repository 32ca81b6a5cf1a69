"""The compression benchmark runs end to end at a tiny size and writes a well-formed result."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benches" / "bench_compress.py"


def test_bench_compress_tiny(tmp_path) -> None:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(BENCH), "--docs", "300", "--repeats", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert rows["Bayes coder (payload)"]["bits"] >= rows["exact code length"]["bits"]
    assert result["payload_over_code_length"] < 1.01
    for name in ("xz-9 on tokens", "bz2-9 on text", "gzip-9 on tokens"):
        assert rows[name]["bits"] > rows["exact code length"]["bits"]
    assert result["speed"]["compress_M_tokens_per_s"] > 0
    assert result["git"]["sha"] is None or len(result["git"]["sha"]) == 40
    # The seed-knowing code does not pay for theta and the entities: below the Bayes code.
    seed_row = rows["seed-knowing code (true theta and entities)"]
    assert 0 < seed_row["bits"] < rows["exact code length"]["bits"]
    assert set(seed_row["bits_by_part"]) == {"entity", "order", "template"}
    for what in ("tokens", "text"):
        zstd = rows[f"zstd-19 on {what}"]
        assert zstd["bits"] is None or zstd["bits"] > rows["exact code length"]["bits"]
    procedural = result["procedural_shared_pool"]
    assert procedural["corpus"]["preset"] == "procedural-shared-pool"
    assert procedural["payload_over_code_length"] < 1.01
    assert "machine" not in procedural


def test_bench_without_zstandard_says_so(monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_compress_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # A None entry in sys.modules makes `import zstandard` raise ImportError.
    monkeypatch.setitem(sys.modules, "zstandard", None)
    # No transformer rows (the options of bench_compress's transformer coder, if present).
    args = argparse.Namespace(docs=100, seed=1, repeats=1, model_steps=0, with_model=None)
    result = bench.run(args)
    for what in ("tokens", "text"):
        row = result["rows"][f"zstd-19 on {what}"]
        assert row["bits"] is None and "zstandard is not installed" in row["skipped"]
    assert result["skipped"] == [f"zstd-19 ({bench.ZSTD_MISSING})"]
    assert result["rows"]["xz-9 on tokens"]["bits"] > 0
