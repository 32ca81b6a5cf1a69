#!/usr/bin/env python
"""Benchmark the Syntax-Knowledge sampler against baselines measured in the same run.

Measures, on the bios preset (every output of docs/model.md#corpus-contents: u16 tokens, u8 roles,
per-sentence attribute and template ids, per-document offsets and entities, the entity table):

* ``synknow.sample`` with 1 thread and with all threads (tokens/s; best and median of repeats,
  each run on memory freed by the previous one, as in a loop that samples corpora), plus the
  first call of a fresh process (fresh pages: includes the kernel's page faults);
* ``memcpy``: numpy copies of arrays of exactly the output's sizes (the physical limit), into a
  fresh allocation and into a warm, preallocated one;
* ``numpy``: a vectorised generator of a simplified model written for this bench (entities
  uniform over a fixed table instead of the PYCRP; same attribute orders, template law,
  rendering, outputs), in chunks of documents: a strong baseline;
* ``reference``: the pure-Python reference sampler of the tests (small n);
* ``stream``: ``synknow.generate`` of ~1e9 tokens to disk in a subprocess, with its wall time,
  throughput and peak RSS (VmHWM) against the predicted bound (entity table + CRP entity ids +
  one shard), for two shard sizes; and ``disk_write``: the same number of bytes written and
  fsynced as one plain file (the disk's limit for streaming);
* ``stages``: the Rust stage times (PYCRP pass, records, render) from the criterion bench's
  profile run, when ``cargo`` is available.

Ratios against the baselines are printed, and everything is saved as JSON (machine, versions,
date, git commit) under ``benches/results/sampler-<utc-time>.json``.

    python benches/bench_sampler.py                 # everything (about a minute)
    python benches/bench_sampler.py --quick         # small sizes, no streaming, no cargo
    python benches/bench_sampler.py --stream-tokens 2e8 --docs 500000
    python benches/bench_sampler.py --on-the-fly    # only the on-the-fly stream, per worker
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import synknow
from synknow import _core
from synknow.fsutil import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sampler"))  # the reference sampler lives with the tests

from reference_sampler import sample_reference  # noqa: E402

# ------------------------------------------------------------------------------------------------
# helpers


def timed_runs(fn, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls; each result is dropped before the next call."""
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return times


def summary(times: list[float], tokens: int) -> dict[str, float]:
    best, median = min(times), statistics.median(times)
    return {
        "best_s": best,
        "median_s": median,
        "best_mtok_s": tokens / best / 1e6,
        "median_mtok_s": tokens / median / 1e6,
        "runs": len(times),
    }


def output_bytes(corpus: synknow.Corpus) -> dict[str, int]:
    return {name: int(a.nbytes) for name, a in corpus.arrays.items()}


def machine() -> dict[str, Any]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return ""

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": run(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(run(["git", "status", "--porcelain", "--", "rust", "python"])),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "synknow": synknow.__version__,
        "rustc": run(["rustc", "--version"]),
    }


# ------------------------------------------------------------------------------------------------
# baselines


def memcpy_baseline(corpus: synknow.Corpus, repeats: int) -> dict[str, Any]:
    """Copies of arrays with the sampler output's exact sizes and dtypes."""
    arrays = [np.ascontiguousarray(a) for a in corpus.arrays.values()]
    total = sum(a.nbytes for a in arrays)

    def fresh() -> list[np.ndarray]:
        return [a.copy() for a in arrays]

    warm = [np.empty_like(a) for a in arrays]

    def into_warm() -> list[np.ndarray]:
        for dst, src in zip(warm, arrays, strict=True):
            np.copyto(dst, src)
        return warm

    tokens = corpus.n_tokens
    return {
        "bytes": total,
        "fresh": summary(timed_runs(fresh, repeats), tokens),
        "warm": summary(timed_runs(into_warm, repeats), tokens),
    }


class NumpyGenerator:
    """A vectorised generator of a simplified Syntax-Knowledge model (the bench's baseline).

    Same grammar, theta, attribute orders (uniform ordered m-subsets), template law and
    rendering as the real model, and the same outputs; but the entity of each document is
    uniform over a fixed table of ``n_entities`` entities (no PYCRP, which is sequential and has
    no vectorised form). Work is done in chunks of ``chunk`` documents, all in numpy:

    * attribute orders: one uniform index into a table of all ordered m-subsets;
    * templates: the alias method on theta, elementwise;
    * rendering: each document is a row of segments (BOS, m sentences, EOS), each segment a row
      of a padded template matrix; one ``np.repeat`` maps every output token to its flat index
      in that matrix, two ``np.take`` fetch tokens and roles, and the name and value slots are
      scattered in.
    """

    NAME, VALUE = 0xFFFF, 0xFFFE  # placeholders in the padded template matrix

    def __init__(self, config: synknow.SyntaxKnowledgeConfig, n_entities: int, chunk: int):
        import itertools

        g = _core.grammar_info(config.to_json())
        self.m, self.a = config.m, config.n_attributes
        self.j = len(g["name_start"])
        self.chunk = chunk
        rng = np.random.default_rng(config.seed)
        self.names = np.stack(
            [
                s + rng.integers(0, n, n_entities)
                for s, n in zip(g["name_start"], g["name_size"], strict=True)
            ],
            axis=1,
        ).astype(np.uint16)
        self.values = np.stack(
            [
                g["pool_start"][p] + rng.integers(0, g["pool_size"][p], n_entities)
                for p in config.attribute_pool
            ],
            axis=1,
        ).astype(np.uint16)
        self.orders = np.array(list(itertools.permutations(range(self.a), self.m)), dtype=np.int64)
        # Flat templates (+ BOS and EOS as one-token segments): padded token and role rows.
        sk = [t for per_attr in g["skeletons"] for t in per_attr]
        self.first = np.cumsum([0] + [len(x) for x in g["skeletons"]])[:-1]
        self.n_templates = max(len(x) for x in g["skeletons"])
        rows, roles_rows = [], []
        self.name_at = np.zeros(len(sk), dtype=np.int64)
        self.value_at = np.zeros(len(sk), dtype=np.int64)
        for f, s in enumerate(sk):
            row, roles = [], []
            for x in s:
                if x == -1:
                    self.name_at[f] = len(row)
                    row += [self.NAME] * self.j
                    roles += [2] * self.j
                elif x == -2:
                    self.value_at[f] = len(row)
                    row.append(self.VALUE)
                    roles.append(3)
                else:
                    row.append(x)
                    roles.append(1)
            rows.append(row)
            roles_rows.append(roles)
        self.bos, self.eos = len(sk), len(sk) + 1
        rows += [[1], [2]]
        roles_rows += [[0], [0]]
        self.width = max(len(r) for r in rows)
        self.tok = np.zeros((len(rows), self.width), dtype=np.uint16)
        self.role = np.zeros((len(rows), self.width), dtype=np.uint8)
        for f, (r, rr) in enumerate(zip(rows, roles_rows, strict=True)):
            self.tok[f, : len(r)] = r
            self.role[f, : len(r)] = rr
        self.tok_flat, self.role_flat = self.tok.ravel(), self.role.ravel()
        self.lens = np.array([len(r) for r in rows], dtype=np.int64)
        theta = _core.theta(config.to_json())
        # Alias tables of theta per attribute, padded to the widest attribute (Walker/Vose).
        self.n_cols = np.array([len(t) for t in theta], dtype=np.float64)
        self.prob = np.ones((self.a, self.n_templates))
        self.alias = np.zeros((self.a, self.n_templates), dtype=np.int64)
        for a, t in enumerate(theta):
            scaled = np.asarray(t, dtype=np.float64) * len(t)
            small = [i for i, x in enumerate(scaled) if x < 1.0]
            large = [i for i, x in enumerate(scaled) if x >= 1.0]
            self.alias[a] = np.arange(self.n_templates)
            while small and large:
                i, k = small.pop(), large[-1]
                self.prob[a, i] = scaled[i]
                self.alias[a, i] = k
                scaled[k] -= 1.0 - scaled[i]
                if scaled[k] < 1.0:
                    large.pop()
                    small.append(k)
        self.prob_flat, self.alias_flat = self.prob.ravel(), self.alias.ravel()
        self.name_cols = [np.ascontiguousarray(self.names[:, j]) for j in range(self.j)]
        self.values_flat = self.values.ravel()
        self.n_entities = n_entities

    def generate(self, n: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        m, seg = self.m, self.m + 2
        # Records of all documents at once (cheap), then offsets, then rendering chunk by chunk
        # straight into the final arrays.
        ent = rng.integers(0, self.n_entities, n)
        sa = self.orders[rng.integers(0, len(self.orders), n)]
        # Templates by the alias method: column from the integer part, coin from the fraction.
        x = rng.random((n, m)) * np.take(self.n_cols, sa)
        col = x.astype(np.int64)
        cell = sa * self.n_templates + col
        keep = (x - col) < np.take(self.prob_flat, cell)
        st = np.where(keep, col, np.take(self.alias_flat, cell))
        segments = np.empty((n, seg), dtype=np.int64)
        segments[:, 0], segments[:, -1] = self.bos, self.eos
        segments[:, 1:-1] = self.first[sa] + st
        lens = self.lens[segments]
        ends = np.cumsum(lens.ravel()).reshape(n, seg)
        starts = ends - lens
        doc_offsets = np.zeros(n + 1, dtype=np.uint64)
        doc_offsets[1:] = ends[:, -1]
        total = int(ends[-1, -1]) if n else 0
        tokens = np.empty(total, dtype=np.uint16)
        roles = np.empty(total, dtype=np.uint8)
        arange = np.arange(int(lens[: self.chunk].sum()) + 1)
        for lo in range(0, n, self.chunk):
            hi = min(lo + self.chunk, n)
            t0, t1 = int(doc_offsets[lo]), int(doc_offsets[hi])
            sg, ln, sts = segments[lo:hi].ravel(), lens[lo:hi].ravel(), starts[lo:hi].ravel()
            # Flat index of each output token in the padded matrix: row * width + offset.
            idx = np.repeat(sg * self.width - (sts - t0), ln)
            if len(arange) < len(idx):
                arange = np.arange(len(idx))
            idx += arange[: len(idx)]
            out = tokens[t0:t1]
            np.take(self.tok_flat, idx, out=out)
            np.take(self.role_flat, idx, out=roles[t0:t1])
            sent = segments[lo:hi, 1:-1].ravel()
            sent_start = starts[lo:hi, 1:-1].ravel() - t0
            ent_s = np.repeat(ent[lo:hi], m)
            name_pos = sent_start + np.take(self.name_at, sent)
            for j in range(self.j):
                out[name_pos + j] = np.take(self.name_cols[j], ent_s)
            value_cell = ent_s * self.a + sa[lo:hi].ravel()
            out[sent_start + np.take(self.value_at, sent)] = np.take(self.values_flat, value_cell)
        return {
            "tokens": tokens,
            "roles": roles,
            "doc_offsets": doc_offsets,
            "doc_entity": ent.astype(np.uint32),
            "sentence_attribute": sa.astype(np.uint16),
            "sentence_template": st.astype(np.uint16),
        }


def check_numpy_generator(gen: NumpyGenerator, config: synknow.SyntaxKnowledgeConfig) -> None:
    """The baseline must produce well-formed corpora: every document decodes to its records."""
    out = gen.generate(300, seed=1)
    g = _core.grammar_info(config.to_json())
    for i in range(300):
        doc = out["tokens"][out["doc_offsets"][i] : out["doc_offsets"][i + 1]].tolist()
        k = int(out["doc_entity"][i])
        expected = [1]
        for a, t in zip(out["sentence_attribute"][i], out["sentence_template"][i], strict=True):
            for x in g["skeletons"][a][t]:
                if x == -1:
                    expected += gen.names[k].tolist()
                elif x == -2:
                    expected.append(int(gen.values[k, a]))
                else:
                    expected.append(x)
        expected.append(2)
        assert doc == expected, f"numpy baseline renders document {i} wrongly"


# ------------------------------------------------------------------------------------------------
# streaming


STREAM_CHILD = r"""
import json, sys, time
import numpy as np
import synknow

def peak_rss_kb():
    # VmHWM: this process's peak resident set. (ru_maxrss would also count the parent's pages
    # the child held between fork and exec.)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

cfg = synknow.presets.bios(name_parts=(1000, 1000, 1000), seed=1)
synknow.sample(cfg, 10)  # load everything the generation needs before the baseline
base_rss = peak_rss_kb()
t0 = time.perf_counter()
synknow.generate(cfg, int(sys.argv[1]), sys.argv[2], shard_docs=int(sys.argv[3]), progress=False)
seconds = time.perf_counter() - t0
peak = peak_rss_kb()
m = json.load(open(sys.argv[2] + "/manifest.json"))
print(json.dumps({"seconds": seconds, "peak_rss_kb": peak, "rss_before_kb": base_rss,
                  "n_tokens": m["n_tokens"], "n_entities": m["n_entities"], "n_docs": m["n_docs"]}))
"""


def stream_run(n_docs: int, shard_docs: int, tokens_per_doc: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(
        dir=REPO / "target" if (REPO / "target").is_dir() else None
    ) as d:
        out = Path(d) / "stream"
        proc = subprocess.run(
            [sys.executable, "-c", STREAM_CHILD, str(n_docs), str(out), str(shard_docs)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["disk_bytes"] = sum(f.stat().st_size for f in out.iterdir())
    m = synknow.presets.bios().m
    j, a = 3, 6
    # What the bound says must be resident: one shard's outputs, the CRP's entity ids, the
    # entity table (names, values, first doc, count, the used-name set ~16 bytes/entity).
    shard_tokens = shard_docs * tokens_per_doc
    shard_bytes = shard_tokens * 3 + shard_docs * (8 + 4 + 4 * m)
    crp_bytes = n_docs * 4
    entity_bytes = r["n_entities"] * (4 * j + 4 * a + 8 + 8 + 16)
    r.update(
        shard_docs=shard_docs,
        predicted_bound_bytes=int(shard_bytes + crp_bytes + entity_bytes),
        shard_bytes=int(shard_bytes),
        crp_entity_ids_bytes=crp_bytes,
        entity_table_bytes=entity_bytes,
        mtok_s=r["n_tokens"] / r["seconds"] / 1e6,
    )
    return r


def disk_write_baseline(n_bytes: int) -> dict[str, float]:
    """Writes ``n_bytes`` of zeros in 64 MB blocks to one file and fsyncs it: the disk's limit
    for a streamed corpus of that size."""
    block = np.zeros(64 << 20, dtype=np.uint8)
    where = REPO / "target" if (REPO / "target").is_dir() else None
    with tempfile.TemporaryDirectory(dir=where) as d:
        path = Path(d) / "blob"
        t0 = time.perf_counter()
        with open(path, "wb") as f:
            left = n_bytes
            while left > 0:
                f.write(memoryview(block)[: min(left, len(block))])
                left -= len(block)
            f.flush()
            os.fsync(f.fileno())
        seconds = time.perf_counter() - t0
    return {"bytes": n_bytes, "seconds": seconds, "mb_s": n_bytes / seconds / 1e6}


# ------------------------------------------------------------------------------------------------
# Rust stage profile


def cargo_stages() -> dict[str, Any] | None:
    """Runs the criterion bench's stage profile (release build); parses its stage-time lines."""
    try:
        proc = subprocess.run(
            ["cargo", "bench", "-q", "-p", "synknow-core", "--bench", "sampler", "--", "stages"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    pat = re.compile(
        r"threads=(\d+).*?crp ([\d.]+) ms, records ([\d.]+) ms .*?render ([\d.]+) ms, total "
        r"([\d.]+) ms"
    )
    out: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        mt = pat.search(line)
        if mt:
            t, crp, rec, ren, tot = mt.groups()
            out[f"threads={t}"] = {
                "crp_ms": float(crp),
                "records_ms": float(rec),
                "render_ms": float(ren),
                "total_ms": float(tot),
            }
    if not out:
        return {"error": (proc.stdout + proc.stderr)[-1500:]}
    return out


# ------------------------------------------------------------------------------------------------


FIRST_CALL_CHILD = r"""
import json, sys, time, synknow
cfg = synknow.presets.bios(seed=1)
synknow.sample(cfg, 10)  # load and warm the library on a tiny corpus
t0 = time.perf_counter()
c = synknow.sample(cfg, int(sys.argv[1]), threads=int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t0, "tokens": c.n_tokens}))
"""


def first_call(n_docs: int, threads: int) -> dict[str, float]:
    runs = []
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", FIRST_CALL_CHILD, str(n_docs), str(threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(proc.stdout))
    best = min(runs, key=lambda r: r["seconds"])
    return {"best_s": best["seconds"], "best_mtok_s": best["tokens"] / best["seconds"] / 1e6}


def on_the_fly(n_docs: int) -> dict[str, Any]:
    """Tokens/s of one worker of the on-the-fly stream (one sampler thread): the fast-forward
    (entities only), ``synknow.Sampler`` batches, and ``synknow.torch.GeneratedDocuments``
    iterated in-process as one shard, as shard 0 of 4, and from a late start."""
    cfg = synknow.presets.bios(seed=1)
    out: dict[str, Any] = {"n_docs": n_docs}
    t0 = time.perf_counter()
    synknow.Sampler(cfg, start=n_docs, threads=1)
    out["skip_ns_per_doc"] = (time.perf_counter() - t0) / n_docs * 1e9
    s = synknow.Sampler(cfg, threads=1)
    t0 = time.perf_counter()
    tokens = sum(len(s.next_batch(16_384).tokens) for _ in range(-(-n_docs // 16_384)))
    out["sampler_tokens_per_s"] = tokens / (time.perf_counter() - t0)
    try:
        from synknow.torch import GeneratedDocuments
    except ImportError:
        return out
    for label, kwargs in [
        ("one_shard", {"rank": 0, "world_size": 1, "start": 0}),
        ("shard_0_of_4", {"rank": 0, "world_size": 4, "start": 0}),
        ("start_at_n", {"rank": 0, "world_size": 1, "start": n_docs}),
    ]:
        ds = GeneratedDocuments(cfg, stop=kwargs["start"] + n_docs, **kwargs)
        t0 = time.perf_counter()
        tokens = sum(len(item["tokens"]) for item in ds)
        out[f"dataset_{label}_tokens_per_s"] = tokens / (time.perf_counter() - t0)
    return out


class _OnTheFly(argparse.Action):
    """``--on-the-fly``: measures, prints and exits, apart from the full run."""

    def __call__(self, parser, namespace, values, option_string=None):
        for key, value in on_the_fly(int(values)).items():
            print(f"{key}: {value:,.0f}")
        parser.exit(0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=200_000, help="bios documents per run (200000)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per method (15)")
    p.add_argument("--reference-docs", type=int, default=2000)
    p.add_argument("--stream-tokens", type=float, default=1e9, help="0 to skip (1e9)")
    p.add_argument("--quick", action="store_true", help="small sizes, no streaming, no cargo")
    p.add_argument("--no-cargo", action="store_true", help="skip the Rust stage profile")
    p.add_argument("--out", default=None, help="JSON path (default benches/results/...)")
    p.add_argument(
        "--on-the-fly",
        type=int,
        nargs="?",
        const=200_000,
        default=None,
        metavar="N",
        action=_OnTheFly,
        help="only measure the on-the-fly stream per worker over N documents (200000) and exit",
    )
    args = p.parse_args()
    if args.quick:
        args.docs, args.repeats, args.reference_docs, args.stream_tokens = 20_000, 5, 300, 0
        args.no_cargo = True

    info = machine()
    threads_all = os.cpu_count() or 1
    cfg = synknow.presets.bios(seed=1)
    load = info["load_average_at_start"]
    print(f"synknow {info['synknow']} on {info['cpu']} ({info['cpus']} CPUs), load {load}")
    corpus = synknow.sample(cfg, args.docs)
    tokens = corpus.n_tokens
    print(
        f"bios preset, {args.docs:,} documents = {tokens:,} tokens, {corpus.n_entities:,} entities"
    )
    results: dict[str, Any] = {
        "machine": info,
        "workload": {
            "preset": "bios",
            "config": cfg.to_dict(),
            "n_docs": args.docs,
            "n_tokens": tokens,
            "n_entities": corpus.n_entities,
            "output_bytes": output_bytes(corpus),
        },
    }
    del corpus

    sampler = {}
    for threads in sorted({1, threads_all}):
        t = timed_runs(lambda th=threads: synknow.sample(cfg, args.docs, threads=th), args.repeats)
        sampler[f"threads={threads}"] = summary(t, tokens)
    results["synknow"] = sampler
    if not args.quick:
        results["synknow_first_call"] = {
            f"threads={t}": first_call(args.docs, t) for t in sorted({1, threads_all})
        }

    corpus = synknow.sample(cfg, args.docs)
    results["memcpy"] = memcpy_baseline(corpus, args.repeats)
    gen = NumpyGenerator(cfg, corpus.n_entities, chunk=2048)
    check_numpy_generator(gen, cfg)
    np_out = gen.generate(args.docs, seed=2)
    np_tokens = len(np_out["tokens"])
    del np_out, corpus
    results["numpy_baseline"] = {
        "model": "entities uniform over a fixed table (no PYCRP), chunks of 2048 documents",
        "n_tokens": np_tokens,
        **summary(
            timed_runs(lambda: gen.generate(args.docs, seed=2), max(3, args.repeats // 3)),
            np_tokens,
        ),
    }
    ref_tokens = 0

    def ref() -> None:
        nonlocal ref_tokens
        r = sample_reference(cfg, args.reference_docs, seed=1)
        ref_tokens = sum(len(d) for d in r.documents)

    ref()
    results["reference_python"] = {
        "n_docs": args.reference_docs,
        **summary(timed_runs(ref, 2), ref_tokens),
    }

    if args.stream_tokens > 0:
        tpd = tokens / args.docs
        n_stream = int(args.stream_tokens / tpd)
        # Best of two runs each: the first write of a few GB is often slowed down by the
        # writeback of earlier activity, whichever run comes first.
        results["stream"] = []
        for shard in (1_000_000, 100_000):
            runs = [stream_run(n_stream, shard, tpd) for _ in range(2)]
            best = min(runs, key=lambda r: r["seconds"])
            best["all_seconds"] = [r["seconds"] for r in runs]
            results["stream"].append(best)
        n_bytes = results["stream"][0]["disk_bytes"]
        disk = [disk_write_baseline(n_bytes) for _ in range(2)]
        results["disk_write"] = min(disk, key=lambda r: r["seconds"])
        results["disk_write"]["all_seconds"] = [r["seconds"] for r in disk]
    if not args.no_cargo:
        results["rust_stages"] = cargo_stages()

    # ---- report -------------------------------------------------------------------------------
    one = results["synknow"]["threads=1"]
    many = results["synknow"][f"threads={threads_all}"]
    ratios = {
        "threads_speedup_best": one["best_s"] / many["best_s"],
        "threads_speedup_median": one["median_s"] / many["median_s"],
        "one_thread_vs_numpy_best": one["best_mtok_s"] / results["numpy_baseline"]["best_mtok_s"],
        "one_thread_vs_memcpy_fresh_best": one["best_mtok_s"]
        / results["memcpy"]["fresh"]["best_mtok_s"],
        "one_thread_vs_memcpy_warm_best": one["best_mtok_s"]
        / results["memcpy"]["warm"]["best_mtok_s"],
        "all_threads_vs_reference_best": many["best_mtok_s"]
        / results["reference_python"]["best_mtok_s"],
    }
    results["ratios"] = ratios
    print(f"{'method':<34} {'best M tok/s':>13} {'median M tok/s':>15}")
    rows = [
        ("synknow, 1 thread", one),
        (f"synknow, {threads_all} threads", many),
        ("memcpy of the outputs, fresh", results["memcpy"]["fresh"]),
        ("memcpy of the outputs, warm", results["memcpy"]["warm"]),
        ("numpy simplified model", results["numpy_baseline"]),
        ("pure-Python reference", results["reference_python"]),
    ]
    for name, r in rows:
        print(f"{name:<34} {r['best_mtok_s']:>13,.1f} {r['median_mtok_s']:>15,.1f}")
    for k, v in results.get("synknow_first_call", {}).items():
        print(f"{'synknow first call, ' + k:<34} {v['best_mtok_s']:>13,.1f}")
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    for s in results.get("stream", []):
        gb, mb = s["disk_bytes"] / 1e9, s["predicted_bound_bytes"] / 1e6
        print(
            f"stream {s['n_tokens']:,} tokens ({gb:.2f} GB), shard {s['shard_docs']:,} docs: "
            f"{s['seconds']:.1f} s ({s['mtok_s']:,.0f} M tok/s, best of 2), peak RSS "
            f"{s['peak_rss_kb'] / 1e3:,.0f} MB (before: {s['rss_before_kb'] / 1e3:,.0f} MB; "
            f"bound: {mb:,.0f} MB + before)"
        )
    if "disk_write" in results:
        d = results["disk_write"]
        print(
            f"disk: {d['bytes'] / 1e9:.2f} GB written and fsynced in {d['seconds']:.1f} s "
            f"({d['mb_s']:,.0f} MB/s)"
        )
    if results.get("rust_stages"):
        print("rust stages:", json.dumps(results["rust_stages"]))

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else REPO / "benches" / "results" / f"sampler-{stamp}.json"
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
