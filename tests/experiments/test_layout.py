"""The experiments package's structure: one-way imports (no cycle), the names the runner has
always exported, one verdict ladder, the shared token/grid/file helpers, short functions."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
import synknow.experiments as experiments_pkg
from synknow.experiments import _io, context, presets, runner
from synknow.experiments.common import log_steps
from synknow.experiments.report import VERDICTS, Section
from synknow.experiments.verdict import NOT_TESTED, STATUSES, Precondition, Verdict
from synknow.fsutil import default_file_mode
from synknow.plots import new_figure, save_figure
from synknow.tokens import log_grid

PACKAGE = Path(experiments_pkg.__file__).parent
EXPERIMENT_MODULES = (
    "data_scaling",
    "model_scaling",
    "acquisition",
    "finetune",
    "hallucination",
    "structure_function",
)


def _imports(module: str) -> set[str]:
    """Modules of the package that ``module`` imports, at module level or inside functions."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "synknow.experiments":
                found |= {a.name for a in node.names}
            elif node.module.startswith("synknow.experiments."):
                found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("synknow.experiments."):
                    found.add(a.name.rsplit(".", 1)[1])
    return found & {p.stem for p in PACKAGE.glob("*.py")}


def test_imports_go_one_way_without_cycles() -> None:
    """presets <- context <- experiments <- runner -> report; report never imports runner."""
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    graph = {m: _imports(m) for m in modules}
    assert "runner" not in graph["report"]
    for m in EXPERIMENT_MODULES:
        assert "context" in graph[m] and "runner" not in graph[m], m
    assert graph["presets"] <= {"_io"}
    assert graph["context"] <= {"_io", "presets"}
    assert graph["verdict"] == set()
    # Depth-first search for a cycle.
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in graph.get(m, ()):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path, m, dep])
            if dep not in state:
                visit(dep, [*path, m])
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, [])


def test_runner_still_exports_every_name() -> None:
    for name in runner.__all__:
        assert hasattr(runner, name), name
    assert runner.ExperimentContext is context.ExperimentContext
    assert runner.RunFailure is context.RunFailure
    for name in ("EXPERIMENTS", "PRESETS", "Preset", "ModelSpec", "get_preset", "describe_presets"):
        assert getattr(runner, name) is getattr(presets, name), name
    for name in experiments_pkg.__all__:
        assert getattr(experiments_pkg, name) is getattr(runner, name), name


def _statements(fn: ast.AST) -> int:
    return sum(isinstance(n, ast.stmt) for n in ast.walk(fn)) - 1


def test_every_function_is_under_80_statements() -> None:
    """Counted with nested functions included (stricter than pylint's PLR0915)."""
    long = []
    for path in [*PACKAGE.glob("*.py"), PACKAGE.parent / "commands" / "experiment.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if _statements(node) >= 80:
                    long.append(f"{path.name}:{node.name} ({_statements(node)})")
    assert not long, long


# ------------------------------------------------------------------------------------------------
# Verdicts


def test_verdict_ladder_over_checks() -> None:
    assert Verdict.from_checks({"a": True, "b": True}).status == "agrees"
    assert Verdict.from_checks({"a": True, "b": False}).status == "partly agrees"
    assert Verdict.from_checks({"a": False}).status == "does not agree"
    assert Verdict.from_checks({}).status == "inconclusive"
    v = Verdict.from_checks({"x grows": True, "y falls": False})
    assert v.text() == "x grows: yes; y falls: no" and v.passed == 1


def test_failed_precondition_means_not_tested() -> None:
    binds = Precondition("capacity binds", 0.4, ">= 2 (knowledge bits / capacity)", met=False)
    converged = Precondition("runs converged", "yes", "yes", met=True)
    v = Verdict.from_checks({"a": True}, preconditions=[binds, converged])
    assert v.status == NOT_TESTED and v.failed_preconditions == [binds]
    assert "capacity binds: 0.4 (needs >= 2 (knowledge bits / capacity)), not met" in v.text()
    assert Verdict.graded("agrees", "inside", preconditions=[binds]).status == NOT_TESTED
    met = Verdict.from_checks({"a": True}, preconditions=[converged])
    assert met.status == "agrees" and "Preconditions met: runs converged" in met.text()
    assert "runs converged" not in v.text()  # only the failed ones explain "not tested"


def test_verdict_statuses_are_section_verdicts() -> None:
    with pytest.raises(ValueError, match="verdict status must be one of"):
        Verdict.graded("probably", "")
    assert set(STATUSES) | {"failed"} == set(VERDICTS)
    section = Section("finetune", "c", "s", "m", "t", NOT_TESTED, "v")
    assert "**Verdict: not tested.**" in section.to_markdown()


# ------------------------------------------------------------------------------------------------
# Shared helpers


def test_probes_use_the_shared_token_module() -> None:
    import synknow.tokens as tokens
    from synknow.experiments import probes

    for name in ("PAD", "BOS", "EOS", "IGNORE", "bucket_label", "frequency_bucket"):
        assert getattr(probes, name) is getattr(tokens, name), name
    assert probes.bucket_of is tokens.frequency_bucket


@pytest.mark.parametrize(
    ("total", "k", "first"), [(1, 5, 1), (7, 3, 4), (375, 8, 4), (10**5, 14, 10)]
)
def test_log_steps_is_the_shared_log_grid_ending_at_total(total: int, k: int, first: int) -> None:
    steps = log_steps(total, k, first)
    grid = log_grid(min(first, total), total, max(2, k), integer=True).tolist()
    assert steps == sorted(set(grid) | {total})
    assert steps[-1] == total and steps == sorted(set(steps))


def test_outputs_are_atomic_and_follow_the_umask(tmp_path: Path) -> None:
    a = _io.write_json(tmp_path / "a.json", {"x": np.float64(1.5)})
    b = save_figure(new_figure()[0], tmp_path / "b.png")
    for p in (a, b):
        assert p.stat().st_mode & 0o777 == default_file_mode()
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.png"]  # no temporaries left

    def broken_savefig(f, **kw):
        f.write(b"partial")
        raise RuntimeError("disk full")

    fig = new_figure()[0]
    fig.savefig = broken_savefig
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "b.png")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.png"]
    assert b.read_bytes().startswith(b"\x89PNG")  # the old figure is intact


def test_section_shows_preconditions_as_a_table() -> None:
    from synknow.experiments.report import Section, precondition_rows

    binds = Precondition.at_least("capacity binds", 0.4, 2, "x capacity")
    seeds = Precondition.at_least("seeds per result", 3, 3)
    v = Verdict.graded("agrees", "inside the interval", preconditions=[binds, seeds])
    assert v.status == NOT_TESTED and not binds.met and seeds.met
    assert not Precondition.at_least("x", float("nan"), 1).met
    assert not Precondition.at_least("x", None, 1).met  # type: ignore[arg-type]
    section = Section(
        experiment="model-scaling",
        claim="c",
        setup="s",
        measured="m",
        theory="t",
        verdict=v.status,
        verdict_text=v.text(),
        preconditions=precondition_rows(v.preconditions),
    )
    md = section.to_markdown()
    assert "| precondition | measured | requirement | met |" in md
    assert "| capacity binds | 0.4 | >= 2 x capacity | **no** |" in md
    assert "| seeds per result | 3 | >= 3 | yes |" in md
    assert md.index("**Preconditions**") < md.index("**Verdict: not tested.**")
    assert Section.from_dict(section.to_dict()).preconditions == section.preconditions
