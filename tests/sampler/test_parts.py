"""synknow generate --part I/N and synknow merge: three parts made on one machine merge into the
single-machine corpus byte for byte; wrong, missing, overlapping or altered parts are refused
with one line, and nothing is left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow.cli import main
from synknow.parts import generate_part, merge_parts, parse_part, part_range

DOCS = 3001  # not a multiple of 3: the parts have 1000, 1000 and 1001 documents
SEED = 8


def _files(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(path.iterdir())}


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"synknow {command}: error: ")
    return err[0]


def _generate(out: Path, *extra: str) -> int:
    args = ["generate", "--docs", str(DOCS), "--seed", str(SEED), "--out", str(out), "--quiet"]
    return main([*args, "--shard-docs", "400", *extra])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-machine corpus ``whole`` and its parts ``p1``, ``p2``, ``p3``."""
    root = tmp_path_factory.mktemp("parts")
    assert _generate(root / "whole") == 0
    for i in (1, 2, 3):
        assert _generate(root / f"p{i}", "--part", f"{i}/3") == 0
    return root


def test_three_parts_merge_to_the_single_machine_corpus(made: Path, tmp_path: Path, capsys):
    out = tmp_path / "merged"
    # In any order: the manifests say which part is which.
    parts = [str(made / "p3"), str(made / "p1"), str(made / "p2")]
    assert main(["merge", *parts, str(out), "--quiet"]) == 0
    assert "merged 3 parts" in capsys.readouterr().out
    whole = _files(made / "whole")
    assert set(whole) == set(_files(out)) and len(whole) == 14
    for name, data in _files(out).items():
        assert data == whole[name], name
    synknow.load_corpus(out, verify=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]  # no staging left


def test_parts_hold_contiguous_document_ranges(made: Path) -> None:
    import json

    whole = synknow.load_corpus(made / "whole")
    entities = 0
    for i in (1, 2, 3):
        m = json.loads((made / f"p{i}" / "manifest.json").read_text())
        lo, hi = part_range(DOCS, f"{i}/3")
        assert (m["format"], m["part"], m["parts"]) == ("synknow-corpus-part", i, 3)
        assert (m["first_doc"], m["n_docs"]) == (lo, hi - lo)
        assert m["first_entity"] == entities
        entities += m["n_entities"]
        tokens = np.load(made / f"p{i}" / "tokens.npy")
        a, b = int(whole.doc_offsets[lo]), int(whole.doc_offsets[hi])
        assert np.array_equal(tokens, whole.tokens[a:b])
    assert entities == whole.n_entities


def test_python_api_with_32_bit_tokens(tmp_path: Path) -> None:
    # name_parts this large need a vocabulary above 65536: tokens are <u4.
    cfg = synknow.presets.bios(name_parts=(70_000, 300), seed=3)
    whole = synknow.generate(cfg, 500, tmp_path / "whole", progress=False)
    parts = [
        generate_part(cfg, 500, (i, 2), tmp_path / f"q{i}", shard_docs=60, progress=False)
        for i in (1, 2)
    ]
    merged = merge_parts(parts, tmp_path / "merged", progress=False)
    assert synknow.load_corpus(merged).tokens.dtype == np.uint32
    assert _files(merged) == _files(whole)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1-3", "a/b", "3", "2/0", "", "1/3/5", "-1/3"])
def test_bad_part_strings_are_one_line_errors(text: str, tmp_path: Path, capsys) -> None:
    assert _generate(tmp_path / "x", f"--part={text}") == 2
    assert "--part must be I/N with integers 1 <= I <= N" in _one_line_error(capsys, "generate")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="part must be I/N"):
        parse_part(text)


def test_more_parts_than_documents_is_an_error(tmp_path: Path, capsys) -> None:
    rc = main(["generate", "--docs", "2", "--part", "1/3", "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "cannot split 2 documents into 3 parts" in _one_line_error(capsys, "generate")


def _merge_error(capsys, tmp_path: Path, *dirs: Path) -> str:
    out = tmp_path / "out"
    assert main(["merge", *map(str, dirs), str(out), "--quiet"]) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    return _one_line_error(capsys, "merge")


def test_missing_and_overlapping_parts_are_refused(made: Path, tmp_path: Path, capsys) -> None:
    p1, p2, p3 = (made / f"p{i}" for i in (1, 2, 3))
    assert "missing part(s) 2/3" in _merge_error(capsys, tmp_path, p1, p3)
    assert "overlapping parts" in _merge_error(capsys, tmp_path, p1, p2, p2, p3)
    copy = tmp_path / "p2-copy"
    shutil.copytree(p2, copy)
    err = _merge_error(capsys, tmp_path, p1, p2, copy, p3)
    assert "overlapping parts" in err and "both part 2/3" in err


def test_parts_of_other_corpora_are_refused(made: Path, tmp_path: Path, capsys) -> None:
    p1, p3 = made / "p1", made / "p3"
    other_seed = tmp_path / "s2"
    assert _generate(other_seed, "--part", "2/3", "--seed", "9") == 0
    err = _merge_error(capsys, tmp_path, p1, other_seed, p3)
    assert "parts of different corpora" in err
    shutil.rmtree(other_seed)
    other_split = tmp_path / "q2"
    assert _generate(other_split, "--part", "2/4") == 0
    assert "parts of different splits" in _merge_error(capsys, tmp_path, p1, other_split, p3)
    shutil.rmtree(other_split)
    bigger = tmp_path / "b2"
    args = ["generate", "--docs", "3300", "--seed", str(SEED), "--part", "2/3", "--quiet"]
    assert main([*args, "--out", str(bigger)]) == 0
    assert "of 3001 documents but" in _merge_error(capsys, tmp_path, p1, bigger, p3)
    shutil.rmtree(bigger)
    err = _merge_error(capsys, tmp_path, p1, made / "whole", p3)
    assert "is a whole corpus, not a part" in err
    assert "no such directory" in _merge_error(capsys, tmp_path, p1, tmp_path / "nope", p3)


def test_altered_or_truncated_parts_are_refused(made: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad2"
    shutil.copytree(made / "p2", bad)
    f = bad / "tokens.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01
    f.write_bytes(bytes(data))
    err = _merge_error(capsys, tmp_path, made / "p1", bad, made / "p3")
    assert "tokens.npy does not match the hash in its manifest" in err
    f.write_bytes(bytes(data[:-2]))
    assert "(truncated?)" in _merge_error(capsys, tmp_path, made / "p1", bad, made / "p3")
    with pytest.raises(synknow.CorpusError, match="truncated"):
        merge_parts([made / "p1", bad, made / "p3"], tmp_path / "out", progress=False)


def test_merge_output_rules(made: Path, tmp_path: Path, capsys) -> None:
    parts = [str(made / f"p{i}") for i in (1, 2, 3)]
    assert main(["merge", parts[0]]) == 2
    assert "PART... OUT" in _one_line_error(capsys, "merge")
    out = tmp_path / "c"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["merge", *parts, str(out), "--quiet"]) == 2
    assert "--overwrite" in _one_line_error(capsys, "merge")
    assert main(["merge", *parts, str(out), "--quiet", "--overwrite"]) == 2
    assert "refusing to overwrite" in _one_line_error(capsys, "merge")
    assert (out / "notes.txt").read_text() == "mine"
    assert main(["merge", *parts, parts[1], "--quiet", "--overwrite"]) == 2
    assert "is one of the parts" in _one_line_error(capsys, "merge")
    # A part directory is replaced by --overwrite like a corpus.
    again = tmp_path / "p1"
    shutil.copytree(made / "p1", again)
    assert _generate(again, "--part", "1/3", "--overwrite") == 0
    assert _files(again) == _files(made / "p1")
