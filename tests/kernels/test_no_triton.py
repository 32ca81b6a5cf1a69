"""Without Triton (e.g. macOS, Windows) the package imports and falls back to PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KERNELS_SRC = Path(__file__).resolve().parents[2] / "kernels"

SCRIPT = """
import sys
sys.modules["triton"] = None  # make `import triton` fail
import torch
import synknow_kernels as sk
assert not sk.HAS_TRITON
h = torch.randn(5, 8, requires_grad=True)
w = torch.randn(11, 8)
t = torch.randint(0, 11, (5,))
loss = sk.linear_cross_entropy(h, w, t)
loss.backward()
assert torch.isfinite(h.grad).all()
assert sk.token_eval(h, w, t).nll_bits.shape == (5,)
try:
    sk.linear_cross_entropy(h, w, t, impl="triton")
except RuntimeError as exc:
    assert "not installed" in str(exc)
else:
    raise AssertionError("impl='triton' should fail without Triton")
print("ok")
"""


def test_import_and_fallback_without_triton():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(KERNELS_SRC), env.get("PYTHONPATH", "")) if p
    )
    env.pop("SYNKNOW_KERNELS_IMPL", None)
    res = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout + res.stderr
