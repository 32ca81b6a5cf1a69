"""DDP: two CPU processes (gloo) under torchrun train the same model as a single process.

Why float64. DDP's contract is that the all-reduced gradient equals the single-process gradient
of the global batch; the two differ only in the order in which per-token terms are summed
(each rank sums its own windows, then gloo adds the two halves). In float32 that reordering
changes a gradient coordinate by up to about n u sum|terms| (n = 512 target tokens per step,
u = 2^-24 = 6e-8), and AdamW divides by sqrt(v) + eps (eps = 1e-8): in a coordinate whose
gradient nearly cancels, an absolute difference of 1e-10 becomes an update difference of
lr * 1e-10 / 1e-8 = 1e-4 after one step, above any tolerance that would still catch a wrong
gradient. Which coordinates nearly cancel depends on the CPU's matmul blocking, so the float32
comparison passed on one CPU model and failed on another. In float64 (u = 2^-53 = 1.1e-16) the
same bound gives an absolute gradient difference below 512 * 1.1e-16 * sum|terms| ~ 1e-13
(terms are O(1e-3) here, so in fact ~1e-16), at most 1e-5 after the 1/eps amplification,
times lr = 0.01 and 6 steps: parameters agree to far better than the 1e-9 used below, while a
wrong gradient (a missing world-size factor, ranks reading the same windows, no all-reduce)
moves them by about lr = 1e-2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _train_testing import records, tiny_config
from safetensors.torch import load_file
from synknow.train import train

STEPS = 6
WORKER = Path(__file__).with_name("_ddp_float64.py")


@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(corpus, corpus_dir, tmp_path, float64_default):
    common = {
        "data": {"n_test": 40},
        "optim": {"max_steps": STEPS, "batch_size": 8, "warmup_steps": 2},
        "run": {"eval_docs": 10, "run_id": "single"},
    }
    single = train(tiny_config(tmp_path, **common), corpus=corpus)

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(WORKER), "--corpus", str(corpus_dir),
        "model.size=tiny", "model.context_length=64", "data.n_test=40",
        "optim.lr=0.01", f"optim.max_steps={STEPS}", "optim.batch_size=8",
        "optim.warmup_steps=2", "run.device=cpu", "run.progress=false", "run.log_interval=1",
        f"run.out_dir={tmp_path}", "run.run_id=ddp", "run.eval_docs=10",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = tmp_path / "ddp"
    header = records(ddp, "header")[0]
    assert header["world_size"] == 2 and header["micro_batch_size"] == 4
    assert header["config"] == records(single, "header")[0]["config"] | {
        "run": header["config"]["run"]
    }

    a = load_file(str(single / "checkpoints" / f"step_{STEPS:08d}" / "model.safetensors"))
    b = load_file(str(ddp / "checkpoints" / f"step_{STEPS:08d}" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype == torch.float64, k
        # Tolerances from the float64 bound in the module docstring (1e-5 * lr * steps, with
        # a wide margin); a broken gradient moves parameters by ~lr = 1e-2.
        torch.testing.assert_close(b[k], a[k], rtol=1e-9, atol=1e-9, msg=k)
    # Losses and gradient norms are sums over 512 tokens: float64 reordering changes them by
    # ~1e-13 relative. Adam is blind to a constant gradient scale, so the gradient norm is
    # what checks the all-reduced gradient's scale (a missing 1/world factor doubles it).
    for key in ("loss", "grad_norm"):
        la = [r[key] for r in records(single, "train")]
        lb = [r[key] for r in records(ddp, "train")]
        assert len(la) == len(lb) == STEPS
        assert lb == pytest.approx(la, rel=1e-9), key
    assert [r["tokens"] for r in records(ddp, "train")] == [
        r["tokens"] for r in records(single, "train")
    ]
