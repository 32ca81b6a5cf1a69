"""Shared pieces of the experiments: corpora, pre-training with log-spaced evaluations, and the
base model sweep used by E2-E6."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synknow.experiments import _io
from synknow.experiments.context import ExperimentContext
from synknow.experiments.presets import ModelSpec, TrainSpec
from synknow.tokens import log_grid

__all__ = [
    "corpus_for",
    "base_corpus",
    "validation_docs",
    "validation_bits",
    "choose_lr",
    "log_steps",
    "train_with_evaluations",
    "flatten_eval",
    "base_runs",
    "model_sweep",
    "load_model",
    "pick_base_model",
    "bayes_learning_curve",
    "document_bits",
    "structure_reference",
    "ROLE_COLUMNS",
    "bucket_accuracy",
]

ROLE_COLUMNS = ("syntax", "name", "value")


def corpus_for(ctx: ExperimentContext, alpha: float, n_docs: int, seed: int) -> Any:
    """A corpus of the preset's family (cached for the process; sampling is deterministic, so a
    resumed experiment sees the same documents)."""
    import synknow

    key = f"corpus:{alpha}:{n_docs}:{seed}"
    if key not in ctx.cache:
        config = ctx.preset.corpus.config(alpha, seed)
        ctx.cache[key] = synknow.sample(config, n_docs, seed=seed)
    return ctx.cache[key]


def base_corpus(ctx: ExperimentContext, seed: int | None = None) -> Any:
    b = ctx.preset.base
    seed = ctx.preset.seed if seed is None else seed
    return corpus_for(ctx, b.alpha, b.n_train + b.n_test, seed)


def validation_docs(ctx: ExperimentContext, seed: int | None = None) -> tuple[Any, np.ndarray]:
    """Held-out documents of the base corpus's distribution: the base corpus sampled ``n_val``
    documents longer (sampling is sequential, so the first documents are the same ones) and
    those extra documents, which no run trains or is tested on."""
    b = ctx.preset.base
    seed = ctx.preset.seed if seed is None else seed
    longer = corpus_for(ctx, b.alpha, b.n_train + b.n_test + b.n_val, seed)
    return longer, np.arange(b.n_train + b.n_test, b.n_train + b.n_test + b.n_val)


def validation_bits(model: Any, corpus: Any, docs: np.ndarray) -> float:
    """The model's bits per token on ``docs`` (each scored on its own, as in evaluation)."""
    off = np.asarray(corpus.doc_offsets, dtype=np.int64)
    tokens = float((off[docs + 1] - off[docs]).sum())
    return float(document_bits(model, corpus, docs).sum()) / tokens


def choose_lr(
    ctx: ExperimentContext, spec: ModelSpec, corpus: Any, *, seed: int | None = None
) -> tuple[float, dict[str, float]]:
    """The learning rate for ``spec``: each of the preset's ``lr_sweep`` values trains it for
    ``lr_sweep_epochs`` (shared runs ``lr-<model>-<lr>``), and the lowest held-out loss wins;
    ``(train.lr, {})`` when there is no sweep. Returns ``(lr, {lr: held-out bits/token})``."""
    import dataclasses

    b = ctx.preset.base
    if not b.lr_sweep:
        return b.train.lr, {}
    seed = ctx.preset.seed if seed is None else seed
    longer, docs = validation_docs(ctx, seed)
    scores: dict[str, float] = {}
    for lr in b.lr_sweep:
        tspec = dataclasses.replace(b.train, lr=lr, epochs=b.lr_sweep_epochs, n_evals=1)

        def fn(run_dir: Path, tspec: TrainSpec = tspec) -> dict[str, Any]:
            def on_eval(model: Any, step: int, final: bool) -> dict[str, Any]:
                return {"val_bits_per_token": validation_bits(model, longer, docs)}

            return train_with_evaluations(
                ctx, corpus, spec, tspec, b.n_train, b.n_test, run_dir,
                on_eval=on_eval, seed=seed, desc=f"lr {spec.name} {tspec.lr:g}",
            )  # fmt: skip

        r = ctx.run(f"lr-{spec.name}-{lr:g}-seed{seed}", fn, shared=True)
        if r is not None:
            scores[f"{lr:g}"] = r["records"][-1]["val_bits_per_token"]
    if not scores:
        return b.train.lr, {}
    best = min(scores, key=lambda k: scores[k])
    return float(best), scores


def log_steps(total: int, k: int, first: int = 1) -> list[int]:
    """About ``k`` distinct integers log-spaced in ``[first, total]``, ending at ``total``."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    first = min(max(1, first), total)
    steps = sorted(set(log_grid(first, total, max(2, k), integer=True).tolist()) | {total})
    return [s for s in steps if 1 <= s <= total]


def _train_config(
    spec: ModelSpec,
    tspec: TrainSpec,
    n_train: int,
    n_test: int,
    run_dir: Path,
    *,
    seed: int,
    device: str,
    threads: int | None,
) -> Any:
    from synknow.train.config import TrainConfig

    run: dict[str, Any] = {
        "out_dir": str(run_dir),
        "run_id": "train",
        "progress": False,
        "device": device,
        "seed": seed,
        "eval_interval": 0,
        "eval_docs": tspec.eval_docs,
        "log_interval": 10,
        "keep_checkpoints": 1,
    }
    if threads:
        run["num_threads"] = threads
    return TrainConfig.from_dict(
        {
            "model": spec.model_dict(tspec.context_length),
            "data": {
                "n_train": n_train,
                "n_test": n_test,
                "epochs": tspec.epochs,
                "shuffle_seed": seed,
            },
            "optim": {
                "batch_size": tspec.batch_size,
                "lr": tspec.lr,
                "warmup_steps": tspec.warmup_steps,
            },
            "run": run,
        }
    )


def load_model(run_dir: Path, corpus: Any, device: str = "cpu") -> Any:
    """The latest checkpoint of a training run made by :func:`train_with_evaluations`."""
    from synknow.train.rundir import load_run

    return load_run(run_dir / "train", corpus=corpus, device=_device(device)).model


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_with_evaluations(
    ctx: ExperimentContext,
    corpus: Any,
    spec: ModelSpec,
    tspec: TrainSpec,
    n_train: int,
    n_test: int,
    run_dir: Path,
    *,
    on_eval: Callable[[Any, int, bool], dict[str, Any]],
    seed: int | None = None,
    desc: str = "",
    spacing: str = "log",
) -> dict[str, Any]:
    """Pre-trains ``spec`` on the first ``n_train`` documents with :func:`synknow.train.train`,
    stopping at ``tspec.n_evals`` log-spaced steps (``spacing="linear"``: evenly spaced, as
    early stopping wants) (the trainer's ``stop_at``; its resume is
    exact, so the run is the same as an uninterrupted one). At every stop
    ``on_eval(model, step, final)`` returns a record; records go to ``evals.jsonl``.

    Returns ``{"records", "params", "params_non_embedding", "total_steps", "docs_seen",
    "tokens_per_step", "model", "train_dir"}``; ``docs_seen[i]`` is the number of training
    documents consumed by step ``records[i]["step"]`` (counting repeats over epochs).
    """
    import json

    from synknow.train.data import TrainData
    from synknow.train.loop import train
    from synknow.train.model import param_count

    seed = ctx.preset.seed if seed is None else seed
    cfg = _train_config(
        spec,
        tspec,
        n_train,
        n_test,
        run_dir,
        seed=seed,
        device=ctx.preset.device,
        threads=ctx.preset.threads,
    )
    data = TrainData(corpus, n_train, tspec.context_length, shuffle_seed=seed)
    total = data.steps_for(tspec.epochs, tspec.batch_size)
    if spacing == "linear":
        stops = sorted(
            {max(1, round(total * (i + 1) / tspec.n_evals)) for i in range(tspec.n_evals)}
        )
    elif spacing == "log":
        stops = log_steps(total, tspec.n_evals, first=max(1, min(4, total)))
    else:
        raise ValueError(f"spacing must be 'log' or 'linear', got {spacing!r}")
    # Documents consumed by each step, exactly within the first epoch (windows hold whole
    # documents); later epochs count n_train documents per pass, pro rata.
    first_epoch = np.array([len(data.window_docs(i)) for i in range(data.windows_per_epoch)])
    cum_docs = np.concatenate([[0], np.cumsum(first_epoch)])

    def docs_seen(step: int) -> int:
        windows = step * tspec.batch_size
        if windows <= data.windows_per_epoch:
            return int(cum_docs[windows])
        return int(round(windows / data.windows_per_epoch * n_train))

    bar = None
    if ctx.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc or spec.name, unit="step", leave=False)
    records: list[dict[str, Any]] = []
    train_dir = run_dir / "train"
    params = params_ne = None
    done = 0
    try:
        for stop in stops:
            if done == 0:
                train(cfg, corpus=corpus, stop_at=stop)
            else:
                train(resume=train_dir, corpus=corpus, stop_at=stop)
            if bar is not None:
                bar.update(stop - done)
            done = stop
            model = load_model(run_dir, corpus, ctx.preset.device)
            if params is None:
                params, params_ne = param_count(model), param_count(model, with_embeddings=False)
            record = {
                "step": stop,
                "docs_seen": docs_seen(stop),
                **on_eval(model, stop, stop == total),
            }
            records.append(record)
            with open(run_dir / "evals.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(_io.jsonable(record)) + "\n")
    finally:
        if bar is not None:
            bar.close()
    return {
        "records": records,
        "params": params,
        "params_non_embedding": params_ne,
        "total_steps": total,
        "tokens_per_step": tspec.batch_size * tspec.context_length,
        "model": {"name": spec.name, "n_layer": spec.n_layer, "d_model": spec.d_model},
        "train_dir": str(train_dir.relative_to(ctx.out)),
    }


def flatten_eval(report: dict[str, Any]) -> dict[str, Any]:
    """The scalar columns of a :func:`synknow.train.eval.evaluate` report."""
    row: dict[str, Any] = {
        "bits_per_token": report["bits_per_token"],
        "bits_per_doc": report["bits_per_doc"],
        "loss_bits": report["loss_bits"],
        "value_accuracy": report["value"]["accuracy"],
        "value_confidence": report["value"]["confidence"],
        "value_mass": report["value"]["mass"],
    }
    for role in ROLE_COLUMNS:
        row[f"{role}_bits"] = report["roles"][role]["bits"]
        row[f"{role}_tokens"] = report["roles"][role]["tokens"]
    return row


def base_runs(ctx: ExperimentContext) -> dict[str, dict[str, Any]]:
    """The shared base sweep: every base model size trained on the base corpus, evaluated at
    log-spaced steps by role, by frequency bucket, and with fact probes. Finished runs are
    reused by every experiment that needs them (``OUT/shared/runs/base-<model>``)."""
    return model_sweep(ctx, ctx.preset.seed, "base")


def model_sweep(
    ctx: ExperimentContext,
    seed: int,
    prefix: str,
    *,
    epochs_factor: float = 1.0,
    only: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Every base model size (or only the one named ``only``) trained on the base corpus of
    ``seed`` with its chosen learning rate (:func:`choose_lr`, swept once on the preset's seed
    for all seeds) for ``epochs_factor`` times the preset's epochs; shared runs
    ``<prefix>-<model>``. ``base_runs`` is the sweep of the preset's seed; E2 adds repeats on
    other seeds and a longer run to check saturation."""
    import dataclasses

    from synknow.experiments.probes import document_targets, fact_probes, probe_model
    from synknow.train.eval import evaluate

    key = f"sweep:{prefix}:{seed}:{epochs_factor}:{only}"
    if key in ctx.cache:
        return ctx.cache[key]
    b = ctx.preset.base
    corpus = base_corpus(ctx, seed)
    probes = fact_probes(corpus, b.n_train, max_pairs=b.probe_pairs, seed=seed)
    # E3's syntax-versus-knowledge timing needs knowledge accuracy per bucket at every
    # evaluation on the balanced held-out set (the test split's rare buckets are thin); it is a
    # forward pass over a few hundred documents per evaluation, recorded here so that no
    # checkpoint of an intermediate step has to be kept.
    acq = ctx.preset.acquisition
    bal_corpus, bal_docs, _ = balanced_test_docs(
        ctx, seed, acq.min_bucket_tokens, acq.candidate_docs
    )
    balanced = document_targets(bal_corpus, bal_docs, b.n_train)
    results: dict[str, dict[str, Any]] = {}
    models = [m for m in b.models if only is None or m.name == only]
    for i, spec in enumerate(models):

        def on_eval(model: Any, step: int, final: bool) -> dict[str, Any]:
            report = evaluate(
                model,
                corpus,
                b.n_train,
                b.n_test,
                max_docs=None if final else b.train.eval_docs,
                bayes=False,
            )
            buckets = {
                label: {
                    "docs": v["docs"],
                    "value_tokens": v["value_tokens"],
                    "value_accuracy": v["value_accuracy"],
                    "value_bits": v["value_bits"],
                    "bits_per_token": v["bits_per_token"],
                }
                for label, v in report["buckets"].items()
            }
            return {
                "final": final,
                **flatten_eval(report),
                "buckets": buckets,
                "probes": probe_model(model, probes),
                "balanced_buckets": bucket_accuracy(model, balanced),
            }

        # One sweep per size, on the preset's seed, serves every seed: the repeats share the
        # corpus distribution, and a sweep per seed would triple its cost for no new choice.
        lr, sweep = choose_lr(ctx, spec, base_corpus(ctx), seed=ctx.preset.seed)
        tspec = dataclasses.replace(b.train, lr=lr, epochs=b.train.epochs * epochs_factor)

        def fn(
            run_dir: Path,
            spec: ModelSpec = spec,
            i: int = i,
            tspec: TrainSpec = tspec,
            sweep: Any = sweep,
        ) -> dict[str, Any]:
            ctx.log(f"{prefix} model {spec.name} ({i + 1}/{len(models)}), lr {tspec.lr:g}")
            result = train_with_evaluations(
                ctx,
                corpus,
                spec,
                tspec,
                b.n_train,
                b.n_test,
                run_dir,
                on_eval=on_eval,
                seed=seed,
                desc=f"{prefix} {spec.name}",
            )
            return {**result, "lr": tspec.lr, "lr_sweep": sweep, "epochs": tspec.epochs}

        result = ctx.run(f"{prefix}-{spec.name}", fn, shared=True)
        if result is not None:
            results[spec.name] = result
    ctx.cache[key] = results
    return results


def pick_base_model(ctx: ExperimentContext, runs: dict[str, Any], name: str) -> str | None:
    """``name`` if it finished, else the largest finished base model (``None`` if none)."""
    if name and name in runs:
        return name
    order = [m.name for m in ctx.preset.base.models if m.name in runs]
    return order[-1] if order else None


def finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def bayes_learning_curve(
    corpus: Any, n_train: int, n_test: int, checkpoints: list[int]
) -> dict[str, Any] | None:
    """The Bayes learning curve (docs/codelength.md#learning-curve) on the test split (the last
    ``n_test`` documents)
    at the prefix lengths ``checkpoints``, from :func:`synknow.bayes_curve`, as
    ``{"n", "bits_per_token", "bits_per_doc", "<role>_bits"}`` (lists, one entry per
    checkpoint); ``None`` while the code-length engine is not available."""
    import synknow

    curve = getattr(synknow, "bayes_curve", None)
    if curve is None:
        return None
    return _bayes_table(curve, corpus, n_train, n_test, checkpoints)


def _bayes_table(
    curve: Callable[..., Any], corpus: Any, n_train: int, n_test: int, checkpoints: list[int]
) -> dict[str, Any]:
    table = curve(corpus, n_train, checkpoints, n_test=n_test, progress=False)
    out: dict[str, Any] = {
        "n": [int(x) for x in table["n_train"]],
        "bits_per_token": [float(x) for x in table["bits_per_token"]],
        "bits_per_doc": [float(x) for x in table["bits_per_doc"]],
        "new_entity_fraction": [float(x) for x in table["new_entity_fraction"]],
    }
    for role in ROLE_COLUMNS:
        out[f"{role}_bits"] = [float(x) for x in table[f"{role}_bits_per_token"]]
    return out


def document_bits(
    model: Any, corpus: Any, docs: np.ndarray, *, batch_docs: int = 128
) -> np.ndarray:
    """Code length in bits the model gives each document (every token after ``BOS``; the
    document scored on its own from position 0, as in training and evaluation)."""
    from synknow.train.eval import sequence_bits

    off = np.asarray(corpus.doc_offsets, dtype=np.int64)
    tokens = np.asarray(corpus.tokens)
    rows = [tokens[off[d] : off[d + 1]] for d in np.asarray(docs, dtype=np.int64)]
    return sequence_bits(model, rows, batch_rows=batch_docs)


def structure_reference(corpus: Any, n_train: int) -> dict[str, Any] | None:
    """docs/codelength.md#structure-function for the first ``n_train`` documents from
    :func:`synknow.structure_function`,
    as ``{"model_bits", "data_bits", "counts", "mdl_index"}`` (``counts``: the entities' counts
    in storage order); ``None`` while the code-length engine is not available."""
    import synknow

    sf = getattr(synknow, "structure_function", None)
    if sf is None:
        return None
    return _structure_table(sf, corpus, n_train)


def _structure_table(sf: Callable[..., Any], corpus: Any, n_train: int) -> dict[str, Any]:
    result = sf(corpus, n_train)
    return {
        "model_bits": np.asarray(result.model_bits, dtype=np.float64),
        "data_bits": np.asarray(result.data_bits, dtype=np.float64),
        "counts": np.asarray(result.entity_counts, dtype=np.int64),
        "mdl_index": int(result.mdl_index),
    }


def seed_sweeps(ctx: ExperimentContext, only: str) -> list[tuple[int, str, dict[str, Any]]]:
    """``[(seed, run prefix, {model: run})]`` for the model ``only`` on every seed of the base
    sweep: the preset's seed (``base``) and the repeats E2 trains on fresh corpora
    (``e2-seed<j>``, shared, so E3-E6 reuse them and train nothing when E2 ran first)."""
    from synknow.experiments.seeds import repeat_seeds

    b = ctx.preset.base
    out: list[tuple[int, str, dict[str, Any]]] = [(ctx.preset.seed, "base", base_runs(ctx))]
    if b.seeds > 1:
        for j, seed in enumerate(repeat_seeds(ctx.preset.seed, 2, b.seeds - 1)):
            prefix = f"e2-seed{j + 1}"
            out.append((seed, prefix, model_sweep(ctx, seed, prefix, only=only)))
    return out


def balanced_test_docs(
    ctx: ExperimentContext, seed: int, min_tokens: int, candidates: int
) -> tuple[Any, np.ndarray, dict[int, int]]:
    """Held-out documents chosen so that every entity-frequency bucket holds at least
    ``min_tokens`` value tokens where ``candidates`` documents past the training split allow
    (:func:`synknow.experiments.measures.balanced_selection`). Returns the corpus sampled that
    long (its first documents are the base corpus's), the chosen documents and the value tokens
    per bucket."""
    from synknow.experiments.measures import balanced_selection
    from synknow.experiments.probes import document_targets

    b = ctx.preset.base
    n_cand = max(int(candidates), b.n_test)
    while True:
        # The corpus configuration bounds how many documents its name space supports; past that
        # bound fewer candidates are drawn (never fewer than the test split).
        try:
            corpus = corpus_for(ctx, b.alpha, b.n_train + n_cand, seed)
            break
        except ValueError:
            if n_cand <= b.n_test:
                raise
            n_cand = max(n_cand // 2, b.n_test)
    cand = np.arange(b.n_train, b.n_train + n_cand)
    t = document_targets(corpus, cand, b.n_train)
    buckets = t.bucket
    tokens = np.zeros((len(cand), int(buckets.max(initial=0)) + 1), dtype=np.int64)
    np.add.at(tokens, (t.row, buckets), 1)
    present = tokens.sum(axis=0) > 0
    chosen, totals = balanced_selection(tokens[:, present], min_tokens)
    labels = np.flatnonzero(present).tolist()
    return corpus, cand[chosen], {int(k): int(v) for k, v in zip(labels, totals, strict=True)}


def bucket_accuracy(model: Any, targets: Any) -> dict[str, float]:
    """Knowledge accuracy (tie credit) of ``model`` on the value tokens ``targets`` per
    frequency bucket, keyed by the bucket label."""
    from synknow.experiments.probes import bucket_label, value_stats

    credit = value_stats(model, targets)["credit"]
    buckets = targets.bucket
    return {
        bucket_label(v): float(credit[buckets == v].mean()) for v in np.unique(buckets).tolist()
    }
