"""``synknow compress DIR OUT`` and ``synknow decompress FILE OUT_DIR``: lossless compression of
a corpus's token stream at the exact Bayes code length (docs/compression.md).

``compress`` writes a self-contained file (configuration without seed, counts, checksums and the
range-coded tokens) and prints its size next to the exact code length. ``decompress`` writes
``tokens.npy``, ``doc_offsets.npy`` and ``config.json`` (the configuration without seed) to
OUT_DIR.

``compress --model RUN_DIR`` codes a split of the corpus (``--split``, default the run's test
split) with the run's trained transformer instead (docs/compression.md#transformer-coder) and
prints the file size beside the model's measured loss on the same tokens; ``--two-part`` writes
a self-contained two-part code (the weights quantised to ``--weight-bits`` and lzma-coded, then
the data coded with the quantised model, default split ``train``) and prints it beside the
structure function ``h(C)`` (docs/compression.md#two-part-code). ``decompress`` recognises these
files; a transformer-coded one needs ``--model RUN_DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
    p.add_argument(
        "--model",
        metavar="RUN_DIR",
        default=None,
        help="code with this training run's transformer (latest checkpoint) instead",
    )
    p.add_argument(
        "--split",
        choices=("test", "train", "all"),
        default=None,
        help="documents to code with --model (default test; train with --two-part)",
    )
    p.add_argument(
        "--two-part",
        action="store_true",
        help="with --model: the model's quantised weights and the data it codes, in one file",
    )
    p.add_argument(
        "--weight-bits",
        type=int,
        choices=(8, 16, 32),
        default=16,
        help="bits per weight of the two-part code's model part (default 16)",
    )
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
    d.add_argument(
        "--model",
        metavar="RUN_DIR",
        default=None,
        help="the run a transformer-coded file was made with",
    )
    d.set_defaults(func=run_decompress)


def run_compress(args: argparse.Namespace) -> int:
    import synknow
    from synknow.compress import compress, header_bytes
    from synknow.fsutil import atomic_write_bytes

    if args.model is not None:
        return _run_compress_with_model(args)
    if args.two_part or args.split is not None:
        raise ValueError("--two-part and --split need --model RUN_DIR (a training run)")
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


def _run_compress_with_model(args: argparse.Namespace) -> int:
    from synknow.fsutil import atomic_write_bytes
    from synknow.model_coder import model_code, two_part_code

    if args.two_part:
        tp = two_part_code(
            args.model, args.path, args.split or "train", weight_bits=args.weight_bits
        )
        atomic_write_bytes(Path(args.out), tp.data)
        code = tp.data_code
        h = "-" if tp.h_bits is None else f"{tp.h_bits:,.0f}"
        mdl = "-" if tp.mdl_bits is None else f"{tp.mdl_bits:,.0f}"
        print(
            f"{args.out}: {len(tp.data):,} bytes, two-part code of {code.n_docs:,} documents "
            f"({code.n_tokens:,} tokens): model {tp.model_bits:,} bits ({tp.n_weights:,} "
            f"weights at {tp.weight_bits} bits, lzma) + data {tp.data_bits:,} bits = "
            f"{tp.total_bits:,} bits; structure function h(C = {tp.model_bits:,}) = {h} bits "
            f"(its MDL point: {mdl} bits)"
        )
        return 0
    code = model_code(args.model, args.path, args.split or "test")
    atomic_write_bytes(Path(args.out), code.data)
    print(
        f"{args.out}: {len(code.data):,} bytes ({code.header_bytes:,} header) for "
        f"{code.n_docs:,} documents, {code.n_tokens:,} tokens; the model's measured loss "
        f"{code.loss_bits / 8:,.1f} bytes; payload / loss = "
        f"{code.payload_bits / max(code.loss_bits, 1e-300):.6f} (bound "
        f"{code.bound_bits / max(code.loss_bits, 1e-300):.6f})"
    )
    return 0


def _write_arrays(out_dir: Path, arrays: dict[str, Any]) -> None:
    import io

    import numpy as np

    from synknow.fsutil import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        buf = io.BytesIO()
        np.save(buf, array)
        atomic_write_bytes(out_dir / f"{name}.npy", buf.getvalue())


def run_decompress(args: argparse.Namespace) -> int:
    import json

    from synknow.compress import decompress
    from synknow.fsutil import atomic_write_text
    from synknow.model_coder import decompress_any_model_file, is_model_file, is_two_part_file

    data = Path(args.file).read_bytes()
    out_dir = Path(args.out_dir)
    if is_model_file(data) or is_two_part_file(data):
        decoded = decompress_any_model_file(data, args.model)
        _write_arrays(out_dir, {"tokens": decoded.tokens, "doc_offsets": decoded.doc_offsets})
        atomic_write_text(out_dir / "coder.json", json.dumps(decoded.header, indent=2) + "\n")
        print(f"{out_dir}: {decoded.n_docs:,} documents, {len(decoded.tokens):,} tokens")
        return 0
    if args.model is not None:
        raise ValueError(f"{args.file} is not transformer-coded: decompress it without --model")
    out = decompress(data, progress=not args.quiet)
    _write_arrays(out_dir, {"tokens": out.tokens, "doc_offsets": out.doc_offsets})
    atomic_write_text(out_dir / "config.json", out.config.to_json() + "\n")
    print(f"{out_dir}: {out.n_docs:,} documents, {len(out.tokens):,} tokens")
    return 0
