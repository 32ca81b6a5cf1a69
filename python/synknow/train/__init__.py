"""GPT training on synknow corpora, with per-role and per-frequency evaluation.

Public API::

    cfg = TrainConfig.from_toml("configs/tiny-cpu.toml", overrides=["data.corpus=corpora/x"])
    run_dir = train(cfg)                      # -> runs/<id>/ (metrics.jsonl, checkpoints, eval)
    run = load_run(run_dir)                   # model + config + corpus of the latest checkpoint
    report = evaluate(run.model, run.corpus, run.n_train, run.n_test)

``train(resume=run_dir)`` continues an interrupted run exactly. Under
``torchrun --nproc_per_node=K -m synknow.train ...`` every rank runs the same command.
See ``docs/training.md``.
"""

import sys
import types

from synknow.train.config import (
    MODEL_SIZES,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)

# Everything else needs torch: imported on first use (PEP 562), so that the configuration classes
# (and the `synknow` CLI, which builds its options from them) load without importing torch.
_LAZY = {
    "EvalData": "data",
    "TrainData": "data",
    "bucket_label": "data",
    "frequency_bucket": "data",
    "bayes_reference": "eval",
    "evaluate": "eval",
    "format_report": "eval",
    "GPT": "model",
    "flops_per_token": "model",
    "param_count": "model",
    "LoadedRun": "train",
    "TrainingDiverged": "train",
    "CheckpointError": "train",
    "RunInUse": "train",
    "load_run": "train",
    "peak_flops": "train",
    "train": "train",
}


class _TrainPackage(types.ModuleType):
    """Keeps ``synknow.train.train`` the training *function*, as the eager imports used to: the
    import system binds every loaded submodule as a package attribute, and loading the
    submodule ``train`` (from wherever it is first imported) would otherwise shadow it."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _TrainPackage


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
