"""``synknow experiment NAME --preset PRESET [--out DIR] [--resume]``: run the paper's experiments
(E1-E6, docs/experiments.md#the-experiments) and write raw metrics, fits, figures and a Markdown
report."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from synknow.experiments.presets import EXPERIMENTS, describe_presets

    p = subparsers.add_parser(
        "experiment",
        help="run an experiment (E1-E6, docs/experiments.md) and write its report",
        description=(
            "Run one experiment (or all) at a preset scale into an output directory: raw metrics "
            "(CSV/JSONL), fitted parameters with bootstrap intervals (fits.json), PNG figures and "
            "a Markdown report (DIR/README.md). Experiments: " + ", ".join(EXPERIMENTS) + ", all."
        ),
        epilog="presets:\n" + describe_presets(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="experiment name, or 'all'")
    p.add_argument("--preset", default="cpu-tiny", help="scale (default: cpu-tiny)")
    p.add_argument(
        "--out",
        default=None,
        help="output directory (default: runs/experiments-PRESET); must not exist unless --resume",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing output directory, skipping finished runs",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synknow.experiments.runner import get_preset, resolve_experiments, run_experiments

    names = resolve_experiments(args.name)
    preset = get_preset(args.preset)
    out = args.out or f"runs/experiments-{preset.name}"
    summary = run_experiments(names, preset, out, resume=args.resume, progress=not args.quiet)
    print(f"report: {summary.report}")
    for name in summary.experiments:
        print(f"  {name}: {summary.seconds[name]:.0f} s")
    if summary.failures:
        print(
            f"{len(summary.failures)} run(s) failed (rerun with --resume to retry):",
            file=sys.stderr,
        )
        for f in summary.failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0
