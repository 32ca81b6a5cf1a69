"""Verdicts on parts of an experiment's claim (E3's timing, E4's capacity and mixed-QA
comparisons, E5's alpha sweep and name-part control), each with its own preconditions.

A part's preconditions differ from the section's (an alpha sweep needs trained models at several
alphas, a capacity comparison needs an unbound model), so a part is not folded into the
section's verdict, where a failed part precondition would make the whole section "not tested";
it is reported beside it, in the same form."""

from __future__ import annotations

from typing import Any

from synknow.experiments.report import precondition_rows
from synknow.experiments.verdict import Verdict

__all__ = ["part_markdown", "part_record"]


def part_markdown(title: str, verdict: Verdict) -> str:
    """``**title: status.** reason`` and a table of the part's preconditions."""
    lines = [f"**{title}: {verdict.status}.** {verdict.text()}."]
    if verdict.preconditions:
        lines += ["", "| precondition | measured | required | met |", "|---|---|---|---|"]
        for p in verdict.preconditions:
            measured = str(p.measured).replace("|", "/")
            lines.append(f"| {p.name} | {measured} | {p.required} | {'yes' if p.met else 'no'} |")
    return "\n".join(lines)


def part_record(verdict: Verdict) -> dict[str, Any]:
    """The part's verdict for ``fits.json``."""
    return {
        "status": verdict.status,
        "reason": verdict.reason,
        "checks": dict(verdict.checks),
        "preconditions": precondition_rows(verdict.preconditions),
    }
