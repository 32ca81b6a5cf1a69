"""Run directories under adversity: bad values, concurrent runs, edited or corrupt checkpoints,
leftovers of killed runs, full disks, and the permissions of what a run writes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from _train_testing import tiny_config
from safetensors import SafetensorError
from synknow import cli
from synknow.train import CheckpointError, RunInUse, TrainConfig, load_run, train
from synknow.train import train as train_fn


def one_line_error(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory) -> Path:
    """Two steps of a tiny run, stopped after the first: a checkpoint at step 1 to resume."""
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(out, data={"n_test": 40}, optim={"max_steps": 2}, run={"run_id": "base"})
    return train_fn(cfg, corpus=corpus, stop_at=1)


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    dst = tmp_path / "runs" / "copy"
    shutil.copytree(finished_run, dst, symlinks=True)
    return dst


# ---- 1. values that crashed, hung or overflowed -----------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.num_threads=100000", "run.num_threads must be at most 1,024"),  # was a segfault
        ("optim.batch_size=1000000000", "optim.batch_size must be at most"),  # was a 14-min loop
        ("optim.lr=1e308", "optim.lr must be at most"),  # was a RuntimeError in AdamW
        ("model.context_length=1000000000", "model.context_length must be at most"),  # OOM
        ("optim.micro_batch_size=1000000000", "optim.micro_batch_size must be at most"),
        ("data.epochs=1e9", "data.epochs must be at most"),
        ("run.seed=18446744073709551616", "run.seed must be at most"),
        ("data.shuffle_seed=18446744073709551616", "data.shuffle_seed must be at most"),
        ("optim.eps=1e308", "optim.eps must be at most"),
        ("optim.weight_decay=1e308", "optim.weight_decay must be at most"),
        ("model.init_std=1e308", "model.init_std must be at most"),
        ("model.rope_base=1e308", "model.rope_base must be at most"),
        ("optim.lr=inf", "optim.lr must be > 0"),
        ("optim.grad_clip=nan", "optim.grad_clip must be >= 0"),
    ],
)
def test_out_of_range_values_are_one_line_errors_before_the_run_directory(
    override, message, corpus_dir, tmp_path, capsys
):
    argv = ["train", "--corpus", str(corpus_dir), f"run.out_dir={tmp_path}", "run.run_id=r"]
    err = one_line_error([*argv, override], capsys)
    assert message in err
    assert not (tmp_path / "r").exists()  # nothing blocks the run id afterwards


def test_micro_batch_beyond_memory_is_rejected_before_the_run_directory(corpus, tmp_path):
    cfg = tiny_config(tmp_path, optim={"batch_size": 2**20}, run={"run_id": "big"})
    with pytest.raises(ValueError, match=r"needs at least .* GiB, more than the"):
        train(cfg, corpus=corpus)
    assert not (tmp_path / "big").exists()


def test_wrong_types_are_one_line_errors(tmp_path, capsys):
    from synknow.train import DataConfig

    with pytest.raises(ValueError, match="data.corpus must be str or none, got 5"):
        DataConfig(corpus=5)  # type: ignore[arg-type]
    config = tmp_path / "run.toml"
    config.write_text("corpus = 5\n")
    assert "data.corpus must be str" in one_line_error(["train", "--config", str(config)], capsys)
    with pytest.raises(ValueError, match="data.corpus must be str"):
        TrainConfig.from_toml("[data]\ncorpus = 5\n")


# ---- 2. one process per run directory ----------------------------------------------------


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run's lock, as a concurrent ``synknow train`` would."""
    code = (
        "import sys, time; from synknow.train.rundir import RunLock; from pathlib import Path\n"
        f"with RunLock(Path({str(run_dir)!r})):\n"
        "    print('locked', flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_on_the_same_run_fails_at_once_naming_the_holder(
    corpus, run_copy, tmp_path
):
    fresh = tmp_path / "runs" / "fresh"
    fresh.mkdir(parents=True)
    for run_dir in (fresh, run_copy):
        holder = hold_lock(run_dir)
        try:
            with pytest.raises(RunInUse, match=rf"in use by process {holder.pid}\b"):
                if run_dir is fresh:
                    train(tiny_config(tmp_path / "runs", run={"run_id": "fresh"}), corpus=corpus)
                else:
                    train(resume=run_dir, corpus=corpus)
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()  # type: ignore[union-attr]
    assert not (fresh / "config.json").exists()
    # The kernel released the killed holder's lock: the run resumes.
    train(resume=run_copy, corpus=corpus)
    assert load_run(run_copy).step == 2


# ---- 3. paths out of the run, corrupt and edited checkpoints -----------------------------


def test_latest_pointer_into_another_run_is_rejected(corpus, finished_run, run_copy):
    latest = run_copy / "checkpoints" / "latest"
    latest.write_text(f"../../{finished_run.parent.name}/base/checkpoints/step_00000001\n")
    with pytest.raises(CheckpointError, match="not a checkpoint directory of this run"):
        train(resume=run_copy, corpus=corpus)
    # A checkpoint name that is a symbolic link into another run.
    (run_copy / "checkpoints" / "step_00000002").symlink_to(
        finished_run / "checkpoints" / "step_00000001"
    )
    latest.write_text("step_00000002\n")
    with pytest.raises(CheckpointError, match="leads outside"):
        train(resume=run_copy, corpus=corpus)
    with pytest.raises(CheckpointError, match="leads outside"):
        load_run(run_copy, step=2)


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "rng.safetensors"])
def test_flipped_byte_in_a_checkpoint_is_detected(corpus, run_copy, name):
    path = run_copy / "checkpoints" / "step_00000001" / name
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the tensor data: safetensors itself does not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{name} does not match the hash"):
        train(resume=run_copy, corpus=corpus)
    if name == "model.safetensors":
        with pytest.raises(CheckpointError, match="does not match the hash"):
            load_run(run_copy)


def edit_state(run_dir: Path, **changes) -> None:
    path = run_dir / "checkpoints" / "step_00000001" / "state.json"
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"step": 10**12}, "does not match the directory"),  # was resumed as finished, exit 0
        ({"step": "1"}, "does not match the directory"),
        ({"tokens_seen": -1}, "tokens_seen -1 is not a count"),
        ({"rng": None}, "lacks param_groups or rng"),
        ({"sha256": {"model.safetensors": "0"}}, "sha256 must map"),
    ],
)
def test_invalid_state_is_rejected(corpus, run_copy, changes, message):
    edit_state(run_copy, **changes)
    with pytest.raises(CheckpointError, match=message):
        train(resume=run_copy, corpus=corpus)


def test_step_beyond_the_run_is_rejected(corpus, run_copy):
    root = run_copy / "checkpoints"
    shutil.copytree(root / "step_00000001", root / "step_00000009")
    state = json.loads((root / "step_00000009" / "state.json").read_text())
    (root / "step_00000009" / "state.json").write_text(json.dumps({**state, "step": 9}))
    (root / "latest").write_text("step_00000009\n")
    with pytest.raises(CheckpointError, match=r"step 9 outside \[0, 2\]"):
        train(resume=run_copy, corpus=corpus)


@pytest.mark.parametrize("name", ["model.safetensors", "rng.safetensors"])
def test_truncated_checkpoint_without_hashes_is_a_one_line_error(corpus, run_copy, name, capsys):
    """Checkpoints written before hashes existed are still read: a truncated file there is
    caught when loading (SafetensorError) and reported in one line."""
    edit_state(run_copy, sha256=None)
    path = run_copy / "checkpoints" / "step_00000001" / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot be restored"):
        train(resume=run_copy, corpus=corpus)
    err = one_line_error(["train", "--resume", str(run_copy)], capsys)
    assert "cannot be restored" in err


@pytest.mark.parametrize("content", ["[]", "{}", '{"train": [], "corpus": {}, "n_test": 1}', "{"])
def test_invalid_config_json_is_a_one_line_error(corpus, run_copy, content, capsys):
    (run_copy / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match="config.json"):
        load_run(run_copy, corpus=corpus)
    with pytest.raises(CheckpointError, match="config.json"):
        train(resume=run_copy, corpus=corpus)
    assert "config.json" in one_line_error(["eval", "--run", str(run_copy)], capsys)
    assert "config.json" in one_line_error(["train", "--resume", str(run_copy)], capsys)


def test_full_disk_while_checkpointing_is_a_one_line_error(
    corpus_dir, tmp_path, monkeypatch, capsys
):
    import importlib

    module = importlib.import_module("synknow.train.checkpoint")

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(module, "save_file", full_disk)
    argv = [
        "train", "--corpus", str(corpus_dir), f"run.out_dir={tmp_path}", "run.run_id=full",
        "--max_steps=1", "--n_test=40", "--device=cpu", "--progress=false",
    ]  # fmt: skip
    err = one_line_error(argv, capsys)
    assert "cannot write checkpoint" in err and "No space left" in err
    checkpoints = tmp_path / "full" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == []  # the partial checkpoint is gone


# ---- 4. leftovers of killed runs, permissions --------------------------------------------


def test_stale_checkpoint_temporaries_are_removed_on_the_next_run(corpus, run_copy):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    root = run_copy / "checkpoints"
    stale = [
        root / f".step_00000002.tmp-{pid}-0a1b2c3d",  # killed during a checkpoint
        root / ".step_00000002.k3j_x9q2",  # a killed run of an older version (mkdtemp name)
    ]
    for path in stale:
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"partial")
    stale_file = run_copy / f".eval.json.tmp-{pid}-0a1b2c3d"
    stale_file.write_text("partial")
    train(resume=run_copy, corpus=corpus)
    assert not any(p.exists() for p in [*stale, stale_file])
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000001", "step_00000002"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(corpus, tmp_path, umask):
    before = os.umask(umask)
    try:
        cfg = tiny_config(tmp_path, data={"n_test": 40}, optim={"max_steps": 1})
        run_dir = train(cfg.with_overrides(["run.run_id=modes"]), corpus=corpus)
    finally:
        os.umask(before)
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    checkpoint = run_dir / "checkpoints" / "step_00000001"
    names = ["config.json", "eval.json", "metrics.jsonl", ".lock", "checkpoints/latest"]
    for path in [*(run_dir / n for n in names), *checkpoint.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path.name
    for path in (run_dir, run_dir / "checkpoints", checkpoint):
        assert stat.S_IMODE(path.stat().st_mode) == dir_mode, path.name
