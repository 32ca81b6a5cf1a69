"""``synknow demo --out report``: the main CPU job with defaults, written up as a report.

The demo samples a bios corpus (200,000 documents by default: a few seconds), prints its
statistics against the PYCRP theory, saves the Heaps and Zipf figures with the theoretical lines,
then runs the paper's experiments E1-E6 (``synknow experiment all --preset cpu-tiny`` into
``OUT/experiments``, a few minutes on 2 CPU cores; ``--experiments none`` skips them), and writes
``OUT/README.md`` with the numbers and every figure embedded.

The report is a list of *sections* (:data:`DEFAULT_SECTIONS`): each is a function that takes the
shared :class:`DemoContext`, does its work, prints what it finds and returns its Markdown. Later
parts of the demo are added as further sections.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synknow.corpus import Corpus

__all__ = [
    "register",
    "run",
    "run_demo",
    "DemoContext",
    "Section",
    "DEFAULT_SECTIONS",
    "corpus_section",
    "experiments_section",
]

DEFAULT_DOCS = 200_000


@dataclass
class DemoContext:
    """What the sections share: the output directory, the knobs, and what earlier sections
    produced (``corpus``; ``results`` for anything else, by section name)."""

    out: Path
    docs: int = DEFAULT_DOCS
    seed: int = 0
    threads: int | None = None
    echo: Callable[[str], None] = print
    experiments: str | None = None  # preset for the experiments section; None skips it
    corpus: Corpus | None = None
    results: dict[str, Any] = field(default_factory=dict)


Section = Callable[[DemoContext], str]


def corpus_section(ctx: DemoContext) -> str:
    """Samples the bios corpus, prints its statistics, draws Heaps and Zipf figures."""
    import synknow
    from synknow import plots
    from synknow.stats import corpus_stats

    cfg = synknow.presets.bios(seed=ctx.seed)
    t0 = time.perf_counter()
    corpus = synknow.sample(cfg, ctx.docs, threads=ctx.threads)
    seconds = time.perf_counter() - t0
    ctx.corpus = corpus
    s = corpus_stats(corpus)
    ctx.results["corpus"] = {"stats": s.to_dict(), "seconds": seconds}
    ctx.echo(
        f"sampled {corpus.n_docs:,} bios documents in {seconds:.2f} s "
        f"({corpus.n_tokens / seconds / 1e6:,.0f} M tokens/s)"
    )
    for line in s.lines():
        ctx.echo("  " + line)
    heaps = plots.heaps_plot(corpus, ctx.out / "heaps.png")
    zipf = plots.zipf_plot(corpus, ctx.out / "zipf.png")
    coc = plots.counts_of_counts_plot(corpus, ctx.out / "counts_of_counts.png")
    ctx.echo(f"  figures: {heaps}, {zipf}, {coc}")

    a = cfg.alpha
    rows = [
        ("documents N", f"{s.n_docs:,}", ""),
        ("tokens", f"{s.n_tokens:,}", f"{s.n_tokens / s.n_docs:.2f} per document"),
        ("entities K_N", f"{s.n_entities:,}", f"E[K_N] = {s.expected_entities:,.1f} (exact)"),
        (
            "Heaps exponent",
            f"{s.heaps.exponent:.3f}",
            f"alpha = {a:g}; exact E[K_n] fitted on the same n grid: {s.heaps_theory_exponent:.3f}",
        ),
    ]
    if s.zipf is not None and s.zipf_theory_exponent is not None:
        rows.append(
            (
                "Zipf exponent",
                f"{s.zipf.exponent:.3f}",
                f"1/alpha = {1 / a:.3f}; at counts {s.zipf_window[0]}-{s.zipf_window[1]}: "
                f"{s.zipf_theory_exponent:.3f}",
            )
        )
    if s.counts_of_counts is not None and s.counts_of_counts_theory_exponent is not None:
        rows.append(
            (
                "counts-of-counts exponent",
                f"{s.counts_of_counts.exponent:.3f}",
                f"1 + alpha = {1 + a:.3f}; at c = 1..{s.counts_of_counts.x_max:.0f}: "
                f"{s.counts_of_counts_theory_exponent:.3f}",
            )
        )
    for role, count in s.role_counts.items():
        rows.append((f"{role} tokens", f"{count:,}", f"{100 * count / s.n_tokens:.1f}%"))
    table = "\n".join(f"| {a_} | {b} | {c} |" for a_, b, c in rows)
    examples = "\n".join(f"{i}. {corpus.decode(i)}" for i in range(min(3, corpus.n_docs)))
    return f"""## Corpus: the bios preset

`synknow.sample(synknow.presets.bios(seed={ctx.seed}), {ctx.docs:,})` (alpha = {a:g},
beta = {cfg.beta:g}, {cfg.n_attributes} attributes, {cfg.m} sentences per document) took
{seconds:.2f} s ({s.n_tokens / seconds / 1e6:,.0f} M tokens/s, threads: {ctx.threads or "all"}).

| quantity | corpus | theory (docs/codelength.md#theory) |
|---|---|---|
{table}

The Heaps fit is a least-squares line of log K_n against log n for n from
{s.heaps.x_min:,.0f} to {s.heaps.x_max:,.0f}; the theory column fits the exact E[K_n] on the same
grid (the local slope approaches alpha only slowly when beta > 0). The Zipf fit uses the entities
seen {s.zipf_window[0]} to {s.zipf_window[1]} times; its theory value is the slope of the
large-n rank-frequency law rank(c) ∝ Γ(c − alpha)/Γ(c) over the same counts, which tends to
1/alpha for large counts.

![Heaps' law](heaps.png)

![Zipf's law](zipf.png)

![Counts of counts](counts_of_counts.png)

First documents:

{examples}
"""


def experiments_section(ctx: DemoContext) -> str:
    """Runs E1-E6 at ``ctx.experiments`` into ``OUT/experiments`` (finished runs of an earlier
    demo with the same settings are reused) and embeds their report sections."""
    import shutil

    from synknow.experiments import EXPERIMENTS, get_preset, run_experiments
    from synknow.experiments.report import read_section
    from synknow.experiments.runner import prepare_output

    if ctx.experiments is None:
        return ""
    preset = get_preset(ctx.experiments)
    out = ctx.out / "experiments"
    if out.exists():
        try:
            prepare_output(out, preset, resume=True)
        except ValueError as e:  # another preset or changed settings: start afresh
            ctx.echo(f"experiments: {e}; starting afresh")
            shutil.rmtree(out)
    ctx.echo(f"experiments E1-E6 at preset {preset.name} into {out} (progress below)")
    summary = run_experiments(list(EXPERIMENTS), preset, out, resume=True, progress=True)
    ctx.results["experiments"] = summary
    for name in summary.experiments:
        ctx.echo(f"  {name}: {summary.seconds[name]:.0f} s")
    for f in summary.failures:
        ctx.echo(f"  failed: {f}")
    sections = [(name, read_section(out / name)) for name in EXPERIMENTS]
    rows = "\n".join(
        f"| {s.title} | {s.verdict} | {s.headline} |" for _, s in sections if s is not None
    )
    body = "\n".join(
        s.to_markdown(prefix=f"experiments/{name}/") for name, s in sections if s is not None
    )
    body = body.replace("\n## ", "\n### ").replace("## ", "### ", 1)
    total = sum(summary.seconds.values())
    return f"""## Experiments E1-E6 (preset {preset.name})

`synknow experiment all --preset {preset.name} --out {out}` ({total:.0f} s): the paper's claims
checked against the exact Bayes predictor and the theory (docs/codelength.md#theory) at this
scale. Raw metrics, fits with bootstrap intervals and the figures are in
[`experiments/`](experiments/README.md); docs/experiments.md explains every measurement.

| experiment | verdict | headline |
|---|---|---|
{rows}

{body}
"""


DEFAULT_SECTIONS: tuple[Section, ...] = (corpus_section, experiments_section)


def run_demo(
    out: str | os.PathLike[str],
    *,
    docs: int = DEFAULT_DOCS,
    seed: int = 0,
    threads: int | None = None,
    experiments: str | None = None,
    sections: Sequence[Section] = DEFAULT_SECTIONS,
    echo: Callable[[str], None] = print,
) -> Path:
    """Runs the demo sections into ``out`` and writes ``out/README.md``; returns its path.

    ``experiments`` names the experiment preset of the experiments section (the command line's
    default is ``cpu-tiny``); ``None`` skips it."""
    import synknow
    from synknow.fsutil import atomic_write_text

    if docs < 2:
        raise ValueError(f"docs must be >= 2, got {docs}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if experiments is not None:
        from synknow.experiments import get_preset

        get_preset(experiments)  # unknown names fail before any work
    ctx = DemoContext(
        out=out, docs=docs, seed=seed, threads=threads, echo=echo, experiments=experiments
    )
    t0 = time.perf_counter()
    parts = [part for part in (section(ctx) for section in sections) if part]
    seconds = time.perf_counter() - t0
    header = f"""# synknow demo report

Generated by `synknow demo --out {out} --docs {docs} --seed {seed}` with synknow
{synknow.__version__} (Python {platform.python_version()}, {platform.machine()},
{os.cpu_count()} CPUs) in {seconds:.1f} s.
"""
    readme = out / "README.md"
    atomic_write_text(readme, "\n".join([header, *parts]))
    echo(f"report: {readme}")
    return readme


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the CPU demo and write a Markdown report with figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="report", metavar="DIR", help="report directory (report)")
    p.add_argument(
        "--docs", type=int, default=DEFAULT_DOCS, metavar="N", help="corpus size (200000)"
    )
    p.add_argument("--seed", type=int, default=0, help="master seed (0)")
    p.add_argument("--threads", type=int, default=None, help="sampler threads (default: all)")
    p.add_argument(
        "--experiments",
        default="cpu-tiny",
        metavar="PRESET",
        help="preset of the experiments E1-E6 (cpu-tiny), or 'none' to skip them",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    experiments = None if args.experiments == "none" else args.experiments
    run_demo(
        args.out, docs=args.docs, seed=args.seed, threads=args.threads, experiments=experiments
    )
    if experiments is not None:
        import json

        manifest = json.loads((Path(args.out) / "experiments" / "manifest.json").read_text())
        if any(e["failures"] for e in manifest["experiments"].values()):
            return 1  # the failures are in the report and were printed
    return 0
