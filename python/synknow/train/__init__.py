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

from synknow.train.config import (
    MODEL_SIZES,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from synknow.train.data import EvalData, TrainData, bucket_label, frequency_bucket
from synknow.train.eval import bayes_reference, evaluate, format_report
from synknow.train.model import GPT, flops_per_token, param_count
from synknow.train.train import LoadedRun, TrainingDiverged, load_run, peak_flops, train

__all__ = [
    "MODEL_SIZES",
    "DataConfig",
    "EvalData",
    "GPT",
    "LoadedRun",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
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
