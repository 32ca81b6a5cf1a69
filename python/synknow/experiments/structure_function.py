"""E6 — the structure function: ``h(C)`` of the base training corpus
(docs/codelength.md#structure-function) with its MDL
point, and the trained base models placed on it at (parameters x bits/parameter, their code
length of the training corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.common import (
    base_corpus,
    base_runs,
    document_bits,
    load_model,
    structure_reference,
)
from synknow.experiments.context import ExperimentContext
from synknow.experiments.report import Section, fmt, markdown_table
from synknow.experiments.verdict import Verdict

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
    runs = base_runs(ctx)
    rng = np.random.default_rng([ctx.preset.seed, 6])
    n_score = min(settings.score_docs, b.n_train)
    docs = np.sort(rng.choice(b.n_train, size=n_score, replace=False))
    placed: list[dict[str, Any]] = []
    for spec in b.models:
        if spec.name not in runs:
            continue

        def fn(run_dir: Path, name: str = spec.name) -> dict[str, Any]:
            model = load_model(ctx.shared_dir / "runs" / f"base-{name}", corpus, ctx.preset.device)
            bits = document_bits(model, corpus, docs)
            return {
                "train_bits": float(bits.mean() * b.n_train),
                "train_bits_se": float(bits.std(ddof=1) / np.sqrt(len(bits)) * b.n_train),
                "scored_docs": int(len(bits)),
            }

        res = ctx.run(f"score-{spec.name}", fn)
        if res is None:
            continue
        params = runs[spec.name]["params"]
        c_nom = params * settings.bits_per_param
        c_eff, status = effective_capacity(model_bits, data_bits, res["train_bits"])
        placed.append(
            {
                "model": spec.name,
                "params": params,
                "nominal_model_bits": c_nom,
                "train_bits": res["train_bits"],
                "train_bits_se": res["train_bits_se"],
                "h_at_nominal": h_at(model_bits, data_bits, c_nom),
                "effective_model_bits": c_eff if status == "on h" else None,
                "effective_bits_per_param": c_eff / params if status == "on h" else None,
                "placement": status,
            }
        )
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
        },
    )
    plots.structure_function_plot(
        ctx.path("structure_function.png"),
        model_bits,
        data_bits,
        mdl=(model_bits[mdl], data_bits[mdl]),
        points=[
            {
                "x": p["nominal_model_bits"],
                "y": p["train_bits"],
                "x_effective": p["effective_model_bits"],
                "label": f"{p['model']} ({p['params']:,} params x {settings.bits_per_param:g})",
            }
            for p in placed
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
            f"(parameters x {settings.bits_per_param:g} bits, their code length of the "
            "training corpus); hollow markers on the curve: the model bits of the two-part code "
            "that codes the data as well as each model (its effective capacity).",
        ),
        (
            "two_part_total.png",
            "Total two-part code length vs model bits; the minimum is the MDL point.",
        ),
    ]
    table = markdown_table(
        [
            "model",
            "params",
            f"C = params x {settings.bits_per_param:g}",
            "train bits (+- se)",
            "h(C) at that C",
            "effective C (h(C) = train bits)",
            "effective bits/param",
        ],
        [
            [
                p["model"],
                p["params"],
                p["nominal_model_bits"],
                f"{fmt(p['train_bits'])} +- {fmt(p['train_bits_se'])}",
                p["h_at_nominal"],
                p["effective_model_bits"]
                if p["effective_model_bits"] is not None
                else p["placement"],
                p["effective_bits_per_param"],
            ]
            for p in placed
        ],
    )
    measured = (
        f"h(C) over {len(model_bits) - 1:,} entities: from {fmt(data_bits[0])} data bits with "
        f"nothing stored ({fmt(model_bits[0])} syntax model bits) to {fmt(data_bits[-1])} with "
        f"every entity stored ({fmt(model_bits[-1])} model bits). MDL point: {mdl:,} entities "
        f"stored, {fmt(model_bits[mdl])} + {fmt(data_bits[mdl])} = {fmt(total[mdl])} bits.\n\n"
        + table
    )
    checks = {}
    if len(placed) >= 2:
        ys = [p["train_bits"] for p in placed]
        checks["larger models reach lower data bits"] = all(
            a > b_ for a, b_ in zip(ys, ys[1:], strict=False)
        )
    if placed:
        checks["no model beats h(C) at its nominal capacity"] = all(
            p["train_bits"] + 2 * p["train_bits_se"] >= p["h_at_nominal"] for p in placed
        )
    eff = [p["effective_model_bits"] or 0.0 for p in placed]
    if len(placed) >= 2:
        checks["effective model bits grow with size"] = (
            all(a < b_ for a, b_ in zip(eff, eff[1:], strict=False)) and eff[-1] > 0
        )
    verdict = Verdict.from_checks(checks)
    far = [p for p in placed if p["effective_model_bits"] is not None]
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
            "uniformly sampled training documents (+- one standard error)."
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
        headline=f"MDL at {mdl:,} entities ({fmt(total[mdl])} bits); "
        f"{verdict.passed}/{len(verdict.checks)} checks hold",
    )
