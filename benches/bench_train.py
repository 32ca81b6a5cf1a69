"""Training throughput: tokens/s and MFU of the named GPT sizes, and where a step's time goes.

Runs the real training loop (:func:`synknow.train.train`, fused loss, packed windows, AdamW) on a
default bios corpus sampled in memory, and reads tokens/s from the run's metrics log, skipping
the first logging interval (warm-up, compilation). A second, hand-timed loop splits a step into
data assembly, forward + loss, backward and optimiser.

On a CUDA machine every size runs in bf16 autocast and MFU is reported against the device's
dense bf16 peak (:data:`synknow.train.loop.PEAK_BF16_FLOPS`). Without CUDA only the CPU sizes
run (``tiny`` and ``1m`` by default) and the GPU sizes are listed as skipped.

    python benches/bench_train.py                      # CPU: tiny, 1m at 1 and 2 threads
    python benches/bench_train.py --sizes 5m,20m,50m,100m --compile   # on a GPU

Results: ``benches/results/train-<device>-<date>.json`` (machine, versions, git SHA, load).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import synknow
import torch
from synknow.fsutil import atomic_write_text
from synknow.provenance import git_info
from synknow.train import GPT, MODEL_SIZES, TrainConfig, TrainData
from synknow.train import train as train_fn
from synknow.train.loop import _TrainStep, peak_flops, versions

CPU_SIZES = ("tiny", "1m")
RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_loop(
    corpus: synknow.Corpus,
    size: str,
    args: argparse.Namespace,
    device: str,
    out: Path,
) -> dict[str, Any]:
    """The real trainer; tokens/s from its log, first interval dropped."""
    interval = args.steps
    cfg = TrainConfig.from_dict(
        {
            "model": {"size": size, "context_length": args.context},
            "data": {"n_test": 16},
            "optim": {
                "batch_size": args.batch,
                "micro_batch_size": args.micro_batch,
                "max_steps": 3 * interval,
                "warmup_steps": 10,
                "lr": 1e-3,
            },
            "run": {
                "out_dir": str(out),
                "device": device,
                "progress": False,
                "log_interval": interval,
                "compile": args.compile,
                "num_threads": torch.get_num_threads(),
            },
        }
    )
    run_dir = train_fn(cfg, corpus=corpus)
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    header = next(r for r in records if r["type"] == "header")
    tps = [r["tokens_per_s"] for r in records if r["type"] == "train"][1:]
    mfu = [r["mfu"] for r in records if r["type"] == "train"][1:]
    return {
        "tokens_per_s": statistics.median(tps),
        "tokens_per_s_all": tps,
        "mfu": statistics.median(mfu) if all(m is not None for m in mfu) else None,
        "params": header["params"],
        "params_non_embedding": header["params_non_embedding"],
        "flops_per_token": header["flops_per_token"],
        "steps_timed": 2 * interval,
    }


def breakdown(
    corpus: synknow.Corpus, size: str, args: argparse.Namespace, device: torch.device
) -> dict[str, float]:
    """Milliseconds per optimiser step in each phase (synchronised on CUDA)."""
    from synknow.train.config import ModelConfig

    mcfg = ModelConfig(size=size, context_length=args.context).resolved(len(corpus.vocab))
    model = GPT(mcfg).to(device)
    step_mod = _TrainStep(model, isolated=True, impl="auto")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    data = TrainData(corpus, corpus.n_docs - 16, args.context)
    micro = args.micro_batch or args.batch
    accum = args.batch // micro
    amp = torch.bfloat16 if device.type == "cuda" else None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    phases = {"data_ms": 0.0, "forward_loss_ms": 0.0, "backward_ms": 0.0, "optimizer_ms": 0.0}
    steps = args.steps
    for step in range(steps + 3):
        timing = step >= 3  # three warm-up steps
        t0 = time.perf_counter()
        norm = data.step_targets(step, args.batch)
        batches = [
            data.batch(step, args.batch, micro=j, micro_batch_size=micro).to(device)
            for j in range(accum)
        ]
        sync()
        t1 = time.perf_counter()
        fwd = bwd = 0.0
        for b in batches:
            s0 = time.perf_counter()
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = step_mod(b.tokens, b.targets, b.positions, b.segments) / norm
            sync()
            s1 = time.perf_counter()
            loss.backward()
            sync()
            fwd += s1 - s0
            bwd += time.perf_counter() - s1
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        if timing:
            phases["data_ms"] += (t1 - t0) * 1e3
            phases["forward_loss_ms"] += fwd * 1e3
            phases["backward_ms"] += bwd * 1e3
            phases["optimizer_ms"] += (t3 - t2) * 1e3
    return {k: round(v / steps, 3) for k, v in phases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cuda = torch.cuda.is_available()
    default_sizes = ",".join(MODEL_SIZES) if cuda else ",".join(CPU_SIZES)
    parser.add_argument("--sizes", default=default_sizes, help="comma-separated MODEL_SIZES")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per log interval")
    parser.add_argument("--context", type=int, default=None, help="context length")
    parser.add_argument("--batch", type=int, default=None, help="windows per optimiser step")
    parser.add_argument("--micro-batch", type=int, default=None, help="windows per micro-step")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts to try (CPU only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the train step")
    parser.add_argument("--out", type=Path, default=None, help="result file")
    args = parser.parse_args()
    args.context = args.context or (512 if cuda else 128)
    args.batch = args.batch or (64 if cuda else 16)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in MODEL_SIZES]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}; choose from {', '.join(MODEL_SIZES)}")
    if not cuda:
        gpu_only = [s for s in sizes if s not in CPU_SIZES]
        if gpu_only:
            print(
                f"note: no CUDA device: skipping {', '.join(gpu_only)} (GPU sizes; the MFU "
                "targets are for an H100). Run this script on a GPU machine for them."
            )
        sizes = [s for s in sizes if s in CPU_SIZES]
    device = torch.device("cuda" if cuda else "cpu")
    # Enough documents for 3 intervals of the largest batch, plus the 16 test documents.
    docs_needed = int(3 * args.steps * args.batch * args.context / 49) + 64
    corpus = synknow.sample(synknow.presets.bios(), docs_needed, seed=1)
    threads = [int(t) for t in args.threads.split(",")] if not cuda else [torch.get_num_threads()]
    results = []
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for n_threads in threads:
                torch.set_num_threads(n_threads)
                print(f"{size} ({n_threads} thread{'s' * (n_threads > 1)}) ...", flush=True)
                loop = run_loop(corpus, size, args, device.type, Path(tmp))
                phases = breakdown(corpus, size, args, device)
                row = {
                    "size": size,
                    "threads": n_threads if not cuda else None,
                    "context_length": args.context,
                    "batch_windows": args.batch,
                    "tokens_per_step": args.batch * args.context,
                    "compile": args.compile,
                    **loop,
                    "step_breakdown_ms": phases,
                }
                results.append(row)
                mfu = f", MFU {100 * row['mfu']:.1f}%" if row["mfu"] is not None else ""
                print(
                    f"  {row['params_non_embedding'] / 1e6:.2f}M non-embedding params: "
                    f"{row['tokens_per_s']:,.0f} tokens/s{mfu}; step ms {phases}",
                    flush=True,
                )
    name = torch.cuda.get_device_name(device) if cuda else f"CPU: {cpu_model()}"
    record = {
        "benchmark": "train",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "versions": versions(),
        "machine": {
            "device": name,
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": load(),
            "peak_bf16_flops": peak_flops(device),
        },
        "method": (
            "tokens_per_s = window positions (context_length x windows, padding included) per "
            "second of the real train() loop, median over log intervals after the first; "
            "mfu = tokens_per_s x flops_per_token / peak; step_breakdown_ms from a hand-timed "
            "copy of the step"
        ),
        "corpus": {
            "preset": "bios (defaults)",
            "n_docs": corpus.n_docs,
            "vocab_size": len(corpus.vocab),
        },
        "results": results,
    }
    tag = "cuda-" + name.replace(" ", "_") if cuda else "cpu"
    out = args.out or RESULTS / f"train-{tag}-{dt.date.today():%Y%m%d}.json"
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
