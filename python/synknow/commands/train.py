"""``synknow train --corpus DIR [--config run.toml] [--SECTION.KEY=VALUE ...] [KEY=VALUE ...]``.

Every configuration key is also an option (``--optim.lr=1e-3``, or ``--lr=1e-3`` where the name
is unique); ``--resume runs/<id>`` continues an interrupted run. The same arguments work under
``torchrun --nproc_per_node=K -m synknow.train``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from synknow.train.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig

_SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}
_PREFIX = "override:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", metavar="DIR", help="corpus directory (data.corpus)")
    parser.add_argument("--config", metavar="TOML", help="run config file (see configs/)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its checkpoint")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-3"
    )
    counts: dict[str, int] = {}
    for cls in _SECTIONS.values():
        for f in dataclasses.fields(cls):
            counts[f.name] = counts.get(f.name, 0) + 1
    group = parser.add_argument_group("configuration keys (override the --config file)")
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            if (section, f.name) in (("data", "corpus"), ("model", "vocab_size")):
                continue  # --corpus above; the vocabulary comes from the corpus
            names = [f"--{section}.{f.name}"]
            if counts[f.name] == 1:
                names.append(f"--{f.name}")
            default = f.default if f.default is not dataclasses.MISSING else None
            group.add_argument(
                *names,
                dest=f"{_PREFIX}{section}.{f.name}",
                metavar="V",
                default=None,
                help=f"[{section}] default: {default}",
            )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a GPT on a corpus (per-role / per-frequency evaluation)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def collect_overrides(args: argparse.Namespace) -> list[str | tuple[str, object]]:
    """Overrides in command-line order of precedence: positional ``KEY=VALUE``, then options."""
    out: list[str | tuple[str, object]] = list(args.overrides or [])
    for dest, value in vars(args).items():
        if dest.startswith(_PREFIX) and value is not None:
            out.append(f"{dest[len(_PREFIX) :]}={value}")
    return out


def run(args: argparse.Namespace) -> int:
    from synknow.train import TrainingDiverged, format_report, train

    overrides = collect_overrides(args)
    if args.corpus is not None:
        overrides.append(("data.corpus", args.corpus))  # a path, never parsed as a value
    try:
        if args.resume:
            if args.config or args.corpus:
                raise ValueError("--resume takes the run's stored config; drop --config/--corpus")
            run_dir = train(resume=args.resume, overrides=overrides)
        else:
            cfg = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
            run_dir = train(cfg.with_overrides(overrides))
    except TrainingDiverged as e:
        print(f"synknow train: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        eval_json = run_dir / "eval.json"
        if eval_json.is_file():
            import json

            print(format_report(json.loads(eval_json.read_text())))
        print(f"run: {run_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m synknow.train`` (and so of ``torchrun ... -m synknow.train``)."""
    parser = argparse.ArgumentParser(prog="python -m synknow.train", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted (a checkpoint was written; continue with --resume)", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        print(f"synknow train: error: {e}", file=sys.stderr)
        return 2
