"""Data parallelism: two CPU processes (gloo) under torchrun train the same model as a single
process, as one node (DDP), as two nodes that meet through a c10d rendezvous on loopback (DDP),
and with the parameters sharded (FSDP); an FSDP checkpoint is a single-process checkpoint.

Why float64. Data parallelism's contract is that the reduced gradient equals the
single-process gradient of the global batch; the two differ only in the order in which
per-token terms are summed (each rank sums its own windows, then gloo adds the two halves; FSDP
also sums the gradient norm's squares shard by shard). In float32 that reordering changes a
gradient coordinate by up to about n u sum|terms| (n = 512 target tokens per step,
u = 2^-24 = 6e-8), and AdamW divides by sqrt(v) + eps (eps = 1e-8): in a coordinate whose
gradient nearly cancels, an absolute difference of 1e-10 becomes an update difference of
lr * 1e-10 / 1e-8 = 1e-4 after one step, above any tolerance that would still catch a wrong
gradient. Which coordinates nearly cancel depends on the CPU's matmul blocking, so the float32
comparison passed on one CPU model and failed on another. In float64 (u = 2^-53 = 1.1e-16) the
same bound gives an absolute gradient difference below 512 * 1.1e-16 * sum|terms| ~ 1e-13
(terms are O(1e-3) here, so in fact ~1e-16), at most 1e-5 after the 1/eps amplification,
times lr = 0.01 and 6 steps: parameters agree to far better than the 1e-9 used below, while a
wrong gradient (a missing world-size factor, ranks reading the same windows, no reduction, a
shard left out) moves them by about lr = 1e-2.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from _train_testing import records, tiny_config
from safetensors.torch import load_file
from synknow.train import load_run, train
from synknow.train.checkpoint import latest_checkpoint

STEPS = 6
WORKER = Path(__file__).with_name("_ddp_float64.py")
LAUNCH_TIMEOUT_S = 300  # a hung rendezvous or collective fails the test instead of blocking


@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def worker_args(corpus_dir: Path, out_dir: Path, run_id: str, *extra: str) -> list[str]:
    """The arguments of a run equal to :func:`single_run`'s, for the torchrun worker."""
    return [
        str(WORKER), "--corpus", str(corpus_dir),
        "model.size=tiny", "model.context_length=64", "data.n_test=40",
        "optim.lr=0.01", f"optim.max_steps={STEPS}", "optim.batch_size=8",
        "optim.warmup_steps=2", "run.device=cpu", "run.progress=false", "run.log_interval=1",
        f"run.out_dir={out_dir}", f"run.run_id={run_id}", "run.eval_docs=10", *extra,
    ]  # fmt: skip


def single_run(corpus, out_dir: Path, **run: Any) -> Path:
    common = {
        "data": {"n_test": 40},
        "optim": {"max_steps": STEPS, "batch_size": 8, "warmup_steps": 2},
        "run": {"eval_docs": 10, "run_id": "single", **run},
    }
    return train(tiny_config(out_dir, **common), corpus=corpus)


def worker_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def assert_same_training(single: Path, other: Path, step: int = STEPS) -> None:
    """Parameters (float64, the format and names of a single-process checkpoint), losses,
    gradient norms and token counts of ``other`` equal ``single``'s; tolerances from the
    module docstring."""
    name = f"step_{step:08d}"
    a = load_file(str(single / "checkpoints" / name / "model.safetensors"))
    b = load_file(str(other / "checkpoints" / name / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype == torch.float64, k
        # 1e-5 * lr * steps from the float64 bound, with a wide margin; a broken gradient
        # moves parameters by ~lr = 1e-2.
        torch.testing.assert_close(b[k], a[k], rtol=1e-9, atol=1e-9, msg=k)
    # Losses and gradient norms are sums over 512 tokens: float64 reordering changes them by
    # ~1e-13 relative. Adam is blind to a constant gradient scale, so the gradient norm is
    # what checks the reduced gradient's scale (a missing 1/world factor doubles it).
    ra, rb = records(single, "train"), records(other, "train")
    first = rb[0]["step"]
    ra = [r for r in ra if r["step"] >= first]
    for key in ("loss", "grad_norm"):
        la, lb = [r[key] for r in ra], [r[key] for r in rb]
        assert len(la) == len(lb) == STEPS - first + 1
        assert lb == pytest.approx(la, rel=1e-9), key
    assert [r["tokens"] for r in rb] == [r["tokens"] for r in ra]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(corpus, corpus_dir, tmp_path, float64_default):
    single = single_run(corpus, tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += worker_args(corpus_dir, tmp_path, "ddp")
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=worker_env(), timeout=LAUNCH_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = tmp_path / "ddp"
    header = records(ddp, "header")[0]
    assert header["world_size"] == 2 and header["micro_batch_size"] == 4
    assert header["config"] == records(single, "header")[0]["config"] | {
        "run": header["config"]["run"]
    }
    assert_same_training(single, ddp)


# ---- two nodes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago (the caller retries if it is taken
    before the rendezvous binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_two_nodes(args: list[str], logs: Path, attempts: int = 3) -> None:
    """Runs ``torchrun --nnodes 2 --nproc-per-node 1`` twice, as the two nodes of a c10d
    rendezvous on 127.0.0.1 (same rendezvous id and endpoint; the rendezvous assigns the node
    ranks), each in its own process group so that a hang is killed whole at the deadline."""
    for attempt in range(attempts):
        port = free_port()
        cmd = [
            sys.executable, "-m", "torch.distributed.run",
            "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=synknow-test-{port}",
            "--rdzv-conf=join_timeout=120", "--local-addr=127.0.0.1", "--max-restarts=0",
            *args,
        ]  # fmt: skip
        outputs = [logs / f"node{i}-attempt{attempt}.log" for i in range(2)]
        procs = []
        for out in outputs:
            with open(out, "w") as f:
                procs.append(
                    subprocess.Popen(
                        cmd,
                        stdout=f,
                        stderr=subprocess.STDOUT,
                        env=worker_env(),
                        start_new_session=True,
                    )  # fmt: skip
                )
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        try:
            codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
        except subprocess.TimeoutExpired:
            codes = None
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        text = "\n".join(f"--- {o.name}\n{o.read_text()[-3000:]}" for o in outputs)
        if codes is None:
            pytest.fail(f"two-node run did not finish in {LAUNCH_TIMEOUT_S} s:\n{text}")
        if codes == [0, 0]:
            return
        if "address already in use" not in text.lower():
            pytest.fail(f"two-node run failed (exit codes {codes}):\n{text}")
    pytest.fail(f"no free rendezvous port after {attempts} attempts:\n{text}")


@pytest.mark.slow
def test_two_nodes_on_loopback_match_single_process(corpus, corpus_dir, tmp_path, float64_default):
    """Two torchrun agents (one process each) as two nodes: every process has LOCAL_RANK 0,
    so only the global rank may decide who writes the run and which windows a rank reads."""
    single = single_run(corpus, tmp_path)
    launch_two_nodes(worker_args(corpus_dir, tmp_path, "nodes"), tmp_path)
    nodes = tmp_path / "nodes"
    header = records(nodes, "header")
    assert len(header) == 1  # one writer, although both processes are local rank 0
    assert header[0]["world_size"] == 2 and header[0]["local_world_size"] == 1
    assert header[0]["micro_batch_size"] == 4
    assert_same_training(single, nodes)


# ---- FSDP --------------------------------------------------------------------------------------


def torchrun_standalone(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        cmd + args, capture_output=True, text=True, env=worker_env(), timeout=LAUNCH_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_fsdp_matches_single_process_and_checkpoints_like_it(
    corpus, corpus_dir, tmp_path, float64_default
):
    """FSDP (FULL_SHARD over two gloo ranks) trains the single-process model (same float64
    tolerance: only the summation order differs), writes checkpoints a single process resumes
    exactly and load_run reads, and resumes a single-process checkpoint exactly."""
    single = single_run(corpus, tmp_path, checkpoint_interval=3)
    extra = ("run.distributed=fsdp", "run.checkpoint_interval=3")
    torchrun_standalone(worker_args(corpus_dir, tmp_path, "fsdp", *extra))
    fsdp = tmp_path / "fsdp"
    header = records(fsdp, "header")[0]
    assert header["distributed"] == "fsdp" and header["world_size"] == 2
    assert header["params"] == records(single, "header")[0]["params"]  # DTensors count whole
    assert_same_training(single, fsdp)
    assert load_run(fsdp).step == STEPS
    final = [r for r in records(fsdp, "eval") if r["final"]]
    expected = [r for r in records(single, "eval") if r["final"]]
    assert final[0]["bits_per_token"] == pytest.approx(expected[0]["bits_per_token"], rel=1e-9)

    # The gathered optimiser state is the whole state: a single process resumes from FSDP's
    # step-3 checkpoint to single's step 6.
    resumed = rewind(fsdp, tmp_path / "fsdp-resumed-single", step=3)
    train(resume=resumed)
    assert_same_training(single, resumed)

    # And FSDP resumes a single-process checkpoint, sharding its optimiser state.
    rewind(single, tmp_path / "single-resumed-fsdp", step=3)
    cmd = [str(WORKER), "--resume", str(tmp_path / "single-resumed-fsdp"), "run.distributed=fsdp"]
    torchrun_standalone(cmd)
    assert_same_training(single, tmp_path / "single-resumed-fsdp")


def rewind(run_dir: Path, copy: Path, step: int) -> Path:
    """A copy of ``run_dir`` whose latest checkpoint is the one at ``step``."""
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    root = copy / "checkpoints"
    for later in root.glob("step_*"):
        if int(later.name.split("_")[1]) > step:
            shutil.rmtree(later)
    (root / "latest").write_text(f"step_{step:08d}\n")
    metrics = copy / "metrics.jsonl"  # up to ``step``: the resumed run appends from there
    lines = metrics.read_text().splitlines()
    metrics.write_text("".join(f"{x}\n" for x in lines if json.loads(x).get("step", 0) <= step))
    assert latest_checkpoint(copy) == root / f"step_{step:08d}"
    return copy
