"""The Bayes coder against the exact code length and general-purpose compressors.

On one token stream (a bios corpus held in memory, then a procedural corpus with a shared value
pool and a Zipf value prior, under ``procedural_shared_pool`` in the result): the Bayes coder
(docs/compression.md) in bits per token, compress and decompress speed in M tokens/s on one
thread (per second of wall time and per CPU second: on a shared machine the second is the
coder's own speed), with the code-length pass (docs/codelength.md#per-token, one thread)
measured in the same run as the speed baseline; the exact code length; the seed-knowing code
(the tokens under the true theta and entity table, docs/compression.md#the-seed-knowing-coder);
and zstd level 19 (``zstandard``; its rows say so when it is not installed), xz (``lzma``,
preset 9), bz2 (level 9) and gzip (level 9) on the token bytes (the stream's native
little-endian integers) and on the decoded text (one document per line). Every size is given
in bits per token of the same stream. On bios also the transformer coder
(docs/compression.md#transformer-coder): a tiny GPT trained here for ``--model-steps`` steps on
one thread (or ``--with-model RUN_DIR``), coding the last ``--model-test-docs`` documents, beside
the exact Bayes code of the same documents given the others.

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
from synknow.seed_knowing import seed_knowing_bits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_codelength import cpu_model, git_sha, load, memory_gib, rustc_version  # noqa: E402

RESULTS = HERE / "results"
ZSTD_MISSING = "zstandard is not installed (pip install zstandard)"
PRESETS: dict[str, Callable[[], synknow.SyntaxKnowledgeConfig]] = {
    "bios": synknow.presets.bios,
    # Attributes 0 and 1 share pool 0 by default.
    "procedural-shared-pool": lambda: synknow.presets.procedural(value_prior="zipf(1.1)"),
}


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time over ``repeats`` runs and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def best_of_timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall time and best CPU time of the process over ``repeats`` runs, and the last
    result."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, result


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


def transformer_rows(corpus: synknow.Corpus, args: argparse.Namespace) -> dict[str, Any]:
    """The transformer coder (docs/compression.md#transformer-coder) on a held-out test split:
    a tiny GPT trained here on one thread for ``--model-steps`` steps (at most one per 100
    documents, at least 20) or the run given by ``--with-model`` (trained on this corpus); its
    file size, loss and coding speed beside the exact Bayes code of the same test documents
    given the training documents. Both rows are in bits per token of the test split, their
    ``ratio_to_code_length`` relative to that Bayes code. The transformer codes far fewer
    tokens than the rows above: it is the slow coder."""
    if args.model_steps <= 0 and args.with_model is None:
        return {}
    import tempfile

    import torch
    from synknow.model_coder import decompress_with_model, model_code
    from synknow.train import TrainConfig, train
    from synknow.train.eval import bayes_test_code_lengths

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t_train, steps = 0.0, None
            run_dir = args.with_model
            if run_dir is None:
                # A small corpus (the smoke size) gets a short run: one step per 100 docs.
                steps = min(args.model_steps, max(20, corpus.n_docs // 100))
                cfg = TrainConfig.from_dict(
                    {
                        "model": {"size": "tiny", "context_length": 128},
                        "data": {"n_test": min(args.model_test_docs, corpus.n_docs // 5)},
                        "optim": {
                            "lr": 1e-2,
                            "warmup_steps": 30,
                            "batch_size": 16,
                            "max_steps": steps,
                        },
                        "run": {
                            "out_dir": tmp,
                            "run_id": "bench",
                            "device": "cpu",
                            "progress": False,
                            "log_interval": 100,
                            "num_threads": 1,
                        },
                    }
                )
                t0 = time.perf_counter()
                run_dir = train(cfg, corpus=corpus)
                t_train = time.perf_counter() - t0
            t_c, code = best_of(lambda: model_code(run_dir, corpus, "test"), 1)
            t_d, out = best_of(lambda: decompress_with_model(code.data, run_dir), 1)
    finally:
        torch.set_num_threads(threads)
    first = corpus.n_docs - code.n_docs
    expected = corpus.tokens[corpus.doc_offsets[first] :]
    if not np.array_equal(out.tokens, expected):
        raise SystemExit("transformer coder roundtrip failed")
    bayes = float(bayes_test_code_lengths(corpus, first, code.n_docs)["doc_bits"].sum())
    n = code.n_tokens
    model_row = {
        "bits": 8 * len(code.data),
        "payload_bits": code.payload_bits,
        "loss_bits": code.loss_bits,
        "bound_bits": code.bound_bits,
        "test_docs": code.n_docs,
        "test_tokens": n,
        "train_steps": steps,
        "train_seconds": t_train,
        "compress_M_tokens_per_s": n / t_c / 1e6,
        "decompress_M_tokens_per_s": n / t_d / 1e6,
    }
    return {
        f"Bayes code of the {code.n_docs} test docs": {
            "bits": bayes,
            "bits_per_token": bayes / n,
            "ratio_to_code_length": 1.0,
        },
        f"transformer coder on the {code.n_docs} test docs": {
            **model_row,
            "bits_per_token": model_row["bits"] / n,
            "ratio_to_code_length": model_row["bits"] / bayes,
        },
    }


def run(args: argparse.Namespace, preset: str = "bios") -> dict[str, Any]:
    config = PRESETS[preset]()
    corpus = synknow.sample(config, args.docs, seed=args.seed)
    n = corpus.n_tokens
    print(f"{preset}, {corpus.n_docs:,} documents, {n:,} tokens ({corpus.tokens.dtype})")
    t_cl, cpu_cl, cl = best_of_timed(
        lambda: synknow.code_lengths(corpus, per_token=False, threads=1, progress=False),
        args.repeats,
    )
    t_c, cpu_c, data = best_of_timed(lambda: compress(corpus, progress=False), args.repeats)
    t_d, cpu_d, out = best_of_timed(lambda: decompress(data, progress=False), args.repeats)
    seed_knowing = seed_knowing_bits(corpus)
    if not (np.array_equal(out.tokens, corpus.tokens) and out.n_docs == corpus.n_docs):
        raise SystemExit("roundtrip failed")
    header = header_bytes(data)
    rows: dict[str, Any] = {
        "exact code length": {"bits": cl.total},
        "Bayes coder (file)": {"bits": len(data) * 8},
        "Bayes coder (payload)": {"bits": (len(data) - header) * 8},
        "seed-knowing code (true theta and entities)": {
            "bits": seed_knowing["total"],
            "bits_by_part": {k: v for k, v in seed_knowing.items() if k != "total"},
        },
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
    rows.update(transformer_rows(corpus, args))  # its own test split and reference
    speeds = {
        "code_lengths_1_thread_M_tokens_per_s": n / t_cl / 1e6,
        "compress_M_tokens_per_s": n / t_c / 1e6,
        "decompress_M_tokens_per_s": n / t_d / 1e6,
        "code_lengths_1_thread_M_tokens_per_cpu_s": n / cpu_cl / 1e6,
        "compress_M_tokens_per_cpu_s": n / cpu_c / 1e6,
        "decompress_M_tokens_per_cpu_s": n / cpu_d / 1e6,
    }
    if "zstd-19" not in coders:
        for what in ("tokens", "text"):
            rows[f"zstd-19 on {what}"] = {"bits": None, "skipped": ZSTD_MISSING}
    for name, r in rows.items():
        if r["bits"] is None:
            print(f"  {name:28s} skipped: {r['skipped']}")
            continue
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
        "corpus": {"preset": preset, "n_docs": corpus.n_docs, "n_tokens": n, "seed": args.seed},
        "header_bytes": header,
        "file_bytes": len(data),
        "coded_symbols": out.coded_symbols,
        "payload_over_code_length": (len(data) - header) * 8 / cl.total,
        "rows": rows,
        "speed": speeds,
        "skipped": [] if "zstd-19" in coders else [f"zstd-19 ({ZSTD_MISSING})"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None, help="result file (default benches/results/...)")
    p.add_argument("--model-steps", type=int, default=300, help="transformer row (0: none)")
    p.add_argument("--model-test-docs", type=int, default=1000, help="its test split")
    p.add_argument("--with-model", metavar="RUN_DIR", default=None, help="use this run instead")
    args = p.parse_args()
    result = run(args)
    # The second corpus gets the Bayes-side rows only: the same coders, another grammar.
    procedural_args = argparse.Namespace(**{**vars(args), "model_steps": 0, "with_model": None})
    procedural = run(procedural_args, "procedural-shared-pool")
    for shared in ("date", "machine", "versions", "git"):
        procedural.pop(shared)
    result["procedural_shared_pool"] = procedural
    out = Path(args.out) if args.out else RESULTS / f"compress-{dt.date.today():%Y%m%d}.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
