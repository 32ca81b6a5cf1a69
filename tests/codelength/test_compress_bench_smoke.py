"""The compression benchmark runs end to end at a tiny size and writes a well-formed result."""

from __future__ import annotations

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
