"""``synknow compress DIR OUT`` and ``synknow decompress FILE OUT_DIR``: lossless compression of
a corpus's token stream at the exact Bayes code length (docs/compression.md).

``compress`` writes a self-contained file (configuration without seed, counts, checksums and the
range-coded tokens) and prints its size next to the exact code length. ``decompress`` writes
``tokens.npy``, ``doc_offsets.npy`` and ``config.json`` (the configuration without seed) to
OUT_DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run_compress", "run_decompress"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compress",
        help="compress a corpus's tokens at the exact Bayes code length",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="corpus directory")
    p.add_argument("out", metavar="OUT", help="compressed file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_compress)
    d = subparsers.add_parser(
        "decompress",
        help="decompress a file made by 'synknow compress'",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("file", metavar="FILE", help="compressed file")
    d.add_argument("out_dir", metavar="OUT_DIR", help="directory for the decoded arrays")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=run_decompress)


def run_compress(args: argparse.Namespace) -> int:
    import synknow
    from synknow.compress import compress, header_bytes
    from synknow.fsutil import atomic_write_bytes

    corpus = synknow.load_corpus(Path(args.path))
    data = compress(corpus, progress=not args.quiet)
    atomic_write_bytes(Path(args.out), data)
    bits = synknow.code_lengths(corpus, per_token=False, progress=not args.quiet).total
    header = header_bytes(data)
    print(
        f"{args.out}: {len(data):,} bytes ({header:,} header) for {corpus.n_docs:,} documents, "
        f"{corpus.n_tokens:,} tokens; exact code length {bits / 8:,.1f} bytes; "
        f"payload / code length = {(len(data) - header) * 8 / max(bits, 1e-300):.6f}"
    )
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from synknow.compress import decompress
    from synknow.fsutil import atomic_write_bytes, atomic_write_text

    data = Path(args.file).read_bytes()
    out = decompress(data, progress=not args.quiet)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, array in (("tokens", out.tokens), ("doc_offsets", out.doc_offsets)):
        buf = io.BytesIO()
        np.save(buf, array)
        atomic_write_bytes(out_dir / f"{name}.npy", buf.getvalue())
    atomic_write_text(out_dir / "config.json", out.config.to_json() + "\n")
    print(f"{out_dir}: {out.n_docs:,} documents, {len(out.tokens):,} tokens")
    return 0
