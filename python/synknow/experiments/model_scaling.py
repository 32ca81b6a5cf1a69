"""E2 — model scaling: test loss vs parameters on the base corpus, the fitted exponent next to
``(1 - alpha) / alpha`` (SPEC 4.5), and how much knowledge the models hold (facts and bits per
parameter, from fact probes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.common import base_corpus, base_runs, bayes_learning_curve, finite
from synknow.experiments.context import ExperimentContext
from synknow.experiments.probes import revealed_pairs
from synknow.experiments.report import Section, fmt, markdown_table
from synknow.experiments.verdict import Verdict
from synknow.fit import FitResult, fit_power_law

CLAIM = (
    "Test loss falls as a power law in model size; in the Syntax-Knowledge model the exponent is "
    "set by the knowledge tail, and a model of capacity C stores syntax first and then entities "
    "in decreasing frequency."
)


def exponent_verdict(fit: FitResult | None, name: str, theory: float) -> Verdict:
    """Compares a fitted exponent (with its bootstrap interval) with the theory value."""
    if fit is None or not finite(fit.params.get(name)):
        return Verdict.graded("inconclusive", "No usable fit")
    v = fit.params[name]
    lo, hi = fit.ci.get(name, (float("nan"), float("nan")))
    measured = {name: v, f"{name}_ci": (lo, hi), "theory": theory}
    if finite(lo) and lo <= theory <= hi:
        reason = f"the theory value {theory:.3f} lies inside the 95% interval"
        return Verdict.graded("agrees", reason, measured=measured)
    rel = abs(v - theory) / max(abs(theory), 1e-9)
    where = f"fitted {fit.describe(name)} vs theory {theory:.3f}"
    if rel <= 0.5:
        reason = f"{where}: the interval excludes the theory value, within 50%"
        return Verdict.graded("partly agrees", reason, measured=measured)
    return Verdict.graded("does not agree", f"{where}: off by {100 * rel:.0f}%", measured=measured)


def run(ctx: ExperimentContext) -> Section:
    b = ctx.preset.base
    runs = base_runs(ctx)
    corpus = base_corpus(ctx)
    n_pairs = len(revealed_pairs(corpus, b.n_train)[0])
    rows: list[dict[str, Any]] = []
    for spec in b.models:
        r = runs.get(spec.name)
        if r is None:
            continue
        final = r["records"][-1]
        pr = final["probes"]
        bits_total = pr["bits_gain_per_pair"] * n_pairs
        rows.append(
            {
                "model": spec.name,
                "n_layer": spec.n_layer,
                "d_model": spec.d_model,
                "params": r["params"],
                "params_non_embedding": r["params_non_embedding"],
                "steps": r["total_steps"],
                "bits_per_token": final["bits_per_token"],
                "syntax_bits": final["syntax_bits"],
                "name_bits": final["name_bits"],
                "value_bits": final["value_bits"],
                "value_accuracy": final["value_accuracy"],
                "probe_accuracy": pr["accuracy"],
                "facts_known": pr["known_fraction"] * n_pairs,
                "facts_total": n_pairs,
                "knowledge_bits": bits_total,
                "bits_per_param": bits_total / r["params"],
                "bits_per_param_non_embedding": bits_total / r["params_non_embedding"],
            }
        )
    _io.write_csv(ctx.path("model_scaling.csv"), rows)
    alpha = b.alpha
    theory = (1 - alpha) / alpha
    bayes = bayes_learning_curve(corpus, b.n_train, b.n_test, [b.n_train])
    bayes_bits = None if bayes is None else bayes["bits_per_token"][-1]

    fits: dict[str, Any] = {"theory_exponent": theory, "alpha": alpha, "bayes_bits": bayes_bits}
    fit_free = fit_fixed = None
    if len(rows) >= 4:
        x = np.array([r["params_non_embedding"] for r in rows], dtype=float)
        y = np.array([r["bits_per_token"] for r in rows], dtype=float)
        fit_free = fit_power_law(x, y, n_boot=ctx.preset.n_boot, seed=ctx.preset.seed)
        fits["loss_vs_params_free_E"] = fit_free.to_dict()
    if len(rows) >= 3 and bayes_bits is not None:
        x = np.array([r["params_non_embedding"] for r in rows], dtype=float)
        y = np.array([r["bits_per_token"] for r in rows], dtype=float)
        if bayes_bits < y.min():
            fit_fixed = fit_power_law(
                x, y, fixed_E=bayes_bits, n_boot=ctx.preset.n_boot, seed=ctx.preset.seed
            )
            fits["loss_vs_params_E_bayes"] = fit_fixed.to_dict()
    _io.write_json(ctx.path("fits.json"), fits)

    figures: list[tuple[str, str]] = []
    if rows:
        params = [r["params_non_embedding"] for r in rows]
        series = [
            {
                "x": params,
                "y": [r["bits_per_token"] for r in rows],
                "label": "transformer test loss",
                "fit": fit_fixed or fit_free,
            }
        ]
        plots.scaling_plot(
            ctx.path("loss_vs_params.png"),
            series,
            xlabel="non-embedding parameters",
            ylabel="test loss - E (bits/token)",
            title=f"E2: excess loss vs model size (alpha={alpha}; theory slope {theory:.2f})",
            excess=(fit_fixed or fit_free) is not None,
        )
        figures.append(
            ("loss_vs_params.png", "Excess test loss vs non-embedding parameters, with the fit.")
        )
        plots.lines_plot(
            ctx.path("roles_vs_params.png"),
            [
                {"x": params, "y": [r[f"{role}_bits"] for r in rows], "label": role}
                for role in ("syntax", "name", "value")
            ],
            xlabel="non-embedding parameters",
            ylabel="bits per token of the role",
            title="E2: test loss by role vs model size",
            logx=True,
        )
        figures.append(("roles_vs_params.png", "Final test loss by token role vs model size."))
        plots.lines_plot(
            ctx.path("knowledge_vs_params.png"),
            [
                {"x": x, "y": [r["facts_known"] for r in rows], "label": "facts known (probes)"},
                {"x": x, "y": [r["knowledge_bits"] for r in rows], "label": "knowledge bits"},
                {
                    "x": x,
                    "y": [r["facts_total"] for r in rows],
                    "label": "facts in training set",
                    "style": "k:",
                },
            ],
            xlabel="non-embedding parameters",
            ylabel="count / bits",
            title="E2: knowledge stored vs model size",
            logx=True,
            logy=True,
        )
        figures.append(
            (
                "knowledge_vs_params.png",
                "Facts known (chance-corrected probe accuracy x revealed pairs) and knowledge bits "
                "(prior bits - the model's bits for the true value under its distribution "
                "renormalised to the value pool, summed over revealed pairs) vs model size.",
            )
        )

    table = markdown_table(
        [
            "model",
            "params (non-emb.)",
            "test bits/token",
            "value bits",
            "probe acc.",
            "facts known",
            "knowledge bits",
            "bits/param",
        ],
        [
            [
                r["model"],
                f"{r['params']:,} ({r['params_non_embedding']:,})",
                r["bits_per_token"],
                r["value_bits"],
                r["probe_accuracy"],
                f"{r['facts_known']:.0f} / {r['facts_total']}",
                r["knowledge_bits"],
                r["bits_per_param"],
            ]
            for r in rows
        ],
    )
    main_fit = fit_fixed or fit_free
    verdict = exponent_verdict(main_fit, "gamma", theory)
    caveat = (
        " At this scale the models are trained for a fixed number of epochs on a small corpus, so "
        "the loss differences are dominated by optimisation rather than capacity; the exponent "
        "is only indicative."
        if ctx.preset.name in ("cpu-tiny", "micro")
        else ""
    )
    fit_lines = []
    if fit_fixed is not None:
        fit_lines.append(
            f"- fit with E fixed to the Bayes loss at n_train ({fmt(bayes_bits)} bits/token): "
            f"exponent **{fit_fixed.describe('gamma')}**"
        )
    if fit_free is not None:
        fit_lines.append(
            f"- fit with E free: exponent {fit_free.describe('gamma')}, "
            f"E = {fit_free.describe('E')} bits/token"
        )
    if not fit_lines:
        fit_lines.append(f"- too few finished models ({len(rows)}) or no Bayes reference to fit")
    measured = "\n".join([table, "", *fit_lines])
    best_bpp = max((r["bits_per_param"] for r in rows), default=float("nan"))
    return Section(
        experiment="model-scaling",
        claim=CLAIM,
        setup=(
            f"{len(b.models)} model sizes ({', '.join(m.name for m in b.models)}) trained for "
            f"{b.train.epochs} epochs on the first {b.n_train:,} documents of one corpus "
            f"(alpha={alpha}, beta={ctx.preset.corpus.beta}); test loss on the last "
            f"{b.n_test:,} documents; fact probes on {min(b.probe_pairs, n_pairs):,} of the "
            f"{n_pairs:,} (entity, attribute) pairs stated in training (one sentence stating the "
            "fact; facts known = chance-corrected accuracy; knowledge bits = -log2 H_a(v) minus "
            "the model's bits for v under its distribution renormalised to the value pool). "
            "Fit: `L(P) = E + A P^-gamma` over non-embedding parameters P (Huber on log "
            "residuals, L-BFGS from a grid, 95% residual-bootstrap intervals)."
        ),
        measured=measured,
        theory=(
            f"storing syntax first and entities in decreasing frequency, the excess loss at "
            f"capacity C decays as C^-((1-alpha)/alpha) = C^-{theory:.3f} for alpha={alpha}."
        ),
        verdict=verdict.status,
        verdict_text=verdict.text() + "." + caveat,
        figures=figures,
        files=["model_scaling.csv", "fits.json"],
        headline=(
            f"exponent {main_fit.describe('gamma') if main_fit else '-'} vs {theory:.2f}; "
            f"up to {fmt(best_bpp)} knowledge bits/param"
        ),
    )
