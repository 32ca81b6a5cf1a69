"""``synknow eval --run runs/<id>``: scores a trained run on its test split and prints the report
(bits by role and by entity-frequency bucket, knowledge accuracy, confidence); the report is
written to ``runs/<id>/eval_step_<N>.json`` and appended to the run's ``metrics.jsonl``."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a trained run on its test split", description=__doc__
    )
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="a run directory")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--corpus",
        metavar="DIR",
        help="another corpus with the same vocabulary (default: the run's)",
    )
    parser.add_argument("--max-docs", type=int, help="score only the first N test documents")
    parser.add_argument("--batch-size", type=int, default=64, help="documents per batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--no-bayes",
        action="store_true",
        help="skip the Bayes-optimal reference (one pass over the training prefix)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from synknow.fsutil import atomic_write_text
    from synknow.train import evaluate, format_report, load_run

    if args.max_docs is not None and args.max_docs < 1:
        raise ValueError(f"--max-docs must be >= 1, got {args.max_docs}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} but CUDA is not available")
    loaded = load_run(args.run, step=args.step, corpus=args.corpus, device=device)
    report = evaluate(
        loaded.model,
        loaded.corpus,
        loaded.n_train,
        loaded.n_test,
        max_docs=args.max_docs,
        batch_size=args.batch_size,
        autocast_dtype=torch.bfloat16 if device.startswith("cuda") else None,
        bayes=not args.no_bayes,
        progress=True,
    )
    record = {"step": loaded.step, "checkpoint": str(loaded.checkpoint), **report}
    text = json.dumps(record, indent=2)
    atomic_write_text(loaded.run_dir / f"eval_step_{loaded.step:08d}.json", text + "\n")
    with open(loaded.run_dir / "metrics.jsonl", "a") as f:
        f.write(
            json.dumps({"type": "eval", "source": "synknow eval", "final": True, **record}) + "\n"
        )
    print(text if args.json else format_report(report))
    return 0
