"""``synknow inspect DIR``: what a corpus directory holds and how it compares with the theory.

Prints the size, the configuration, the number of entities K against E[K_N], the fitted Heaps
exponent against alpha, the fitted Zipf exponent against 1/alpha, tokens per role, and a few
decoded documents. ``--plots DIR`` also writes the Heaps, Zipf and counts-of-counts figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synknow.corpus import Corpus

__all__ = ["register", "run", "describe"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="statistics of a corpus directory against the theory, and a few documents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="corpus directory")
    p.add_argument("--docs", type=int, default=3, metavar="N", help="documents to print (3)")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG figures here")
    p.add_argument(
        "--verify",
        action="store_true",
        help="also check the content hashes and the configuration's hash",
    )
    p.set_defaults(func=run)


def describe(corpus: Corpus, *, docs: int = 3) -> list[str]:
    """The lines ``synknow inspect`` prints for a corpus."""
    from synknow.stats import corpus_stats

    cfg = corpus.config
    lines = [
        f"config: preset={cfg.preset} alpha={cfg.alpha:g} beta={cfg.beta:g} "
        f"attributes={cfg.n_attributes} m={cfg.m} seed={cfg.seed} "
        f"vocab={len(corpus.vocab):,} token dtype={corpus.tokens.dtype}",
    ]
    if corpus.n_docs >= 2:
        lines += corpus_stats(corpus).lines()
    else:
        lines.append(f"documents: {corpus.n_docs} (too few for the Heaps and Zipf fits)")
    for i in range(min(docs, corpus.n_docs)):
        k = int(corpus.doc_entity[i])
        c = int(corpus.entity_counts[k])
        lines.append(f"document {i} (entity {k}, {c} document{'s' if c != 1 else ''} about it):")
        lines.append(f"  {corpus.decode(i)}")
    return lines


def run(args: argparse.Namespace) -> int:
    import synknow

    if args.docs < 0:
        raise ValueError(f"--docs must be >= 0, got {args.docs}")
    path = Path(args.path)
    corpus = synknow.load_corpus(path, verify=args.verify)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"corpus: {path} ({size / 1e6:,.1f} MB on disk)")
    for line in describe(corpus, docs=args.docs):
        print(line)
    if args.plots is not None:
        from synknow import plots

        out = Path(args.plots)
        written = [plots.heaps_plot(corpus, out / "heaps.png")]
        if corpus.config.alpha > 0:
            written.append(plots.zipf_plot(corpus, out / "zipf.png"))
            written.append(plots.counts_of_counts_plot(corpus, out / "counts_of_counts.png"))
        print("figures: " + ", ".join(str(p) for p in written))
    return 0
