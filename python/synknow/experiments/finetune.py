"""E4 — fine-tuning: (a) inject new entities stated in ``r`` documents each, with and without
replay of pre-training documents, and measure how much of the new knowledge is acquired and how
much old knowledge is forgotten, by frequency bucket; (b) teach a new question-answer format and
measure how fast the format is learned and whether known facts can be retrieved through it.

The QA format (docs/model.md#qa-probes) is ``What is the <attr> of [NAME] ? [VALUE] END``. Its words
are
looked up in the corpus vocabulary; words it lacks (with the procedural preset: all of them) are
appended as new tokens, with embedding rows initialised at the mean embedding plus small noise
(the output head is tied, so it grows with them). One new token per attribute names the
attribute. Nothing else in the model changes.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synknow import plots_experiments as plots
from synknow.experiments import _io
from synknow.experiments.common import base_corpus, base_runs, load_model, pick_base_model
from synknow.experiments.context import ExperimentContext
from synknow.experiments.presets import FinetuneSettings
from synknow.experiments.probes import (
    ValueTargets,
    fact_probes,
    pad_rows,
    render_sentence,
    sentence_probes,
    value_stats,
)
from synknow.experiments.report import Section, fmt, markdown_table, precondition_rows
from synknow.experiments.subverdicts import part_markdown, part_record
from synknow.experiments.verdict import Precondition, Verdict
from synknow.tokens import BOS, EOS, IGNORE, bucket_label

CLAIM = (
    "Knowledge injected by fine-tuning is acquired only after enough repetitions; fine-tuning "
    "makes the model forget rare knowledge first (replay of pre-training data protects it); a new "
    "format, by contrast, is learned within a few steps."
)
QA_WORDS = ("what", "is", "the", "of", "?")


# ------------------------------------------------------------------------------------------------
# Data


def new_entities(corpus: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` entities absent from the corpus: unused names, values drawn from ``H_a``."""
    g = corpus.grammar
    used = {tuple(r) for r in np.asarray(corpus.entity_names).tolist()}
    names: list[tuple[int, ...]] = []
    while len(names) < n:
        name = tuple(
            int(start + rng.integers(size))
            for start, size in zip(g["name_start"], g["name_size"], strict=True)
        )
        if name not in used:
            used.add(name)
            names.append(name)
    pools = corpus.config.attribute_pool
    values = np.zeros((n, corpus.config.n_attributes), dtype=np.int64)
    for a, lh in enumerate(g["value_log_prob"]):
        h = np.exp(np.asarray(lh, dtype=np.float64))
        values[:, a] = g["pool_start"][pools[a]] + rng.choice(len(h), size=n, p=h / h.sum())
    return np.asarray(names, dtype=np.int64), values


def render_documents(
    corpus: Any, names: np.ndarray, values: np.ndarray, repeats: int, rng: np.random.Generator
) -> list[list[int]]:
    """``repeats`` documents per entity, drawn like the corpus's own (docs/model.md#documents): a
    random
    attribute order (or the fixed one) and templates from ``theta``."""
    cfg = corpus.config
    m = cfg.m
    skeletons = corpus.grammar["skeletons"]
    theta = corpus.theta
    docs = []
    for _ in range(repeats):
        for name, vals in zip(names, values, strict=True):
            if cfg.attribute_order == "shuffled":
                attrs = rng.permutation(cfg.n_attributes)[:m]
            else:
                attrs = np.arange(m)
            toks = [BOS]
            for a in attrs.tolist():
                t = int(rng.choice(len(theta[a]), p=theta[a] / theta[a].sum()))
                toks += render_sentence(skeletons[a][t], name, int(vals[a]))[0]
            docs.append([*toks, EOS])
    return docs


def corpus_documents(corpus: Any, docs: np.ndarray) -> list[list[int]]:
    off = np.asarray(corpus.doc_offsets, dtype=np.int64)
    return [np.asarray(corpus.tokens[off[d] : off[d + 1]]).tolist() for d in docs.tolist()]


# ------------------------------------------------------------------------------------------------
# Training


def lm_loss(model: Any, rows: list[list[int]], device: Any) -> Any:
    """Mean next-token loss (nats) of one padded batch of documents, one per row."""
    import torch

    tokens = torch.from_numpy(pad_rows(rows)).to(device)
    targets = torch.full_like(tokens, IGNORE)
    for i, r in enumerate(rows):
        targets[i, : len(r) - 1] = tokens[i, 1 : len(r)]
    return model.loss(model(tokens), targets)


def finetune(
    model: Any,
    batches: Iterable[list[list[int]]],
    lr: float,
    *,
    on_step: Any = None,
    warmup_steps: int = 0,
    decay_steps: int = 0,
) -> list[float]:
    """Plain AdamW (no weight decay) over the given batches at ``lr``, reached linearly over
    ``warmup_steps`` (0: constant from the first step) and, with ``decay_steps``, decayed along
    a cosine to the pre-training schedule's ``min_lr_ratio`` x ``lr`` at that step (as the
    trainer does, docs/training.md); returns the loss per step. ``on_step(step)`` is called
    after each step (and with 0 before the first)."""
    import torch

    from synknow.train.config import OptimConfig

    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    model.train()
    losses = []
    if on_step is not None:
        on_step(0)
    floor = OptimConfig().min_lr_ratio
    for i, rows in enumerate(batches):
        if warmup_steps > 0 or decay_steps > 0:
            rate = lr * min(1.0, (i + 1) / warmup_steps) if warmup_steps > 0 else lr
            if decay_steps > 0:
                t = min(1.0, i / decay_steps)
                rate *= floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
            for group in opt.param_groups:
                group["lr"] = rate
        loss = lm_loss(model, rows, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item() / math.log(2))
        if on_step is not None:
            model.eval()
            on_step(i + 1)
            model.train()
    model.eval()
    return losses


def extend_vocabulary(model: Any, n_new: int, seed: int) -> Any:
    """A copy of ``model`` with ``n_new`` extra tokens (rows at the mean embedding + noise)."""
    import dataclasses

    import torch
    from torch import nn

    model = copy.deepcopy(model)
    old = model.tok_emb.weight.data
    v, d = old.shape
    gen = torch.Generator().manual_seed(seed)
    emb = nn.Embedding(v + n_new, d).to(old.device)
    with torch.no_grad():
        emb.weight[:v] = old
        noise = torch.randn(n_new, d, generator=gen).to(old.device) * old.std() * 0.1
        emb.weight[v:] = old.mean(0, keepdim=True) + noise
    tied = model.lm_head.weight is model.tok_emb.weight
    model.tok_emb = emb
    if tied:
        model.lm_head = nn.Linear(d, v + n_new, bias=False).to(old.device)
        model.lm_head.weight = model.tok_emb.weight
    else:
        head = nn.Linear(d, v + n_new, bias=False).to(old.device)
        with torch.no_grad():
            head.weight[:v] = model.lm_head.weight
            head.weight[v:] = 0.0
        model.lm_head = head
    model.config = dataclasses.replace(model.config, vocab_size=v + n_new)
    return model


# ------------------------------------------------------------------------------------------------
# QA format


class QAFormat:
    """Token ids of the QA template words and one token per attribute; ``added`` lists the
    words appended to the vocabulary."""

    def __init__(self, corpus: Any):
        strings = list(corpus.vocab.strings)
        index = {s: i for i, s in enumerate(strings)}
        v = len(strings)
        self.added: list[str] = []
        self.ids: dict[str, int] = {}
        for w in QA_WORDS:
            if w in index and index[w] in corpus.vocab.syntax_range:
                self.ids[w] = index[w]
            else:
                self.ids[w] = v + len(self.added)
                self.added.append(w)
        names = corpus.grammar["attribute_names"]
        self.attr_ids = []
        for a in range(corpus.config.n_attributes):
            self.attr_ids.append(v + len(self.added))
            self.added.append(f"<{names[a]}>")
        self.reused = [w for w in QA_WORDS if w not in self.added]
        self.end = 3  # END (".") is the first syntax word (docs/model.md#vocabulary)

    def sequence(self, attribute: int, name: np.ndarray, value: int) -> tuple[list[int], int]:
        """``BOS what is the <attr> of NAME ? VALUE END EOS`` and the value's index."""
        w = self.ids
        head = [BOS, w["what"], w["is"], w["the"], self.attr_ids[attribute], w["of"]]
        toks = head + [int(t) for t in name] + [w["?"]]
        return [*toks, int(value), self.end, EOS], len(toks)

    def format_positions(self, seq: list[int]) -> list[int]:
        """Target positions whose token is fixed by the format (not the attribute, name or
        value): the question words, ``?``, ``END`` and ``EOS``."""
        fixed = {*self.ids.values(), self.end, EOS}
        attr = set(self.attr_ids)
        return [i for i in range(1, len(seq)) if seq[i] in fixed and seq[i] not in attr]


def qa_evaluate(
    model: Any, qa: QAFormat, seqs: list[list[int]], value_at: list[int], values: list[int]
) -> dict[str, float]:
    """Format loss (bits per format token) and answer accuracy (tie credit) on QA examples."""
    import torch

    device = next(model.parameters()).device
    tokens = torch.from_numpy(pad_rows(seqs)).to(device)
    with torch.no_grad():
        hidden = model(tokens)
        fmt_bits = []
        credit = []
        for i, seq in enumerate(seqs):
            pos = qa.format_positions(seq)
            logits = model.logits(hidden[i, [p - 1 for p in pos]]).double()
            logp = torch.log_softmax(logits, dim=-1)
            tgt = torch.tensor([seq[p] for p in pos], device=device)
            fmt_bits.append(float(-logp.gather(1, tgt[:, None]).mean()) / math.log(2))
            z = model.logits(hidden[i, value_at[i] - 1]).double()
            tied = z == z.max()
            credit.append(float(tied[values[i]]) / float(tied.sum()))
    return {"format_bits": float(np.mean(fmt_bits)), "answer_accuracy": float(np.mean(credit))}


# ------------------------------------------------------------------------------------------------
# The experiment


def _bucket_accuracy(stats: dict[str, np.ndarray], buckets: np.ndarray) -> dict[str, float]:
    return {
        bucket_label(v): float(stats["credit"][buckets == v].mean())
        for v in np.unique(buckets).tolist()
    }


@dataclass
class _Setup:
    """The base model, the probes of old and new facts, and their accuracy before fine-tuning."""

    name: str
    corpus: Any
    base: Any
    seed: int
    old_probes: ValueTargets
    before: dict[str, np.ndarray]
    before_by_bucket: dict[str, float]
    names: np.ndarray  # the injected entities' names and values
    values: np.ndarray
    new_probes: ValueTargets
    new_before: dict[str, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return sorted(self.before_by_bucket, key=lambda x: int(x.split("-")[0]))


def _prepare(ctx: ExperimentContext) -> _Setup:
    b = ctx.preset.base
    s = ctx.preset.finetune
    runs = base_runs(ctx)
    name = pick_base_model(ctx, runs, s.model)
    if name is None:
        raise RuntimeError("no base model finished training; nothing to fine-tune")
    corpus = base_corpus(ctx)
    base = load_model(ctx.shared_dir / "runs" / f"base-{name}", corpus, ctx.preset.device)
    seed = ctx.preset.seed
    old_probes = fact_probes(corpus, b.n_train, max_pairs=min(b.probe_pairs, 1500), seed=seed + 1)
    before = value_stats(base, old_probes)
    rng = np.random.default_rng([seed, 4])
    names, values = new_entities(corpus, s.n_new, rng)
    a_count = corpus.config.n_attributes
    n_probe_templates = 3
    inj_attr = np.tile(np.repeat(np.arange(a_count), n_probe_templates), s.n_new)
    inj_ent = np.repeat(np.arange(s.n_new), a_count * n_probe_templates)
    new_probes = sentence_probes(
        corpus,
        names[inj_ent],
        values[inj_ent, inj_attr],
        inj_attr,
        inj_ent,
        np.zeros(len(inj_ent), dtype=np.int64),
        np.random.default_rng([seed, 5]),
    )
    return _Setup(
        name=name,
        corpus=corpus,
        base=base,
        seed=seed,
        old_probes=old_probes,
        before=before,
        before_by_bucket=_bucket_accuracy(before, old_probes.bucket),
        names=names,
        values=values,
        new_probes=new_probes,
        new_before=value_stats(base, new_probes),
    )


def _injection_batches(
    setup: _Setup, s: FinetuneSettings, n_train: int, r: int, replay: bool
) -> list[list[list[int]]]:
    """One pass over ``r`` documents per new entity; with replay, each batch is topped up with
    pre-training documents."""
    rng_r = np.random.default_rng([setup.seed, 6, r, int(replay)])
    docs = render_documents(setup.corpus, setup.names, setup.values, r, rng_r)
    order = rng_r.permutation(len(docs))
    new_per_batch = max(1, round(s.batch_size * (1 - s.replay))) if replay else s.batch_size
    n_steps = min(s.max_steps, math.ceil(len(docs) / new_per_batch))
    batches = []
    for i in range(n_steps):
        sel = order[i * new_per_batch : (i + 1) * new_per_batch]
        rows = [docs[j] for j in sel]
        if replay:
            old = rng_r.integers(0, n_train, size=s.batch_size - len(rows))
            rows += corpus_documents(setup.corpus, old)
        batches.append(rows)
    return batches


def _injection_run(
    setup: _Setup, s: FinetuneSettings, n_train: int, r: int, replay: bool, run_dir: Any
) -> dict[str, Any]:
    batches = _injection_batches(setup, s, n_train, r, replay)
    model = copy.deepcopy(setup.base)
    losses = finetune(model, batches, s.lr)
    new_after = value_stats(model, setup.new_probes)
    old_after = value_stats(model, setup.old_probes)
    return {
        "repetitions": r,
        "replay": replay,
        "steps": len(batches),
        "new_docs": r * len(setup.names),
        "final_loss_bits": losses[-1] if losses else None,
        "new_accuracy": float(new_after["credit"].mean()),
        "new_bits": float(new_after["bits"].mean()),
        "old_accuracy": float(old_after["credit"].mean()),
        "old_by_bucket": _bucket_accuracy(old_after, setup.old_probes.bucket),
    }


def _injection_runs(ctx: ExperimentContext, setup: _Setup) -> list[dict[str, Any]]:
    """(a) Knowledge injection: one run per repetition count, with and without replay."""
    s = ctx.preset.finetune
    rows: list[dict[str, Any]] = []
    for r in s.repetitions:
        for replay in (False, True):
            tag = f"inject-r{r}-{'replay' if replay else 'plain'}"
            ctx.log(f"injection r={r} {'with' if replay else 'without'} replay")
            fn = functools.partial(_injection_run, setup, s, ctx.preset.base.n_train, r, replay)
            res = ctx.run(tag, fn)
            if res is not None:
                rows.append(res)
    return rows


def _qa_examples(
    setup: _Setup, qa: QAFormat, ix: np.ndarray
) -> tuple[list[list[int]], list[int], list[int]]:
    """QA sequences, value positions and values for the old probes ``ix``."""
    probes = setup.old_probes
    names_all = np.asarray(setup.corpus.entity_names, dtype=np.int64)
    seqs, at, vals = [], [], []
    for i in ix.tolist():
        k, a = int(probes.entity[i]), int(probes.attribute[i])
        seq, pos = qa.sequence(a, names_all[k], int(probes.value[i]))
        seqs.append(seq)
        at.append(pos)
        vals.append(int(probes.value[i]))
    return seqs, at, vals


def _qa_run(
    setup: _Setup,
    s: FinetuneSettings,
    qa: QAFormat,
    train_ix: np.ndarray,
    test_ix: np.ndarray,
    run_dir: Any,
) -> dict[str, Any]:
    train_seqs, _, _ = _qa_examples(setup, qa, train_ix)
    test_seqs, test_at, test_vals = _qa_examples(setup, qa, test_ix)
    model = extend_vocabulary(setup.base, len(qa.added), setup.seed)
    rng_b = np.random.default_rng([setup.seed, 8])
    batches = [
        [train_seqs[j] for j in rng_b.integers(0, len(train_seqs), size=s.batch_size)]
        for _ in range(s.qa_steps)
    ]
    curve: list[dict[str, Any]] = []

    def on_step(step: int) -> None:
        if step % s.qa_eval_every == 0 or step == len(batches):
            curve.append({"step": step, **qa_evaluate(model, qa, test_seqs, test_at, test_vals)})

    finetune(model, batches, s.lr, on_step=on_step)
    return {
        "curve": curve,
        "added_tokens": qa.added,
        "reused_tokens": qa.reused,
        "train_pairs": len(train_ix),
        "test_pairs": len(test_ix),
        "original_format_accuracy": float(setup.before["credit"][test_ix].mean())
        if len(test_ix)
        else None,
    }


def _qa_format(ctx: ExperimentContext, setup: _Setup) -> dict[str, Any] | None:
    """(b) The QA format, learned on facts of entities seen at least twice, evaluated on
    held-out ones."""
    s = ctx.preset.finetune
    qa = QAFormat(setup.corpus)
    counts = setup.corpus.entity_counts_at(ctx.preset.base.n_train)
    frequent = np.flatnonzero(counts[setup.old_probes.entity] >= 2)
    pick = np.random.default_rng([setup.seed, 7]).permutation(frequent)
    train_ix, test_ix = pick[: s.qa_train], pick[s.qa_train : s.qa_train + s.qa_test]
    ctx.log("QA format fine-tuning")
    if not (len(test_ix) and len(train_ix)):
        return None
    return ctx.run("qa-format", functools.partial(_qa_run, setup, s, qa, train_ix, test_ix))


def _write_outputs(
    ctx: ExperimentContext,
    setup: _Setup,
    inject_rows: list[dict[str, Any]],
    qa_res: dict[str, Any] | None,
) -> None:
    _io.write_csv(
        ctx.path("injection.csv"),
        [{k: v for k, v in r.items() if k != "old_by_bucket"} for r in inject_rows],
    )
    before = setup.before_by_bucket
    forget_rows = [
        {
            "repetitions": r["repetitions"],
            "replay": r["replay"],
            "bucket": lab,
            "accuracy_before": before[lab],
            "accuracy_after": r["old_by_bucket"].get(lab),
            "forgotten": before[lab] - (r["old_by_bucket"].get(lab) or 0.0),
        }
        for r in inject_rows
        for lab in setup.labels
    ]
    _io.write_csv(ctx.path("forgetting_by_bucket.csv"), forget_rows)
    if qa_res is not None:
        _io.write_csv(ctx.path("qa_format_curve.csv"), qa_res["curve"])
    _io.write_json(
        ctx.path("fits.json"),
        {
            "base_model": setup.name,
            "new_entities_accuracy_before": float(setup.new_before["credit"].mean()),
            "old_accuracy_before_by_bucket": before,
            "injection": inject_rows,
            "qa": qa_res,
        },
    )


def _injection_figures(
    ctx: ExperimentContext, setup: _Setup, inject_rows: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    s = ctx.preset.finetune
    series = []
    for replay in (False, True):
        rs = [r for r in inject_rows if r["replay"] == replay]
        x = [r["repetitions"] for r in rs]
        tag = "with" if replay else "no"
        series.append(
            {"x": x, "y": [r["new_accuracy"] for r in rs], "label": f"new facts, {tag} replay"}
        )
        series.append(
            {
                "x": x,
                "y": [r["old_accuracy"] for r in rs],
                "label": f"old facts, {tag} replay",
                "style": "s--",
            }
        )
    series.append(
        {
            "x": [min(s.repetitions), max(s.repetitions)],
            "y": [float(setup.new_before["credit"].mean())] * 2,
            "label": "new facts before fine-tuning",
            "style": "k:",
        }
    )
    plots.lines_plot(
        ctx.path("injection.png"),
        series,
        xlabel="repetitions r of each new entity's document",
        ylabel="knowledge accuracy (probes)",
        title=f"E4: knowledge injection into {setup.name}",
        logx=True,
        ylim=(0, 1.02),
    )
    labels = setup.labels
    panels = []
    for replay in (False, True):
        bars = {"before": [setup.before_by_bucket[lab] for lab in labels]}
        for r in inject_rows:
            if r["replay"] == replay:
                bars[f"r={r['repetitions']}"] = [
                    r["old_by_bucket"].get(lab, np.nan) for lab in labels
                ]
        panels.append(
            {"title": f"{'with' if replay else 'without'} replay", "bars": bars, "ylim": (0, 1)}
        )
    plots.bucket_bars_plot(
        ctx.path("forgetting_by_bucket.png"),
        labels,
        panels,
        title="E4: pre-training knowledge after injection, by entity frequency",
    )
    return [
        (
            "injection.png",
            "Accuracy on the injected facts and on pre-training facts after "
            "fine-tuning, vs repetitions, with and without replay.",
        ),
        (
            "forgetting_by_bucket.png",
            "Accuracy on pre-training facts by frequency bucket "
            "before and after each injection run.",
        ),
    ]


def _qa_figure(ctx: ExperimentContext, qa_res: dict[str, Any]) -> tuple[str, str]:
    c = qa_res["curve"]
    steps = [p["step"] for p in c]
    plots.lines_plot(
        ctx.path("qa_format.png"),
        [
            {"x": steps, "y": [p["format_bits"] for p in c], "label": "format tokens (bits/token)"},
            {
                "x": steps,
                "y": [p["answer_accuracy"] for p in c],
                "label": "answer accuracy (held-out entities)",
            },
            {
                "x": [0, c[-1]["step"]],
                "y": [qa_res["original_format_accuracy"]] * 2,
                "label": "same facts, pre-training format",
                "style": "k:",
            },
        ],
        xlabel="fine-tuning step",
        ylabel="bits / accuracy",
        title="E4: learning the QA format",
    )
    return (
        "qa_format.png",
        "QA-format fine-tuning: loss on the format tokens and "
        "answer accuracy on entities never seen in QA form.",
    )


def _verdict(
    setup: _Setup, inject_rows: list[dict[str, Any]], qa_res: dict[str, Any] | None
) -> Verdict:
    labels = setup.labels
    before = setup.before_by_bucket
    plain = sorted((r for r in inject_rows if not r["replay"]), key=lambda r: r["repetitions"])
    repl = sorted((r for r in inject_rows if r["replay"]), key=lambda r: r["repetitions"])
    checks: dict[str, bool] = {}
    if len(plain) >= 2:
        checks["injected accuracy grows with repetitions"] = (
            plain[-1]["new_accuracy"] > plain[0]["new_accuracy"] + 0.05
        )
        worst = max(plain, key=lambda r: r["repetitions"])
        rare = [lab for lab in labels if lab not in ("0",)][:2]
        freq = [lab for lab in labels if lab not in ("0",)][-2:]
        drop = {lab: before[lab] - (worst["old_by_bucket"].get(lab) or 0.0) for lab in labels}
        rel = {lab: drop[lab] / max(before[lab], 1e-9) for lab in labels}
        checks["rare facts forgotten more than frequent ones (relative drop)"] = bool(
            rare and freq and np.mean([rel[x] for x in rare]) > np.mean([rel[x] for x in freq])
        )
    if plain and repl:
        checks["replay reduces forgetting"] = bool(
            np.mean([r["old_accuracy"] for r in repl]) > np.mean([r["old_accuracy"] for r in plain])
        )
    if qa_res is not None and len(qa_res["curve"]) >= 2:
        c = qa_res["curve"]
        first_drop = c[0]["format_bits"] - c[-1]["format_bits"]
        early = next((p for p in c if p["step"] > 0), c[-1])
        checks["QA format learned fast (half the format loss gone at the first evaluation)"] = (
            first_drop > 0 and c[0]["format_bits"] - early["format_bits"] >= 0.5 * first_drop
        )
    reason = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items())
    if qa_res is not None and qa_res["original_format_accuracy"]:
        final_acc = qa_res["curve"][-1]["answer_accuracy"]
        if final_acc < 0.5 * qa_res["original_format_accuracy"]:
            reason += (
                ". The format is learned, but the facts the model knows in the pre-training "
                f"format are mostly not retrieved through it ({fmt(final_acc)} vs "
                f"{fmt(qa_res['original_format_accuracy'])}): at this scale the knowledge is "
                "bound to the surface form it was stored in"
            )
    return Verdict.from_checks(checks, reason=reason or "no finished runs")


def _measured(
    setup: _Setup, inject_rows: list[dict[str, Any]], qa_res: dict[str, Any] | None
) -> str:
    inj_table = markdown_table(
        [
            "r",
            "replay",
            "steps",
            "new-fact accuracy",
            f"old-fact accuracy (before {fmt(float(setup.before['credit'].mean()))})",
        ],
        [
            [
                r["repetitions"],
                "yes" if r["replay"] else "no",
                r["steps"],
                r["new_accuracy"],
                r["old_accuracy"],
            ]
            for r in inject_rows
        ],
    )
    qa_text = "QA format: not run."
    if qa_res is not None:
        c = qa_res["curve"]
        qa_text = (
            f"QA format ({', '.join(qa_res['added_tokens'])} added to the vocabulary"
            + (f"; reused: {', '.join(qa_res['reused_tokens'])}" if qa_res["reused_tokens"] else "")
            + f"): format loss {fmt(c[0]['format_bits'])} -> {fmt(c[-1]['format_bits'])} "
            "bits/token "
            f"in {c[-1]['step']} steps; answer accuracy on held-out entities "
            f"{fmt(c[0]['answer_accuracy'])} -> {fmt(c[-1]['answer_accuracy'])} (the same facts "
            f"in the pre-training format: {fmt(qa_res['original_format_accuracy'])})."
        )
    return inj_table + "\n\n" + qa_text


def _ladders(
    ctx: ExperimentContext, setup: _Setup, name: str | None = None
) -> list[dict[str, Any]]:
    """The injection ladder and its control on the base model ``name`` (default: the chosen
    one) of every seed."""
    from synknow.experiments.common import base_corpus, seed_sweeps
    from synknow.experiments.injection_ladder import LadderTools, run_ladder
    from synknow.experiments.measures import converged

    b = ctx.preset.base
    s = ctx.preset.finetune
    name = name or setup.name
    out = []
    for seed, prefix, runs in seed_sweeps(ctx, name):
        if name not in runs:
            continue
        r = runs[name]

        def fn(run_dir: Any, seed: int = seed, prefix: str = prefix, r: Any = r) -> dict[str, Any]:
            if prefix == "base" and name == setup.name:
                corpus, base, probes, before = (
                    setup.corpus,
                    setup.base,
                    setup.old_probes,
                    setup.before,
                )
            else:
                corpus = base_corpus(ctx, seed)
                base = load_model(
                    ctx.shared_dir / "runs" / f"{prefix}-{name}", corpus, ctx.preset.device
                )
                probes = fact_probes(
                    corpus, b.n_train, max_pairs=min(b.probe_pairs, 1500), seed=seed + 1
                )
                before = value_stats(base, probes)
            known = before["credit"] >= 0.5
            res = run_ladder(
                base,
                corpus,
                probes,
                known,
                s,
                LadderTools(new_entities, render_documents, corpus_documents, finetune),
                n_train=b.n_train,
                pretrain_lr=float(r.get("lr", b.train.lr)),
                warmup_steps=b.train.warmup_steps,
                seed=seed,
            )
            return {"seed": seed, **res}

        ctx.log(f"injection ladder and control, {name}, seed {seed}")
        res = ctx.run(f"ladder-{prefix}" + ("" if name == setup.name else f"-{name}"), fn)
        if res is not None:
            ok, change = converged([rec["bits_per_token"] for rec in r["records"]])
            out.append({**res, "converged": ok, "loss_change": change, "params": r["params"]})
    return out


def _capacity_part(
    ctx: ExperimentContext, setup: _Setup, ladders: list[dict[str, Any]]
) -> tuple[dict[str, Any], Verdict]:
    """The ladder on a capacity-bound and an unbound base model, and the verdict on the
    prediction that only the bound one evicts rare knowledge."""
    from synknow.experiments import finetune_parts as parts
    from synknow.experiments.capacity_check import knowledge_available
    from synknow.experiments.probes import revealed_pairs

    b = ctx.preset.base
    s = ctx.preset.finetune
    runs = base_runs(ctx)
    names = [m.name for m in b.models if m.name in runs]
    pair = parts.capacity_models(names, s.bound_model, s.unbound_model)
    if pair is None:
        return {}, Verdict.from_checks({}, reason="no base model finished")
    by_name = {setup.name: ladders}
    for name in pair:
        if name not in by_name:
            by_name[name] = _ladders(ctx, setup, name)
    available = knowledge_available(setup.corpus, b.n_train, b.train.epochs, b.min_exposures)
    n_pairs = len(revealed_pairs(setup.corpus, b.n_train)[0])
    stored = runs[pair[1]]["records"][-1]["probes"]["bits_gain_per_pair"] * n_pairs
    bound, unbound = by_name[pair[0]], by_name[pair[1]]
    checks, text = parts.capacity_checks(bound, unbound)
    pre = parts.capacity_preconditions(
        names=pair,
        learnable_bits=available["bits_learnable"],
        params=(runs[pair[0]]["params"], runs[pair[1]]["params"]),
        unbound_stored_bits=stored,
        fill=s.unbound_fill,
        bound=bound,
        unbound=unbound,
    )
    record = {
        "bound": pair[0],
        "unbound": pair[1],
        "unbound_stored_bits": stored,
        "learnable_bits": available["bits_learnable"],
        "rare_forgetting": {
            name: [parts.rare_forgetting(lad["forgetting_by_bucket"])[0] for lad in by_name[name]]
            for name in pair
        },
    }
    return record, Verdict.from_checks(checks, reason=text, preconditions=pre)


def _qa_mix_run(
    ctx: ExperimentContext, seed: int, spec: Any, lr: float, run_dir: Any
) -> dict[str, Any]:
    """Both arms of the mixed-QA comparison on the corpus of ``seed``."""
    import torch

    from synknow.experiments import finetune_parts as parts
    from synknow.experiments.common import _device
    from synknow.experiments.probes import revealed_pairs
    from synknow.train.config import ModelConfig
    from synknow.train.model import GPT

    b = ctx.preset.base
    s = ctx.preset.finetune
    corpus = base_corpus(ctx, seed)
    qa = QAFormat(corpus)
    counts = np.asarray(corpus.entity_counts_at(b.n_train), dtype=np.int64)
    groups = parts.split_entities(counts, s.qa_mix_entities, np.random.default_rng([seed, 13]))
    ent, attr = revealed_pairs(corpus, b.n_train)
    names_all = np.asarray(corpus.entity_names, dtype=np.int64)
    values_all = np.asarray(corpus.entity_values, dtype=np.int64)
    examples = []
    for group in groups:
        m = np.isin(ent, group)
        seqs, at, vals = [], [], []
        for k, a in zip(ent[m].tolist(), attr[m].tolist(), strict=True):
            seq, pos = qa.sequence(a, names_all[k], int(values_all[k, a]))
            seqs.append(seq)
            at.append(pos)
            vals.append(int(values_all[k, a]))
        examples.append((seqs, at, vals, ent[m], attr[m]))
    mix, tune, held = examples
    out: dict[str, Any] = {
        "seed": seed,
        "heldout_pairs": len(held[0]),
        "qa_pretrain_pairs": len(mix[0]),
        "qa_finetune_pairs": len(tune[0]),
    }
    if not (mix[0] and tune[0] and held[0]):
        return {**out, "skipped": "too few entities seen often enough for three groups"}
    statements = sentence_probes(
        corpus,
        names_all[held[3]],
        values_all[held[3], held[4]],
        held[4],
        held[3],
        counts[held[3]],
        np.random.default_rng([seed, 14]),
    )
    # A corpus of few entities: the training documents of the selected ones, passed over until
    # the least frequent has qa_mix_exposures exposures (the full corpus would cost a base run
    # per arm and, at cpu-small, leave the held-out facts unknown).
    chosen = np.concatenate(groups)
    doc_ids = np.flatnonzero(np.isin(np.asarray(corpus.doc_entity[: b.n_train]), chosen))
    docs = corpus_documents(corpus, doc_ids)
    epochs = s.qa_mix_exposures / max(1, int(counts[chosen].min()))
    steps = math.ceil(len(docs) * epochs / s.batch_size)
    cfg = ModelConfig(**spec.model_dict(b.train.context_length)).resolved(
        len(corpus.vocab.strings) + len(qa.added)
    )
    out.update(steps=steps, documents=len(docs), epochs=epochs)
    for arm in ("plain", "mixed"):
        torch.manual_seed(seed)
        model = GPT(cfg).to(_device(ctx.preset.device))
        stream = parts.mix_batches(
            len(docs), len(mix[0]), steps, s.batch_size, s.qa_mix_fraction, seed,
            mixed=arm == "mixed",
        )  # fmt: skip
        batches = [[docs[i] for i in d] + [mix[0][j] for j in q] for d, q in stream]
        finetune(model, batches, lr, warmup_steps=b.train.warmup_steps, decay_steps=steps)
        statement = float(value_stats(model, statements)["credit"].mean())
        before = qa_evaluate(model, qa, held[0], held[1], held[2])
        rng_b = np.random.default_rng([seed, 15])
        tune_batches = [
            [tune[0][j] for j in rng_b.integers(0, len(tune[0]), size=s.batch_size)]
            for _ in range(s.qa_steps)
        ]
        finetune(model, tune_batches, s.lr)
        after = qa_evaluate(model, qa, held[0], held[1], held[2])
        out[arm] = {
            "statement_accuracy": statement,
            "answer_accuracy_before": before["answer_accuracy"],
            "format_bits_before": before["format_bits"],
            **after,
        }
    return out


def _qa_mix_part(ctx: ExperimentContext) -> tuple[list[dict[str, Any]], Verdict, str]:
    """Mixed QA pre-training against plain pre-training, on ``qa_mix_seeds`` corpora."""
    from synknow.experiments import finetune_parts as parts
    from synknow.experiments.seeds import repeat_seeds

    b = ctx.preset.base
    s = ctx.preset.finetune
    runs = base_runs(ctx)
    names = [m.name for m in b.models if m.name in runs]
    if s.qa_mix_seeds < 1 or not names:
        return [], Verdict.from_checks({}, reason="mixed QA pre-training not run"), "-"
    name = s.qa_mix_model if s.qa_mix_model in names else names[-1]
    spec = next(m for m in b.models if m.name == name)
    lr = float(runs[name].get("lr", b.train.lr))
    seeds = [ctx.preset.seed]
    if s.qa_mix_seeds > 1:
        seeds += repeat_seeds(ctx.preset.seed, 2, s.qa_mix_seeds - 1)
    per_seed = []
    for seed in seeds:
        ctx.log(f"mixed QA pre-training ({name}), seed {seed}")
        res = ctx.run(f"qa-mix-seed{seed}", functools.partial(_qa_mix_run, ctx, seed, spec, lr))
        if res is not None and "skipped" not in res:
            per_seed.append(res)
    checks, text = parts.qa_mix_checks(per_seed)
    pre = parts.qa_mix_preconditions(per_seed)
    return per_seed, Verdict.from_checks(checks, reason=text, preconditions=pre), name


def ladder_preconditions(ctx: ExperimentContext, ladders: list[dict[str, Any]]) -> list[Any]:
    from synknow.experiments.capacity_check import capacity_binds, knowledge_available
    from synknow.experiments.common import base_corpus
    from synknow.experiments.measures import MIN_BUCKET_TOKENS, MIN_SEEDS

    b = ctx.preset.base
    thinnest = min(
        (
            (int(v["facts"]), k, lad["seed"])
            for lad in ladders
            for k, v in lad["forgetting_by_bucket"].items()
            if k != "0"
        ),
        default=(0, "-", "-"),
    )
    changes = [lad["loss_change"] for lad in ladders if np.isfinite(lad["loss_change"])]
    available = knowledge_available(base_corpus(ctx), b.n_train, b.train.epochs, b.min_exposures)
    return [
        Precondition.at_least("seeds (corpus and init)", len(ladders), MIN_SEEDS),
        Precondition(
            "facts known before, in the thinnest seen bucket",
            f"{thinnest[0]} (bucket {bucket_label(int(thinnest[1])) if thinnest[1] != '-' else '-'}"
            f", seed {thinnest[2]})",
            f">= {MIN_BUCKET_TOKENS}",
            thinnest[0] >= MIN_BUCKET_TOKENS,
        ),
        Precondition(
            "base runs converged (loss change over the last two evaluations)",
            f"{max(changes):.1%} (largest)" if changes else "-",
            "< 2% in every seed",
            bool(ladders) and all(lad["converged"] for lad in ladders),
        ),
        capacity_binds(
            available["bits_learnable"], max((lad["params"] for lad in ladders), default=0)
        ),
    ]


def ladder_checks(ladders: list[dict[str, Any]], reps: list[int]) -> tuple[dict[str, bool], str]:
    """The claim's checks on the ladder, from the mean over seeds, and the sentence of numbers."""
    from synknow.experiments.acquisition import spearman
    from synknow.experiments.seeds import summarise

    if not ladders:
        return {}, "no ladder run finished"
    acc = {r: float(np.mean([lad["new_accuracy_by_r"][str(r)] for lad in ladders])) for r in reps}
    forget = [lad["forgetting"] for lad in ladders if lad["forgetting"] is not None]
    fs = summarise(forget) if forget else None
    buckets = sorted({int(k) for lad in ladders for k in lad["forgetting_by_bucket"] if k != "0"})
    by_bucket = {
        k: float(
            np.mean(
                [
                    lad["forgetting_by_bucket"][str(k)]["forgetting"]
                    for lad in ladders
                    if str(k) in lad["forgetting_by_bucket"]
                ]
            )
        )
        for k in buckets
    }
    rho = spearman([float(k) for k in by_bucket], list(by_bucket.values()))
    lower = fs.ci[0] if fs is not None and fs.n >= 2 else (fs.mean if fs else 0.0)
    checks = {
        "ladder: new-fact accuracy grows with repetitions": acc[reps[-1]] > acc[reps[0]] + 0.05,
        "injection forgets known facts beyond the control run": bool(fs) and lower > 0,
        "rarer known facts forgotten more (Spearman(bucket, forgetting) < 0)": rho is not None
        and rho < 0,
    }
    text = (
        "Ladder (same steps for every r): new-fact accuracy "
        + ", ".join(f"r={r}: {fmt(a)}" for r, a in acc.items())
        + f"; forgetting of known facts relative to the control "
        f"{fs.describe() if fs else '-'}; by bucket "
        + ", ".join(f"{bucket_label(k)}: {fmt(v)}" for k, v in by_bucket.items())
        + f" (Spearman {fmt(rho)})"
    )
    return checks, text


def run(ctx: ExperimentContext) -> Section:
    s = ctx.preset.finetune
    setup = _prepare(ctx)
    inject_rows = _injection_runs(ctx, setup)
    ladders = _ladders(ctx, setup)
    qa_res = _qa_format(ctx, setup)
    _write_outputs(ctx, setup, inject_rows, qa_res)
    _io.write_csv(
        ctx.path("ladder_forgetting.csv"),
        [
            {"seed": lad["seed"], "bucket": bucket_label(int(k)), **v}
            for lad in ladders
            for k, v in lad["forgetting_by_bucket"].items()
        ],
    )
    _io.write_json(ctx.path("ladder.json"), ladders)
    figures = _injection_figures(ctx, setup, inject_rows) if inject_rows else []
    if qa_res is not None:
        figures.append(_qa_figure(ctx, qa_res))
    old = _verdict(setup, inject_rows, qa_res)
    checks, ladder_text = ladder_checks(ladders, list(s.repetitions))
    qa_checks = {k: v for k, v in old.checks.items() if k.startswith("QA")}
    pre = ladder_preconditions(ctx, ladders)
    verdict = Verdict.from_checks({**checks, **qa_checks}, preconditions=pre)
    capacity, capacity_verdict = _capacity_part(ctx, setup, ladders)
    qa_mix, qa_mix_verdict, qa_mix_model = _qa_mix_part(ctx)
    _io.write_json(
        ctx.path("parts.json"),
        {
            "capacity": {**capacity, "verdict": part_record(capacity_verdict)},
            "qa_mix": {
                "model": qa_mix_model,
                "seeds": qa_mix,
                "verdict": part_record(qa_mix_verdict),
            },
        },
    )
    parts_text = (
        part_markdown(
            f"Capacity-bound ({capacity.get('bound', '-')}) against unbound "
            f"({capacity.get('unbound', '-')}) base model",
            capacity_verdict,
        )
        + "\n\n"
        + part_markdown(f"Mixed QA pre-training ({qa_mix_model})", qa_mix_verdict)
    )
    lad_lr = ladders[0]["lr"] if ladders else float("nan")
    lad_steps = ladders[0]["steps"] if ladders else 0
    return Section(
        experiment="finetune",
        claim=CLAIM,
        setup=(
            f"Base model {setup.name}. (a) {s.n_new} new entities (unused names, values from "
            f"H_a), each in r documents for r in {list(s.repetitions)}, fine-tuned for one pass "
            f"(batch {s.batch_size}, AdamW lr {s.lr}, at most {s.max_steps} steps) without "
            f"replay, and with {int(100 * s.replay)}% of each batch drawn from the pre-training "
            f"documents; accuracy on probes of the new facts and on {len(setup.old_probes)} "
            f"probes of pre-training facts. (b) QA format fine-tuning on {s.qa_train} facts of "
            f"entities seen at least twice, evaluated on {s.qa_test} held-out ones, "
            f"{s.qa_steps} steps. (c) The injection ladder: one continued-pre-training run "
            f"with {s.n_new} new entities at each r in {list(s.repetitions)} ({lad_steps} "
            f"steps, {s.ladder_new_fraction:.0%} of each batch new documents, the rest "
            "pre-training documents), at the pre-training schedule's final rate "
            f"({fmt(lad_lr)}, re-warmed), and a control run of the same steps with pre-training "
            "documents in the new documents' places; forgetting = control accuracy - injected "
            "accuracy on the old facts known before (accuracy >= 0.5), by bucket. The verdict "
            "rests on (c) and the QA check; (a) confounds r with the number of steps (listed "
            "beside r) and restarts at a constant rate, and is shown for comparison. (d) The "
            "ladder also on a capacity-bound and an unbound base size (forgetting of the known "
            "facts of the rarer half of the seen buckets). (e) Mixed QA pre-training: a base "
            "size pre-trained from scratch on the documents of the "
            f"{3 * s.qa_mix_entities} most frequent entities ({s.qa_mix_exposures:g} exposures "
            "of the least frequent), with QA sequences about a third of them as "
            f"{s.qa_mix_fraction:.0%} of every batch, and again with documents in their "
            f"places; both QA-fine-tuned ({s.qa_steps} steps) on a second third and asked "
            "about the last. (d) and (e) have their own verdicts and preconditions."
        ),
        measured=_measured(setup, inject_rows, qa_res)
        + "\n\n"
        + ladder_text
        + ".\n\n"
        + parts_text,
        theory=(
            "a Bayesian learner acquires a fact from one statement; a learner with bounded "
            "capacity that stores entities by frequency (docs/codelength.md#model-scaling-law) "
            "needs repeated exposure and "
            "drops its rarest entities first when the capacity is reallocated."
        ),
        verdict=verdict.status,
        verdict_text=verdict.text() + ".",
        figures=figures,
        files=[
            "injection.csv",
            "forgetting_by_bucket.csv",
            "ladder_forgetting.csv",
            "ladder.json",
            "parts.json",
            "fits.json",
        ]
        + (["qa_format_curve.csv"] if qa_res is not None else []),
        headline=f"{verdict.passed}/{len(verdict.checks)} checks hold",
        preconditions=precondition_rows(verdict.preconditions),
    )
