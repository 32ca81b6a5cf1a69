"""E1 — data scaling: test loss vs training documents for several ``alpha``, for a transformer
trained in a single pass and for the exact Bayes predictor on the same test split; fitted
exponents next to ``1 - alpha`` (SPEC 4.5); the loss split by role."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.common import (
    ROLE_COLUMNS,
    bayes_learning_curve,
    corpus_for,
    flatten_eval,
    log_steps,
    train_with_evaluations,
)
from synknow.experiments.context import ExperimentContext
from synknow.experiments.report import Section, fmt, markdown_table
from synknow.experiments.verdict import Verdict
from synknow.fit import FitResult, fit_power_law

CLAIM = (
    "Test loss falls as a power law in the amount of training data, with an exponent set by "
    "the heavy tail of knowledge (Heaps/Zipf): excess loss ~ n^-(1-alpha) for PYCRP discount "
    "alpha."
)
# SPEC 4.5: expected spread of one seed's fitted Bayes exponent over n = 1e2..2e5.
SPEC_TOLERANCE = {0.3: 0.25, 0.5: 0.18, 0.7: 0.13}
FIT_MIN_DOCS = 100  # the Bayes fit starts here (SPEC 4.5 fits over n = 1e2 .. 2e5)


def tolerance(alpha: float) -> float:
    """SPEC 4.5's one-seed tolerance, interpolated between the tabulated alphas."""
    keys = sorted(SPEC_TOLERANCE)
    return float(np.interp(alpha, keys, [SPEC_TOLERANCE[k] for k in keys]))


def _fit(x: np.ndarray, y: np.ndarray, ctx: ExperimentContext) -> FitResult | None:
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 4:
        return None
    return fit_power_law(x[ok], y[ok], n_boot=ctx.preset.n_boot, seed=ctx.preset.seed)


def _bayes_leg(
    ctx: ExperimentContext, alpha: float, seed: int, n_total: int, run_dir: Path
) -> dict[str, Any]:
    """The exact Bayes learning curve on the test split at log-spaced prefix lengths."""
    s = ctx.preset.data_scaling
    corpus = corpus_for(ctx, alpha, n_total, seed)
    checkpoints = log_steps(s.bayes_n_max, s.bayes_points, first=10)
    table = bayes_learning_curve(corpus, n_total - s.n_test, s.n_test, checkpoints)
    if table is None:
        raise RuntimeError(
            "the Bayes learning curve needs synknow.bayes_curve (code-length engine)"
        )
    return table


def _model_leg(
    ctx: ExperimentContext, alpha: float, seed: int, n_total: int, run_dir: Path
) -> dict[str, Any]:
    """One transformer trained in a single pass, evaluated at log-spaced steps."""
    from synknow.train.eval import evaluate

    s = ctx.preset.data_scaling
    corpus = corpus_for(ctx, alpha, n_total, seed)

    def on_eval(model: Any, step: int, final: bool) -> dict[str, Any]:
        report = evaluate(
            model,
            corpus,
            n_total - s.n_test,
            s.n_test,
            max_docs=None if final else s.train.eval_docs,
            bayes=False,
        )
        return flatten_eval(report)

    return train_with_evaluations(
        ctx,
        corpus,
        s.model,
        s.train,
        s.n_train,
        s.n_test,
        run_dir,
        on_eval=on_eval,
        seed=seed,
        desc=f"alpha={alpha}",
    )


def _run_legs(ctx: ExperimentContext) -> dict[float, dict[str, Any]]:
    """Both learners for every alpha: ``{alpha: {"bayes", "model", "seed"}}`` (``None`` for a
    failed run)."""
    s = ctx.preset.data_scaling
    n_total = max(s.n_train, s.bayes_n_max) + s.n_test
    results: dict[float, dict[str, Any]] = {}
    for i, alpha in enumerate(s.alphas):
        seed = ctx.preset.seed + 100 * (i + 1)
        ctx.log(f"alpha={alpha}: Bayes learning curve")
        bayes = ctx.run(
            f"bayes-alpha{alpha}", functools.partial(_bayes_leg, ctx, alpha, seed, n_total)
        )
        ctx.log(f"alpha={alpha}: transformer {s.model.name}, single pass over {s.n_train:,} docs")
        trained = ctx.run(
            f"model-alpha{alpha}", functools.partial(_model_leg, ctx, alpha, seed, n_total)
        )
        results[alpha] = {"bayes": bayes, "model": trained, "seed": seed}
    return results


def _write_rows(ctx: ExperimentContext, results: dict[float, dict[str, Any]]) -> None:
    model_name = ctx.preset.data_scaling.model.name
    rows: list[dict[str, Any]] = []
    for alpha, r in results.items():
        if r["bayes"] is not None:
            b = r["bayes"]
            for j, n in enumerate(b["n"]):
                rows.append(
                    {
                        "alpha": alpha,
                        "learner": "bayes",
                        "n_docs": n,
                        "bits_per_token": b["bits_per_token"][j],
                        "bits_per_doc": b["bits_per_doc"][j],
                        **{f"{role}_bits": b[f"{role}_bits"][j] for role in ROLE_COLUMNS},
                    }
                )
        if r["model"] is not None:
            for rec in r["model"]["records"]:
                rows.append(
                    {
                        "alpha": alpha,
                        "learner": f"transformer-{model_name}",
                        "n_docs": rec["docs_seen"],
                        "step": rec["step"],
                        "bits_per_token": rec["bits_per_token"],
                        "bits_per_doc": rec["bits_per_doc"],
                        **{f"{role}_bits": rec[f"{role}_bits"] for role in ROLE_COLUMNS},
                    }
                )
    _io.write_csv(ctx.path("data_scaling.csv"), rows)


def _fits(
    ctx: ExperimentContext, results: dict[float, dict[str, Any]]
) -> dict[tuple[float, str], FitResult]:
    """Power-law fits per alpha and learner (``"bayes"``, ``"model"``); writes fits.json."""
    warmup = ctx.preset.data_scaling.train.warmup_steps
    fits: dict[str, Any] = {}
    fit_objs: dict[tuple[float, str], FitResult] = {}
    for alpha, r in results.items():
        entry: dict[str, Any] = {"theory_exponent": 1 - alpha, "spec_tolerance": tolerance(alpha)}
        if r["bayes"] is not None:
            n = np.asarray(r["bayes"]["n"], dtype=float)
            y = np.asarray(r["bayes"]["bits_per_token"], dtype=float)
            keep = n >= FIT_MIN_DOCS
            f = _fit(n[keep], y[keep], ctx)
            if f is not None:
                fit_objs[(alpha, "bayes")] = f
                entry["bayes"] = f.to_dict()
        if r["model"] is not None:
            # Points during the learning-rate warm-up measure the schedule, not the data.
            recs = [rec for rec in r["model"]["records"] if rec["step"] > warmup]
            n = np.array([rec["docs_seen"] for rec in recs], dtype=float)
            y = np.array([rec["bits_per_token"] for rec in recs], dtype=float)
            f = _fit(n, y, ctx)
            if f is not None:
                fit_objs[(alpha, "model")] = f
                entry["transformer"] = f.to_dict()
        fits[f"alpha={alpha}"] = entry
    _io.write_json(ctx.path("fits.json"), fits)
    return fit_objs


def _loss_series(
    results: dict[float, dict[str, Any]], fit_objs: dict[tuple[float, str], FitResult]
) -> list[dict[str, Any]]:
    series = []
    for i, (alpha, r) in enumerate(results.items()):
        color = plots._COLORS[i % len(plots._COLORS)]
        if r["bayes"] is not None:
            series.append(
                {
                    "x": r["bayes"]["n"],
                    "y": r["bayes"]["bits_per_token"],
                    "label": f"Bayes, alpha={alpha}",
                    "fit": fit_objs.get((alpha, "bayes")),
                    "style": "-",
                    "color": color,
                }
            )
        if r["model"] is not None:
            recs = r["model"]["records"]
            series.append(
                {
                    "x": [rec["docs_seen"] for rec in recs],
                    "y": [rec["bits_per_token"] for rec in recs],
                    "label": f"transformer, alpha={alpha}",
                    "style": "o",
                    "color": color,
                }
            )
    return series


def _loss_figures(
    ctx: ExperimentContext,
    results: dict[float, dict[str, Any]],
    fit_objs: dict[tuple[float, str], FitResult],
) -> list[tuple[str, str]]:
    series = _loss_series(results, fit_objs)
    if not series:
        return []
    plots.scaling_plot(
        ctx.path("loss_vs_docs.png"),
        series,
        xlabel="training documents n",
        ylabel="test loss (bits/token)",
        title="E1: test loss vs training documents",
    )
    figures = [
        (
            "loss_vs_docs.png",
            "Test loss (bits/token) vs training documents: the exact Bayes learning curve "
            "(lines, dashed: power-law fit) and a transformer trained in one pass (points), "
            "for each alpha, on the same test documents.",
        )
    ]
    excess_series = [
        {**x, "fit": fit_objs.get((a, "bayes"))}
        for x, a in zip(
            [x for x in series if x["label"].startswith("Bayes")],
            [a for a, r in results.items() if r["bayes"] is not None],
            strict=True,
        )
    ]
    if excess_series and all(x["fit"] is not None for x in excess_series):
        plots.scaling_plot(
            ctx.path("bayes_excess_vs_docs.png"),
            excess_series,
            xlabel="training documents n",
            ylabel="Bayes excess loss L(n) - E (bits/token)",
            title="E1: Bayes excess loss (fitted E subtracted)",
            excess=True,
        )
        figures.append(
            (
                "bayes_excess_vs_docs.png",
                "Bayes excess loss over its fitted limit E: straight lines on log-log axes "
                "with slope -gamma.",
            )
        )
    return figures


def _role_figures(
    ctx: ExperimentContext, results: dict[float, dict[str, Any]]
) -> list[tuple[str, str]]:
    role_panels = []
    for alpha, r in results.items():
        if r["model"] is None and r["bayes"] is None:
            continue
        panel: dict[str, Any] = {"title": f"alpha={alpha}", "x": [], "curves": {}}
        if r["model"] is not None:
            recs = r["model"]["records"]
            panel["x"] = [rec["docs_seen"] for rec in recs]
            panel["curves"] = {
                f"transformer {role}": [rec[f"{role}_bits"] for rec in recs]
                for role in ROLE_COLUMNS
            }
        if r["bayes"] is not None:
            panel["reference"] = {
                f"Bayes {role}": (r["bayes"]["n"], r["bayes"][f"{role}_bits"])
                for role in ROLE_COLUMNS
            }
        role_panels.append(panel)
    if not role_panels:
        return []
    plots.role_curves_plot(
        ctx.path("roles_vs_docs.png"),
        role_panels,
        xlabel="training documents n",
        title="E1: loss by role (bits per token of the role)",
    )
    return [
        (
            "roles_vs_docs.png",
            "Loss by token role vs training documents: transformer (points) and Bayes "
            "(dashed). Syntax is learned from few documents; names and values carry the "
            "slow, knowledge-driven decay.",
        )
    ]


def _exponent_figures(
    ctx: ExperimentContext,
    results: dict[float, dict[str, Any]],
    fit_objs: dict[tuple[float, str], FitResult],
) -> list[tuple[str, str]]:
    exps = []
    for alpha in results:
        e: dict[str, Any] = {"alpha": alpha, "theory": 1 - alpha}
        for learner in ("bayes", "model"):
            f = fit_objs.get((alpha, learner))
            if f is not None:
                e[learner] = f.params["gamma"]
                e[f"{learner}_ci"] = f.ci.get("gamma")
        exps.append(e)
    if not exps:
        return []
    plots.exponent_plot(
        ctx.path("exponents_vs_alpha.png"),
        exps,
        title="E1: fitted data-scaling exponents vs alpha",
        tolerance=SPEC_TOLERANCE,
    )
    return [
        (
            "exponents_vs_alpha.png",
            "Fitted exponents gamma (95% bootstrap intervals) vs alpha, with the theory "
            "1 - alpha and SPEC 4.5's one-seed tolerance band.",
        )
    ]


def _exponent_table(
    results: dict[float, dict[str, Any]], fit_objs: dict[tuple[float, str], FitResult]
) -> str:
    rows = []
    for alpha in results:
        fb = fit_objs.get((alpha, "bayes"))
        fm = fit_objs.get((alpha, "model"))
        rows.append(
            [
                alpha,
                f"{1 - alpha:.2f} +- {tolerance(alpha):.2f}",
                fb.describe("gamma") if fb else "-",
                fb.describe("E") if fb else "-",
                fm.describe("gamma") if fm else "-",
                fm.describe("E") if fm else "-",
            ]
        )
    return markdown_table(
        [
            "alpha",
            "theory 1-alpha (SPEC tol.)",
            "Bayes gamma [95% CI]",
            "Bayes E (bits/tok)",
            "transformer gamma",
            "transformer E",
        ],
        rows,
    )


def _verdict(
    results: dict[float, dict[str, Any]], fit_objs: dict[tuple[float, str], FitResult]
) -> Verdict:
    """Bayes exponents within the one-seed tolerance of 1 - alpha; the transformer's too, with
    its fitted limit E above 0 (else its curve is a transient, not the asymptote)."""
    bayes_ok: list[bool] = []
    model_ok: list[bool] = []
    for alpha in results:
        for learner, ok in (("bayes", bayes_ok), ("model", model_ok)):
            f = fit_objs.get((alpha, learner))
            if f is not None:
                ok.append(abs(f.params["gamma"] - (1 - alpha)) <= tolerance(alpha))
    model_fits = [fit_objs[(a, "model")] for a in results if (a, "model") in fit_objs]
    model_gammas = [f.params["gamma"] for f in model_fits]
    ordered = len(model_gammas) >= 2 and all(
        x > y for x, y in zip(model_gammas, model_gammas[1:], strict=False)
    )
    # E at its lower bound: the curve is indistinguishable from a pure power law, i.e. far above
    # its own limit.
    at_zero = [f for f in model_fits if f.params["E"] < 1e-6]
    notes = []
    if model_ok:
        notes.append(
            f"{sum(model_ok)}/{len(model_ok)} transformer exponents are within the tolerance"
            + ("; they decrease with alpha as predicted" if ordered else "")
        )
    if at_zero:
        notes.append(
            f"{len(at_zero)} transformer fit(s) put E at 0: the single-pass curves are still far "
            "above their limit (the transformer is under-trained at this scale), so their "
            "exponents describe the transient, not the asymptote"
        )
    measured = {"bayes_within_tolerance": bayes_ok, "transformer_within_tolerance": model_ok}
    if not bayes_ok and not model_ok:
        return Verdict.graded("inconclusive", "no fits finished", measured=measured)
    if bayes_ok and all(bayes_ok) and model_ok and all(model_ok) and not at_zero:
        why = "Bayes and transformer exponents are within SPEC 4.5's one-seed tolerance"
        return Verdict.graded("agrees", why, measured=measured)
    transformer = "; ".join(notes or ["no transformer fit finished"])
    if bayes_ok and all(bayes_ok):
        why = (
            "the exact Bayes learning curves have exponents within SPEC 4.5's one-seed "
            "tolerance of 1 - alpha for every alpha; " + transformer
        )
        return Verdict.graded("partly agrees", why, measured=measured)
    status = "does not agree" if not any(bayes_ok) else "partly agrees"
    why = (
        f"{sum(bayes_ok)}/{len(bayes_ok)} Bayes exponents are within SPEC 4.5's one-seed "
        "tolerance of 1 - alpha; " + transformer
    )
    return Verdict.graded(status, why, measured=measured)


def run(ctx: ExperimentContext) -> Section:
    s = ctx.preset.data_scaling
    results = _run_legs(ctx)
    _write_rows(ctx, results)
    fit_objs = _fits(ctx, results)
    figures = _loss_figures(ctx, results, fit_objs)
    figures += _role_figures(ctx, results)
    figures += _exponent_figures(ctx, results, fit_objs)
    verdict = _verdict(results, fit_objs)
    return Section(
        experiment="data-scaling",
        claim=CLAIM,
        setup=(
            f"For alpha in {list(s.alphas)} (beta={ctx.preset.corpus.beta}): one corpus each; "
            f"test split = its last {s.n_test} documents. Bayes: the exact predictive code "
            f"length (SPEC 4.4) at {s.bayes_points} log-spaced prefixes up to "
            f"{s.bayes_n_max:,} documents, fitted over n >= {FIT_MIN_DOCS}. Transformer: "
            f"{s.model.name} ({s.model.n_layer} layers, d={s.model.d_model}) trained in a single "
            f"pass over {s.n_train:,} documents (batch {s.train.batch_size} windows of "
            f"{s.train.context_length} tokens, lr {s.train.lr}), evaluated at "
            f"{s.train.n_evals} log-spaced steps; n = documents consumed so far (fitted after the "
            f"{s.train.warmup_steps}-step warm-up). Fit: "
            "`L(n) = E + A n^-gamma` (Huber on log residuals, L-BFGS from a grid, 95% "
            "residual-bootstrap intervals)."
        ),
        measured=_exponent_table(results, fit_objs),
        theory=(
            "knowledge excess per document ~ E[P_new(n)] (log2 U + sum_a H(H_a) - alpha log2 n), "
            "i.e. n^-(1-alpha) with a slowly varying log correction; syntax excess ~ "
            "d_syn / (2 n ln 2). One seed's fitted exponent over n = 1e2..2e5 scatters by about "
            "+-0.25 (alpha 0.3), +-0.18 (0.5), +-0.13 (0.7)."
        ),
        verdict=verdict.status,
        verdict_text=verdict.text() + ".",
        figures=figures,
        files=["data_scaling.csv", "fits.json"],
        headline=", ".join(
            f"a={a}: Bayes {fmt(fit_objs[(a, 'bayes')].params['gamma'])}"
            for a in results
            if (a, "bayes") in fit_objs
        )
        + " (theory "
        + ", ".join(f"{1 - a:.1f}" for a in results)
        + ")",
    )
