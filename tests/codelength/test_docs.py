"""docs/codelength.md runs as written: its Python block, then its ``synknow`` command lines, in a
temporary directory."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from synknow.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "codelength.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_python_examples_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})
    assert (tmp_path / "curve.csv").exists() and (tmp_path / "structure_function.csv").exists()


def test_command_lines_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [ln for b in _blocks("bash") for ln in b.splitlines() if ln.startswith("synknow ")]
    assert len(lines) >= 3
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[0] != "generate":
            argv.append("--quiet")
        assert main(argv) == 0, line
    assert (tmp_path / "curve" / "bayes_curve.png").exists()
    assert (tmp_path / "codelength.json").exists()


@pytest.mark.parametrize("path", ["benches/results/codelength-20261124.json"])
def test_quoted_benchmark_file_exists(path) -> None:
    assert (DOC.parents[1] / path).is_file()


ROOT = DOC.parents[1]
# Pages whose text states the model and the code length in the project's own words: they must not
# cite the external specification. (The rest of the tree follows once every part is rewritten.)
SELF_CONTAINED = ["docs/model.md", "docs/codelength.md", "docs/cli.md"]


def _anchors(page: Path) -> set[str]:
    """Explicit ``<a id>`` anchors and GitHub's heading slugs of a Markdown page."""
    text = page.read_text()
    ids = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        ids.add(slug)
    return ids


def _references() -> list[tuple[Path, str, str]]:
    """``(file, page, anchor)`` for every ``docs/PAGE.md#ANCHOR`` in the sources and every
    relative ``(PAGE.md#ANCHOR)`` link in the docs."""
    refs = []
    sources = [*ROOT.glob("python/**/*.py"), *ROOT.glob("rust/**/*.rs"), *ROOT.glob("benches/*.py")]
    sources += [*ROOT.glob("tests/**/*.py"), ROOT / "README.md"]
    for f in sources:
        for page, anchor in re.findall(r"docs/([a-z][\w-]*\.md)#([a-z0-9][\w-]*)", f.read_text()):
            refs.append((f, page, anchor))
    for f in ROOT.glob("docs/*.md"):
        for page, anchor in re.findall(r"\]\(([\w-]+\.md)?#([\w-]+)\)", f.read_text()):
            refs.append((f, page or f.name, anchor))
    return refs


def test_doc_references_resolve() -> None:
    """Every reference to a docs section names an anchor that exists on that page."""
    refs = _references()
    assert len(refs) > 20
    anchors: dict[str, set[str]] = {}
    missing = []
    for f, page, anchor in refs:
        path = ROOT / "docs" / page
        if page not in anchors:
            anchors[page] = _anchors(path) if path.is_file() else set()
        if anchor not in anchors[page]:
            missing.append(f"{f.relative_to(ROOT)}: docs/{page}#{anchor}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("page", SELF_CONTAINED)
def test_docs_do_not_cite_the_external_spec(page) -> None:
    text = (ROOT / page).read_text()
    assert not re.findall(r"\bSPEC\b", text), f"{page} cites SPEC; cite docs/*.md sections instead"
