"""The examples of docs/model.md, docs/corpus-format.md and docs/cli.md run as written."""

import re
import shlex
from pathlib import Path

import pytest
from synknow.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", ["model.md", "corpus-format.md"])
def test_python_examples_run(page: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _blocks((DOCS / page).read_text(), "python")
    assert blocks, f"{page} has no Python examples"
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page}[block {i}]", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{page}, example {i} failed: {e!r}\n{code}") from e
    capsys.readouterr()


@pytest.mark.slow
def test_cli_examples_run(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    text = (DOCS / "cli.md").read_text()
    (tmp_path / "my-corpus.toml").write_text(_blocks(text, "toml")[0])
    expected_inspect = _blocks(text, "text")[0].strip().splitlines()
    first_inspect = None
    for block in _blocks(text, "bash"):
        for line in block.strip().splitlines():
            assert line.startswith("synknow "), line
            capsys.readouterr()
            rc = main(shlex.split(line)[1:])
            out = capsys.readouterr()
            assert rc == 0, f"{line}: {out.err}"
            if line.startswith("synknow inspect") and first_inspect is None:
                first_inspect = out.out
    assert first_inspect is not None
    for line in expected_inspect:
        assert line in first_inspect, f"docs/cli.md shows a line inspect no longer prints: {line}"
    assert (tmp_path / "bios-100k-figures" / "zipf.png").exists()
    assert (tmp_path / "report" / "README.md").exists()


@pytest.mark.parametrize(
    "module",
    [
        "synknow.stats",
        "synknow.plots",
        "synknow.commands.generate",
        "synknow.parts",
        "synknow.stream",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no examples"
    assert result.failed == 0
