"""The Bayes coder against the exact code length and general-purpose compressors.

On one token stream (a bios corpus held in memory): the Bayes coder (docs/compression.md) in
bits per token, compress and decompress speed in M tokens/s on one thread, with the code-length
pass (docs/codelength.md#per-token, one thread) measured in the same run as the speed baseline;
the exact code length; and zstd level 19 (``zstandard``, skipped when not installed), xz
(``lzma``, preset 9), bz2 (level 9) and gzip (level 9) on the token bytes (the stream's native
little-endian integers) and on the decoded text (one document per line). Every size is given
in bits per token of the same stream.

    python benches/bench_compress.py                 # 10^5 documents, writes a result file
    python benches/bench_compress.py --docs 2000 --out /tmp/x.json   # smoke size

Results: ``benches/results/compress-<date>.json`` (machine, versions, git SHA, load).
"""

from __future__ import annotations

import argparse
import bz2
import datetime as dt
import gzip
import json
import lzma
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import synknow
from synknow.compress import compress, decompress, header_bytes
from synknow.fsutil import atomic_write_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_codelength import cpu_model, git_sha, load, memory_gib, rustc_version  # noqa: E402

RESULTS = HERE / "results"


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time over ``repeats`` runs and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def general_purpose() -> dict[str, Callable[[bytes], bytes]]:
    coders: dict[str, Callable[[bytes], bytes]] = {
        "xz-9": lambda b: lzma.compress(b, preset=9),
        "bz2-9": lambda b: bz2.compress(b, 9),
        "gzip-9": lambda b: gzip.compress(b, 9, mtime=0),
    }
    try:
        import zstandard

        coders["zstd-19"] = zstandard.ZstdCompressor(level=19).compress
    except ImportError:
        pass
    return coders


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = synknow.presets.bios()
    corpus = synknow.sample(config, args.docs, seed=args.seed)
    n = corpus.n_tokens
    print(f"bios, {corpus.n_docs:,} documents, {n:,} tokens ({corpus.tokens.dtype})")
    t_cl, cl = best_of(
        lambda: synknow.code_lengths(corpus, per_token=False, threads=1, progress=False),
        args.repeats,
    )
    t_c, data = best_of(lambda: compress(corpus, progress=False), args.repeats)
    t_d, out = best_of(lambda: decompress(data, progress=False), args.repeats)
    if not (np.array_equal(out.tokens, corpus.tokens) and out.n_docs == corpus.n_docs):
        raise SystemExit("roundtrip failed")
    header = header_bytes(data)
    rows: dict[str, Any] = {
        "exact code length": {"bits": cl.total},
        "Bayes coder (file)": {"bits": len(data) * 8},
        "Bayes coder (payload)": {"bits": (len(data) - header) * 8},
    }
    token_bytes = np.ascontiguousarray(corpus.tokens).astype("<" + corpus.tokens.dtype.str[1:])
    raw = token_bytes.tobytes()
    text = "\n".join(corpus.decode(i) for i in range(corpus.n_docs)).encode()
    rows["raw token bytes"] = {"bits": len(raw) * 8}
    rows["raw text"] = {"bits": len(text) * 8}
    coders = general_purpose()
    for name, fn in coders.items():
        for what, blob in (("tokens", raw), ("text", text)):
            t, z = best_of(lambda fn=fn, blob=blob: fn(blob), 1)
            rows[f"{name} on {what}"] = {"bits": len(z) * 8, "seconds": t}
    for r in rows.values():
        r["bits_per_token"] = r["bits"] / n
        r["ratio_to_code_length"] = r["bits"] / cl.total
    speeds = {
        "code_lengths_1_thread_M_tokens_per_s": n / t_cl / 1e6,
        "compress_M_tokens_per_s": n / t_c / 1e6,
        "decompress_M_tokens_per_s": n / t_d / 1e6,
    }
    for name, r in rows.items():
        print(
            f"  {name:28s} {r['bits_per_token']:9.4f} bits/token  x{r['ratio_to_code_length']:.4f}"
        )
    for k, v in speeds.items():
        print(f"  {k}: {v:.2f}")
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "memory_gib": memory_gib(),
            "load": load(),
            "python": platform.python_version(),
            "rustc": rustc_version(),
        },
        "versions": {"synknow": synknow.__version__, "numpy": np.__version__},
        "git": git_sha(),
        "corpus": {"preset": "bios", "n_docs": corpus.n_docs, "n_tokens": n, "seed": args.seed},
        "header_bytes": header,
        "file_bytes": len(data),
        "coded_symbols": out.coded_symbols,
        "payload_over_code_length": (len(data) - header) * 8 / cl.total,
        "rows": rows,
        "speed": speeds,
        "skipped": [] if "zstd-19" in coders else ["zstd-19 (zstandard is not installed)"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None, help="result file (default benches/results/...)")
    args = p.parse_args()
    result = run(args)
    out = Path(args.out) if args.out else RESULTS / f"compress-{dt.date.today():%Y%m%d}.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
