"""E6 — the structure function: ``h(C)`` of the base training corpus
(docs/codelength.md#structure-function) with its MDL point; the trained base models placed on it
at their *measured* stored knowledge (the fact probes' knowledge bits plus the syntax model bits),
their code length of the training corpus beside ``h`` there; and the prequential code length of
a single-pass transformer (each batch coded before it is learned) beside the exact Bayes code
length ``-log2 P(x)`` of the same documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.capacity_check import capacity_binds, knowledge_available
from synknow.experiments.common import (
    base_corpus,
    document_bits,
    load_model,
    seed_sweeps,
    structure_reference,
)
from synknow.experiments.context import ExperimentContext
from synknow.experiments.measures import MIN_SEEDS, converged, prequential_code_length
from synknow.experiments.presets import ModelSpec
from synknow.experiments.probes import revealed_pairs
from synknow.experiments.report import Section, fmt, markdown_table, precondition_rows
from synknow.experiments.verdict import Precondition, Verdict

CLAIM = (
    "Training a language model is two-part compression: as capacity grows a model moves down "
    "the Kolmogorov structure function h(C) of its data, storing syntax first and then knowledge "
    "in decreasing frequency; the MDL point balances model and data bits."
)


def effective_capacity(
    model_bits: np.ndarray, data_bits: np.ndarray, y: float
) -> tuple[float | None, str]:
    """The smallest model size C with ``h(C) <= y`` and a status: ``"on h"``; ``"above h(0)"``
    when even the syntax-only two-part code is shorter (C is then the syntax-only size); or
    ``"below h"`` (``None``) when ``y`` beats every two-part code in the family."""
    data_bits = np.asarray(data_bits)
    ok = np.flatnonzero(data_bits <= y)
    if not len(ok):
        return None, "below h"
    if y > data_bits[0]:
        return float(np.asarray(model_bits)[0]), "above h(0)"
    return float(np.asarray(model_bits)[ok[0]]), "on h"


def h_at(model_bits: np.ndarray, data_bits: np.ndarray, c: float) -> float:
    """``h(C) = min D(S)`` over ``M(S) <= C`` (``inf`` below the smallest model)."""
    ok = np.asarray(model_bits) <= c
    return float(np.asarray(data_bits)[ok].min()) if ok.any() else float("inf")


def prequential_transformer(
    corpus: Any,
    spec: ModelSpec,
    n_docs: int,
    *,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    context_length: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """The prequential code length (bits) of the first ``n_docs`` documents, in corpus order,
    under a fresh transformer trained in one pass: each batch is scored (eval mode, every token
    after ``BOS``, as :func:`document_bits`) before the AdamW step on it (linear warm-up over
    ``warmup_steps``, then the constant ``lr``)."""
    import torch

    from synknow.experiments.finetune import corpus_documents, lm_loss
    from synknow.train.config import ModelConfig
    from synknow.train.model import GPT

    torch.manual_seed(seed)
    cfg = ModelConfig(**spec.model_dict(context_length)).resolved(vocab_size=len(corpus.vocab))
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    docs = np.arange(n_docs)
    batches = [docs[i : i + batch_size] for i in range(0, n_docs, batch_size)]
    steps = [0]

    def code(batch: np.ndarray) -> float:
        return float(document_bits(model, corpus, batch).sum())

    def update(batch: np.ndarray) -> None:
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (steps[0] + 1) / max(warmup_steps, 1))
        loss = lm_loss(model, corpus_documents(corpus, batch), device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps[0] += 1

    res = prequential_code_length(batches, code, update)
    return {"bits": res["bits"], "per_batch": res["per_batch"], "steps": steps[0]}


def _prequential(ctx: ExperimentContext, corpus: Any) -> dict[str, Any] | None:
    """The prequential transformer and the exact Bayes code of the same training documents."""
    import synknow

    b = ctx.preset.base
    settings = ctx.preset.structure
    spec = next((m for m in b.models if m.name == settings.prequential_model), None)
    spec = spec or (b.models[0] if b.models else None)
    if spec is None:
        return None

    def fn(run_dir: Path) -> dict[str, Any]:
        from synknow.experiments.common import _device

        res = prequential_transformer(
            corpus,
            spec,
            b.n_train,
            batch_size=settings.prequential_batch,
            lr=b.train.lr,
            warmup_steps=b.train.warmup_steps,
            context_length=b.train.context_length,
            seed=ctx.preset.seed,
            device=_device(ctx.preset.device),
        )
        exact = float(np.sum(synknow.closed_form_per_doc(corpus, b.n_train)))
        return {"model": spec.name, "lr": b.train.lr, **res, "bayes_bits": exact}

    return ctx.run(f"prequential-{spec.name}", fn)


def _score_models(
    ctx: ExperimentContext,
    model_bits: np.ndarray,
    data_bits: np.ndarray,
) -> list[dict[str, Any]]:
    """Every base model of every seed: its code length of the training corpus (estimated from
    sampled documents) and where it sits on that seed's ``h`` at its measured knowledge."""
    b = ctx.preset.base
    settings = ctx.preset.structure
    placed: list[dict[str, Any]] = []
    for spec in b.models:
        for seed, prefix, runs in seed_sweeps(ctx, spec.name):
            if spec.name not in runs:
                continue
            corpus = base_corpus(ctx, seed)
            if seed == ctx.preset.seed:
                mb, db = model_bits, data_bits
            else:
                sf = structure_reference(corpus, b.n_train)
                if sf is None:
                    continue
                mb, db = sf["model_bits"], sf["data_bits"]
            rng = np.random.default_rng([seed, 6])
            docs = np.sort(
                rng.choice(b.n_train, size=min(settings.score_docs, b.n_train), replace=False)
            )

            def fn(
                run_dir: Path,
                name: str = spec.name,
                prefix: str = prefix,
                corpus: Any = corpus,
                docs: np.ndarray = docs,
            ) -> dict[str, Any]:
                model = load_model(
                    ctx.shared_dir / "runs" / f"{prefix}-{name}", corpus, ctx.preset.device
                )
                bits = document_bits(model, corpus, docs)
                return {
                    "train_bits": float(bits.mean() * b.n_train),
                    "train_bits_se": float(bits.std(ddof=1) / np.sqrt(len(bits)) * b.n_train),
                    "scored_docs": int(len(bits)),
                }

            run_id = f"score-{spec.name}" if prefix == "base" else f"score-{prefix}-{spec.name}"
            res = ctx.run(run_id, fn)
            if res is None:
                continue
            r = runs[spec.name]
            final = r["records"][-1]
            n_pairs = len(revealed_pairs(corpus, b.n_train)[0])
            knowledge = max(float(final["probes"]["bits_gain_per_pair"]) * n_pairs, 0.0)
            c_meas = float(mb[0]) + knowledge
            params = r["params"]
            c_nom = params * settings.bits_per_param
            c_eff, status = effective_capacity(mb, db, res["train_bits"])
            ok, change = converged([rec["bits_per_token"] for rec in r["records"]])
            placed.append(
                {
                    "model": spec.name,
                    "seed": seed,
                    "params": params,
                    "nominal_model_bits": c_nom,
                    "knowledge_bits": knowledge,
                    "measured_model_bits": c_meas,
                    "train_bits": res["train_bits"],
                    "train_bits_se": res["train_bits_se"],
                    "h_at_nominal": h_at(mb, db, c_nom),
                    "h_at_measured": h_at(mb, db, c_meas),
                    "effective_model_bits": c_eff if status == "on h" else None,
                    "effective_bits_per_param": c_eff / params if status == "on h" else None,
                    "placement": status,
                    "converged": ok,
                    "loss_change": change,
                }
            )
    return placed


def preconditions_for(placed: list[dict[str, Any]], all_stored_bits: float) -> list[Precondition]:
    seeds = {p["seed"] for p in placed}
    changes = [p["loss_change"] for p in placed if np.isfinite(p["loss_change"])]
    return [
        Precondition.at_least("seeds (corpus and init)", len(seeds), MIN_SEEDS),
        Precondition(
            "runs converged (loss change over the last two evaluations)",
            f"{max(changes):.1%} (largest)" if changes else "-",
            "< 2% for every model",
            bool(placed) and all(p["converged"] for p in placed),
        ),
        Precondition(
            "models placed inside h's range (measured C below everything stored)",
            ", ".join(f"{p['model']}: {fmt(p['measured_model_bits'])}" for p in placed[:6]) or "-",
            f"< {fmt(all_stored_bits)} bits for some model",
            any(p["measured_model_bits"] < all_stored_bits for p in placed),
        ),
    ]


def run(ctx: ExperimentContext) -> Section:
    b = ctx.preset.base
    settings = ctx.preset.structure
    corpus = base_corpus(ctx)
    sf = structure_reference(corpus, b.n_train)
    if sf is None:
        raise RuntimeError("the structure function needs synknow.structure_function")
    model_bits = np.asarray(sf["model_bits"], dtype=float)
    data_bits = np.asarray(sf["data_bits"], dtype=float)
    total = model_bits + data_bits
    mdl = int(np.argmin(total))
    _io.write_csv(
        ctx.path("structure_function.csv"),
        [
            {
                "stored_entities": k,
                "model_bits": model_bits[k],
                "data_bits": data_bits[k],
                "total_bits": total[k],
                "count_of_last_stored": sf["counts"][k - 1] if k > 0 else None,
            }
            for k in range(len(model_bits))
        ],
    )
    placed = _score_models(ctx, model_bits, data_bits)
    first = [p for p in placed if p["seed"] == ctx.preset.seed]
    n_score = min(settings.score_docs, b.n_train)
    preq = _prequential(ctx, corpus)
    _io.write_csv(ctx.path("models_on_curve.csv"), placed)
    _io.write_json(
        ctx.path("fits.json"),
        {
            "n_train": b.n_train,
            "entities": len(model_bits) - 1,
            "mdl": {
                "stored_entities": mdl,
                "model_bits": model_bits[mdl],
                "data_bits": data_bits[mdl],
                "total_bits": total[mdl],
            },
            "bits_per_param": settings.bits_per_param,
            "models": placed,
            "prequential": None
            if preq is None
            else {k: v for k, v in preq.items() if k != "per_batch"},
        },
    )
    plots.structure_function_plot(
        ctx.path("structure_function.png"),
        model_bits,
        data_bits,
        mdl=(model_bits[mdl], data_bits[mdl]),
        points=[
            {
                "x": p["measured_model_bits"],
                "y": p["train_bits"],
                "x_effective": p["effective_model_bits"],
                "label": f"{p['model']} (measured knowledge + syntax bits)",
            }
            for p in first
        ],
        title=f"E6: structure function of the training corpus (n={b.n_train:,})",
    )
    plots.lines_plot(
        ctx.path("two_part_total.png"),
        [
            {"x": model_bits, "y": total, "label": "model + data bits", "style": "-"},
            {"x": [model_bits[mdl]], "y": [total[mdl]], "label": "MDL point", "style": "r*"},
        ],
        xlabel="model bits C (top-k entities stored)",
        ylabel="two-part code length (bits)",
        title="E6: two-part code length vs model size",
        logx=True,
    )
    figures = [
        (
            "structure_function.png",
            "h(C): data bits of the best two-part code with at most C model bits (syntax, then "
            "entities by decreasing frequency), its MDL point, and the trained base models at "
            "(syntax model bits + their measured knowledge bits from the fact probes, their "
            "code length of the training corpus); hollow markers on the curve: the model bits "
            "of the two-part code that codes the data as well as each model (its effective "
            "capacity).",
        ),
        (
            "two_part_total.png",
            "Total two-part code length vs model bits; the minimum is the MDL point.",
        ),
    ]
    table = markdown_table(
        [
            "model",
            "seed",
            "params",
            "measured knowledge (bits)",
            "C = syntax + knowledge",
            "train bits (+- se)",
            "h(C) at measured C",
            f"h at params x {settings.bits_per_param:g}",
            "effective C (h(C) = train bits)",
        ],
        [
            [
                p["model"],
                p["seed"],
                p["params"],
                p["knowledge_bits"],
                p["measured_model_bits"],
                f"{fmt(p['train_bits'])} +- {fmt(p['train_bits_se'])}",
                p["h_at_measured"],
                p["h_at_nominal"],
                p["effective_model_bits"]
                if p["effective_model_bits"] is not None
                else p["placement"],
            ]
            for p in placed
        ],
    )
    preq_line = ""
    if preq is not None:
        preq_line = (
            f"\n\nPrequential code length of the {b.n_train:,} training documents by a "
            f"single-pass {preq['model']} ({preq['steps']} steps): {fmt(preq['bits'])} bits; "
            f"exact Bayes code length -log2 P(x) of the same documents: "
            f"{fmt(preq['bayes_bits'])} bits (ratio {fmt(preq['bits'] / preq['bayes_bits'])}); "
            f"MDL two-part code: {fmt(total[mdl])} bits."
        )
    measured = (
        f"h(C) over {len(model_bits) - 1:,} entities: from {fmt(data_bits[0])} data bits with "
        f"nothing stored ({fmt(model_bits[0])} syntax model bits) to {fmt(data_bits[-1])} with "
        f"every entity stored ({fmt(model_bits[-1])} model bits). MDL point: {mdl:,} entities "
        f"stored, {fmt(model_bits[mdl])} + {fmt(data_bits[mdl])} = {fmt(total[mdl])} bits.\n\n"
        + table
        + preq_line
    )
    checks = {}
    if len(first) >= 2:
        ys = [p["train_bits"] for p in first]
        checks["larger models reach lower data bits"] = all(
            a > b_ for a, b_ in zip(ys, ys[1:], strict=False)
        )
        ks = [p["knowledge_bits"] for p in first]
        checks["measured knowledge grows with size"] = all(
            a < b_ for a, b_ in zip(ks, ks[1:], strict=False)
        )
    if placed:
        checks["no model beats h(C) at its measured stored knowledge"] = all(
            p["train_bits"] + 2 * p["train_bits_se"] >= p["h_at_measured"] for p in placed
        )
    if preq is not None:
        checks["the prequential transformer code is no shorter than the exact Bayes code"] = (
            preq["bits"] >= preq["bayes_bits"]
        )
    pre = preconditions_for(placed, float(model_bits[-1]))
    # Moving down h with size is predicted where capacity limits what is stored (as in E2).
    available = knowledge_available(corpus, b.n_train, b.train.epochs, b.min_exposures)
    pre.append(
        capacity_binds(available["bits_learnable"], max((p["params"] for p in placed), default=0))
    )
    verdict = Verdict.from_checks(checks, preconditions=pre)
    far = [p for p in first if p["effective_model_bits"] is not None]
    note = ""
    if far:
        best = max(far, key=lambda p: p["effective_bits_per_param"] or 0)
        note = (
            f" The most efficient model, {best['model']}, codes its training data as well as an "
            f"ideal two-part code with {fmt(best['effective_model_bits'])} model bits "
            f"({fmt(best['effective_bits_per_param'])} bits per parameter)."
        )
    return Section(
        experiment="structure-function",
        claim=CLAIM,
        setup=(
            f"docs/codelength.md#structure-function on the first {b.n_train:,} documents of the "
            f"base corpus (alpha={b.alpha}): "
            "model bits M(S) = (d_syn/2) log2 N + per stored entity (log2 U + its stated values' "
            "-log2 H_a + log2 N); data bits D(S) with the ML syntax, stored entities by their "
            "empirical frequency, unstored ones paying name and values every time. Each base "
            f"model's code length of the training corpus is estimated from {n_score:,} "
            "uniformly sampled training documents (+- one standard error) and set against h at "
            "C = the syntax model bits plus the knowledge bits its fact probes measure (not at "
            "parameters x 2 bits, which would put every model past everything storable). A "
            "trained model's loss on data it was trained on for several epochs is not a code "
            "length; the prequential code of a fresh model trained in one pass (each batch of "
            f"{settings.prequential_batch} documents coded before the step on it) is, and is "
            "set against the exact Bayes code length of the same documents."
        ),
        measured=measured,
        theory=(
            "h(C) is the lower envelope any model with C bits of parameters can reach on its "
            "training data; training moves a model along it, storing frequent entities first."
        ),
        verdict=verdict.status,
        verdict_text=verdict.text() + "." + note,
        figures=figures,
        files=["structure_function.csv", "models_on_curve.csv", "fits.json"],
        preconditions=precondition_rows(verdict.preconditions),
        headline=f"MDL at {mdl:,} entities ({fmt(total[mdl])} bits); "
        f"{verdict.passed}/{len(verdict.checks)} checks hold",
    )
