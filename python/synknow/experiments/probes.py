"""Knowledge probes: one-sentence documents stating a fact, and the model's full predictive
distribution at value positions (accuracy with the tie rule of docs/model.md#knowledge-accuracy,
confidence, mass on the
attribute's value pool, and KL to the prior ``H_a``).

A *fact probe* for a revealed pair ``(k, a)`` (entity ``k`` was stated with attribute ``a`` in the
training prefix) is ``BOS`` + one sentence of attribute ``a`` (template drawn from ``theta_a``) with
entity ``k``'s name and value + ``EOS``: exactly what the first sentence of a real document looks
like, so the model sees nothing new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from synknow.tokens import BOS, EOS, IGNORE, PAD, bucket_label, frequency_bucket, pad_rows

__all__ = [
    "ValueLayout",
    "ValueTargets",
    "revealed_pairs",
    "render_sentence",
    "fact_probes",
    "fresh_names",
    "sentence_probes",
    "pad_rows",
    "document_targets",
    "value_stats",
    "summarise_distribution",
    "probe_model",
    "frequency_bucket",
    "bucket_of",
    "bucket_label",
    "PAD",
    "BOS",
    "EOS",
    "IGNORE",
]

LN2 = math.log(2.0)

# Earlier name of synknow.tokens.frequency_bucket in this module; kept for existing callers.
bucket_of = frequency_bucket


@dataclass
class ValueLayout:
    """Per attribute: the first token and size of its value pool, and ``ln H_a`` over the pool."""

    start: list[int]
    size: list[int]
    log_h: list[np.ndarray]

    @classmethod
    def of(cls, corpus: Any) -> ValueLayout:
        g = corpus.grammar
        pools = corpus.config.attribute_pool
        return cls(
            start=[int(g["pool_start"][p]) for p in pools],
            size=[int(g["pool_size"][p]) for p in pools],
            log_h=[np.asarray(v, dtype=np.float64) for v in g["value_log_prob"]],
        )


@dataclass
class ValueTargets:
    """Token rows (padded with ``PAD``) and value positions to score in them.

    ``row``/``pos``: where each target value token sits (``tokens[row, pos] == value``);
    ``attribute``, ``entity`` and ``count`` (the entity's training count) per target.
    """

    tokens: np.ndarray  # (R, L) int64
    row: np.ndarray
    pos: np.ndarray
    value: np.ndarray
    attribute: np.ndarray
    entity: np.ndarray
    count: np.ndarray
    layout: ValueLayout
    # The same sentences with a name no entity of the corpus has: what the model predicts when it
    # knows nothing about the entity, the baseline of the knowledge measures in probe_model.
    control: ValueTargets | None = None

    def __len__(self) -> int:
        return len(self.row)

    @property
    def bucket(self) -> np.ndarray:
        return frequency_bucket(self.count)


def revealed_pairs(corpus: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(entity, attribute)`` of every pair stated in the first ``n`` documents (sorted)."""
    a_count = corpus.config.n_attributes
    m = corpus.sentence_attribute.shape[1]
    ent = np.repeat(np.asarray(corpus.doc_entity[:n], dtype=np.int64), m)
    attr = np.asarray(corpus.sentence_attribute[:n], dtype=np.int64).reshape(-1)
    keys = np.unique(ent * a_count + attr)
    return keys // a_count, keys % a_count


def render_sentence(skeleton: list[int], name: np.ndarray, value: int) -> tuple[list[int], int]:
    """Tokens of one sentence (``-1`` -> the name tokens, ``-2`` -> the value) and the index of
    the value token in it."""
    out: list[int] = []
    value_at = -1
    for slot in skeleton:
        if slot == -1:
            out.extend(int(t) for t in name)
        elif slot == -2:
            value_at = len(out)
            out.append(int(value))
        else:
            out.append(int(slot))
    if value_at < 0:
        raise ValueError("skeleton has no [VALUE] slot")
    return out, value_at


def fresh_names(corpus: Any, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` names (token ids, one row each) that no entity of ``corpus`` has, drawn
    uniformly from the unused names (rejection sampling: the name space is at least 100 times
    the expected number of entities, so almost every draw is accepted)."""
    g = corpus.grammar
    starts = np.asarray(g["name_start"], dtype=np.int64)
    sizes = np.asarray(g["name_size"], dtype=np.int64)
    used = {tuple(r) for r in np.asarray(corpus.entity_names, dtype=np.int64).tolist()}
    total = int(np.prod(sizes))
    if total - len(used) < 1:
        raise ValueError("the corpus uses every name: no fresh name for the probe controls")
    out = np.empty((count, len(sizes)), dtype=np.int64)
    filled = 0
    while filled < count:
        draw = starts + rng.integers(0, sizes, size=(count - filled, len(sizes)))
        for row in draw:
            if tuple(row.tolist()) not in used:
                out[filled] = row
                filled += 1
    return out


def fact_probes(corpus: Any, n_train: int, *, max_pairs: int, seed: int) -> ValueTargets:
    """Fact probes for (up to ``max_pairs``, a uniform sample of) the pairs revealed in the
    first ``n_train`` documents, each with its control: the same sentence about a fresh name."""
    rng = np.random.default_rng([seed, 0x9B0BE5])
    ent, attr = revealed_pairs(corpus, n_train)
    if len(ent) > max_pairs:
        keep = np.sort(rng.choice(len(ent), size=max_pairs, replace=False))
        ent, attr = ent[keep], attr[keep]
    counts = corpus.entity_counts_at(n_train)
    controls = fresh_names(corpus, len(ent), np.random.default_rng([seed, 0xC0A7]))
    return sentence_probes(
        corpus,
        np.asarray(corpus.entity_names, dtype=np.int64)[ent],
        np.asarray(corpus.entity_values, dtype=np.int64)[ent, attr],
        attr,
        ent,
        counts[ent],
        rng,
        control_names=controls,
    )


def sentence_probes(
    corpus: Any,
    names: np.ndarray,
    values: np.ndarray,
    attributes: np.ndarray,
    entities: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    *,
    control_names: np.ndarray | None = None,
) -> ValueTargets:
    """One probe document per row: ``BOS`` + a sentence of ``attributes[i]`` (template drawn
    from ``theta``) stating ``values[i]`` about the name ``names[i]`` + ``EOS``. With
    ``control_names`` (one per row), :attr:`ValueTargets.control` holds the same sentences (same
    templates, same values) about those names instead."""
    skeletons = corpus.grammar["skeletons"]
    theta = corpus.theta
    rows, pos, templates = [], [], []
    for name, v, a in zip(names, values.tolist(), attributes.tolist(), strict=True):
        t = int(rng.choice(len(theta[a]), p=theta[a] / theta[a].sum()))
        templates.append(t)
        toks, at = render_sentence(skeletons[a][t], name, int(v))
        rows.append([BOS, *toks, EOS])
        pos.append(at + 1)
    control = None
    if control_names is not None:
        if len(control_names) != len(rows):
            raise ValueError(f"control_names has {len(control_names)} rows, the probes {len(rows)}")
        c_rows, c_pos = [], []
        for name, v, a, t in zip(
            control_names, values.tolist(), attributes.tolist(), templates, strict=True
        ):
            toks, at = render_sentence(skeletons[a][t], name, int(v))
            c_rows.append([BOS, *toks, EOS])
            c_pos.append(at + 1)
        control = ValueTargets(
            tokens=pad_rows(c_rows),
            row=np.arange(len(c_rows)),
            pos=np.asarray(c_pos, dtype=np.int64),
            value=np.asarray(values, dtype=np.int64),
            attribute=np.asarray(attributes, dtype=np.int64),
            entity=np.full(len(c_rows), -1, dtype=np.int64),
            count=np.zeros(len(c_rows), dtype=np.int64),
            layout=ValueLayout.of(corpus),
        )
    return ValueTargets(
        tokens=pad_rows(rows),
        row=np.arange(len(rows)),
        pos=np.asarray(pos, dtype=np.int64),
        value=np.asarray(values, dtype=np.int64),
        attribute=np.asarray(attributes, dtype=np.int64),
        entity=np.asarray(entities, dtype=np.int64),
        count=np.asarray(counts, dtype=np.int64),
        layout=ValueLayout.of(corpus),
        control=control,
    )


def document_targets(corpus: Any, docs: np.ndarray, n_train: int) -> ValueTargets:
    """Every value token of the documents ``docs`` (e.g. the test split), one row per document;
    ``count`` is the entity's count in the first ``n_train`` documents."""
    docs = np.asarray(docs, dtype=np.int64)
    offsets = np.asarray(corpus.doc_offsets, dtype=np.int64)
    counts = corpus.entity_counts_at(n_train)
    rows, row_ix, pos, value, attr, ent = [], [], [], [], [], []
    for r, d in enumerate(docs.tolist()):
        lo, hi = int(offsets[d]), int(offsets[d + 1])
        toks = np.asarray(corpus.tokens[lo:hi], dtype=np.int64)
        roles = np.asarray(corpus.roles[lo:hi])
        at = np.flatnonzero(roles == 3)
        k = int(corpus.doc_entity[d])
        rows.append(toks.tolist())
        row_ix += [r] * len(at)
        pos += at.tolist()
        value += toks[at].tolist()
        attr += np.asarray(corpus.sentence_attribute[d], dtype=np.int64)[: len(at)].tolist()
        ent += [k] * len(at)
    ent_arr = np.asarray(ent, dtype=np.int64)
    return ValueTargets(
        tokens=pad_rows(rows),
        row=np.asarray(row_ix, dtype=np.int64),
        pos=np.asarray(pos, dtype=np.int64),
        value=np.asarray(value, dtype=np.int64),
        attribute=np.asarray(attr, dtype=np.int64),
        entity=ent_arr,
        count=counts[ent_arr],
        layout=ValueLayout.of(corpus),
    )


def value_stats(
    model: Any, targets: ValueTargets, *, batch_rows: int = 256
) -> dict[str, np.ndarray]:
    """The model's predictive distribution at every target position, summarised per target:

    ``bits`` (code length of the true value, full vocabulary), ``credit`` (1/k if the true value
    is among the k tokens tied for the maximum, else 0), ``max_prob`` (confidence), ``argmax``,
    ``pool_mass`` (probability on the attribute's value pool), ``pool_bits`` (code length of
    the true value under the distribution renormalised to the pool), ``kl_bits`` (KL of the
    pool-renormalised distribution to ``H_a``), ``prior_bits`` (``-log2 H_a(value)``),
    ``chance`` (``1/|pool|``).
    """
    import torch

    device = next(model.parameters()).device
    n = len(targets)
    out = {
        k: np.zeros(n)
        for k in (
            "bits",
            "pool_bits",
            "credit",
            "max_prob",
            "pool_mass",
            "kl_bits",
            "prior_bits",
            "chance",
        )
    }
    out["argmax"] = np.zeros(n, dtype=np.int64)
    order = np.argsort(targets.row, kind="stable")
    rows_sorted = targets.row[order]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, targets.tokens.shape[0], batch_rows):
                hi = min(lo + batch_rows, targets.tokens.shape[0])
                sel = order[np.searchsorted(rows_sorted, lo) : np.searchsorted(rows_sorted, hi)]
                if len(sel) == 0:
                    continue
                toks = torch.from_numpy(targets.tokens[lo:hi]).to(device)
                hidden = model(toks)
                r = torch.from_numpy(targets.row[sel] - lo).to(device)
                p_ = torch.from_numpy(targets.pos[sel] - 1).to(device)
                logits = model.logits(hidden[r, p_]).double().cpu()
                summarise_distribution(logits.log_softmax(dim=-1), logits, targets, sel, out)
    finally:
        model.train(was_training)
    return out


def summarise_distribution(
    logp: Any,
    scores: Any,
    targets: ValueTargets,
    sel: np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """Fills ``out[...][sel]`` from predictive log-probabilities ``logp`` (float64 tensor,
    one row per target in ``sel``); ties for the maximum are decided on ``scores`` (the logits,
    or ``logp`` itself), exactly as the evaluator does."""
    import torch

    layout = targets.layout
    logits = scores
    values = torch.from_numpy(targets.value[sel])
    out["bits"][sel] = (-logp.gather(1, values[:, None])[:, 0] / LN2).numpy()
    zmax = logits.max(dim=1, keepdim=True).values
    tied = logits == zmax
    hit = tied.gather(1, values[:, None])[:, 0]
    out["credit"][sel] = (hit.double() / tied.sum(dim=1).double()).numpy()
    probs = logp.exp()
    out["max_prob"][sel] = probs.max(dim=1).values.numpy()
    out["argmax"][sel] = logits.argmax(dim=1).numpy()
    attrs = targets.attribute[sel]
    for a in np.unique(attrs).tolist():
        m = attrs == a
        start, size = layout.start[a], layout.size[a]
        log_h = layout.log_h[a]
        lp = logp[torch.from_numpy(np.flatnonzero(m))][:, start : start + size].numpy()
        mass_log = np.logaddexp.reduce(lp, axis=1)
        q_log = lp - mass_log[:, None]
        with np.errstate(invalid="ignore"):  # 0 * -inf where the model puts no mass
            kl = np.nansum(np.exp(q_log) * (q_log - log_h[None, :]), axis=1) / LN2
        idx = sel[m]
        out["pool_mass"][idx] = np.exp(mass_log)
        out["kl_bits"][idx] = np.maximum(kl, 0.0)
        local = targets.value[idx] - start
        out["prior_bits"][idx] = -log_h[local] / LN2
        out["pool_bits"][idx] = -q_log[np.arange(len(idx)), local] / LN2
        out["chance"][idx] = 1.0 / size


def probe_model(model: Any, probes: ValueTargets) -> dict[str, Any]:
    """Summary of fact probes: accuracy, facts known and knowledge bits, overall and by
    frequency bucket. Values are per probed pair; ``n_pairs`` says how many were probed
    (multiply the means by the number of revealed pairs for totals).

    With controls (:func:`fact_probes` makes them) the knowledge measures are *differences
    between the entity's name and a fresh name* in the same sentence, scored by the same model:

    * ``known_fraction`` = (accuracy on the real names - accuracy on the fresh names) /
      (1 - accuracy on the fresh names): the share of pairs the model gets right because it
      knows the entity, beyond what it gets right without knowing it (the marginal of the values,
      or luck);
    * ``bits_gain_per_pair`` = the model's bits for the true value after a fresh name minus its
      bits after the entity's name, both under its distribution renormalised to the value pool
      (mass leaking to non-value tokens is a syntax matter, not knowledge).

    A model that ignores the name (untrained, random, or one that learned only the value
    marginals) scores the same on both, so both measures are zero in expectation for it, never
    biased below. (Without controls the older measures are returned: chance ``1/|pool|`` and
    the gain over the prior ``H_a``; both are negative for an untrained model, since its argmax
    runs over the whole vocabulary and its pool distribution is not ``H_a``.)
    """
    s = value_stats(model, probes)
    if probes.control is not None:
        c = value_stats(model, probes.control)
        base_acc = float(c["credit"].mean())
        known = (s["credit"] - c["credit"]) / max(1.0 - base_acc, 1e-12)
        gain = c["pool_bits"] - s["pool_bits"]
        baseline = "fresh-name control"
    else:
        base_acc = float(s["chance"].mean())
        known = (s["credit"] - s["chance"]) / (1.0 - s["chance"])
        gain = s["prior_bits"] - s["pool_bits"]
        baseline = "chance 1/|pool| and prior H_a"
    buckets = {}
    b = probes.bucket
    for v in np.unique(b).tolist():
        m = b == v
        buckets[bucket_label(v)] = {
            "pairs": int(m.sum()),
            "accuracy": float(s["credit"][m].mean()),
            "known": float(known[m].mean()),
            "bits_gain": float(gain[m].mean()),
        }
    n = len(probes)
    return {
        "n_pairs": n,
        "baseline": baseline,
        "accuracy": float(s["credit"].mean()),
        "chance": base_acc,
        "known_fraction": float(known.mean()),
        "known_fraction_se": float(known.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "bits_gain_per_pair": float(gain.mean()),
        "bits_gain_se": float(gain.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "raw_bits_gain_per_pair": float((s["prior_bits"] - s["bits"]).mean()),
        "prior_bits_per_pair": float(s["prior_bits"].mean()),
        "buckets": buckets,
    }
