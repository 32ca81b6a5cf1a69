"""``synknow merge``: join the parts written by ``synknow generate --part I/N`` into one corpus
(docs/corpus-format.md#parts).

    synknow generate --docs 3000000 --seed 1 --part 1/3 --out part1    # one machine each
    synknow generate --docs 3000000 --seed 1 --part 2/3 --out part2
    synknow generate --docs 3000000 --seed 1 --part 3/3 --out part3
    synknow merge part1 part2 part3 corpus

The parts may be given in any order. The merge checks that they are all N parts of one corpus
(same configuration, seed and number of documents), each exactly once, and the size and hash of
every array, and refuses otherwise, naming the parts. The result is byte-identical to
``synknow generate --docs 3000000 --seed 1 --out corpus`` on one machine, and appears only when
complete; ``--overwrite`` replaces an existing corpus as ``generate`` does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        help="join the parts of synknow generate --part into one corpus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dirs", nargs="+", metavar="DIR", help="the part directories, then the output directory"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing corpus directory (atomically)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import synknow
    from synknow.parts import merge_parts

    if len(args.dirs) < 2:
        raise ValueError("give the part directories and then the output directory: PART... OUT")
    *parts, out_name = args.dirs
    out = Path(out_name)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; choose another output or pass --overwrite")
    t0 = time.perf_counter()
    merge_parts(parts, out, overwrite=args.overwrite, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    corpus = synknow.load_corpus(out)
    print(
        f"merged {len(parts)} parts into {out}: {corpus.n_docs:,} documents, "
        f"{corpus.n_tokens:,} tokens, {corpus.n_entities:,} entities in {seconds:.2f} s"
    )
    return 0
