"""``synknow export DIR --format nanogpt|jsonl|parquet OUT``: a corpus in the formats other
training code reads (docs/integration.md#exports).

* nanogpt: OUT is a directory with train.bin and val.bin (flat uint16/uint32 token ids, the
  last --val-docs documents in val.bin) and meta.json (vocabulary, dtype, special ids).
* jsonl: OUT is a file, one JSON object per document (index, entity, text, tokens; the latent
  record with --latent).
* parquet: OUT is a file, one row per document (index, entity, tokens, roles, text; the latent
  record with --latent); needs pyarrow (pip install 'synknow[export]').

Streams the memory-mapped corpus in chunks of documents; every file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a corpus: nanoGPT token files, JSONL or Parquet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="corpus directory")
    p.add_argument("out", metavar="OUT", help="output directory (nanogpt) or file (jsonl, parquet)")
    p.add_argument(
        "--format", required=True, choices=("nanogpt", "jsonl", "parquet"), help="output format"
    )
    p.add_argument("--docs", type=int, default=None, metavar="N", help="only the first N documents")
    p.add_argument(
        "--val-docs",
        type=int,
        default=None,
        metavar="N",
        help="nanogpt: the last N documents go to val.bin (default: one in 20)",
    )
    p.add_argument(
        "--dtype",
        choices=("uint16", "uint32"),
        default=None,
        help="nanogpt: token dtype (default: uint16 when the vocabulary fits)",
    )
    p.add_argument("--latent", action="store_true", help="jsonl/parquet: add the latent record")
    p.add_argument("--no-text", action="store_true", help="parquet: leave out the text column")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synknow import export
    from synknow.corpus import load_corpus

    corpus = load_corpus(Path(args.path))
    if args.format != "nanogpt" and (args.val_docs is not None or args.dtype is not None):
        raise ValueError("--val-docs and --dtype apply to --format nanogpt only")
    if args.no_text and args.format != "parquet":
        raise ValueError("--no-text applies to --format parquet only")
    if args.format == "nanogpt":
        if args.latent:
            raise ValueError("--latent applies to --format jsonl and parquet only")
        meta = export.to_nanogpt(
            corpus, args.out, val_docs=args.val_docs, docs=args.docs, dtype=args.dtype
        )
        print(
            f"wrote {args.out}: train.bin {meta['train_tokens']:,} tokens "
            f"({meta['train_docs']:,} documents), val.bin {meta['val_tokens']:,} tokens "
            f"({meta['val_docs']:,} documents), {meta['dtype']}, vocab {meta['vocab_size']:,}"
        )
    elif args.format == "jsonl":
        export.to_jsonl(corpus, args.out, docs=args.docs, latent=args.latent)
        print(f"wrote {args.out}")
    else:
        export.to_parquet(
            corpus, args.out, docs=args.docs, latent=args.latent, text=not args.no_text
        )
        print(f"wrote {args.out}")
    return 0
