"""``synknow codelength DIR``: the exact Bayes code length of a corpus (docs/codelength.md).

Prints the total, bits per token overall and by role, and bits per document, from the per-token
predictive computed from the tokens alone (docs/codelength.md#per-token), next to the closed form
computed from the latent records (docs/codelength.md#whole-corpus). They agree to rounding; the
relative difference is printed as a check.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "codelength",
        help="exact Bayes code length of a corpus: total, by role, per document",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="corpus directory")
    p.add_argument("--docs", type=int, default=None, metavar="N", help="only the first N documents")
    p.add_argument("--threads", type=int, default=None, metavar="T", help="threads (all cores)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import synknow
    from synknow.codelength import closed_form_parts
    from synknow.fsutil import atomic_write_text

    corpus = synknow.load_corpus(Path(args.path))
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.docs is not None:
        if not 1 <= args.docs <= corpus.n_docs:
            raise ValueError(f"--docs must be in [1, {corpus.n_docs}], got {args.docs}")
        from synknow.corpus import Corpus

        end = int(corpus.doc_offsets[args.docs])
        arrays = dict(corpus.arrays)
        for name in ("tokens", "roles"):
            arrays[name] = arrays[name][:end]
        arrays["doc_offsets"] = arrays["doc_offsets"][: args.docs + 1]
        for name in ("doc_entity", "sentence_attribute", "sentence_template"):
            arrays[name] = arrays[name][: args.docs]
        corpus = Corpus(arrays, corpus.config)
    cl = synknow.code_lengths(
        corpus, per_token=False, threads=args.threads, progress=not args.quiet
    )
    parts = closed_form_parts(corpus)
    rel = abs(cl.total - parts["total"]) / max(abs(parts["total"]), 1e-300)
    print(
        f"corpus: {args.path} ({cl.n_docs:,} documents, {cl.n_tokens:,} tokens, "
        f"{cl.n_entities:,} entities)"
    )
    print(f"total: {cl.total:,.3f} bits ({cl.total / 8e6:,.3f} MB)")
    print(
        f"closed form (docs/codelength.md#whole-corpus): {parts['total']:,.3f} bits "
        f"(relative difference {rel:.1e})"
    )
    print(f"bits/document: {cl.bits_per_doc:.4f}")
    print(f"bits/token: {cl.bits_per_token:.5f} (all tokens, BOS and EOS included)")
    print(f"{'role':<8} {'tokens':>14} {'bits':>18} {'bits/token':>11} {'share':>7}")
    per_token = cl.bits_per_token_by_role
    for role, n in cl.tokens_by_role.items():
        bits = cl.by_role[role]
        share = bits / cl.total if cl.total else 0.0
        print(f"{role:<8} {n:>14,} {bits:>18,.3f} {per_token[role]:>11.5f} {share:>7.1%}")
    print(
        "closed form by term (bits): "
        + ", ".join(f"{k} {v:,.1f}" for k, v in parts.items() if k != "total")
    )
    if args.json:
        summary = cl.summary()
        summary["closed_form"] = parts
        summary["closed_form_relative_difference"] = rel
        atomic_write_text(args.json, json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
