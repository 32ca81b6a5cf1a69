"""Without an optional dependency, a command says which extra to install, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# `sys.modules[name] = None` makes `import name` raise ModuleNotFoundError, as on a machine
# where the package was never installed.
_RUN = (
    "import sys; sys.modules[{mod!r}] = None\n"
    "from synknow.cli import main; sys.exit(main({argv!r}))"
)


def _run(mod: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = _RUN.format(mod=mod, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "command",
    [["train", "--max_steps=1"], ["experiment", "data-scaling", "--preset", "micro", "--out"]],
)
def test_without_torch_training_commands_name_the_train_extra(
    command: list[str], tmp_path: Path
) -> None:
    argv = [*command, str(tmp_path / "o")] if command[-1] == "--out" else command
    proc = _run("torch", argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"synknow {command[0]}: error: this needs torch: pip install 'synknow[train]'"]


def test_other_import_errors_still_surface(tmp_path: Path) -> None:
    # a missing module that is not an optional dependency is a bug: keep the traceback
    code = (
        "import sys; from synknow import cli\n"
        "def boom(args): import definitely_not_a_module\n"
        "p = cli.build_parser(); a = p.parse_args(['inspect', 'x']); a.func = boom\n"
        "cli.build_parser = lambda: type('P', (), {'parse_args': lambda s, v: a})()\n"
        "sys.exit(cli.main([]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
