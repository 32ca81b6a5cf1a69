"""docs/integration.md: every python and sh block runs, in order, in an empty directory."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```(python|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _script() -> str:
    parts = ["import subprocess, sys"]
    for lang, body in BLOCK.findall((ROOT / "docs/integration.md").read_text(encoding="utf-8")):
        if lang == "python":
            parts.append(body)
            continue
        for line in body.splitlines():
            if line.strip():
                words = shlex.split(line)
                assert words[0] == "synknow", line
                argv = [sys.executable, "-m", "synknow", *words[1:]]
                parts.append(f"subprocess.run({argv!r}, check=True)")
    return "\n".join(parts)


@pytest.mark.slow
def test_integration_doc_blocks_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers", reason="the Hugging Face section needs synknow[hf]")
    script = _script()
    assert script.count("subprocess.run(") == 3 and "GeneratedDocuments" in script
    (tmp_path / "doc.py").write_text(script, encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "doc.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert (tmp_path / "nanogpt-bios" / "meta.json").is_file()
    assert len((tmp_path / "first-100.jsonl").read_text().splitlines()) == 100
    assert (tmp_path / "tiny-gpt2" / "tokenizer.json").is_file()
    assert "Bayes" in r.stdout and "value" in r.stdout
