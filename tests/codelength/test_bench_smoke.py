"""The benchmark script runs end to end (small sizes) and writes a well-formed result file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benches" / "bench_codelength.py"


def test_bench_quick(tmp_path) -> None:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(BENCH), "--quick", "--no-exponents", "--out", str(out)]
    cmd += ["--corpus-dir", str(tmp_path / "corpus")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["per_token"]["identity_relative_difference"] < 1e-9
    assert result["per_token"]["python_reference"]["max_abs_difference_bits"] < 1e-9
    assert result["targets"]["speedup_vs_python"] > 1
    assert result["learning_curve"]["n_train"] == 50_000
    assert result["git"]["sha"] is None or len(result["git"]["sha"]) == 40
