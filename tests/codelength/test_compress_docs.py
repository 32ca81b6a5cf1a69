"""docs/compression.md runs as written: its Python block, then its ``synknow`` command lines."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from synknow.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "compression.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_python_example_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})


def test_command_lines_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [ln for b in _blocks("bash") for ln in b.splitlines() if ln.startswith("synknow ")]
    assert len(lines) == 3
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[0] != "generate":
            argv.append("--quiet")
        assert main(argv) == 0, line
    assert (tmp_path / "bios-3k-decoded" / "tokens.npy").exists()
