"""Speed of the code-length engine: exact per-token code lengths and the Bayes learning curve.

1. Per-token exact code lengths (docs/codelength.md#per-token) of a bios corpus held in memory, with
   1 thread and with every core (the corpus is cut into one chunk per thread, each started from a
   state produced by a parse-and-learn pass), in tokens per second of wall time and per CPU second;
   the closed forms (docs/codelength.md#per-document and #whole-corpus) alongside.
2. The pure-Python reference (``tests/codelength/reference.py``) on a prefix of the same corpus,
   in the same run, and the speed ratio (the two agree to 1e-9 on that prefix).
3. The Bayes learning curve (docs/codelength.md#learning-curve) for 10^7 training documents and
   10^4 test documents, 20 log-spaced checkpoints, on a corpus generated on disk (memory-mapped).
4. The fitted exponent of the curve's knowledge part (name + value bits per test document,
   ``E + A n^-gamma`` over 16 log-spaced n = 1e2..2e5) against 1 - alpha
   (docs/codelength.md#data-scaling-law): one seed
   per alpha in {0.3, 0.5, 0.7}, and the mean curve of 16 seeds at alpha = 0.7.

Targets (issue 3): >= 20 M tokens/s per core and >= 100x the Python reference; the learning
curve in under a minute on the 2-core machine. The machine may be shared: the load average is
recorded, and CPU time is reported next to wall time.

    python benches/bench_codelength.py              # full run (generates ~2.3 GB under /tmp)
    python benches/bench_codelength.py --quick      # smoke run: small sizes, no result file

Results: ``benches/results/codelength-<date>.json`` (machine, versions, git SHA, load).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import synknow
from synknow.codelength import log_checkpoints
from synknow.fsutil import atomic_write_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "codelength"))
import reference  # noqa: E402

RESULTS = HERE / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def git_sha() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"sha": sha, "dirty_tree": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty_tree": None}


def rustc_version() -> str | None:
    try:
        return subprocess.run(
            ["rustc", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall time and best process CPU time over ``repeats`` runs, and the last result."""
    walls, cpus = [], []
    result = None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), result


def bench_per_token(args: argparse.Namespace) -> dict[str, Any]:
    config = synknow.presets.bios(seed=1)
    corpus = synknow.sample(config, args.docs)
    n_tokens = corpus.n_tokens
    print(f"per-token: bios alpha=0.7 beta=10, {corpus.n_docs:,} documents, {n_tokens:,} tokens")
    out: dict[str, Any] = {
        "corpus": {"preset": "bios", "alpha": 0.7, "beta": 10.0, "n_docs": corpus.n_docs},
        "n_tokens": n_tokens,
    }
    cores = os.cpu_count() or 1
    runs = {}
    for threads in sorted({1, cores}):
        wall, cpu, cl = timed(
            lambda t=threads: synknow.code_lengths(corpus, threads=t, progress=False),
            args.repeats,
        )
        runs[f"threads={threads}"] = {
            "threads": threads,
            "wall_s": wall,
            "cpu_s": cpu,
            "tokens_per_s_wall": n_tokens / wall,
            "tokens_per_cpu_s": n_tokens / cpu,
        }
        print(
            f"  rust per-token, {threads} thread(s): {wall:.3f} s wall, {cpu:.3f} s CPU -> "
            f"{n_tokens / wall / 1e6:.1f} M tokens/s wall, {n_tokens / cpu / 1e6:.1f} M per CPU s"
        )
    out["rust"] = runs
    total = cl.total
    for name, fn in (
        ("closed_form_per_doc", lambda: synknow.closed_form_per_doc(corpus)),
        ("closed_form_total", lambda: synknow.closed_form_total(corpus)),
    ):
        wall, cpu, value = timed(fn, args.repeats)
        out[name] = {"wall_s": wall, "cpu_s": cpu, "docs_per_s": corpus.n_docs / wall}
        print(f"  {name}: {wall:.3f} s ({corpus.n_docs / wall / 1e6:.1f} M documents/s)")
    rel = abs(total - synknow.closed_form_total(corpus)) / total
    out["identity_relative_difference"] = rel
    print(f"  per-token total vs whole-corpus closed form: relative difference {rel:.1e}")

    # The pure-Python reference on a prefix of the same corpus.
    n_ref = min(args.reference_docs, corpus.n_docs)
    ref_tokens = int(corpus.doc_offsets[n_ref])
    wall, cpu, ref_bits = timed(lambda: reference.per_token_bits(corpus, n_ref), 1)
    rust_bits = cl.per_token[:ref_tokens]
    max_diff = float(np.max(np.abs(np.asarray(ref_bits) - rust_bits)))
    py_rate = ref_tokens / cpu
    rust_rate = runs["threads=1"]["tokens_per_cpu_s"]
    out["python_reference"] = {
        "n_docs": n_ref,
        "n_tokens": ref_tokens,
        "wall_s": wall,
        "cpu_s": cpu,
        "tokens_per_s_wall": ref_tokens / wall,
        "tokens_per_cpu_s": py_rate,
        "max_abs_difference_bits": max_diff,
    }
    out["speedup_vs_python_per_cpu_s"] = rust_rate / py_rate
    print(
        f"  python reference: {n_ref:,} documents, {ref_tokens:,} tokens in {cpu:.2f} CPU s -> "
        f"{py_rate / 1e3:.1f} k tokens/s; max |difference| {max_diff:.1e} bits"
    )
    print(f"  speed-up of rust (1 thread) over python, per CPU second: {rust_rate / py_rate:,.0f}x")
    return out


def corpus_on_disk(path: Path, n_docs: int) -> synknow.Corpus:
    config = synknow.presets.bios(seed=7)
    if path.exists():
        try:
            corpus = synknow.load_corpus(path)
            if corpus.n_docs == n_docs and corpus.config == config:
                return corpus
        except (ValueError, OSError):
            pass
    t0 = time.perf_counter()
    synknow.generate(config, n_docs, path, overwrite=True, progress=True)
    print(f"  generated {n_docs:,} documents into {path} in {time.perf_counter() - t0:.1f} s")
    return synknow.load_corpus(path)


def bench_curve(args: argparse.Namespace) -> dict[str, Any]:
    n_train, n_test = args.curve_train, args.curve_test
    corpus = corpus_on_disk(Path(args.corpus_dir), n_train + n_test)
    checkpoints = log_checkpoints(n_train, 20, 100)
    size = sum(f.stat().st_size for f in Path(args.corpus_dir).iterdir() if f.is_file())
    print(
        f"learning curve: {n_train:,} training + {n_test:,} test documents "
        f"({corpus.n_tokens:,} tokens, {size / 1e9:.2f} GB on disk, memory-mapped), "
        f"{len(checkpoints)} checkpoints"
    )
    load_before = load()
    wall, cpu, curve = timed(
        lambda: synknow.bayes_curve(corpus, n_train, checkpoints, n_test=n_test, progress=False),
        1,
    )
    print(f"  {wall:.2f} s wall, {cpu:.2f} s CPU (load average before: {load_before})")
    print(
        f"  bits/token at n = {checkpoints[0]:,}: {curve['bits_per_token'][0]:.4f}, "
        f"at n = {n_train:,}: {curve['bits_per_token'][-1]:.4f}"
    )
    return {
        "n_train": n_train,
        "n_test": n_test,
        "n_tokens": corpus.n_tokens,
        "bytes_on_disk": size,
        "checkpoints": checkpoints.tolist(),
        "wall_s": wall,
        "cpu_s": cpu,
        "bits_per_token_first_last": [
            float(curve["bits_per_token"][0]),
            float(curve["bits_per_token"][-1]),
        ],
        "load_before": load_before,
    }


def bench_exponents(args: argparse.Namespace) -> dict[str, Any]:
    from synknow.fit import fit_power_law

    n_train = args.exponent_train
    checkpoints = log_checkpoints(n_train, 16, 100)

    def knowledge(alpha: float, seed: int, n_test: int) -> np.ndarray:
        cfg = synknow.presets.bios(alpha=alpha, beta=10.0)
        corpus = synknow.sample(cfg, n_train + n_test, seed=seed)
        curve = synknow.bayes_curve(corpus, n_train, checkpoints, progress=False)
        return curve["knowledge_bits_per_doc"]

    def fit(y: np.ndarray) -> dict[str, Any]:
        f = fit_power_law(checkpoints, y, n_boot=args.boot)
        return {
            "params": f.params,
            "gamma_ci95": list(f.ci.get("gamma", (None, None))),
        }

    out: dict[str, Any] = {
        "n_train": n_train,
        "checkpoints": checkpoints.tolist(),
        "beta": 10.0,
        "single_seed": {},
    }
    print(f"knowledge exponent: bios beta=10, n = 100..{n_train:,} (16 points), fit E + A n^-gamma")
    for alpha in (0.3, 0.5, 0.7):
        r = fit(knowledge(alpha, 0, 10_000))
        out["single_seed"][str(alpha)] = {"seed": 0, "n_test": 10_000, "target": 1 - alpha, **r}
        print(f"  alpha={alpha}: gamma = {r['params']['gamma']:.3f} (1 - alpha = {1 - alpha:.1f})")
    seeds = args.exponent_seeds
    mean = np.mean([knowledge(0.7, s, 5_000) for s in range(seeds)], axis=0)
    r = fit(mean)
    out["mean_of_seeds"] = {"alpha": 0.7, "seeds": seeds, "n_test": 5_000, "target": 0.3, **r}
    print(f"  alpha=0.7, mean curve of {seeds} seeds: gamma = {r['params']['gamma']:.3f} (0.3)")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=500_000, help="documents for the per-token run")
    p.add_argument("--reference-docs", type=int, default=2_000, help="documents for python")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--curve-train", type=int, default=10_000_000)
    p.add_argument("--curve-test", type=int, default=10_000)
    p.add_argument("--corpus-dir", default="/tmp/synknow-bench-codelength-corpus")
    p.add_argument("--no-curve", action="store_true")
    p.add_argument("--no-exponents", action="store_true")
    p.add_argument("--exponent-train", type=int, default=200_000)
    p.add_argument("--exponent-seeds", type=int, default=16)
    p.add_argument("--boot", type=int, default=200, help="bootstrap replicates of the fits")
    p.add_argument("--quick", action="store_true", help="small sizes, no result file")
    p.add_argument("--out", default=None, help="result file (default benches/results/...)")
    args = p.parse_args()
    if args.quick:
        args.docs, args.reference_docs, args.repeats = 20_000, 200, 1
        args.curve_train, args.curve_test = 50_000, 1_000
        args.exponent_train, args.exponent_seeds, args.boot = 20_000, 2, 0
        if args.corpus_dir == p.get_default("corpus_dir"):
            args.corpus_dir = "/tmp/synknow-bench-codelength-quick"
    started = dt.datetime.now(dt.timezone.utc)
    result: dict[str, Any] = {
        "benchmark": "codelength",
        "date": started.isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": memory_gib(),
            "platform": platform.platform(),
            "load_average_start": load(),
        },
        "versions": {
            "synknow": synknow.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "rustc": rustc_version(),
        },
        "git": git_sha(),
        "quick": args.quick,
    }
    result["per_token"] = bench_per_token(args)
    if not args.no_curve:
        result["learning_curve"] = bench_curve(args)
    if not args.no_exponents:
        result["knowledge_exponent"] = bench_exponents(args)
    result["machine"]["load_average_end"] = load()
    pt = result["per_token"]
    targets = {
        "per_token_M_tokens_per_cpu_s_1_thread": pt["rust"]["threads=1"]["tokens_per_cpu_s"] / 1e6,
        "per_token_target_M_tokens_per_core": 20.0,
        "speedup_vs_python": pt["speedup_vs_python_per_cpu_s"],
        "speedup_target": 100.0,
    }
    if "learning_curve" in result:
        targets["learning_curve_wall_s"] = result["learning_curve"]["wall_s"]
        targets["learning_curve_target_s"] = 60.0
    result["targets"] = targets
    print("summary: " + json.dumps({k: round(v, 2) for k, v in targets.items()}))
    if args.out or not args.quick:
        day = started.strftime("%Y%m%d")
        path = Path(args.out) if args.out else RESULTS / f"codelength-{day}.json"
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
