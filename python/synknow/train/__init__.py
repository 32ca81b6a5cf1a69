"""GPT training on synknow corpora, with per-role and per-frequency evaluation.

Public API::

    cfg = TrainConfig.from_toml("configs/tiny-cpu.toml", overrides=["data.corpus=corpora/x"])
    run_dir = train(cfg)                      # -> runs/<id>/ (metrics.jsonl, checkpoints, eval)
    run = load_run(run_dir)                   # model + config + corpus of the latest checkpoint
    report = evaluate(run.model, run.corpus, run.n_train, run.n_test)

``train(resume=run_dir)`` continues an interrupted run exactly. Under
``torchrun --nproc_per_node=K -m synknow.train ...`` every rank runs the same command.
See ``docs/training.md``.

Modules: ``config`` (the run configuration), ``data`` (windows and evaluation batches),
``model`` (the GPT), ``eval`` (the evaluation report), ``loop`` (:func:`train`),
``checkpoint``, ``distributed`` and ``rundir`` (run directories and :func:`load_run`).
"""

from typing import TYPE_CHECKING

from synknow.train.config import (
    MODEL_SIZES,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from synknow.train.checkpoint import (
        CheckpointError,
    )
    from synknow.train.data import (
        EvalData,
        TrainData,
        bucket_label,
        frequency_bucket,
    )
    from synknow.train.eval import (
        bayes_reference,
        bayes_test_code_lengths,
        evaluate,
        format_report,
    )
    from synknow.train.loop import (
        TrainingDiverged,
        peak_flops,
        train,
    )
    from synknow.train.model import (
        GPT,
        flops_per_token,
        param_count,
    )
    from synknow.train.rundir import (
        LoadedRun,
        RunInUse,
        load_run,
    )

# Everything else needs torch: imported on first use (PEP 562), so that the configuration classes
# (and the `synknow` CLI, which builds its options from them) load without importing torch.
_LAZY = {
    "EvalData": "data",
    "TrainData": "data",
    "bucket_label": "data",
    "frequency_bucket": "data",
    "bayes_reference": "eval",
    "bayes_test_code_lengths": "eval",
    "evaluate": "eval",
    "format_report": "eval",
    "GPT": "model",
    "flops_per_token": "model",
    "param_count": "model",
    "TrainingDiverged": "loop",
    "peak_flops": "loop",
    "train": "loop",
    "CheckpointError": "checkpoint",
    "LoadedRun": "rundir",
    "RunInUse": "rundir",
    "load_run": "rundir",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synknow.train' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"synknow.train.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "MODEL_SIZES",
    "CheckpointError",
    "DataConfig",
    "EvalData",
    "GPT",
    "LoadedRun",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "RunInUse",
    "TrainConfig",
    "TrainData",
    "TrainingDiverged",
    "bayes_reference",
    "bayes_test_code_lengths",
    "bucket_label",
    "evaluate",
    "flops_per_token",
    "format_report",
    "frequency_bucket",
    "load_run",
    "param_count",
    "peak_flops",
    "train",
]
