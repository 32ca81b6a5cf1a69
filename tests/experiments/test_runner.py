"""The experiment runner and CLI: names, presets, output directories, resume, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import synknow.experiments.finetune as finetune_module
from synknow.cli import main
from synknow.experiments import PRESETS, get_preset, resolve_experiments, run_experiments
from synknow.experiments.runner import ExperimentContext, prepare_output


def test_presets_exist_and_are_documented_scales() -> None:
    assert {"cpu-tiny", "gpu-small", "gpu-full"} <= set(PRESETS)
    for p in PRESETS.values():
        assert p.description
        assert len(p.data_scaling.alphas) >= 3
        assert list(p.finetune.repetitions) in ([1, 3, 10, 30, 100], [1, 3])
        json.dumps(p.to_dict())  # serialisable for the manifest
        # model sizes grow
        widths = [m.d_model * m.n_layer for m in p.base.models]
        assert widths == sorted(widths)
    assert PRESETS["cpu-tiny"].finetune.repetitions == (1, 3, 10, 30, 100)


def test_unknown_names_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'scaling'.*data-scaling.*all"):
        resolve_experiments("scaling")
    with pytest.raises(ValueError, match="unknown preset 'huge'.*cpu-tiny"):
        get_preset("huge")
    assert resolve_experiments("all")[0] == "data-scaling" and len(resolve_experiments("all")) == 6


def test_cli_unknown_experiment_and_preset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["experiment", "nonsense", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'nonsense'" in err and "Traceback" not in err
    assert main(["experiment", "all", "--preset", "gpu-huge", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'gpu-huge'" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_existing_output_directory_is_refused_without_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    code = main(["experiment", "model-scaling", "--preset", "micro", "--out", str(out), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err
    assert sorted(p.name for p in out.iterdir()) == ["something"]
    # --resume on a directory that is not an experiment output is refused too
    with pytest.raises(ValueError, match="no manifest.json"):
        prepare_output(out, get_preset("micro"), resume=True)


def test_manifest_records_what_the_numbers_depend_on(tmp_path: Path) -> None:
    """Trained weights differ in the last bits between CPU models (MKL and PyTorch choose vector
    kernels by vendor and instruction set), so the manifest says which CPU and kernel level ran."""
    import torch

    manifest = prepare_output(tmp_path / "o", get_preset("micro"), resume=False)
    env = manifest["environment"]
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "cpu" in env and (env["cpu"] is None or env["cpu"].strip())


def test_resume_refuses_another_preset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_output(out, get_preset("micro"), resume=False)
    with pytest.raises(ValueError, match="made with preset 'micro'"):
        prepare_output(out, get_preset("cpu-tiny"), resume=True)


def test_context_run_marks_done_and_skips_on_resume(tmp_path: Path) -> None:
    preset = get_preset("micro")
    prepare_output(tmp_path / "o", preset, resume=False)
    ctx = ExperimentContext(tmp_path / "o", "model-scaling", preset, progress=False)
    calls = []

    def work(run_dir: Path) -> dict:
        calls.append(run_dir)
        (run_dir / "partial.txt").write_text("data")
        return {"value": 1.5, "nan": float("nan")}

    assert ctx.run("r1", work) == {"value": 1.5, "nan": None}
    done = tmp_path / "o" / "model-scaling" / "runs" / "r1" / "done.json"
    assert json.loads(done.read_text())["result"]["value"] == 1.5
    # a fresh context (a resumed process) skips it
    ctx2 = ExperimentContext(tmp_path / "o", "model-scaling", preset, progress=False)
    assert ctx2.run("r1", work) == {"value": 1.5, "nan": None}
    assert len(calls) == 1 and ctx2.runs_skipped == 1


def test_context_run_failure_is_recorded_and_retried(tmp_path: Path) -> None:
    preset = get_preset("micro")
    ctx = ExperimentContext(tmp_path, "finetune", preset, progress=False)

    def broken(run_dir: Path) -> dict:
        (run_dir / "half-written").write_text("x")
        raise RuntimeError("disk on fire")

    assert ctx.run("bad", broken) is None
    run_dir = tmp_path / "finetune" / "runs" / "bad"
    assert "disk on fire" in (run_dir / "error.txt").read_text()
    assert not (run_dir / "done.json").exists()
    assert [str(f) for f in ctx.failures] == ["finetune/bad: RuntimeError: disk on fire"]
    # retried later: the leftovers are cleared first
    ctx2 = ExperimentContext(tmp_path, "finetune", preset, progress=False)
    assert ctx2.run("bad", lambda d: {"files": sorted(p.name for p in d.iterdir())}) == {
        "files": []
    }


@pytest.mark.slow
def test_failing_run_leaves_finished_ones_usable_and_resume_retries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """One fine-tuning run (r=3, with replay) fails mid-way: the other runs finish and are
    reported, the command exits 1 naming the failure; --resume reruns only the failed one."""
    out = tmp_path / "out"
    real = finetune_module.finetune

    def flaky(model, batches, lr, **kw):
        if len(batches) and len(batches[0]) == 4 and len(batches) == 3 and kw == {}:
            raise RuntimeError("injected failure")
        return real(model, batches, lr, **kw)

    monkeypatch.setattr(finetune_module, "finetune", flaky)
    args = ["experiment", "finetune", "--preset", "micro", "--out", str(out), "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "finetune/inject-r3-replay: RuntimeError: injected failure" in err
    runs = out / "finetune" / "runs"
    done = sorted(p.parent.name for p in runs.glob("*/done.json"))
    assert "inject-r3-replay" not in done
    assert {"inject-r1-plain", "inject-r1-replay", "inject-r3-plain", "qa-format"} <= set(done)
    assert (runs / "inject-r3-replay" / "error.txt").is_file()
    section = json.loads((out / "finetune" / "section.json").read_text())
    assert any("inject-r3-replay" in f for f in section["failures"])
    assert "inject-r3-replay" in (out / "README.md").read_text()
    rows = (out / "finetune" / "injection.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header + the three finished injection runs
    mtimes = {p: p.stat().st_mtime_ns for p in runs.glob("*/done.json")}

    monkeypatch.setattr(finetune_module, "finetune", real)
    assert main([*args, "--resume"]) == 0
    for p, t in mtimes.items():
        assert p.stat().st_mtime_ns == t, f"{p} was rerun"
    assert (runs / "inject-r3-replay" / "done.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiments"]["finetune"]["runs_done"] == 1
    assert manifest["experiments"]["finetune"]["runs_skipped"] >= 4 + 2  # + shared base runs
    rows = (out / "finetune" / "injection.csv").read_text().splitlines()
    assert len(rows) == 1 + 4


@pytest.mark.slow
def test_resume_skips_every_finished_run(tmp_path: Path) -> None:
    out = tmp_path / "o"
    first = run_experiments(["hallucination"], "micro", out, progress=False)
    assert first.ok
    before = {p: p.stat().st_mtime_ns for p in out.rglob("done.json")}
    assert before
    again = run_experiments(["hallucination"], "micro", out, resume=True, progress=False)
    assert again.ok
    assert {p: p.stat().st_mtime_ns for p in out.rglob("done.json")} == before
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiments"]["hallucination"]["runs_done"] == 0


def test_resume_removes_temporaries_of_killed_runs(tmp_path: Path, capsys) -> None:
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "o"
    prepare_output(out, get_preset("micro"), resume=False)
    stale = out / "data-scaling" / f".loss.png.tmp-{dead.pid}-0123abcd"
    stale.parent.mkdir()
    stale.write_bytes(b"half a png")
    keep = out / "data-scaling" / "loss.png"
    keep.write_bytes(b"png")
    prepare_output(out, get_preset("micro"), resume=True)
    assert not stale.exists() and keep.exists()
    assert str(stale) in capsys.readouterr().err


def test_learning_rate_sweep_runs_once_for_every_seed(tmp_path: Path) -> None:
    # The sweep picks a rate per size on the preset's seed; a repeat on another seed reuses that
    # choice instead of sweeping again (three seeds would otherwise triple the sweep's cost).
    import dataclasses

    from synknow.experiments.common import model_sweep

    micro = get_preset("micro")
    base = dataclasses.replace(
        micro.base, models=micro.base.models[:1], lr_sweep=(1e-3, 1e-2), lr_sweep_epochs=1
    )
    preset = dataclasses.replace(micro, base=base)
    ctx = ExperimentContext(tmp_path, "model-scaling", preset, progress=False)
    first = model_sweep(ctx, preset.seed, "base")
    repeat = model_sweep(ctx, preset.seed + 1, "repeat")
    sweeps = sorted(p.name for p in (tmp_path / "shared" / "runs").glob("lr-*"))
    assert sweeps == [f"lr-d8-{lr}-seed{preset.seed}" for lr in ("0.001", "0.01")]
    name = base.models[0].name
    assert repeat[name]["lr"] == first[name]["lr"]
    assert repeat[name]["lr_sweep"] == first[name]["lr_sweep"]
