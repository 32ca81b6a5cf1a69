"""E5 — hallucination: value-token predictions on the test split by entity-frequency bucket:
accuracy, confidence, the wrong-but-confident rate, a reliability diagram, and the KL of the
model's value distribution to ``H_a``; the exact Bayes predictor alongside (it answers ``H_a``
for facts it has not seen)."""

from __future__ import annotations

from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.bayes_values import bayes_value_stats
from synknow.experiments.common import (
    balanced_test_docs,
    base_runs,
    load_model,
    pick_base_model,
    seed_sweeps,
)
from synknow.experiments.context import ExperimentContext
from synknow.experiments.hallucination_parts import (
    alpha_checks,
    alpha_point,
    alpha_preconditions,
    alpha_table,
    name_checks,
    name_part_probe,
    name_preconditions,
)
from synknow.experiments.measures import (
    MIN_SEEDS,
    bayes_confidence_threshold,
    converged,
    expected_calibration_error,
    singleton_rate,
)
from synknow.experiments.probes import bucket_label, revealed_pairs, value_stats
from synknow.experiments.report import Section, fmt, markdown_table, precondition_rows
from synknow.experiments.seeds import summarise
from synknow.experiments.subverdicts import part_markdown, part_record
from synknow.experiments.verdict import Precondition, Verdict

CLAIM = (
    "For rare and unseen entities a trained model produces fluent, confident and wrong facts "
    "(factual hallucination), whereas the Bayes-optimal predictor falls back to the prior H_a."
)


def bucket_metrics(
    stats: dict[str, np.ndarray],
    value: np.ndarray,
    buckets: np.ndarray,
    confident: float,
) -> list[dict[str, Any]]:
    """Per bucket (and ``all``): accuracy (tie credit), confidence, wrong-but-confident rate,
    KL to ``H_a`` (bits), probability mass on the value pool, the excess code length over the
    prior ``-log2 H_a(value)`` and the expected calibration error of the top-1 prediction."""
    wrong = stats["argmax"] != value
    correct = (~wrong).astype(float)
    conf = stats["max_prob"] >= confident
    rows = []
    labels = [(bucket_label(v), buckets == v) for v in np.unique(buckets).tolist()]
    for label, m in [*labels, ("all", np.ones_like(buckets, dtype=bool))]:
        rows.append(
            {
                "bucket": label,
                "tokens": int(m.sum()),
                "accuracy": float(stats["credit"][m].mean()),
                "confidence": float(stats["max_prob"][m].mean()),
                "wrong_confident_rate": float((wrong & conf)[m].mean()),
                "confident_rate": float(conf[m].mean()),
                "kl_to_prior_bits": float(stats["kl_bits"][m].mean()),
                "pool_mass": float(stats["pool_mass"][m].mean()),
                "bits": float(stats["bits"][m].mean()),
                "excess_prior_bits": float((stats["bits"] - stats["prior_bits"])[m].mean()),
                "ece": expected_calibration_error(stats["max_prob"][m], correct[m]),
            }
        )
    return rows


def reliability(
    stats: dict[str, np.ndarray], value: np.ndarray, n_bins: int
) -> dict[str, list[float]]:
    """Mean confidence, accuracy (top-1 correct) and count per confidence bin; ``ece`` the
    expected calibration error."""
    conf = stats["max_prob"]
    correct = (stats["argmax"] == value).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges) - 1, 0, n_bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    ece = 0.0
    for i in range(n_bins):
        m = idx == i
        c = int(m.sum())
        out["count"].append(c)
        out["confidence"].append(float(conf[m].mean()) if c else float("nan"))
        out["accuracy"].append(float(correct[m].mean()) if c else float("nan"))
        if c:
            ece += c / len(conf) * abs(out["confidence"][-1] - out["accuracy"][-1])
    out["ece"] = [ece]
    return out


def fact_singleton_rate(corpus: Any, n_train: int) -> float:
    """The monofact rate of the training split: the share of (entity, attribute) statements
    whose pair is stated exactly once."""
    a_count = corpus.config.n_attributes
    m = corpus.sentence_attribute.shape[1]
    ent = np.repeat(np.asarray(corpus.doc_entity[:n_train], dtype=np.int64), m)
    attr = np.asarray(corpus.sentence_attribute[:n_train], dtype=np.int64).reshape(-1)
    _, counts = np.unique(ent * a_count + attr, return_counts=True)
    return singleton_rate(counts)


def _measure_seed(
    ctx: ExperimentContext, seed: int, prefix: str, runs: dict[str, Any], name: str
) -> dict[str, Any]:
    """One seed: its model and the Bayes predictor on the balanced held-out set."""
    b = ctx.preset.base
    settings = ctx.preset.hallucination
    corpus, docs, tokens = balanced_test_docs(
        ctx, seed, settings.min_bucket_tokens, settings.candidate_docs
    )
    model = load_model(ctx.shared_dir / "runs" / f"{prefix}-{name}", corpus, ctx.preset.device)
    targets, bayes = bayes_value_stats(corpus, b.n_train, docs)
    ours = value_stats(model, targets)
    ent, att = revealed_pairs(corpus, b.n_train)
    a_count = corpus.config.n_attributes
    revealed = np.isin(targets.entity * a_count + targets.attribute, ent * a_count + att)
    threshold = (
        bayes_confidence_threshold(bayes["max_prob"], revealed)
        if revealed.any() and not revealed.all()
        else settings.confident
    )
    buckets = targets.bucket
    ok, change = converged([rec["bits_per_token"] for rec in runs[name]["records"]])
    try:
        names = name_part_probe(model, corpus, b.n_train, settings.name_probe_entities, seed)
    except ValueError as e:  # the name space leaves too few unused names of a group
        ctx.log(f"name-part probe skipped for seed {seed}: {e}")
        names = None
    return {
        "names": names,
        "seed": seed,
        "docs": len(docs),
        "tokens": tokens,
        "threshold": threshold,
        "bayes_confident_on_known": float((bayes["max_prob"][revealed] >= threshold).mean())
        if revealed.any()
        else 0.0,
        "singleton_rate": fact_singleton_rate(corpus, b.n_train),
        "converged": ok,
        "loss_change": change,
        "model": bucket_metrics(ours, targets.value, buckets, threshold),
        "bayes": bucket_metrics(bayes, targets.value, buckets, threshold),
        "targets": targets,
        "ours": ours,
        "bayes_stats": bayes,
    }


def _e1_corpus(ctx: ExperimentContext, alpha: float, seed: int) -> tuple[Any, np.ndarray]:
    """E1's corpus of ``alpha`` and ``seed`` (sampling is sequential, so its first documents are
    E1's) with held-out documents past E1's training and validation documents; fewer where the
    configuration's name space allows fewer documents."""
    import synknow
    from synknow.experiments.data_scaling import corpus_family

    s = ctx.preset.data_scaling
    start = s.n_train + s.n_val
    held = max(1, ctx.preset.hallucination.alpha_heldout_docs)
    config = corpus_family(ctx).config(alpha, seed)
    while True:
        try:
            return synknow.sample(config, start + held, seed=seed), np.arange(start, start + held)
        except ValueError:
            if held <= 1:
                raise
            held //= 2


def _alpha_points(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """E5 across alpha on E1's corpora: the Bayes predictor everywhere, E1's transformer of the
    full training prefix where E1 kept it (its run directory in this output directory)."""
    from synknow.experiments.data_scaling import corpus_seeds, model_sizes

    s = ctx.preset.data_scaling
    n_full = model_sizes(s)[-1]
    points = []
    for i, alpha in enumerate(s.alphas):
        for j, seed in enumerate(corpus_seeds(ctx, i)[: s.model_seeds]):
            corpus, docs = _e1_corpus(ctx, alpha, seed)
            run_dir = ctx.out / "data-scaling" / "runs" / f"model-alpha{alpha}-seed{j}-n{n_full}"
            model, conv = None, None
            if (run_dir / "done.json").is_file():
                model = load_model(run_dir, corpus, ctx.preset.device)
                conv = _io.read_json(run_dir / "done.json")["result"].get("converged")
            ctx.log(f"alpha sweep: alpha={alpha}, corpus {j + 1}")
            point = alpha_point(
                corpus,
                s.n_train,
                docs,
                fact_singleton_rate(corpus, s.n_train),
                model,
                ctx.preset.hallucination.confident,
            )
            points.append({"alpha": alpha, "seed_index": j, "model_converged": conv, **point})
    return points


def _parts(ctx: ExperimentContext, per_seed: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The alpha sweep and the name-part control: their text and their record."""
    points = _alpha_points(ctx)
    a_checks, a_text = alpha_checks(points)
    a_verdict = Verdict.from_checks(
        a_checks, reason=a_text, preconditions=alpha_preconditions(points)
    )
    names = [s["names"] for s in per_seed if s.get("names") is not None]
    n_checks, n_text = name_checks(names)
    n_pre = name_preconditions(names)
    n_verdict = Verdict.from_checks(n_checks, reason=n_text, preconditions=n_pre)
    text = "\n\n".join(
        [
            "Across alpha (E1's corpora; confident = above the Bayes predictor's largest top "
            "probability on unstated facts of that corpus):",
            alpha_table(points),
            part_markdown("Confident errors against the singleton rate", a_verdict),
            part_markdown("Unseen names with and without shared name parts", n_verdict),
        ]
    )
    record = {
        "alpha_sweep": {"points": points, "verdict": part_record(a_verdict)},
        "name_parts": {"seeds": names, "verdict": part_record(n_verdict)},
    }
    return text, record


def _row(rows: list[dict[str, Any]], label: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["bucket"] == label), None)


def preconditions_for(per_seed: list[dict[str, Any]], min_tokens: int) -> list[Precondition]:
    """Seeds, value tokens in the thinnest bucket, converged runs, and a confidence threshold
    the Bayes predictor reaches on what it knows."""
    thinnest = min(
        ((v, k, s["seed"]) for s in per_seed for k, v in s["tokens"].items()),
        default=(0, -1, -1),
    )
    worst = max(per_seed, key=lambda s: s["loss_change"] if np.isfinite(s["loss_change"]) else 9)
    return [
        Precondition.at_least("seeds (corpus and init)", len(per_seed), MIN_SEEDS),
        Precondition(
            "value tokens in the thinnest frequency bucket",
            f"{thinnest[0]} (bucket {bucket_label(thinnest[1])}, seed {thinnest[2]})",
            f">= {min_tokens}",
            thinnest[0] >= min_tokens,
        ),
        Precondition(
            "runs converged (loss change over the last two evaluations)",
            f"{worst['loss_change']:.1%} (largest over seeds)",
            "< 2% in every seed",
            all(s["converged"] for s in per_seed),
        ),
        Precondition.at_least(
            "Bayes predictor confident on the facts it knows (share)",
            round(min(s["bayes_confident_on_known"] for s in per_seed), 3),
            0.5,
        ),
    ]


def _across(per_seed: list[dict[str, Any]], who: str, label: str, key: str) -> Any:
    vals = [r[key] for s in per_seed if (r := _row(s[who], label)) is not None]
    vals = [v for v in vals if np.isfinite(v)]
    return summarise(vals) if vals else None


def _verdict(per_seed: list[dict[str, Any]], pre: list[Precondition]) -> tuple[Verdict, str]:
    unseen = {
        (who, key): _across(per_seed, who, "0", key)
        for who in ("model", "bayes")
        for key in ("wrong_confident_rate", "excess_prior_bits", "ece", "kl_to_prior_bits")
    }
    if unseen[("model", "wrong_confident_rate")] is None:
        return Verdict.from_checks({}, reason="The test set has no unseen entities"), ""
    mw, bw = unseen[("model", "wrong_confident_rate")], unseen[("bayes", "wrong_confident_rate")]
    me, be = unseen[("model", "ece")], unseen[("bayes", "ece")]
    mx = unseen[("model", "excess_prior_bits")]
    lower = mw.ci[0] if mw.n >= 2 else mw.mean
    checks = {
        "unseen: confidently wrong more often than the Bayes predictor": bool(
            lower > bw.mean + 0.01
        ),
        "unseen: code length above the prior's (excess > 0.1 bits)": bool(mx.mean > 0.1),
        "unseen: worse calibrated than the Bayes predictor (ECE)": bool(me.mean > be.mean),
    }
    sing = summarise([s["singleton_rate"] for s in per_seed])
    why = (
        f"Unseen entities: wrong and confident {mw.describe()} vs Bayes {bw.describe()}; "
        f"excess code length over the prior {mx.describe()} bits; ECE {me.describe()} vs Bayes "
        f"{be.describe()}; singleton (monofact) rate of the training facts {sing.describe()}"
    )
    return Verdict.from_checks(checks, preconditions=pre, reason=why), (
        f"unseen: wrong&confident {fmt(mw.mean)} (Bayes {fmt(bw.mean)}), excess {fmt(mx.mean)} bits"
    )


def run(ctx: ExperimentContext) -> Section:
    b = ctx.preset.base
    settings = ctx.preset.hallucination
    runs = base_runs(ctx)
    name = pick_base_model(ctx, runs, settings.model)
    if name is None:
        raise RuntimeError("no base model finished training; nothing to evaluate")
    per_seed = [
        _measure_seed(ctx, seed, prefix, seed_runs, name)
        for seed, prefix, seed_runs in seed_sweeps(ctx, name)
        if name in seed_runs
    ]
    first = per_seed[0]
    targets, ours, bayes = first["targets"], first["ours"], first["bayes_stats"]
    model_rows, bayes_rows = first["model"], first["bayes"]
    rows = [
        {"seed": s["seed"], "predictor": who, **r}
        for s in per_seed
        for who, key in ((f"transformer {name}", "model"), ("Bayes", "bayes"))
        for r in s[key]
    ]
    _io.write_csv(ctx.path("hallucination_by_bucket.csv"), rows)
    buckets = targets.bucket
    per_token = {
        "bucket": buckets,
        "count": targets.count,
        "attribute": targets.attribute,
        "value": targets.value,
        **{f"model_{k}": v for k, v in ours.items()},
        **{f"bayes_{k}": v for k, v in bayes.items()},
    }
    _io.write_csv(
        ctx.path("value_predictions.csv"),
        [{k: v[i] for k, v in per_token.items()} for i in range(len(targets))],
    )
    rel_model = reliability(ours, targets.value, settings.reliability_bins)
    rel_bayes = reliability(bayes, targets.value, settings.reliability_bins)
    pre = preconditions_for(per_seed, settings.min_bucket_tokens)
    verdict, headline = _verdict(per_seed, pre)
    parts_text, parts_record = _parts(ctx, per_seed)
    _io.write_json(ctx.path("parts.json"), parts_record)
    _io.write_json(
        ctx.path("fits.json"),
        {
            "model": name,
            "confident_thresholds": [s["threshold"] for s in per_seed],
            "singleton_rates": [s["singleton_rate"] for s in per_seed],
            "tokens_per_bucket": [
                {bucket_label(k): v for k, v in s["tokens"].items()} for s in per_seed
            ],
            "reliability_model": rel_model,
            "reliability_bayes": rel_bayes,
            "preconditions": precondition_rows(pre),
        },
    )
    threshold = first["threshold"]
    labels = [r["bucket"] for r in model_rows if r["bucket"] != "all"]

    def col(rs: list[dict[str, Any]], key: str) -> list[float]:
        return [r[key] for r in rs if r["bucket"] != "all"]

    plots.bucket_bars_plot(
        ctx.path("hallucination_by_bucket.png"),
        labels,
        [
            {
                "title": "accuracy",
                "bars": {name: col(model_rows, "accuracy"), "Bayes": col(bayes_rows, "accuracy")},
                "ylim": (0, 1),
            },
            {
                "title": "confidence (top prob.)",
                "bars": {
                    name: col(model_rows, "confidence"),
                    "Bayes": col(bayes_rows, "confidence"),
                },
                "ylim": (0, 1),
            },
            {
                "title": f"wrong and confident (>= {threshold:.3g})",
                "bars": {
                    name: col(model_rows, "wrong_confident_rate"),
                    "Bayes": col(bayes_rows, "wrong_confident_rate"),
                },
                "ylim": (0, 1),
            },
            {
                "title": "KL(value dist. || H_a), bits",
                "bars": {
                    name: col(model_rows, "kl_to_prior_bits"),
                    "Bayes": col(bayes_rows, "kl_to_prior_bits"),
                },
            },
        ],
        title=f"E5: value predictions on test documents by entity frequency ({name})",
    )
    plots.reliability_plot(
        ctx.path("reliability.png"),
        [
            {"label": f"{name} (ECE {rel_model['ece'][0]:.3f})", **rel_model},
            {"label": f"Bayes (ECE {rel_bayes['ece'][0]:.3f})", **rel_bayes},
        ],
        title="E5: reliability of value predictions",
    )
    figures = [
        (
            "hallucination_by_bucket.png",
            "Accuracy, confidence, wrong-but-confident rate and KL to the prior H_a of value "
            "predictions, by the entity's training frequency; transformer vs the Bayes predictor.",
        ),
        ("reliability.png", "Reliability diagram of value predictions (all test value tokens)."),
    ]
    table_rows = []
    for m_row, b_row in zip(model_rows, bayes_rows, strict=True):
        table_rows.append(
            [
                m_row["bucket"],
                m_row["tokens"],
                f"{fmt(m_row['accuracy'])} / {fmt(b_row['accuracy'])}",
                f"{fmt(m_row['confidence'])} / {fmt(b_row['confidence'])}",
                f"{fmt(m_row['wrong_confident_rate'])} / {fmt(b_row['wrong_confident_rate'])}",
                f"{fmt(m_row['excess_prior_bits'])} / {fmt(b_row['excess_prior_bits'])}",
                f"{fmt(m_row['ece'])} / {fmt(b_row['ece'])}",
                f"{fmt(m_row['kl_to_prior_bits'])} / {fmt(b_row['kl_to_prior_bits'])}",
            ]
        )
    table = markdown_table(
        [
            "bucket",
            "value tokens",
            "accuracy (model / Bayes)",
            "confidence",
            "wrong & confident",
            "excess over prior (bits)",
            "ECE",
            "KL to H_a (bits)",
        ],
        table_rows,
    )
    return Section(
        experiment="hallucination",
        claim=CLAIM,
        setup=(
            f"The {name} base model ({runs[name]['params']:,} parameters) on {len(per_seed)} "
            f"seed(s) (corpus and initialisation), and the exact Bayes predictor given the same "
            f"{b.n_train:,} training documents, on every value token of a held-out set balanced "
            f"by construction: documents past the training split are taken, in order from "
            f"{settings.candidate_docs:,} candidates, while some frequency bucket holds fewer "
            f"than {settings.min_bucket_tokens} value tokens. Confident = top probability above "
            "the Bayes predictor's largest top probability on facts not stated in training "
            f"(its prior H_a; {threshold:.3g} on the first seed): more than the prior warrants, "
            "and reached by the Bayes predictor on the facts it knows. Excess over prior = code "
            "length of the true value minus -log2 H_a(value); ECE over 10 confidence bins of "
            "the top-1 prediction. The table shows the first seed; the verdict uses every seed. "
            "Across alpha: E1's corpora and, where E1 kept them, its transformers trained on "
            f"the full prefix, on {settings.alpha_heldout_docs:,} held-out documents each. "
            f"Name parts: {settings.name_probe_entities} unseen names per group and seed, made "
            "from a seen name with one part replaced, or sharing as few parts as the corpus "
            "allows with any single seen entity; every attribute, values drawn from H_a."
        ),
        measured=table + f"\n\nExpected calibration error (all tokens, first seed): model "
        f"{fmt(rel_model['ece'][0])}, Bayes {fmt(rel_bayes['ece'][0])}.\n\n" + parts_text,
        theory=(
            "the Bayes predictor knows every stated fact and predicts exactly H_a for an unseen "
            "entity or unstated attribute: excess code length 0 and KL 0 there, and it is "
            "calibrated. A calibrated predictor still errs confidently on about the singleton "
            "rate of new queries (the monofact bound)."
        ),
        verdict=verdict.status,
        verdict_text=verdict.text() + ".",
        figures=figures,
        files=["hallucination_by_bucket.csv", "value_predictions.csv", "parts.json", "fits.json"],
        headline=headline or "no unseen entities",
        preconditions=precondition_rows(verdict.preconditions),
    )
