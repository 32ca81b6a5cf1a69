"""The driver for the experiments E1-E6: output directories, the manifest, and running the
experiments in report order.

An output directory looks like::

    OUT/manifest.json                preset, versions, git commit, device, experiments run
    OUT/README.md                    the report: one section per experiment, every figure
    OUT/shared/runs/<run>/           runs used by several experiments (the base model sweep)
    OUT/<experiment>/runs/<run>/     one unit of work; done.json marks it finished
    OUT/<experiment>/*.csv|*.jsonl   raw metrics
    OUT/<experiment>/fits.json       fitted parameters with bootstrap intervals
    OUT/<experiment>/*.png           figures
    OUT/<experiment>/section.md      the report section (section.json: the same, structured)

Modules depend one way: ``presets`` <- ``context`` <- the experiment modules <- ``runner`` ->
``report``. The preset and context names are re-exported here, where callers have always
found them.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synknow.experiments import _io, report
from synknow.experiments.context import ExperimentContext, RunFailure
from synknow.experiments.presets import (
    EXPERIMENTS,
    PRESETS,
    BaseSweep,
    CorpusSpec,
    DataScalingSettings,
    FinetuneSettings,
    HallucinationSettings,
    ModelSpec,
    Preset,
    StructureSettings,
    TrainSpec,
    describe_presets,
    get_preset,
    resolve_experiments,
)
from synknow.fsutil import remove_stale_temporaries
from synknow.provenance import git_info

__all__ = [
    "EXPERIMENTS",
    "PRESETS",
    "ModelSpec",
    "TrainSpec",
    "CorpusSpec",
    "BaseSweep",
    "DataScalingSettings",
    "FinetuneSettings",
    "HallucinationSettings",
    "StructureSettings",
    "Preset",
    "RunFailure",
    "ExperimentContext",
    "Summary",
    "get_preset",
    "resolve_experiments",
    "run_experiments",
    "describe_presets",
    "prepare_output",
    "environment",
]


@dataclass
class Summary:
    out: Path
    preset: str
    experiments: list[str]
    failures: list[RunFailure]
    seconds: dict[str, float]
    report: Path

    @property
    def ok(self) -> bool:
        return not self.failures


def environment() -> dict[str, Any]:
    """Versions, git commit and device, for the manifest and the report."""
    import synknow

    env: dict[str, Any] = {
        "synknow": synknow.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": _cpu_count(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        env["torch_threads"] = torch.get_num_threads()
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:  # pragma: no cover
        env["torch"] = None
    git = git_info()
    env["git_commit"] = git["sha"]
    env["git_dirty"] = git["dirty"]
    return env


def cpu_model() -> str | None:
    """The processor's model name: trained weights, and so the reported numbers, depend on it
    in the last bits (MKL and PyTorch pick vector kernels by CPU vendor and instruction set)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def prepare_output(out: Path, preset: Preset, *, resume: bool) -> dict[str, Any]:
    """Creates ``out`` (refusing an existing one unless ``resume``) and its manifest."""
    manifest_path = out / "manifest.json"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise FileExistsError(
                f"output directory {out} already exists; pass --resume to continue it (finished "
                "runs are skipped) or choose another --out"
            )
        if manifest_path.is_file():
            for path in remove_stale_temporaries(out, recursive=True):
                print(f"removed a temporary left by a killed run: {path}", file=sys.stderr)
            manifest = _io.read_json(manifest_path)
            if manifest.get("preset") != preset.name:
                raise ValueError(
                    f"cannot resume {out} with preset {preset.name!r}: it was made with preset "
                    f"{manifest.get('preset')!r}"
                )
            if manifest.get("settings") != preset.to_dict():
                raise ValueError(
                    f"cannot resume {out}: the settings of preset {preset.name!r} changed since "
                    "it was made; choose another --out"
                )
            return manifest
        raise ValueError(
            f"cannot resume {out}: it has no manifest.json (not an experiment output directory)"
        )
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": "synknow-experiments",
        "preset": preset.name,
        "settings": preset.to_dict(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "environment": environment(),
        "experiments": {},
    }
    _io.write_json(manifest_path, manifest)
    return manifest


def run_experiments(
    names: Sequence[str],
    preset: Preset | str,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> Summary:
    """Runs the experiments ``names`` (CLI names, in any order; run in report order) at
    ``preset`` into ``out`` and writes ``out/README.md``. Returns a :class:`Summary`; failed runs
    do not raise (they are listed in it and in the report)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    for name in names:
        resolve_experiments(name)
    ordered = [n for n in EXPERIMENTS if n in set(names)]
    out = Path(out)
    if preset.threads:
        import torch

        torch.set_num_threads(preset.threads)  # before the manifest records it
    manifest = prepare_output(out, preset, resume=resume)
    failures: list[RunFailure] = []
    cache: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for i, name in enumerate(ordered):
        ctx = ExperimentContext(
            out, name, preset, progress=progress, failures=failures, cache=cache
        )
        ctx.log(f"experiment {i + 1}/{len(ordered)} (preset {preset.name})")
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"synknow.experiments.{EXPERIMENTS[name]}")
            section = module.run(ctx)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            _io.write_text(ctx.dir / "error.txt", traceback.format_exc())
            failures.append(RunFailure(name, "(analysis)", f"{type(e).__name__}: {e}"))
            ctx.log(f"failed: {type(e).__name__}: {e}")
            section = report.failed_section(name, e)
        seconds[name] = time.perf_counter() - start
        section.seconds = seconds[name]
        section.failures = [str(f) for f in ctx.failures_here()]
        report.write_section(ctx.dir, section)
        manifest["experiments"][name] = {
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "seconds": seconds[name],
            "runs_done": ctx.runs_done,
            "runs_skipped": ctx.runs_skipped,
            "failures": section.failures,
        }
        _io.write_json(out / "manifest.json", manifest)
        ctx.log(f"done in {seconds[name]:.0f} s ({ctx.runs_done} runs, {ctx.runs_skipped} skipped)")
    readme = report.build_report(out)
    return Summary(out, preset.name, ordered, failures, seconds, readme)


def json_dumps(x: Any) -> str:
    return json.dumps(_io.jsonable(x))
