"""``benches/gpu_check.sh``: the one GPU check. Its dry run and its bookkeeping run on CPU.

The real run needs a GPU; here ``--dry-run`` must list every part, and a run with a stand-in
interpreter (``PYTHON=true`` / ``false``: every part exits at once) must write the summary
files and report failures, all without a GPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benches" / "gpu_check.sh"

needs_bash = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="needs bash and coreutils timeout",
)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "OUT"}
    full_env.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_bash
def test_dry_run_lists_every_part_within_ten_minutes(tmp_path):
    res = _run("--dry-run", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert str(tmp_path / "out") in out
    assert not (tmp_path / "out").exists()  # a dry run creates nothing
    for expected in (
        "-m gpu tests",  # every gpu-marked test
        "tests/kernels",  # the kernel suite on CUDA
        "benches/bench_kernels.py --shapes llm",
        "benches/bench_kernels.py --shapes small",
        "benches/bench_train.py",
        "synknow experiment all --preset gpu-small",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    limits = [int(s) for s in re.findall(r"^\s+\S+\s+(\d+)s\s", out, flags=re.M)]
    assert len(limits) >= 6 and sum(limits) <= 600, limits


@needs_bash
def test_dry_run_uses_out_from_the_environment():
    res = _run("--dry-run", OUT="/somewhere/results")
    assert res.returncode == 0 and "/somewhere/results/bench-train" in res.stdout


@needs_bash
@pytest.mark.parametrize(
    "args, env, message",
    [
        ((), {}, "output folder"),
        (("--bogus",), {}, "unknown option"),
        (("a", "b"), {}, "one output folder"),
        (("x",), {"GPU_CHECK_BUDGET_S": "ten"}, "GPU_CHECK_BUDGET_S"),
    ],
)
def test_bad_invocations_are_one_line_errors(args, env, message):
    res = _run(*args, **env)
    assert res.returncode == 2
    assert message in res.stderr and res.stderr.count("\n") == 1, res.stderr


@needs_bash
@pytest.mark.parametrize("stand_in, all_ok", [("true", True), ("false", False)])
def test_summary_files_and_exit_status(tmp_path, stand_in, all_ok):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    out = tmp_path / "results"
    path = f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    res = _run(str(out), PYTHON=stand_in, GPU_CHECK_BUDGET_S="60", PATH=path)
    summary = json.loads((out / "summary.json").read_text())
    statuses = {p["part"]: p["status"] for p in summary["parts"]}
    assert (out / "SUMMARY.txt").read_text().count("\n") == len(statuses) + 1
    assert {"gpu-tests", "bench-kernels-llm", "experiments-gpu-small"} <= set(statuses)
    for part in summary["parts"]:
        assert Path(part["log"]).is_file()
    expected = "ok" if all_ok else "failed(rc=1)"
    assert set(statuses.values()) == {expected}, statuses
    assert res.returncode == (0 if all_ok else 1), res.stdout + res.stderr
    assert "gpu_check.sh summary" in res.stdout
