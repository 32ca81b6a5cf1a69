"""``synknow demo`` with the experiments section (at the micro preset here; ``make demo`` uses
cpu-tiny): the report embeds the corpus statistics and every experiment figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _experiments_testing import CODELENGTH_API
from synknow.cli import main


@pytest.mark.slow
def test_demo_runs_the_experiments_and_embeds_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report"
    args = ["demo", "--out", str(out), "--docs", "3000", "--experiments", "micro"]
    code = main(args)
    printed = capsys.readouterr()
    assert code == (0 if CODELENGTH_API else 1), printed.err
    readme = (out / "README.md").read_text()
    # the corpus-statistics section is kept, the experiments follow it
    assert readme.index("Heaps exponent") < readme.index("## Experiments E1-E6 (preset micro)")
    for title in ("E1 — data scaling", "E3 — knowledge acquisition order", "E5 — hallucination"):
        assert f"### {title}" in readme
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    experiment_pngs = sorted(str(p.relative_to(out)) for p in out.glob("experiments/*/*.png"))
    assert experiment_pngs and set(experiment_pngs) <= set(links)
    for link in links:
        assert (out / link).read_bytes().startswith(b"\x89PNG"), link
    assert "[data-scaling]" in printed.err  # progress is shown
    # a second demo reuses the finished runs (resume) and rewrites the report
    done = {p: p.stat().st_mtime_ns for p in out.glob("experiments/**/done.json")}
    assert main(args) == code
    assert {p: p.stat().st_mtime_ns for p in out.glob("experiments/**/done.json")} == done


def test_demo_rejects_an_unknown_experiment_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["demo", "--out", str(tmp_path / "r"), "--experiments", "huge"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'huge'" in err
    assert not (tmp_path / "r" / "README.md").exists()
