"""E2 — model scaling: test loss vs parameters on the base corpus, the fitted exponent next to
``(1 - alpha) / alpha``, and how much knowledge the models hold (facts and bits per parameter,
from fact probes against a fresh-name control). The verdict rests on the preconditions of
:mod:`synknow.experiments.capacity_check` (capacity binds, saturation, sizes, learning rates,
seeds); docs/experiments.md ("E2") explains each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.capacity_check import (
    BITS_PER_PARAM,
    knowledge_available,
    lr_bracketed_precondition,
    lr_precondition,
    reference_comparison,
    saturation_precondition,
    seeds_precondition,
    size_preconditions,
)
from synknow.experiments.capacity_check import capacity_binds as capacity_binds_precondition
from synknow.experiments.common import (
    base_corpus,
    base_runs,
    bayes_learning_curve,
    finite,
    model_sweep,
)
from synknow.experiments.context import ExperimentContext
from synknow.experiments.exponents import loglog_line
from synknow.experiments.probes import revealed_pairs
from synknow.experiments.report import Section, fmt, markdown_table, precondition_rows
from synknow.experiments.seeds import repeat_seeds, seed_bootstrap
from synknow.experiments.verdict import Precondition, Verdict
from synknow.fit import FitResult

CLAIM = (
    "Test loss falls as a power law in model size; in the Syntax-Knowledge model the exponent is "
    "set by the knowledge tail, and a model of capacity C stores syntax first and then entities "
    "in decreasing frequency."
)


def exponent_verdict(
    fit: FitResult | None,
    name: str,
    theory: float,
    preconditions: Sequence[Precondition] = (),
) -> Verdict:
    """Compares a fitted exponent (with its interval) with the theory value."""
    if fit is None or not finite(fit.params.get(name)):
        return Verdict.graded("inconclusive", "No usable fit", preconditions=preconditions)
    v = fit.params[name]
    lo, hi = fit.ci.get(name, (float("nan"), float("nan")))
    measured: dict[str, Any] = {name: v, f"{name}_ci": (lo, hi), "theory": theory}
    pre = tuple(preconditions)
    if finite(lo) and lo <= theory <= hi:
        reason = f"the theory value {theory:.3f} lies inside the 95% interval"
        return Verdict.graded("agrees", reason, measured=measured, preconditions=pre)
    rel = abs(v - theory) / max(abs(theory), 1e-9)
    where = f"fitted {fit.describe(name)} vs theory {theory:.3f}"
    if rel <= 0.5:
        reason = f"{where}: outside the interval, within 50%"
        return Verdict.graded("partly agrees", reason, measured=measured, preconditions=pre)
    reason = f"{where}: off by {100 * rel:.0f}%"
    return Verdict.graded("does not agree", reason, measured=measured, preconditions=pre)


def capacity_reference(
    corpus: Any, n_train: int, n_test: int, capacities: Sequence[float]
) -> list[float]:
    """The capacity-limited Bayes loss ``L(n_train, C)`` (bits/token on the test split, the
    denominator of the transformer's loss) at each knowledge budget ``C`` in bits, in the order
    given, from :func:`synknow.capacity.capacity_limited_loss`. The budgets here are knowledge
    only (what the probes measure), so the syntax term of the two-part code, the model bits of
    storing nothing, is added before the call (docs/capacity.md)."""
    from synknow.capacity import capacity_limited_loss

    def table(grid: list[float]) -> Any:
        return capacity_limited_loss(
            corpus, n_train, [n_train], grid, n_test=n_test, progress=False
        ).at(n_train)

    syntax_bits = float(table([0.0])["model_bits"][0])
    knowledge = sorted({max(float(c), 0.0) for c in capacities})
    rows = table([syntax_bits + c for c in knowledge])
    by_capacity = dict(zip(knowledge, rows["bits_per_token"].tolist(), strict=True))
    return [float(by_capacity[max(float(c), 0.0)]) for c in capacities]


def _row(spec: Any, r: dict[str, Any], n_pairs: int) -> dict[str, Any]:
    final = r["records"][-1]
    pr = final["probes"]
    bits_total = pr["bits_gain_per_pair"] * n_pairs
    return {
        "model": spec.name,
        "n_layer": spec.n_layer,
        "d_model": spec.d_model,
        "params": r["params"],
        "params_non_embedding": r["params_non_embedding"],
        "steps": r["total_steps"],
        "lr": r.get("lr"),
        "lrs_tried": len(r.get("lr_sweep") or {}),
        "lr_grid": [float(k) for k in (r.get("lr_sweep") or {})],
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


def _seed_runs(ctx: ExperimentContext) -> list[tuple[int, dict[str, dict[str, Any]]]]:
    """``[(seed, {model: run})]``: the base sweep, then the extra repeats on fresh corpora."""
    b = ctx.preset.base
    out = [(ctx.preset.seed, base_runs(ctx))]
    for j, seed in enumerate(repeat_seeds(ctx.preset.seed, 2, b.seeds - 1) if b.seeds > 1 else []):
        ctx.log(f"repeat {j + 2}/{b.seeds} of every size (seed {seed})")
        out.append((seed, model_sweep(ctx, seed, f"e2-seed{j + 1}")))
    return out


def _fit_exponent(
    params: np.ndarray, losses: np.ndarray, limit: float, n_boot: int, seed: int
) -> dict[str, Any] | None:
    """Exponent of the mean excess ``L - limit`` over seeds against parameters (least squares
    on log-log axes), with a bootstrap over whole seeds when there are two or more."""
    excess = losses - limit
    if excess.shape[1] < 3 or np.any(excess.mean(axis=0) <= 0):
        return None

    def gamma(rows: np.ndarray) -> float:
        e = rows.mean(axis=0)
        return float("nan") if np.any(e <= 0) else -loglog_line(params, e)[0]

    if excess.shape[0] >= 2:
        g, lo, hi = seed_bootstrap(excess, gamma, n_boot=n_boot, seed=seed)
        ci = (float(lo[0]), float(hi[0]))
        value = float(g[0])
    else:
        value, ci = gamma(excess), (float("nan"), float("nan"))
    slope, intercept = loglog_line(params, excess.mean(axis=0))
    fit = FitResult(
        model="power_law",
        params={"E": float(limit), "A": float(np.exp(intercept)), "gamma": -slope},
        ci={"gamma": ci} if np.isfinite(ci[0]) else {},
        stderr={},
        level=0.95,
        loss=float("nan"),
        n_points=int(params.size),
        n_boot=n_boot if excess.shape[0] >= 2 else 0,
        n_boot_converged=0,
        converged=True,
        fixed={"E": float(limit)},
        bootstrap="seeds",
    )
    return {"gamma": value, "ci": list(ci), "seeds": int(excess.shape[0]), "fit": fit}


def preconditions_for(
    ctx: ExperimentContext,
    corpus: Any,
    rows: list[dict[str, Any]],
    seeds_done: int,
    saturation: Precondition,
) -> tuple[list[Precondition], dict[str, Any]]:
    b = ctx.preset.base
    available = knowledge_available(corpus, b.n_train, b.train.epochs, b.min_exposures)
    largest = max((r["params"] for r in rows), default=0)
    pre = [capacity_binds_precondition(available["bits_learnable"], largest)]
    pre.append(saturation)
    pre += size_preconditions([r["n_layer"] for r in rows], [r["params"] for r in rows])
    pre.append(lr_precondition([r["lrs_tried"] for r in rows]))
    pre.append(lr_bracketed_precondition([r["lr"] for r in rows], [r["lr_grid"] for r in rows]))
    pre.append(seeds_precondition(seeds_done))
    return pre, available


def _saturation(
    ctx: ExperimentContext, runs: dict[str, dict[str, Any]], n_pairs: int
) -> Precondition:
    b = ctx.preset.base
    name = b.saturation_model or (b.models[-1].name if b.models else "")
    base = runs.get(name)
    spec = next((m for m in b.models if m.name == name), None)
    if spec is None or base is None:
        return saturation_precondition(name or "-", None, None)
    ctx.log(f"saturation check: {name} trained for {2 * b.train.epochs:g} epochs")
    doubled = model_sweep(ctx, ctx.preset.seed, "e2-double", epochs_factor=2.0, only=name)
    d = doubled.get(name)
    return saturation_precondition(
        name, _row(spec, base, n_pairs), _row(spec, d, n_pairs) if d is not None else None
    )


def run(ctx: ExperimentContext) -> Section:
    b = ctx.preset.base
    corpus = base_corpus(ctx)
    n_pairs = len(revealed_pairs(corpus, b.n_train)[0])
    seed_runs = _seed_runs(ctx)
    names = [m.name for m in b.models]
    complete = [
        (seed, runs) for seed, runs in seed_runs if all(n in runs for n in names)
    ] or seed_runs[:1]
    done_names = [n for n in names if all(n in runs for _, runs in complete)]
    specs = {m.name: m for m in b.models}
    per_seed = [[_row(specs[n], runs[n], n_pairs) for n in done_names] for _, runs in complete]
    rows: list[dict[str, Any]] = []
    for k in range(len(done_names)):
        first = dict(per_seed[0][k])
        for key in ("bits_per_token", "knowledge_bits", "bits_per_param", "facts_known"):
            vals = [s[k][key] for s in per_seed]
            first[key] = float(np.mean(vals))
            first[f"{key}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
        first["seeds"] = len(per_seed)
        rows.append(first)
    _io.write_csv(ctx.path("model_scaling.csv"), rows)
    alpha = b.alpha
    theory = (1 - alpha) / alpha
    bayes = bayes_learning_curve(corpus, b.n_train, b.n_test, [b.n_train])
    bayes_bits = None if bayes is None else bayes["bits_per_token"][-1]

    saturation = _saturation(ctx, seed_runs[0][1], n_pairs)
    pre, available = preconditions_for(ctx, corpus, rows, len(per_seed), saturation)

    fits: dict[str, Any] = {
        "theory_exponent": theory,
        "alpha": alpha,
        "bayes_bits": bayes_bits,
        "knowledge_available": available,
        "preconditions": precondition_rows(pre),
    }
    main_fit: FitResult | None = None
    exponent: dict[str, Any] | None = None
    if rows and bayes_bits is not None:
        x = np.array([r["params_non_embedding"] for r in rows], dtype=float)
        y = np.array([[s[k]["bits_per_token"] for k in range(len(rows))] for s in per_seed])
        if bayes_bits < y.min():
            exponent = _fit_exponent(x, y, bayes_bits, ctx.preset.n_boot, ctx.preset.seed)
            if exponent is not None:
                main_fit = exponent.pop("fit")
                fits["loss_vs_params_E_bayes"] = {**exponent, **main_fit.to_dict()}

    reference_lines: list[str] = []
    if rows:
        caps = [max(r["knowledge_bits"], 0.0) for r in rows]
        ref = capacity_reference(corpus, b.n_train, b.n_test, caps)
        if bayes_bits is not None:
            comp = reference_comparison(caps, [r["bits_per_token"] for r in rows], ref, bayes_bits)
            fits["capacity_reference"] = comp
            reference_lines.append(
                f"- capacity-limited Bayes reference L(n, C) at the measured capacities: "
                f"{', '.join(fmt(v) for v in ref)} bits/token; exponent of its excess over C "
                f"{fmt(comp['reference_exponent'])} (theory {theory:.3f})"
            )
    _io.write_json(ctx.path("fits.json"), fits)

    figures = _figures(ctx, rows, main_fit, alpha, theory)
    table = markdown_table(
        [
            "model",
            "layers x d",
            "params (non-emb.)",
            "lr (tried)",
            "test bits/token",
            "facts known",
            "knowledge bits",
            "bits/param",
        ],
        [
            [
                r["model"],
                f"{r['n_layer']} x {r['d_model']}",
                f"{r['params']:,} ({r['params_non_embedding']:,})",
                f"{fmt(r['lr'])} ({r['lrs_tried'] or 'no sweep'})",
                _with_sd(r, "bits_per_token"),
                f"{r['facts_known']:.0f} / {r['facts_total']}",
                _with_sd(r, "knowledge_bits"),
                _with_sd(r, "bits_per_param"),
            ]
            for r in rows
        ],
    )
    fit_lines = []
    if exponent is not None and main_fit is not None:
        ci = exponent["ci"]
        interval = (
            f" [{ci[0]:.3f}, {ci[1]:.3f}] (bootstrap over {exponent['seeds']} seeds)"
            if finite(ci[0])
            else " (one seed: no interval)"
        )
        fit_lines.append(
            f"- exponent of the mean excess over the Bayes loss at n_train ({fmt(bayes_bits)} "
            f"bits/token) against non-embedding parameters: **{exponent['gamma']:.3f}**{interval}"
        )
    else:
        fit_lines.append(f"- no fit ({len(rows)} finished sizes, Bayes reference {bayes_bits})")
    fit_lines.append(
        f"- knowledge in the training prefix: {available['bits_total']:.3g} bits over "
        f"{available['entities']:,} entities; learnable at >= {available['min_exposures']:g} "
        f"exposures (count >= {available['min_count']} over {available['epochs']:g} epochs): "
        f"{available['bits_learnable']:.3g} bits over {available['entities_learnable']:,} entities"
    )
    fit_lines += reference_lines
    verdict = exponent_verdict(main_fit, "gamma", theory, preconditions=pre)
    best_bpp = max((r["bits_per_param"] for r in rows), default=float("nan"))
    return Section(
        experiment="model-scaling",
        claim=CLAIM,
        setup=(
            f"{len(b.models)} model sizes ({', '.join(m.name for m in b.models)}) trained for "
            f"{b.train.epochs:g} epochs on the first {b.n_train:,} documents (alpha={alpha}, "
            f"beta={ctx.preset.corpus.beta}), {b.seeds} seed(s) (corpus and initialisation "
            "vary); learning rate per size from "
            + (
                f"a sweep over {list(b.lr_sweep)} at {b.lr_sweep_epochs:g} epochs (lowest loss "
                f"on {b.n_val} held-out documents)"
                if b.lr_sweep
                else f"no sweep (fixed {b.train.lr:g})"
            )
            + f"; test loss on the last {b.n_test:,} documents. Fact probes on "
            f"{min(b.probe_pairs, n_pairs):,} of the {n_pairs:,} (entity, attribute) pairs "
            "stated in training, each also asked about a fresh name in the same sentence: facts "
            "known and knowledge bits are the differences between the two (zero for a model "
            "that ignores the name). Fit: least squares on log-log axes of the mean excess "
            "`L(P) - E` over non-embedding parameters P, E = the exact Bayes loss at n_train."
        ),
        measured="\n".join([table, "", *fit_lines]),
        theory=(
            f"storing syntax first and entities in decreasing frequency, the excess loss at "
            f"capacity C decays as C^-((1-alpha)/alpha) = C^-{theory:.3f} for alpha={alpha}; "
            f"a model stores at most about {BITS_PER_PARAM:g} bits per parameter."
        ),
        verdict=verdict.status,
        verdict_text=verdict.text() + ".",
        figures=figures,
        files=["model_scaling.csv", "fits.json"],
        preconditions=precondition_rows(verdict.preconditions),
        headline=(
            f"exponent {fmt(exponent['gamma']) if exponent else '-'} vs {theory:.2f}; "
            f"up to {fmt(best_bpp)} knowledge bits/param"
        ),
    )


def _with_sd(r: dict[str, Any], key: str) -> str:
    sd = r.get(f"{key}_sd")
    return fmt(r[key]) + (f" +- {fmt(sd)}" if sd is not None and finite(sd) else "")


def _figures(
    ctx: ExperimentContext,
    rows: list[dict[str, Any]],
    fit: FitResult | None,
    alpha: float,
    theory: float,
) -> list[tuple[str, str]]:
    if not rows:
        return []
    figures: list[tuple[str, str]] = []
    params = [r["params_non_embedding"] for r in rows]
    plots.scaling_plot(
        ctx.path("loss_vs_params.png"),
        [
            {
                "x": params,
                "y": [r["bits_per_token"] for r in rows],
                "label": "transformer test loss (mean over seeds)",
                "fit": fit,
            }
        ],
        xlabel="non-embedding parameters",
        ylabel="test loss - E (bits/token)",
        title=f"E2: excess loss vs model size (alpha={alpha}; theory slope {theory:.2f})",
        excess=fit is not None,
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
    total = [r["params"] for r in rows]
    plots.lines_plot(
        ctx.path("knowledge_vs_params.png"),
        [
            {
                "x": total,
                "y": [max(r["knowledge_bits"], 1e-3) for r in rows],
                "label": "knowledge bits",
            },
            {
                "x": total,
                "y": [BITS_PER_PARAM * p for p in total],
                "label": f"capacity at {BITS_PER_PARAM:g} bits/param",
                "style": "k:",
            },
        ],
        xlabel="parameters",
        ylabel="bits",
        title="E2: knowledge stored vs model size",
        logx=True,
        logy=True,
    )
    figures.append(
        (
            "knowledge_vs_params.png",
            "Knowledge bits (the model's bits for the true value after a fresh name minus after "
            "the entity's name, summed over the revealed pairs) against parameters, with the "
            "2 bits/parameter line.",
        )
    )
    return figures


__all__ = ["run", "exponent_verdict", "capacity_reference", "preconditions_for"]
