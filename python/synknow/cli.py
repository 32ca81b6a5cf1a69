"""The ``synknow`` command line: ``synknow COMMAND ...`` or ``python -m synknow COMMAND ...``.

Each command lives in its own module under :mod:`synknow.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (taking the parsed namespace and
returning an exit code). Errors a user can fix are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import synknow
from synknow import commands
from synknow.extras import EXTRAS, MissingDependencyError, missing

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synknow",
        description="Syntax-Knowledge corpora, exact Bayesian code lengths, scaling experiments.",
    )
    parser.add_argument("--version", action="version", version=f"synknow {synknow.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"synknow.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MissingDependencyError as e:
        print(f"synknow {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        # An optional package imported without a guard (torch inside the trainer, say).
        root = (e.name or "").partition(".")[0]
        if root not in EXTRAS:
            raise
        print(f"synknow {args.command}: error: {missing(root, 'this')}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"synknow {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
