"""Training end to end on CPU: learning, exact resume, divergence, bad input, CLI."""

from __future__ import annotations

import importlib
import json
import os
import signal

import numpy as np
import pytest
import torch
from _train_testing import records, small_bios, tiny_config
from safetensors.torch import load_file
from synknow import cli
from synknow.train import GPT, TrainingDiverged, evaluate, load_run, train


@pytest.mark.slow
def test_tiny_model_learns_syntax_first_and_frequent_facts(corpus, tmp_path):
    """Within 120 steps (fixed seed) the syntax loss drops far below its initial value and
    below the value loss, and facts about frequent entities are recalled far better than
    facts about entities seen at most once."""
    cfg = tiny_config(
        tmp_path,
        data={"n_test": 300},
        optim={"batch_size": 16, "max_steps": 120, "warmup_steps": 20},
        run={"log_interval": 20},
    )
    run_dir = train(cfg, corpus=corpus)
    final = json.loads((run_dir / "eval.json").read_text())
    torch.manual_seed(cfg.run.seed)  # the same initialisation as the run
    initial = evaluate(GPT(load_run(run_dir).model.config), corpus, 2700, 300, bayes=False)
    syn0, syn = initial["roles"]["syntax"]["bits"], final["roles"]["syntax"]["bits"]
    assert syn0 > 7.0  # ~log2(V): nothing learned yet
    assert syn < 0.25 * syn0
    assert syn < final["roles"]["value"]["bits"]
    rep = load_run(run_dir).evaluate(per_token=True, bayes=False)
    tok = rep["tokens"]
    value = tok["role"] == 3
    frequent = tok["credit"][value & (tok["count"] >= 64)]
    rare = tok["credit"][value & (tok["count"] <= 1)]
    assert len(frequent) > 500 and len(rare) >= 30
    # Chance on a pool is 1/8..1/20; memorised facts are recalled almost always.
    assert frequent.mean() > 0.6
    assert rare.mean() < 0.3
    assert frequent.mean() - rare.mean() > 0.4
    losses = [r["loss"] for r in records(run_dir, "train")]
    assert losses[-1] < 0.5 * losses[0]


def test_resume_is_exact(corpus, tmp_path):
    """N steps straight == N/2 steps, stop, resume, N/2 steps: same parameters, optimiser
    state, RNG state and losses (fp32 CPU; gradient accumulation and dropout on)."""
    cfg = tiny_config(
        tmp_path,
        model={"dropout": 0.1},
        data={"n_test": 40},
        optim={"max_steps": 10, "batch_size": 8, "micro_batch_size": 4, "warmup_steps": 3},
        run={"eval_docs": 10, "eval_interval": 4},
    )
    straight = train(cfg.with_overrides(["run.run_id=straight"]), corpus=corpus)
    # Batches from DataLoader worker processes (stopped early), then in-line: the same run.
    workers = ["run.run_id=split", "run.data_workers=2"]
    split = train(cfg.with_overrides(workers), corpus=corpus, stop_at=5)
    assert records(split, "stopped")[0]["step"] == 5
    assert not (split / "eval.json").exists()
    train(resume=split, corpus=corpus, overrides=["run.data_workers=0"])
    # Bit-equality is the property here and is sound on any CPU: both runs execute the same
    # kernels on the same shapes in one process with one thread (conftest), so every float is
    # computed in the same order; only the resume in between differs.
    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        a = load_file(str(straight / "checkpoints" / "step_00000010" / name))
        b = load_file(str(split / "checkpoints" / "step_00000010" / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    la = [(r["step"], r["loss"], r["grad_norm"]) for r in records(straight, "train")]
    lb = [(r["step"], r["loss"], r["grad_norm"]) for r in records(split, "train")]
    assert la == lb and len(la) == 10
    ea = json.loads((straight / "eval.json").read_text())
    eb = json.loads((split / "eval.json").read_text())
    assert ea == eb
    assert [r["step"] for r in records(split, "eval")] == [4, 8, 10]
    assert len(records(split, "resume")) == 1


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(corpus, tmp_path):
    cfg = tiny_config(
        tmp_path,
        optim={"lr": 1e6, "warmup_steps": 0, "max_steps": 5, "grad_clip": 0.0},
        run={"checkpoint_interval": 1, "run_id": "boom"},
    )
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at step \d+; the last good checkpoint"):
        train(cfg, corpus=corpus)
    run_dir = tmp_path / "boom"
    err = records(run_dir, "error")
    assert len(err) == 1
    bad_step = err[0]["step"]
    assert bad_step >= 2  # the first step starts from finite initial weights
    ckpt = run_dir / "checkpoints" / f"step_{bad_step - 1:08d}"
    assert err[0]["last_checkpoint"] == str(ckpt) and str(ckpt) in err[0]["message"]
    assert not (run_dir / "checkpoints" / f"step_{bad_step:08d}").exists()
    assert load_run(run_dir, corpus=corpus).step == bad_step - 1  # the last checkpoint loads
    assert not (run_dir / "eval.json").exists()


def test_run_directory_contents_and_header(corpus, tmp_path):
    cfg = tiny_config(
        tmp_path,
        optim={"max_steps": 3},
        run={"run_id": "r", "keep_checkpoints": 2, "checkpoint_interval": 1},
    )
    run_dir = train(cfg, corpus=corpus)
    header = records(run_dir, "header")[0]
    assert header["config"]["model"]["vocab_size"] == len(corpus.vocab)
    assert header["versions"]["torch"] == torch.__version__
    assert header["versions"]["synknow_kernels"] is not None
    assert header["loss_kernel"] == "synknow_kernels"
    assert header["device"]["type"] == "cpu" and header["peak_flops"] is None
    assert header["git"].keys() == {"sha", "dirty"}
    assert header["params"] > header["params_non_embedding"] > 0
    train_recs = records(run_dir, "train")
    assert [r["step"] for r in train_recs] == [1, 2, 3]
    assert all(r["tokens_per_s"] > 0 and r["mfu"] is None for r in train_recs)
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["step_00000002", "step_00000003"]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    assert records(run_dir, "end")[0]["step"] == 3
    final = records(run_dir, "eval")[-1]
    assert final["final"] and final["n_test_docs"] == 200
    assert final["bayes"]["roles"]["value"]["tokens"] == final["roles"]["value"]["tokens"]
    loaded = load_run(run_dir, step=2)
    assert loaded.step == 2 and loaded.n_train == corpus.n_docs - 200
    with pytest.raises(ValueError, match="no checkpoint at step 1"):
        load_run(run_dir, step=1)


def test_single_epoch_covers_every_training_target_once(corpus, tmp_path):
    cfg = tiny_config(
        tmp_path, data={"n_train": 120, "n_test": 50}, optim={"max_steps": None, "batch_size": 8}
    )
    run_dir = train(cfg, corpus=corpus)
    end = records(run_dir, "end")[0]
    offsets = np.asarray(corpus.doc_offsets[:121], dtype=np.int64)
    assert end["tokens"] == int(offsets[-1]) - 120  # every document's targets, once
    header = records(run_dir, "header")[0]
    assert end["step"] == header["total_steps"] == -(-header["windows_per_epoch"] // 8)


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(corpus, tmp_path, monkeypatch):
    """The first SIGINT is deferred to the end of the optimiser step; a checkpoint is written,
    KeyboardInterrupt propagates, and the run resumes to completion."""
    train_module = importlib.import_module("synknow.train.loop")

    class InterruptAfter(train_module._DeferredInterrupt):
        checks = 0

        def __enter__(self):
            super().__enter__()
            return self

        @property
        def requested(self):
            InterruptAfter.checks += 1
            if InterruptAfter.checks == 4:  # a real signal, before the 4th step
                os.kill(os.getpid(), signal.SIGINT)
            return self._requested

        @requested.setter
        def requested(self, value):
            self._requested = value

    monkeypatch.setattr(train_module, "_DeferredInterrupt", InterruptAfter)
    cfg = tiny_config(tmp_path, data={"n_test": 40}, optim={"max_steps": 6})
    with pytest.raises(KeyboardInterrupt):
        train(cfg.with_overrides(["run.run_id=int"]), corpus=corpus)
    run_dir = tmp_path / "int"
    stopped = records(run_dir, "interrupted")[0]["step"]
    assert stopped == 3 == load_run(run_dir).step
    monkeypatch.undo()
    train(resume=run_dir, corpus=corpus)
    assert records(run_dir, "end")[0]["step"] == 6


def test_second_ctrl_c_interrupts_at_once():
    deferred = importlib.import_module("synknow.train.loop")._DeferredInterrupt
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), deferred() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the second SIGINT did not interrupt")
    assert signal.getsignal(signal.SIGINT) is before


# ---- bad input ---------------------------------------------------------------------------


def test_missing_and_invalid_corpus(tmp_path):
    cfg = tiny_config(tmp_path)
    with pytest.raises(ValueError, match="no corpus given"):
        train(cfg)
    with pytest.raises(FileNotFoundError, match="corpus directory not found"):
        train(cfg.with_overrides([("data.corpus", str(tmp_path / "nope"))]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a synknow corpus"):
        train(cfg.with_overrides([("data.corpus", str(tmp_path / "empty"))]))


def test_split_and_context_errors(corpus, tmp_path):
    with pytest.raises(ValueError, match="exceeds the corpus"):
        train(tiny_config(tmp_path, data={"n_train": 2900, "n_test": 200}), corpus=corpus)
    with pytest.raises(ValueError, match="raise context_length"):
        train(tiny_config(tmp_path, model={"context_length": 32}), corpus=corpus)
    with pytest.raises(ValueError, match="leave model.vocab_size unset"):
        train(tiny_config(tmp_path, model={"vocab_size": 7}), corpus=corpus)


def test_vocabulary_mismatch_with_a_checkpoint(corpus, tmp_path):
    run_dir = train(tiny_config(tmp_path, optim={"max_steps": 1}), corpus=corpus)
    import synknow

    other = synknow.sample(small_bios(pool_sizes=(21, 10, 10, 8, 10)), 300)
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        load_run(run_dir, corpus=other)
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        train(resume=run_dir, corpus=other)


def test_in_memory_corpus_runs_need_the_corpus_to_load(tmp_path):
    import synknow

    mem = synknow.sample(small_bios(), 300)
    run_dir = train(tiny_config(tmp_path, data={"n_test": 50}, optim={"max_steps": 1}), corpus=mem)
    with pytest.raises(ValueError, match="in-memory corpus: pass corpus="):
        load_run(run_dir)
    assert load_run(run_dir, corpus=mem).n_train == 250


def test_resume_errors(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        train(resume=tmp_path / "nothing")
    run_dir = train(tiny_config(tmp_path, optim={"max_steps": 2}), corpus=corpus, stop_at=1)
    with pytest.raises(ValueError, match="cannot override 'optim.lr' when resuming"):
        train(resume=run_dir, corpus=corpus, overrides=["optim.lr=1"])
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny_config(tmp_path, run={"run_id": run_dir.name}), corpus=corpus)
    import synknow

    longer = synknow.sample(small_bios(), 3100)
    with pytest.raises(ValueError, match="corpus differs"):
        train(resume=run_dir, corpus=longer)


# ---- command line ------------------------------------------------------------------------


def test_cli_train_then_eval(corpus_dir, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[model]\nsize = 'tiny'\ncontext_length = 64\n[data]\nn_test = 40\n")
    code = cli.main([
        "train", "--corpus", str(corpus_dir), "--config", str(config),
        "--max_steps=4", "--batch_size", "4", "run.progress=false", "--out_dir", str(tmp_path),
        "--run_id=cli", "--device=cpu",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "bits/token" in out and "run:" in out
    run_dir = tmp_path / "cli"
    assert load_run(run_dir).step == 4
    assert cli.main(["eval", "--run", str(run_dir), "--max-docs", "10"]) == 0
    out = capsys.readouterr().out
    assert "value tokens: accuracy" in out and "Bayes-optimal" in out
    assert cli.main(["eval", "--run", str(run_dir), "--max-docs", "10", "--no-bayes"]) == 0
    assert "Bayes" not in capsys.readouterr().out
    saved = json.loads((run_dir / "eval_step_00000004.json").read_text())
    assert saved["n_test_docs"] == 10 and saved["step"] == 4
    assert records(run_dir, "eval")[-1]["source"] == "synknow eval"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--corpus", "/nonexistent/corpus"], "corpus directory not found"),
        (["train", "--lr=abc"], "optim.lr must be float"),
        (["train", "--config", "/nonexistent.toml"], "run config not found"),
        (["train", "nokey"], "must look like key=value"),
        (["eval", "--run", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and err.count("\n") == 0
