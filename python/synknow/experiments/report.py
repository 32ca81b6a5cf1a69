"""Markdown report: one section per experiment (the paper's claim, what was run and measured, the
theory prediction of docs/codelength.md, the preconditions, and whether they agree), assembled
into ``OUT/README.md``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synknow.experiments import _io
from synknow.experiments.presets import EXPERIMENTS
from synknow.experiments.verdict import STATUSES, Precondition

__all__ = [
    "Section",
    "precondition_rows",
    "VERDICTS",
    "write_section",
    "read_section",
    "failed_section",
    "build_report",
    "markdown_table",
    "fmt",
]

# A section's verdict: a Verdict status, or "failed" when the experiment stopped with an error.
VERDICTS = (*STATUSES, "failed")

TITLES = {
    "data-scaling": "E1 — data scaling",
    "model-scaling": "E2 — model scaling",
    "acquisition": "E3 — knowledge acquisition order",
    "finetune": "E4 — fine-tuning: injection, forgetting, format",
    "hallucination": "E5 — hallucination",
    "structure-function": "E6 — structure function",
}


@dataclass
class Section:
    """One experiment's part of the report. ``figures`` are ``(file name, caption)`` pairs
    relative to the experiment's directory; ``files`` the raw data files there."""

    experiment: str
    claim: str
    setup: str
    measured: str
    theory: str
    verdict: str
    verdict_text: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float | None = None
    failures: list[str] = field(default_factory=list)
    headline: str = ""  # one line for the summary table
    # What the claim needs from the set-up, as measured in this run: dicts with "name",
    # "measured", "required", "met" (see :func:`precondition_rows`).
    preconditions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def title(self) -> str:
        return TITLES.get(self.experiment, self.experiment)

    def to_markdown(self, prefix: str = "") -> str:
        """The section; ``prefix`` is prepended to figure and file links (e.g. ``"acquisition/"``
        when the section is embedded in the top-level report)."""
        lines = [f"## {self.title}", ""]
        lines += [f"**Claim (paper).** {self.claim}", ""]
        lines += [f"**What was run.** {self.setup}", ""]
        lines += ["**What was measured.**", "", self.measured.strip(), ""]
        lines += [f"**Theory** (docs/codelength.md). {self.theory}", ""]
        if self.preconditions:
            lines += [
                "**Preconditions** (what the claim needs from this set-up; any that is not met "
                "makes the verdict *not tested*).",
                "",
                markdown_table(
                    ["precondition", "measured", "requirement", "met"],
                    [
                        [
                            p["name"],
                            _cell(p["measured"]),
                            p["required"],
                            "yes" if p["met"] else "**no**",
                        ]
                        for p in self.preconditions
                    ],
                ),
                "",
            ]
        lines += [f"**Verdict: {self.verdict}.** {self.verdict_text}", ""]
        for name, caption in self.figures:
            lines += [f"![{caption}]({prefix}{name})", "", f"*{caption}*", ""]
        if self.files:
            links = ", ".join(f"[`{f}`]({prefix}{f})" for f in self.files)
            lines += [f"Data: {links}.", ""]
        if self.failures:
            lines += ["**Failed runs** (rerun with `--resume` to retry them):", ""]
            lines += [f"- `{f}`" for f in self.failures] + [""]
        if self.seconds is not None:
            lines += [f"<sub>{self.seconds:.0f} s</sub>", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Section:
        d = dict(d)
        d["figures"] = [tuple(x) for x in d.get("figures", [])]
        return cls(**d)


def precondition_rows(preconditions: Iterable[Precondition]) -> list[dict[str, Any]]:
    """A verdict's preconditions as :attr:`Section.preconditions` rows (JSON-friendly)."""
    return [
        {"name": p.name, "measured": _io.jsonable(p.measured), "required": p.required, "met": p.met}
        for p in preconditions
    ]


def _cell(x: Any) -> str:
    return fmt(x) if not isinstance(x, str) else x


def write_section(directory: Path, section: Section) -> None:
    _io.write_json(directory / "section.json", section.to_dict())
    _io.write_text(directory / "section.md", section.to_markdown() + "\n")


def read_section(directory: Path) -> Section | None:
    path = directory / "section.json"
    if not path.is_file():
        return None
    return Section.from_dict(_io.read_json(path))


def failed_section(experiment: str, error: BaseException) -> Section:
    return Section(
        experiment=experiment,
        claim="(see docs/experiments.md)",
        setup="The experiment stopped with an error before its analysis finished.",
        measured=f"`{type(error).__name__}: {error}` (traceback in `error.txt`).",
        theory="-",
        verdict="failed",
        verdict_text="No result: rerun with `--resume` once the cause is fixed.",
        headline=f"failed: {type(error).__name__}",
    )


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers for tables: ``None``/NaN -> ``-``; floats with ``digits`` significant figures."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v != v:
        return "-"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        out.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |")
    return "\n".join(out)


def build_report(out: Path) -> Path:
    """Writes ``out/README.md`` from the manifest and every experiment section found in ``out``
    (so experiments run separately into the same directory with ``--resume`` accumulate)."""
    manifest = _io.read_json(out / "manifest.json")
    env = manifest.get("environment", {})
    sections = [(name, read_section(out / name)) for name in EXPERIMENTS]
    present = [(n, s) for n, s in sections if s is not None]
    lines = [
        "# synknow experiments",
        "",
        f"Preset **{manifest['preset']}** — {manifest['settings'].get('description', '')}.",
        "",
        "The experiments of Pan, Wang & Li (NeurIPS 2025) on Syntax-Knowledge corpora, compared "
        "with the exact Bayesian predictor and the theory of docs/codelength.md. Each section says "
        "what the paper claims, what was run, what came out, and whether the two agree at this "
        "scale. Raw metrics, fits (with intervals) and figures are in each "
        "experiment's directory. A verdict is *not tested* when the set-up cannot test the "
        "claim (a precondition in the section's table is not met).",
        "",
        f"Environment: synknow {env.get('synknow')}, Python {env.get('python')}, torch "
        f"{env.get('torch')}, numpy {env.get('numpy')}; device `{env.get('device')}` "
        f"({env.get('cpu_count')} CPU cores"
        + (f", {env['cpu']}" if env.get("cpu") else "")
        + (f", {env['torch_cpu_capability']} kernels" if env.get("torch_cpu_capability") else "")
        + f"); commit `{env.get('git_commit')}`"
        + (" (with uncommitted changes)" if env.get("git_dirty") else "")
        + f"; started {manifest.get('created')}.",
        "",
    ]
    if present:
        total = sum(s.seconds or 0.0 for _, s in present)
        lines += ["| experiment | verdict | headline | time |", "|---|---|---|---|"]
        for _, s in present:
            t = f"{s.seconds:.0f} s" if s.seconds is not None else "-"
            lines.append(f"| [{s.title}](#{_anchor(s.title)}) | {s.verdict} | {s.headline} | {t} |")
        lines += ["", f"Total time of the sections above: {total:.0f} s.", ""]
    missing = [n for n, s in sections if s is None]
    if missing:
        lines += [f"Not run into this directory: {', '.join(missing)}.", ""]
    for name, s in present:
        lines += [s.to_markdown(prefix=f"{name}/"), ""]
    return _io.write_text(out / "README.md", "\n".join(lines).rstrip() + "\n")


def _anchor(title: str) -> str:
    keep = [c for c in title.lower() if c.isalnum() or c in " -_"]
    return "".join(keep).replace(" ", "-")
