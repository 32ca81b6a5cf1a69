"""``synknow bayes-curve DIR --train N``: the Bayes-optimal learning curve (docs/codelength.md).

The test split is the last ``--test`` documents (default: all after the first N); every test
document is scored against the state after each training prefix in ``--checkpoints``: a list
of prefix lengths, or ``log:K`` (K log-spaced lengths from 100 to N) or ``log:K:START``.
Writes ``bayes_curve.csv`` (one row per prefix), ``bayes_curve_buckets.csv`` (per prefix and
entity-frequency bucket) and ``bayes_curve.png`` (the curve by role; the knowledge bits above the
fitted limit with the fitted power law and the theory slope -(1 - alpha)) into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["register", "run", "parse_checkpoints"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bayes-curve",
        help="Bayes-optimal learning curve on the test split (CSV + PNG)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="corpus directory")
    p.add_argument("--train", type=int, required=True, metavar="N", help="training documents")
    p.add_argument("--test", type=int, default=None, metavar="N", help="test documents (the rest)")
    p.add_argument(
        "--checkpoints",
        nargs="+",
        default=["log:20"],
        metavar="C",
        help="prefix lengths, or log:K[:START] (default log:20)",
    )
    p.add_argument("--out", default=".", metavar="DIR", help="output directory (.)")
    p.add_argument("--threads", type=int, default=None, metavar="T", help="threads (all cores)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_checkpoints(items: list[str], n_train: int) -> np.ndarray:
    """Prefix lengths from the command line: integers, or one ``log:K[:START]``."""
    from synknow.codelength import log_checkpoints

    if len(items) == 1 and items[0].startswith("log:"):
        parts = items[0].split(":")
        try:
            k = int(parts[1])
            start = int(parts[2]) if len(parts) > 2 else 100
        except (IndexError, ValueError):
            raise ValueError(
                f"--checkpoints: expected log:K or log:K:START, got {items[0]!r}"
            ) from None
        if len(parts) > 3:
            raise ValueError(f"--checkpoints: expected log:K or log:K:START, got {items[0]!r}")
        return log_checkpoints(n_train, k, start)
    try:
        return np.array([int(x.replace("_", "")) for x in items], dtype=np.int64)
    except ValueError:
        raise ValueError(
            f"--checkpoints: expected integers or log:K[:START], got {items}"
        ) from None


def run(args: argparse.Namespace) -> int:
    import synknow
    from synknow.theory import data_scaling_exponent

    corpus = synknow.load_corpus(Path(args.path))
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    checkpoints = parse_checkpoints(args.checkpoints, args.train)
    curve = synknow.bayes_curve(
        corpus,
        args.train,
        checkpoints,
        n_test=args.test,
        threads=args.threads,
        progress=not args.quiet,
    )
    out = Path(args.out)
    csv = curve.to_csv(out / "bayes_curve.csv", out / "bayes_curve_buckets.csv")
    print(f"test split: documents {curve.test_start:,}..{corpus.n_docs - 1:,} ({curve.n_test:,})")
    print(f"{'n_train':>12} {'bits/token':>11} {'bits/doc':>10} {'knowledge/doc':>14} {'new':>6}")
    for row in curve.rows():
        print(
            f"{row['n_train']:>12,} {row['bits_per_token']:>11.5f} {row['bits_per_doc']:>10.3f} "
            f"{row['knowledge_bits_per_doc']:>14.3f} {row['new_entity_fraction']:>6.3f}"
        )
    written = [csv, out / "bayes_curve_buckets.csv"]
    from synknow.plots_codelength import bayes_curve_plot, fit_knowledge_curve

    fit = fit_knowledge_curve(curve)
    alpha = corpus.config.alpha
    if fit is not None:
        g = fit.params["gamma"]
        lo, hi = fit.ci.get("gamma", (float("nan"), float("nan")))
        print(
            f"knowledge bits/doc ~ E + A n^-gamma: gamma = {g:.3f} (95% CI {lo:.3f}..{hi:.3f}), "
            f"E = {fit.params['E']:.3f}; theory 1 - alpha = {data_scaling_exponent(alpha):.3f}"
        )
    else:
        print("too few checkpoints (n >= 1) for a power-law fit (need 4)")
    if not args.no_plot:
        title = f"{args.path}: alpha={alpha:g}, beta={corpus.config.beta:g}, test={curve.n_test:,}"
        written.append(bayes_curve_plot(curve, out / "bayes_curve.png", fit=fit, title=title))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
