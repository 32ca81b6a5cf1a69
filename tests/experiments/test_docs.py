"""docs/experiments.md's examples run as written (the Python blocks and the micro-preset command
lines, in a temporary directory)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from synknow.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"


@pytest.mark.slow
def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
    assert (tmp_path / "runs" / "exp-py" / "README.md").is_file()


@pytest.mark.slow
def test_micro_command_lines_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [
        line.split("#")[0].strip()
        for line in re.findall(r"^synknow experiment .*$", DOC.read_text(), re.M)
        if "--preset micro" in line
    ]
    assert len(lines) >= 2
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    assert os.path.isfile("runs/exp-micro/README.md")
