"""synknow.export and `synknow export`: every format round-trips to the corpus, streams with
bounded memory and refuses bad arguments with one line."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow import export
from synknow.cli import main

CFG = synknow.presets.bios()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "corpus"
    synknow.sample(CFG, 300, seed=7).save(path)
    return path


def test_nanogpt_round_trip(corpus_dir: Path, tmp_path: Path) -> None:
    corpus = synknow.load_corpus(corpus_dir)
    meta = export.to_nanogpt(corpus_dir, tmp_path / "ng", val_docs=40, chunk_docs=13)
    train, val, read_meta = export.read_nanogpt(tmp_path / "ng")
    assert read_meta == meta and meta["dtype"] == "uint16" and train.dtype == np.uint16
    split = int(corpus.doc_offsets[260])
    assert np.array_equal(train, corpus.tokens[:split])
    assert np.array_equal(val, corpus.tokens[split:])
    assert meta["train_docs"] == 260 and meta["val_docs"] == 40
    assert meta["itos"] == list(corpus.vocab.strings) and meta["vocab_size"] == len(corpus.vocab)
    assert synknow.SyntaxKnowledgeConfig.from_dict(meta["config"]) == corpus.config
    # nanoGPT's own reader: a raw memmap of the flat file with the meta's dtype.
    raw = np.memmap(tmp_path / "ng" / "val.bin", dtype=meta["dtype"], mode="r")
    assert np.array_equal(raw, corpus.tokens[split:])


def test_nanogpt_uint32_prefix_and_no_val(corpus_dir: Path, tmp_path: Path) -> None:
    corpus = synknow.load_corpus(corpus_dir)
    export.to_nanogpt(corpus, tmp_path / "ng", docs=100, val_docs=0, dtype="uint32")
    train, val, meta = export.read_nanogpt(tmp_path / "ng")
    assert train.dtype == np.uint32 and len(val) == 0
    assert np.array_equal(train, corpus.tokens[: int(corpus.doc_offsets[100])])
    assert sorted(p.name for p in (tmp_path / "ng").iterdir()) == [
        "meta.json",
        "train.bin",
        "val.bin",
    ]  # no temporaries left


def test_nanogpt_bad_arguments(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype must be 'uint16' or 'uint32'"):
        export.to_nanogpt(corpus_dir, tmp_path / "a", dtype="int8")
    with pytest.raises(ValueError, match="val_docs=300 leaves no training documents"):
        export.to_nanogpt(corpus_dir, tmp_path / "a", val_docs=300)
    with pytest.raises(ValueError, match="docs=301 is more than the corpus holds"):
        export.to_nanogpt(corpus_dir, tmp_path / "a", docs=301)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="not a synknow nanoGPT export"):
        export.read_nanogpt(tmp_path / "b")


def test_jsonl_round_trip_with_latent(corpus_dir: Path, tmp_path: Path) -> None:
    corpus = synknow.load_corpus(corpus_dir)
    out = export.to_jsonl(corpus_dir, tmp_path / "c.jsonl", latent=True, chunk_docs=7)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == corpus.n_docs
    for i, line in enumerate(lines):
        rec = json.loads(line)
        assert rec["index"] == i and rec["entity"] == int(corpus.doc_entity[i])
        assert rec["tokens"] == corpus.document(i).tolist()
        assert rec["text"] == corpus.decode(i)
        e = rec["entity"]
        assert rec["latent"] == {
            "sentence_attribute": corpus.sentence_attribute[i].tolist(),
            "sentence_template": corpus.sentence_template[i].tolist(),
            "entity_names": corpus.entity_names[e].tolist(),
            "entity_values": corpus.entity_values[e].tolist(),
        }


def test_jsonl_without_tokens(corpus_dir: Path, tmp_path: Path) -> None:
    out = export.to_jsonl(corpus_dir, tmp_path / "c.jsonl", docs=5, tokens=False)
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [sorted(r) for r in recs] == [["entity", "index", "text"]] * 5


def test_exports_stream_with_bounded_memory(tmp_path: Path) -> None:
    # 20,000 documents (~3 MB of tokens, memory-mapped); chunks of 100 documents. Peak Python
    # and numpy allocations must stay far below the token array: a whole-corpus copy would not.
    synknow.sample(CFG, 20_000, seed=3).save(tmp_path / "big")
    corpus = synknow.load_corpus(tmp_path / "big")
    _ = corpus.vocab, corpus.config.to_dict()  # cached; not part of the streaming cost
    budget = corpus.tokens.nbytes // 4
    for fn, out in ((export.to_nanogpt, tmp_path / "ng"), (export.to_jsonl, tmp_path / "j")):
        tracemalloc.start()
        try:
            fn(corpus, out, chunk_docs=100)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < budget, (fn.__name__, peak, budget)


def test_parquet_round_trip(corpus_dir: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip(
        "pyarrow.parquet", reason="pyarrow is not installed (pip install 'synknow[export]')"
    )
    corpus = synknow.load_corpus(corpus_dir)
    out = export.to_parquet(corpus_dir, tmp_path / "c.parquet", latent=True, chunk_docs=64)
    table = pq.read_table(out)
    assert table.num_rows == corpus.n_docs
    assert pq.ParquetFile(out).num_row_groups == 5
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        lo, hi = int(corpus.doc_offsets[i]), int(corpus.doc_offsets[i + 1])
        assert row["index"] == i and row["entity"] == int(corpus.doc_entity[i])
        assert row["tokens"] == corpus.document(i).tolist()
        assert row["roles"] == corpus.roles[lo:hi].tolist()
        assert row["text"] == corpus.decode(i)
        assert row["sentence_attribute"] == corpus.sentence_attribute[i].tolist()


def test_cli_exports_and_one_line_errors(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = synknow.load_corpus(corpus_dir)
    assert main(["export", str(corpus_dir), str(tmp_path / "ng"), "--format", "nanogpt"]) == 0
    assert "train.bin" in capsys.readouterr().out
    train, val, meta = export.read_nanogpt(tmp_path / "ng")
    assert meta["val_docs"] == 15  # one in 20 by default
    assert np.array_equal(np.concatenate([train, val]), corpus.tokens)
    assert main(["export", str(corpus_dir), str(tmp_path / "j"), "--format", "jsonl"]) == 0
    assert len((tmp_path / "j").read_text().splitlines()) == corpus.n_docs
    code = main(
        ["export", str(corpus_dir), str(tmp_path / "x"), "--format", "jsonl", "--val-docs", "3"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == "synknow export: error: --val-docs and --dtype apply to --format nanogpt only"
    assert (
        main(["export", str(tmp_path / "missing"), str(tmp_path / "y"), "--format", "jsonl"]) == 2
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_parquet_without_pyarrow_is_one_line(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code = main(["export", str(corpus_dir), str(tmp_path / "p"), "--format", "parquet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "synknow export: error: export to Parquet needs pyarrow: pip install 'synknow[export]'"
    )
    assert not (tmp_path / "p").exists()
