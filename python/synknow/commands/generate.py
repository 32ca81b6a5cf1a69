"""``synknow generate``: stream a Syntax-Knowledge corpus to a directory
(docs/model.md#corpus-contents).

    synknow generate --preset bios --docs 100000 --seed 1 --out bios-100k --set alpha=0.6

The configuration is a preset (``--preset``) or a TOML file (``--config``), then ``--set
key=value`` overrides (values parsed as JSON, e.g. ``--set pool_sizes=[50,50]``), then
``--seed``. Generation streams shards of ``--shard-docs`` documents, so memory stays bounded by
the entity table plus one shard, and the directory appears only when complete. Before anything
is written, the expected size is checked against the free disk space. An existing ``--out`` is
never replaced without ``--overwrite``, and ``--overwrite`` only replaces a synknow corpus.
Staging directories left by killed runs in the same parent directory are removed (and named).

On several machines, ``--part I/N`` writes part I of N of the same corpus (a contiguous range of
documents) and ``synknow merge`` joins the N parts into the corpus one machine would write, byte
for byte (docs/corpus-format.md#parts):

    synknow generate --docs 3000000 --seed 1 --part 2/3 --out part2    # on machine 2, ...
    synknow merge part1 part2 part3 corpus
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synknow.config import SyntaxKnowledgeConfig

__all__ = ["register", "run", "resolve_config"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="sample a corpus straight to a directory (streamed, bounded memory)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default=None, help="bios (default) or procedural")
    p.add_argument("--config", default=None, metavar="FILE", help="configuration as a TOML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one configuration field (repeatable)",
    )
    p.add_argument("--docs", type=int, required=True, metavar="N", help="number of documents")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: the config's)")
    p.add_argument("--out", required=True, metavar="DIR", help="output corpus directory")
    p.add_argument("--threads", type=int, default=None, help="sampler threads (default: all)")
    p.add_argument(
        "--shard-docs",
        type=int,
        default=1_000_000,
        metavar="N",
        help="documents per shard kept in memory (default: 1000000)",
    )
    p.add_argument(
        "--part",
        default=None,
        metavar="I/N",
        help="write only part I of N of the corpus (join the parts with synknow merge)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing corpus directory (atomically)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def resolve_config(
    preset: str | None, config_file: str | None, overrides: list[str], seed: int | None
) -> SyntaxKnowledgeConfig:
    """The configuration a command line asks for: preset or TOML file, overrides, seed.

    >>> resolve_config("procedural", None, ["n_attributes=3"], 5).attribute_pool
    (0, 1, 2)
    """
    from synknow import presets
    from synknow.config import SyntaxKnowledgeConfig, parse_override

    if preset is not None and config_file is not None:
        raise ValueError("give either --preset or --config, not both")
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        config = SyntaxKnowledgeConfig.from_toml(path)
        if overrides:
            config = config.with_overrides(overrides)
    else:
        # Overrides go through the preset function, so that its derived defaults follow them
        # (e.g. the procedural preset sizes its pools from n_attributes).
        changes = dict(parse_override(o) for o in overrides)
        known = {f.name for f in dataclasses.fields(SyntaxKnowledgeConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) in --set: {', '.join(unknown)}")
        config = presets.by_name(preset or "bios", **changes)
    if seed is not None:
        if seed < 0:
            raise ValueError(f"--seed must be >= 0, got {seed}")
        config = config.replace(seed=seed)
    return config


def run(args: argparse.Namespace) -> int:
    import synknow
    from synknow.corpus import remove_stale_staging

    config = resolve_config(args.preset, args.config, args.overrides, args.seed)
    if args.docs < 1:
        raise ValueError(f"--docs must be >= 1, got {args.docs}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.shard_docs < 1:
        raise ValueError(f"--shard-docs must be >= 1, got {args.shard_docs}")
    part = None
    if args.part is not None:
        from synknow.parts import parse_part, part_range

        try:
            part = parse_part(args.part)
        except ValueError:
            raise ValueError(
                f"--part must be I/N with integers 1 <= I <= N (e.g. 2/3), got {args.part!r}"
            ) from None
        part_range(args.docs, part)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    for line in remove_stale_staging(out):
        print(f"synknow generate: {line}", file=sys.stderr)
    t0 = time.perf_counter()
    if part is not None:
        return _run_part(args, config, part, out, t0)
    synknow.generate(config, args.docs, out, **_writer_options(args))
    seconds = time.perf_counter() - t0
    corpus = synknow.load_corpus(out)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(
        f"wrote {out}: {corpus.n_docs:,} documents, {corpus.n_tokens:,} tokens, "
        f"{corpus.n_entities:,} entities, {size / 1e6:,.1f} MB in {seconds:.2f} s "
        f"({corpus.n_tokens / max(seconds, 1e-9) / 1e6:,.0f} M tokens/s)"
    )
    return 0


def _writer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options a whole corpus and a part are written with (the same, so that the parts
    merge into the whole corpus byte for byte)."""
    return {
        "shard_docs": args.shard_docs,
        "threads": args.threads,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
    }


def _run_part(
    args: argparse.Namespace,
    config: SyntaxKnowledgeConfig,
    part: tuple[int, int],
    out: Path,
    t0: float,
) -> int:
    import json

    from synknow.parts import generate_part

    generate_part(config, args.docs, part, out, **_writer_options(args))
    seconds = time.perf_counter() - t0
    m = json.loads((out / "manifest.json").read_text())
    lo, n = m["first_doc"], m["n_docs"]
    print(
        f"wrote part {part[0]}/{part[1]} of {args.docs:,} documents to {out}: documents "
        f"[{lo:,}, {lo + n:,}), {m['n_tokens']:,} tokens, {m['n_entities']:,} new entities in "
        f"{seconds:.2f} s; join all {part[1]} parts with: synknow merge PART_DIRS... OUT"
    )
    return 0
