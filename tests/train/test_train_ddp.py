"""DDP: two CPU processes (gloo) under torchrun match a single process within tolerance."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from _train_testing import records, tiny_config
from safetensors.torch import load_file
from synknow.train import train

STEPS = 6


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(corpus, corpus_dir, tmp_path):
    common = {
        "data": {"n_test": 40},
        "optim": {"max_steps": STEPS, "batch_size": 8, "warmup_steps": 2},
        "run": {"eval_docs": 10, "run_id": "single"},
    }
    single = train(tiny_config(tmp_path, **common), corpus=corpus)

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "synknow.train", "--corpus", str(corpus_dir),
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
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    la = [r["loss"] for r in records(single, "train")]
    lb = [r["loss"] for r in records(ddp, "train")]
    assert len(la) == len(lb) == STEPS
    assert lb == pytest.approx(la, rel=1e-5)
    # Adam is blind to a constant gradient scale, so check the all-reduced gradient itself.
    ga = [r["grad_norm"] for r in records(single, "train")]
    gb = [r["grad_norm"] for r in records(ddp, "train")]
    assert gb == pytest.approx(ga, rel=1e-4)
    assert [r["tokens"] for r in records(ddp, "train")] == [
        r["tokens"] for r in records(single, "train")
    ]
