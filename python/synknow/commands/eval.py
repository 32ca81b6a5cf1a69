"""``synknow eval --run runs/<id>``: scores a trained run on its test split and prints the report
(bits by role and by entity-frequency bucket, knowledge accuracy, confidence); the report is
written to ``runs/<id>/eval_step_<N>.json`` and appended to the run's ``metrics.jsonl``.

``synknow eval --hf MODEL_DIR CORPUS_DIR``: scores a Hugging Face causal language model saved with
``save_pretrained`` (loaded with ``local_files_only``; its vocabulary must be the corpus's) on the
corpus's test split, by role and bucket beside the Bayes reference, and prints the table
(``synknow.evaluate_model``; needs ``pip install 'synknow[hf]'``)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a trained run on its test split", description=__doc__
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_DIR", help="a run directory")
    source.add_argument(
        "--hf",
        metavar="MODEL_DIR",
        help="a Hugging Face causal LM directory (save_pretrained); give CORPUS_DIR too",
    )
    parser.add_argument(
        "corpus_dir", nargs="?", metavar="CORPUS_DIR", help="with --hf: the corpus to score on"
    )
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--corpus",
        metavar="DIR",
        help="another corpus with the same vocabulary (default: the run's)",
    )
    parser.add_argument(
        "--n-test",
        type=int,
        metavar="N",
        help="with --hf: test documents, the last of the corpus (default: 1000, as training)",
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
    if args.hf is not None:
        return _run_hf(args, device)
    if args.corpus_dir is not None:
        raise ValueError(f"CORPUS_DIR {args.corpus_dir} is for --hf; with --run use --corpus")
    if args.n_test is not None:
        raise ValueError("--n-test is for --hf; a run is scored on its own test split")
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


def _run_hf(args: argparse.Namespace, device: str) -> int:
    from synknow.corpus import load_corpus
    from synknow.hf import evaluate_model, hf_model_config, load_hf_model
    from synknow.train.config import DataConfig
    from synknow.train.data import check_split

    if args.step is not None:
        raise ValueError("--step is for --run (a Hugging Face directory holds one model)")
    if args.corpus_dir is not None and args.corpus is not None:
        raise ValueError("give the corpus once: CORPUS_DIR or --corpus")
    corpus_dir = args.corpus_dir if args.corpus_dir is not None else args.corpus
    if corpus_dir is None:
        raise ValueError("--hf needs the corpus: synknow eval --hf MODEL_DIR CORPUS_DIR")
    if args.n_test is not None and args.n_test < 1:
        raise ValueError(f"--n-test must be >= 1, got {args.n_test}")
    hf_model_config(args.hf)  # a missing transformers or a bad directory first, cheaply
    corpus = load_corpus(corpus_dir)
    check_split(corpus, None, args.n_test or DataConfig.n_test)  # before loading the model
    result = evaluate_model(
        load_hf_model(args.hf, device=device, vocab_size=len(corpus.vocab)),
        corpus,
        n_test=args.n_test,
        max_docs=args.max_docs,
        batch_size=args.batch_size,
        bayes=not args.no_bayes,
        progress=True,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0
