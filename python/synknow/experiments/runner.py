"""Presets, output directories, resumable runs and the driver for the experiments E1-E6.

An output directory looks like::

    OUT/manifest.json                preset, versions, git commit, device, experiments run
    OUT/README.md                    the report: one section per experiment, every figure
    OUT/shared/runs/<run>/           runs used by several experiments (the base model sweep)
    OUT/<experiment>/runs/<run>/     one unit of work; done.json marks it finished
    OUT/<experiment>/*.csv|*.jsonl   raw metrics
    OUT/<experiment>/fits.json       fitted parameters with bootstrap intervals
    OUT/<experiment>/*.png           figures
    OUT/<experiment>/section.md      the report section (section.json: the same, structured)

A *run* (training one model, computing one learning curve, ...) finishes by writing its result
to ``done.json`` atomically. ``--resume`` skips every run that has one; a run that raised leaves
an ``error.txt`` next to its partial files, is listed in the report, and the other runs and the
analysis go on with what finished.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synknow.experiments import _io
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
]

# CLI name -> module under synknow.experiments, in report order.
EXPERIMENTS: dict[str, str] = {
    "data-scaling": "data_scaling",
    "model-scaling": "model_scaling",
    "acquisition": "acquisition",
    "finetune": "finetune",
    "hallucination": "hallucination",
    "structure-function": "structure_function",
}


# ------------------------------------------------------------------------------------------------
# Presets


@dataclass(frozen=True)
class ModelSpec:
    """A GPT shape (see :class:`synknow.train.config.ModelConfig`)."""

    name: str
    n_layer: int
    n_head: int
    d_model: int

    def model_dict(self, context_length: int) -> dict[str, Any]:
        return {
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "d_model": self.d_model,
            "context_length": context_length,
        }


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation of one pre-training run. ``epochs`` passes over the training prefix;
    ``n_evals`` evaluations at log-spaced steps (plus the end), each on ``eval_docs`` test
    documents (the final one on all of them)."""

    epochs: float
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 20
    context_length: int = 64
    n_evals: int = 8
    eval_docs: int = 400


@dataclass(frozen=True)
class CorpusSpec:
    """The synthetic corpus family: a :mod:`synknow.presets` name plus overrides; ``alpha`` and
    ``beta`` are set per experiment."""

    preset: str = "procedural"
    overrides: dict[str, Any] = field(default_factory=dict)
    beta: float = 10.0

    def config(self, alpha: float, seed: int) -> Any:
        from synknow import presets

        return presets.by_name(
            self.preset, **{**self.overrides, "alpha": alpha, "beta": self.beta, "seed": seed}
        )


@dataclass(frozen=True)
class BaseSweep:
    """The shared pre-training sweep: one corpus, several model sizes, periodic evaluation.
    Used by model-scaling (E2), acquisition (E3), finetune (E4), hallucination (E5) and
    structure-function (E6)."""

    alpha: float
    n_train: int
    n_test: int
    models: tuple[ModelSpec, ...]
    train: TrainSpec
    probe_pairs: int = 4000  # (entity, attribute) fact probes per evaluation (E2, E6)


@dataclass(frozen=True)
class DataScalingSettings:
    """E1: one model size trained in a single pass per ``alpha``, evaluated at log-spaced
    numbers of documents seen; the Bayes learning curve on the same test split, up to
    ``bayes_n_max`` training documents."""

    alphas: tuple[float, ...]
    n_train: int
    n_test: int
    model: ModelSpec
    train: TrainSpec
    bayes_n_max: int
    bayes_points: int = 14


@dataclass(frozen=True)
class FinetuneSettings:
    """E4: inject ``n_new`` new entities, each stated in ``repetitions`` documents, with and
    without ``replay`` (fraction of each batch drawn from the pre-training documents); then a
    question-answer format learned by fine-tuning on ``qa_train`` entities for ``qa_steps``."""

    repetitions: tuple[int, ...] = (1, 3, 10, 30, 100)
    n_new: int = 8
    replay: float = 0.5
    lr: float = 1e-3
    batch_size: int = 16
    max_steps: int = 400
    qa_train: int = 200
    qa_test: int = 200
    qa_steps: int = 150
    qa_eval_every: int = 10
    model: str = ""  # name of a base model; "" = the largest


@dataclass(frozen=True)
class HallucinationSettings:
    """E5: value predictions on the test split of the base corpus by frequency bucket."""

    confident: float = 0.5  # "confident" = top probability at least this
    reliability_bins: int = 10
    model: str = ""  # "" = the largest base model


@dataclass(frozen=True)
class StructureSettings:
    """E6: the structure function of the base training corpus and the base models on it."""

    bits_per_param: float = 2.0  # nominal storage capacity for the x-axis placement
    score_docs: int = 2000  # training documents scored to estimate each model's code length


@dataclass(frozen=True)
class Preset:
    """Everything an experiment needs to know about its scale."""

    name: str
    description: str
    corpus: CorpusSpec
    base: BaseSweep
    data_scaling: DataScalingSettings
    finetune: FinetuneSettings = FinetuneSettings()
    hallucination: HallucinationSettings = HallucinationSettings()
    structure: StructureSettings = StructureSettings()
    seed: int = 1
    n_boot: int = 500
    device: str = "auto"
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _io.jsonable(dataclasses.asdict(self))


# Equal-length templates make every document the same length (2 + m (L + J + 2) tokens), so
# documents pack into training windows with no padding when the context is a multiple of it.
_SMALL_CORPUS = CorpusSpec(
    preset="procedural",
    overrides={
        "n_attributes": 4,
        "pool_sizes": (24, 24, 24, 24),
        "attribute_pool": (0, 1, 2, 3),
        "name_parts": (80, 80, 300),
        "templates_per_attribute": 4,
        "template_length": (3, 3),
        "syntax_vocab": 40,
    },
    beta=10.0,
)
_SMALL_DOC = 34  # tokens per document of _SMALL_CORPUS
_SMALL_CORPUS_WIDE_NAMES = dataclasses.replace(
    _SMALL_CORPUS, overrides={**_SMALL_CORPUS.overrides, "name_parts": (100, 100, 800)}
)

_MICRO = Preset(
    name="micro",
    description="seconds; for the test suite only (numbers are meaningless)",
    corpus=CorpusSpec(
        preset="procedural",
        overrides={
            "n_attributes": 2,
            "pool_sizes": (8, 8),
            "attribute_pool": (0, 1),
            "name_parts": (20, 20, 50),
            "templates_per_attribute": 2,
            "template_length": (2, 2),
            "syntax_vocab": 12,
        },
        beta=4.0,
    ),
    base=BaseSweep(
        alpha=0.5,
        n_train=150,
        n_test=40,
        models=(ModelSpec("d8", 1, 1, 8), ModelSpec("d16", 1, 2, 16)),
        train=TrainSpec(epochs=2, batch_size=8, context_length=64, n_evals=3, eval_docs=20),
        probe_pairs=100,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=160,
        n_test=40,
        model=ModelSpec("d8", 1, 1, 8),
        train=TrainSpec(epochs=1, batch_size=8, context_length=64, n_evals=5, eval_docs=20),
        bayes_n_max=400,
        bayes_points=6,
    ),
    finetune=FinetuneSettings(
        repetitions=(1, 3),
        n_new=2,
        max_steps=6,
        batch_size=4,
        qa_train=10,
        qa_test=10,
        qa_steps=6,
        qa_eval_every=3,
    ),
    structure=StructureSettings(score_docs=50),
    n_boot=30,
    threads=1,
)

_CPU_TINY = Preset(
    name="cpu-tiny",
    description="a few minutes on 2 CPU cores: every experiment end to end, tiny models",
    corpus=_SMALL_CORPUS,
    base=BaseSweep(
        alpha=0.5,
        n_train=4000,
        n_test=400,
        models=(
            ModelSpec("d16", 2, 2, 16),
            ModelSpec("d32", 2, 2, 32),
            ModelSpec("d64", 2, 4, 64),
            ModelSpec("d96", 2, 4, 96),
        ),
        train=TrainSpec(
            epochs=6,
            batch_size=16,
            lr=3e-3,
            context_length=4 * _SMALL_DOC,
            n_evals=8,
            eval_docs=200,
        ),
        probe_pairs=2000,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=12000,
        n_test=400,
        model=ModelSpec("d64", 2, 4, 64),
        # Small batches: one pass over few documents, so as many optimiser steps as possible.
        train=TrainSpec(
            epochs=1,
            batch_size=4,
            lr=3e-3,
            context_length=4 * _SMALL_DOC,
            n_evals=10,
            eval_docs=200,
        ),
        bayes_n_max=200_000,
    ),
    finetune=FinetuneSettings(max_steps=300, qa_steps=120),
    n_boot=400,
    # One thread: on a shared 2-core machine two torch threads contend with everything else
    # (measured 2-10x slower than one thread under load).
    threads=1,
)

_GPU_SMALL = Preset(
    name="gpu-small",
    description="minutes on one H100: larger corpora and models up to ~5M parameters",
    corpus=_SMALL_CORPUS_WIDE_NAMES,
    base=BaseSweep(
        alpha=0.5,
        n_train=100_000,
        n_test=2000,
        models=tuple(
            ModelSpec(f"d{d}", layers, heads, d)
            for layers, heads, d in ((2, 2, 32), (3, 4, 64), (4, 4, 128), (6, 4, 256), (6, 8, 384))
        ),
        train=TrainSpec(
            epochs=30,
            batch_size=128,
            lr=2e-3,
            context_length=8 * _SMALL_DOC,
            n_evals=12,
            eval_docs=1000,
        ),
        probe_pairs=20000,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=1_000_000,
        n_test=2000,
        model=ModelSpec("d256", 6, 4, 256),
        train=TrainSpec(
            epochs=1,
            batch_size=128,
            lr=2e-3,
            context_length=8 * _SMALL_DOC,
            n_evals=12,
            eval_docs=1000,
        ),
        bayes_n_max=2_000_000,
        bayes_points=20,
    ),
    finetune=FinetuneSettings(max_steps=1000, batch_size=32, qa_train=2000, qa_test=1000),
    structure=StructureSettings(score_docs=20000),
    n_boot=1000,
)

_GPU_FULL = Preset(
    name="gpu-full",
    description="the bios corpus at scale; models up to ~100M parameters (hours on one GPU)",
    corpus=CorpusSpec(preset="bios", overrides={}, beta=10.0),
    base=BaseSweep(
        alpha=0.7,
        n_train=2_000_000,
        n_test=5000,
        models=tuple(
            ModelSpec(name, *shape)
            for name, shape in (
                ("1m", (5, 4, 128)),
                ("5m", (6, 4, 256)),
                ("20m", (12, 6, 384)),
                ("50m", (16, 8, 512)),
                ("100m", (14, 12, 768)),
            )
        ),
        train=TrainSpec(
            epochs=20, batch_size=256, lr=1e-3, context_length=512, n_evals=16, eval_docs=2000
        ),
        probe_pairs=100_000,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=10_000_000,
        n_test=5000,
        model=ModelSpec("20m", 12, 6, 384),
        train=TrainSpec(
            epochs=1, batch_size=256, lr=1e-3, context_length=512, n_evals=16, eval_docs=2000
        ),
        bayes_n_max=20_000_000,
        bayes_points=24,
    ),
    finetune=FinetuneSettings(max_steps=2000, batch_size=64, qa_train=5000, qa_test=2000),
    structure=StructureSettings(score_docs=50000),
    n_boot=1000,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (_CPU_TINY, _GPU_SMALL, _GPU_FULL, _MICRO)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def resolve_experiments(name: str) -> list[str]:
    """``"all"`` -> every experiment in report order; an experiment name -> itself."""
    if name == "all":
        return list(EXPERIMENTS)
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}, all")
    return [name]


# ------------------------------------------------------------------------------------------------
# Runs and contexts


@dataclass
class RunFailure:
    experiment: str
    run: str
    error: str

    def __str__(self) -> str:
        return f"{self.experiment}/{self.run}: {self.error}"


class ExperimentContext:
    """What an experiment module gets: its directory, the preset, resumable runs, progress."""

    def __init__(
        self,
        out: Path,
        experiment: str,
        preset: Preset,
        *,
        progress: bool = True,
        failures: list[RunFailure] | None = None,
        cache: dict[str, Any] | None = None,
    ):
        self.out = out
        self.experiment = experiment
        self.preset = preset
        self.progress = progress
        self.dir = out / experiment
        self.shared_dir = out / "shared"
        self.failures = failures if failures is not None else []
        self.cache = cache if cache is not None else {}  # in-process memo shared by experiments
        self.runs_done = 0
        self.runs_skipped = 0
        self.dir.mkdir(parents=True, exist_ok=True)

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{self.experiment}] {message}", file=sys.stderr, flush=True)

    def run(
        self,
        run_id: str,
        fn: Callable[[Path], dict[str, Any]],
        *,
        shared: bool = False,
    ) -> dict[str, Any] | None:
        """Runs ``fn(run_dir)`` unless ``run_dir/done.json`` exists; returns its result.

        The result (a JSON-serialisable dict) is stored in ``done.json``, written atomically
        when ``fn`` returns. If ``fn`` raises, the error is recorded (``error.txt`` and the
        report) and ``None`` is returned; a later ``--resume`` retries the run.
        """
        root = self.shared_dir if shared else self.dir
        run_dir = root / "runs" / run_id
        done = run_dir / "done.json"
        if done.is_file():
            self.runs_skipped += 1
            return _io.read_json(done)["result"]
        failed_key = f"failed:{run_dir}"
        if failed_key in self.cache:  # a shared run that already failed in this process
            return None
        if run_dir.exists():  # leftovers of an interrupted or failed attempt
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        start = time.perf_counter()
        try:
            result = fn(run_dir)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # recorded, reported, and retried by --resume
            _io.write_text(run_dir / "error.txt", traceback.format_exc())
            self.failures.append(RunFailure(self.experiment, run_id, f"{type(e).__name__}: {e}"))
            self.cache[failed_key] = True
            self.log(f"run {run_id} failed: {type(e).__name__}: {e}")
            return None
        seconds = time.perf_counter() - start
        _io.write_json(
            done,
            {
                "run": run_id,
                "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "seconds": seconds,
                "result": result,
            },
        )
        self.runs_done += 1
        return _io.read_json(done)["result"]  # exactly what a resumed run would see

    def path(self, name: str) -> Path:
        return self.dir / name

    def failures_here(self) -> list[RunFailure]:
        return [f for f in self.failures if f.experiment == self.experiment]


# ------------------------------------------------------------------------------------------------
# Driver


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
    from synknow.experiments import report

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


def describe_presets() -> str:
    """One line per preset, for ``--help``."""
    return "\n".join(f"  {p.name:<10} {p.description}" for p in PRESETS.values())


def json_dumps(x: Any) -> str:
    return json.dumps(_io.jsonable(x))
