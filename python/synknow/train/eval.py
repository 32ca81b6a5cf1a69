"""Evaluation on the test split (docs/model.md#entity-frequency): loss in bits by role and by
entity-frequency bucket, knowledge accuracy on value tokens (with the tie rule), confidence and
value-probability mass.

Each test document is scored on its own (one row, positions from 0), as the Bayes predictor
scores it against the frozen training prefix (docs/codelength.md#learning-curve). Per-token
statistics come from ``synknow_kernels.token_eval`` (no logit matrix); the exact logits are
formed only for the few value positions whose target ties the maximum probability, to count
the ties.

Conventions (the same denominators as the Bayes reference):

* ``bits_per_token`` = summed code length of the predicted tokens / all tokens of the documents,
  ``BOS`` included (it is given, so it costs 0 bits); ``bits_per_doc`` = the same sum per document;
  ``loss_bits`` = the mean over predicted tokens only (the training loss in bits).
* by role: ``special`` counts ``BOS`` (0 bits) and ``EOS``; ``syntax``, ``name``, ``value`` their
  tokens.
* knowledge accuracy: credit ``1/k`` at a value position when the true value is among the ``k``
  tokens tied for the maximum probability, else 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from synknow.corpus import ROLE_NAMES, Corpus
from synknow.tokens import IGNORE, bucket_label, pad_rows
from synknow.train.data import EvalData
from synknow.train.model import GPT, announce_fallback, kernels

__all__ = [
    "sequence_bits",
    "evaluate",
    "token_stats",
    "bayes_test_code_lengths",
    "bayes_reference",
    "bayes_summary",
    "format_report",
    "ROLE_VALUE",
]

ROLE_SPECIAL, ROLE_VALUE = 0, 3
_TIE_SLACK_BITS = 1e-4  # rows whose target is this close to the max probability get exact logits


def sequence_bits(
    model: Any, rows: Sequence[Sequence[int] | np.ndarray], *, batch_rows: int = 128
) -> np.ndarray:
    """Code length in bits the model gives each token row: every token after the first, each
    row scored on its own from position 0 (right padding is never a target), in float64 from
    the model's logits; the model runs in eval mode without gradients and is put back in its
    mode after."""
    device = next(model.parameters()).device
    out = np.zeros(len(rows))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, len(rows), batch_rows):
                batch = rows[lo : lo + batch_rows]
                tokens = torch.from_numpy(pad_rows(batch)).to(device)
                targets = torch.full_like(tokens, IGNORE)
                for i, r in enumerate(batch):
                    targets[i, : len(r) - 1] = tokens[i, 1 : len(r)]
                logits = model.logits(model(tokens)).double()
                nll = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
                )
                out[lo : lo + len(batch)] = (nll.sum(dim=1) / math.log(2)).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def token_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    value_range: tuple[int, int],
    *,
    credit_rows: torch.Tensor | None = None,
    impl: str = "auto",
) -> dict[str, torch.Tensor]:
    """Per-token statistics of ``softmax(hidden @ weight.T)`` against ``targets`` (1-D rows).

    Returns float64 CPU tensors ``nll_bits``, ``entropy_bits``, ``max_prob``, ``value_mass``
    (probability on ``value_range``), int64 ``argmax``, and ``top_credit``: ``1/k`` when the
    target is among the ``k`` tokens tied for the maximum, else 0 (computed only on the rows
    where the boolean ``credit_rows`` is true, if given; 0 elsewhere).
    """
    hidden = hidden.float()
    weight = weight.float()
    if kernels is not None:
        s = kernels.token_eval(hidden, weight, targets, mass_range=value_range, impl=impl)
        out = {
            "nll_bits": s.nll_bits,
            "entropy_bits": s.entropy_bits,
            "max_prob": s.max_prob,
            "argmax": s.argmax,
            "value_mass": s.range_mass,
        }
    else:  # pragma: no cover - only without synknow_kernels
        announce_fallback(impl)
        out = _token_stats_torch(hidden, weight, targets, value_range)
    out = {k: v.detach().cpu() for k, v in out.items()}
    out = {k: (v if k == "argmax" else v.double()) for k, v in out.items()}
    # Candidates for a (possibly tied) top-1 hit: target probability within slack of the max.
    gap = out["nll_bits"] + torch.log2(out["max_prob"])
    near_max = gap <= _TIE_SLACK_BITS
    if credit_rows is not None:
        near_max &= credit_rows.cpu()
    candidates = torch.nonzero(near_max).flatten()
    credit = torch.zeros(len(targets), dtype=torch.float64)
    for lo in range(0, len(candidates), 4096):
        rows = candidates[lo : lo + 4096].to(hidden.device)
        z = hidden[rows] @ weight.t()
        tied = z == z.max(dim=1, keepdim=True).values
        hit = tied.gather(1, targets[rows].unsqueeze(1)).squeeze(1)
        credit[rows.cpu()] = (hit.double() / tied.sum(dim=1).double()).cpu()
    out["top_credit"] = credit
    return out


def _token_stats_torch(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, value_range: tuple[int, int]
) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {}
    lo, hi = value_range
    for i in range(0, hidden.shape[0], 4096):
        logp = torch.log_softmax(hidden[i : i + 4096] @ weight.t(), dim=-1)
        p = logp.exp()
        t = targets[i : i + 4096]
        vals = {
            "nll_bits": -logp.gather(1, t.unsqueeze(1)).squeeze(1) / math.log(2),
            "entropy_bits": -(p * logp).sum(1) / math.log(2),
            "max_prob": p.max(1).values,
            "argmax": p.argmax(1),
            "value_mass": p[:, lo:hi].sum(1),
        }
        for k, v in vals.items():
            parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


@torch.no_grad()
def evaluate(
    model: GPT,
    corpus: Corpus,
    n_train: int,
    n_test: int,
    *,
    max_docs: int | None = None,
    batch_size: int = 64,
    autocast_dtype: torch.dtype | None = None,
    impl: str = "auto",
    per_token: bool = False,
    bayes: bool | dict[str, np.ndarray] | None = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores the test split (the last ``n_test`` documents) against a model trained on the
    first ``n_train`` documents.

    Args:
        max_docs: score only the first ``max_docs`` test documents (periodic evaluation).
        autocast_dtype: run the transformer body under autocast (e.g. ``torch.bfloat16`` on a
            GPU); the output head and the statistics are always computed in float32.
        per_token: also return ``"tokens"``: per predicted token arrays (``doc``, ``position``,
            ``target``, ``role``, ``count``, ``bucket``, ``nll_bits``, ``entropy_bits``,
            ``max_prob``, ``argmax``, ``value_mass``, ``credit``; ``credit`` is NaN off value
            tokens).
        bayes: ``True``: include the Bayes-optimal reference of the same documents
            (:func:`bayes_test_code_lengths`, computed here) when the code-length engine is
            available; a precomputed one (cheaper for repeated evaluations); or
            ``False``/``None``.

    Returns:
        A JSON-serialisable dict: ``n_train``, ``n_test``, ``n_docs``, ``n_tokens``,
        ``bits_per_token``, ``bits_per_doc``, ``loss_bits``, ``roles`` (per role ``tokens``,
        ``bits``), ``value`` (``accuracy``, ``confidence``, ``mass``, ``entropy_bits``,
        ``bits``), ``buckets`` (per frequency bucket label: ``docs``, ``tokens``,
        ``bits_per_token``, ``value_tokens``, ``value_bits``, ``value_accuracy``,
        ``value_confidence``, ``value_mass``, ``min_count``), and ``bayes`` (or ``None``).
    """
    cfg = model.config
    data = EvalData(corpus, n_train, n_test, max_docs=max_docs, context_length=cfg.context_length)
    if cfg.vocab_size != len(corpus.vocab):
        raise ValueError(
            f"vocabulary mismatch: the model has {cfg.vocab_size} tokens, the corpus "
            f"{len(corpus.vocab)}"
        )
    vr = corpus.vocab.value_range
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    cols: dict[str, list[np.ndarray]] = {}
    batches = data.batches(batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(data) // batch_size), desc="eval", unit="batch")
    try:
        for batch in batches:
            tokens = batch.tokens.to(device)
            targets = batch.targets.to(device)
            with torch.autocast(
                device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ):
                hidden = model(tokens)
            mask = targets != IGNORE
            rows, pos = np.nonzero(batch.targets.numpy() != IGNORE)
            is_value = torch.from_numpy(batch.roles[rows, pos] == ROLE_VALUE)
            stats = token_stats(
                hidden[mask],
                model.head_weight,
                targets[mask],
                (vr.start, vr.stop),
                credit_rows=is_value,
                impl=impl,
            )
            add = {
                "doc": batch.docs[rows],
                "position": pos + 1,  # the target's position in its document
                "target": batch.targets.numpy()[rows, pos],
                "role": batch.roles[rows, pos].astype(np.int64),
                "count": batch.count[rows],
                "bucket": batch.bucket[rows],
                **{k: v.numpy() for k, v in stats.items()},
            }
            for k, v in add.items():
                cols.setdefault(k, []).append(v)
    finally:
        model.train(was_training)
    tok = {k: np.concatenate(v) for k, v in cols.items()}
    is_value = tok["role"] == ROLE_VALUE
    tok["credit"] = np.where(is_value, tok.pop("top_credit"), np.nan)
    report = _aggregate(tok, data)
    if bayes is True:
        bayes = bayes_test_code_lengths(corpus, data.n_train, n_test)
    report["bayes"] = bayes_summary(bayes, data) if isinstance(bayes, dict) else None
    if per_token:
        report["tokens"] = tok
    return report


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _aggregate(tok: dict[str, np.ndarray], data: EvalData) -> dict[str, Any]:
    nll = tok["nll_bits"]
    role = tok["role"]
    n_docs, n_tokens = len(data), data.n_tokens
    value = role == ROLE_VALUE
    roles: dict[str, dict[str, Any]] = {}
    for r, name in enumerate(ROLE_NAMES):
        sel = role == r
        # BOS of every document is a special token that costs 0 bits (given, not predicted).
        count = int(sel.sum()) + (n_docs if r == ROLE_SPECIAL else 0)
        roles[name] = {
            "tokens": count,
            "bits": float(nll[sel].sum() / count) if count else None,
        }
    buckets: dict[str, dict[str, Any]] = {}
    for b in np.unique(data.bucket).tolist():
        doc_sel = data.bucket == b
        sel = tok["bucket"] == b
        vsel = sel & value
        tokens_b = int(data.lengths[doc_sel].sum())
        buckets[bucket_label(b)] = {
            "min_count": 0 if b == 0 else 1 << (b - 1),
            "docs": int(doc_sel.sum()),
            "tokens": tokens_b,
            "bits_per_token": float(nll[sel].sum() / tokens_b),
            "value_tokens": int(vsel.sum()),
            "value_bits": _mean(nll[vsel]),
            "value_accuracy": _mean(tok["credit"][vsel]),
            "value_confidence": _mean(tok["max_prob"][vsel]),
            "value_mass": _mean(tok["value_mass"][vsel]),
        }
    return {
        "n_train": data.n_train,
        "n_test_docs": n_docs,
        "n_tokens": n_tokens,
        "bits_per_token": float(nll.sum() / n_tokens),
        "bits_per_doc": float(nll.sum() / n_docs),
        "loss_bits": float(nll.mean()),
        "roles": roles,
        "value": {
            "tokens": int(value.sum()),
            "bits": _mean(nll[value]),
            "accuracy": _mean(tok["credit"][value]),
            "confidence": _mean(tok["max_prob"][value]),
            "mass": _mean(tok["value_mass"][value]),
            "entropy_bits": _mean(tok["entropy_bits"][value]),
        },
        "buckets": buckets,
    }


def bayes_test_code_lengths(
    corpus: Corpus, n_train: int, n_test: int, *, threads: int | None = None
) -> dict[str, np.ndarray] | None:
    """Per test document, the Bayes-optimal code length given the first ``n_train`` documents
    (docs/codelength.md#learning-curve), split by role: ``doc_bits`` ``(n_test, 4)``,
    ``tokens_by_role`` ``(n_test, 4)`` and the entity's training ``count``. ``None`` when the
    code-length engine is not built into this ``synknow`` (``synknow.bayes_curve``).

    Compute it once per ``(corpus, n_train)`` and pass it to :func:`evaluate` as ``bayes=``.
    """
    import synknow

    curve_fn = getattr(synknow, "bayes_curve", None)
    if curve_fn is None:  # pragma: no cover - only without the code-length engine
        return None
    curve = curve_fn(corpus, n_train, [n_train], n_test=n_test, threads=threads, progress=False)
    return {
        "doc_bits": np.asarray(curve.doc_bits_by_role[0], dtype=np.float64),
        "tokens_by_role": np.asarray(curve.tokens_by_role, dtype=np.int64),
        "count": np.asarray(curve.entity_count[0], dtype=np.int64),
    }


bayes_reference = bayes_test_code_lengths
"""Former name of :func:`bayes_test_code_lengths`, kept: it is part of the documented API."""


def bayes_summary(reference: dict[str, np.ndarray], data: EvalData) -> dict[str, Any]:
    """The Bayes reference aggregated over the documents of ``data`` with the conventions of
    :func:`evaluate` (``bits_per_token``, ``bits_per_doc``, ``roles``, ``value``, ``buckets``)."""
    k = len(data)
    bits = reference["doc_bits"][:k]
    tokens = reference["tokens_by_role"][:k]
    count = reference["count"][:k]
    if len(bits) != k or not np.array_equal(count, data.count):
        raise ValueError(
            "the Bayes reference does not describe these test documents (different split or corpus)"
        )
    roles = {
        name: {
            "tokens": int(tokens[:, r].sum()),
            "bits": float(bits[:, r].sum() / tokens[:, r].sum()) if tokens[:, r].sum() else None,
        }
        for r, name in enumerate(ROLE_NAMES)
    }
    buckets = {}
    for b in np.unique(data.bucket).tolist():
        sel = data.bucket == b
        vt = tokens[sel, ROLE_VALUE].sum()
        buckets[bucket_label(b)] = {
            "docs": int(sel.sum()),
            "bits_per_token": float(bits[sel].sum() / tokens[sel].sum()),
            "value_bits": float(bits[sel, ROLE_VALUE].sum() / vt) if vt else None,
        }
    return {
        "bits_per_token": float(bits.sum() / tokens.sum()),
        "bits_per_doc": float(bits.sum() / k),
        "roles": roles,
        "value": {"bits": roles["value"]["bits"]},
        "buckets": buckets,
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of an :func:`evaluate` report."""

    def f(x: float | None, spec: str = ".4f") -> str:
        return "-" if x is None else format(x, spec)

    lines = [
        f"test docs {report['n_test_docs']}, tokens {report['n_tokens']}, "
        f"n_train {report['n_train']}",
        f"bits/token {f(report['bits_per_token'])}   bits/doc {f(report['bits_per_doc'], '.2f')}"
        f"   loss (bits/predicted token) {f(report['loss_bits'])}",
    ]
    bayes = report.get("bayes") or {}
    if bayes:
        lines.append(
            f"Bayes-optimal: bits/token {f(bayes['bits_per_token'])}   "
            f"bits/doc {f(bayes['bits_per_doc'], '.2f')}"
        )
    lines += ["", f"{'role':<9}{'tokens':>9}{'bits':>10}"]
    for name, r in report["roles"].items():
        extra = ""
        if bayes.get("roles", {}).get(name, {}).get("bits") is not None:
            extra = f"   (Bayes {f(bayes['roles'][name]['bits'])})"
        lines.append(f"{name:<9}{r['tokens']:>9}{f(r['bits']):>10}{extra}")
    v = report["value"]
    lines += [
        "",
        f"value tokens: accuracy {f(v['accuracy'])}, confidence {f(v['confidence'])}, "
        f"mass on values {f(v['mass'])}, entropy {f(v['entropy_bits'])} bits",
        "",
        f"{'bucket':<9}{'docs':>7}{'bits/tok':>10}{'val bits':>10}{'val acc':>9}{'conf':>8}"
        + (f"{'Bayes val bits':>16}" if bayes else ""),
    ]
    for label, b in report["buckets"].items():
        ref = bayes.get("buckets", {}).get(label, {}).get("value_bits") if bayes else None
        lines.append(
            f"{label:<9}{b['docs']:>7}{f(b['bits_per_token']):>10}{f(b['value_bits']):>10}"
            f"{f(b['value_accuracy'], '.3f'):>9}{f(b['value_confidence'], '.3f'):>8}"
            + (f"{f(ref):>16}" if bayes else "")
        )
    return "\n".join(lines)
