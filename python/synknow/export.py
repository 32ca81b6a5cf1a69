"""Exports of a corpus to the formats other training code reads (docs/integration.md#exports).

* :func:`to_nanogpt`: nanoGPT-style flat token files ``train.bin``/``val.bin`` (uint16 or
  uint32, documents concatenated ``BOS ... EOS BOS ...``) and ``meta.json`` (vocabulary, dtype,
  special ids, split sizes); :func:`read_nanogpt` maps them back.
* :func:`to_jsonl`: one JSON object per document (text, token ids, entity id; optionally the
  latent record).
* :func:`to_parquet`: one row per document (token ids, roles, text, entity id; optionally the
  latent record) via ``pyarrow`` (``pip install 'synknow[export]'``), which Hugging Face
  ``datasets.Dataset.from_parquet`` reads.

Every export streams ``chunk_docs`` documents at a time from the (memory-mapped) corpus, so a
corpus larger than memory exports with bounded memory, and every file is written atomically:
it appears complete or not at all.

``npy_memmap`` reads one ``.npy`` array of a corpus directory without numpy's ``np.load``: a
raw ``np.memmap(path)`` would read the npy header as tokens, the data starts after it.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from synknow.corpus import Corpus, load_corpus, read_npy_header
from synknow.extras import missing
from synknow.fsutil import atomic_write_text, atomic_writer
from synknow.tokens import BOS, EOS, PAD

__all__ = [
    "FORMATS",
    "npy_data_offset",
    "npy_memmap",
    "read_nanogpt",
    "to_jsonl",
    "to_nanogpt",
    "to_parquet",
]

FORMATS = ("nanogpt", "jsonl", "parquet")
NANOGPT_FORMAT = "synknow-nanogpt"


def npy_data_offset(path: str | os.PathLike[str]) -> tuple[int, np.dtype, tuple[int, ...]]:
    """``(offset, dtype, shape)`` of the data of a ``.npy`` file: the byte offset is where
    ``np.memmap`` (or any reader in another language) must start."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            shape, fortran, dtype = read_npy_header(f)
        except ValueError as e:
            raise ValueError(f"{path}: not a readable .npy file ({e})") from None
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    expected = offset + math.prod(shape) * dtype.itemsize
    if size != expected:
        raise ValueError(f"{path}: {size} bytes, expected {expected} (truncated?)")
    return offset, dtype, tuple(shape)


def npy_memmap(path: str | os.PathLike[str]) -> np.memmap:
    """A read-only memory map of a ``.npy`` file's data (its header skipped), e.g.
    ``npy_memmap(corpus_dir / "tokens.npy")``."""
    offset, dtype, shape = npy_data_offset(path)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _corpus(corpus: Corpus | str | os.PathLike[str]) -> Corpus:
    return corpus if isinstance(corpus, Corpus) else load_corpus(Path(corpus))


def _check_count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _doc_range(corpus: Corpus, docs: int | None) -> int:
    if docs is None:
        return corpus.n_docs
    docs = _check_count("docs", docs, minimum=1)
    if docs > corpus.n_docs:
        raise ValueError(f"docs={docs} is more than the corpus holds ({corpus.n_docs})")
    return docs


def _chunks(start: int, stop: int, chunk_docs: int) -> Iterator[tuple[int, int]]:
    for lo in range(start, stop, chunk_docs):
        yield lo, min(lo + chunk_docs, stop)


def _token_dtype(vocab_size: int, dtype: str | None) -> np.dtype:
    if dtype is None:
        dtype = "uint16" if vocab_size <= 2**16 else "uint32"
    if dtype not in ("uint16", "uint32"):
        raise ValueError(f"dtype must be 'uint16' or 'uint32', got {dtype!r}")
    if dtype == "uint16" and vocab_size > 2**16:
        raise ValueError(f"dtype uint16 cannot hold a vocabulary of {vocab_size} ids; use uint32")
    return np.dtype(dtype)


def to_nanogpt(
    corpus: Corpus | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    val_docs: int | None = None,
    docs: int | None = None,
    dtype: str | None = None,
    chunk_docs: int = 100_000,
) -> dict[str, Any]:
    """Writes ``train.bin``, ``val.bin`` and ``meta.json`` into ``out_dir``; returns the meta.

    Of the first ``docs`` documents (all by default), the last ``val_docs`` (default: one in
    20, at least one) go to ``val.bin``, like the corpus's own test split (the last documents,
    docs/model.md#splits). ``dtype`` is ``uint16`` when every id fits, else ``uint32``. nanoGPT
    reads the files with ``np.memmap(path, dtype=meta["dtype"], mode="r")``.
    """
    corpus = _corpus(corpus)
    n = _doc_range(corpus, docs)
    chunk_docs = _check_count("chunk_docs", chunk_docs, minimum=1)
    if val_docs is None:
        val_docs = max(1, n // 20) if n >= 2 else 0
    val_docs = _check_count("val_docs", val_docs)
    if val_docs >= n:
        raise ValueError(f"val_docs={val_docs} leaves no training documents (of {n})")
    vocab = corpus.vocab
    out_dtype = _token_dtype(len(vocab), dtype)
    out = Path(out_dir)
    n_train = n - val_docs
    counts = {}
    for name, lo, hi in (("train", 0, n_train), ("val", n_train, n)):
        with atomic_writer(out / f"{name}.bin", True) as f:
            for a, b in _chunks(lo, hi, chunk_docs):
                t0, t1 = int(corpus.doc_offsets[a]), int(corpus.doc_offsets[b])
                f.write(np.ascontiguousarray(corpus.tokens[t0:t1], dtype=out_dtype).tobytes())
        counts[name] = int(corpus.doc_offsets[hi]) - int(corpus.doc_offsets[lo])
    meta: dict[str, Any] = {
        "format": NANOGPT_FORMAT,
        "vocab_size": len(vocab),
        "dtype": out_dtype.name,
        "bos": BOS,
        "eos": EOS,
        "pad": PAD,
        "train_docs": n_train,
        "val_docs": val_docs,
        "train_tokens": counts["train"],
        "val_tokens": counts["val"],
        "config": corpus.config.to_dict(),
        "itos": list(vocab.strings),
    }
    # meta.json last: its presence says the token files are complete.
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1) + "\n")
    return meta


def read_nanogpt(
    out_dir: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(train, val, meta)`` of a :func:`to_nanogpt` export, the token files memory-mapped."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{out / 'meta.json'}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != NANOGPT_FORMAT:
        raise ValueError(f"{out / 'meta.json'}: not a synknow nanoGPT export")
    dtype = _token_dtype(int(meta["vocab_size"]), meta["dtype"])
    arrays = []
    for name in ("train", "val"):
        path = out / f"{name}.bin"
        expected = int(meta[f"{name}_tokens"]) * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise ValueError(f"{path}: {size} bytes, expected {expected} (truncated?)")
        # mmap refuses empty files; an empty split (val_docs=0) is an empty array.
        arrays.append(np.memmap(path, dtype=dtype, mode="r") if size else np.zeros(0, dtype=dtype))
    train, val = arrays
    return train, val, meta


def _latent(corpus: Corpus, i: int) -> dict[str, Any]:
    e = int(corpus.doc_entity[i])
    return {
        "sentence_attribute": corpus.sentence_attribute[i].tolist(),
        "sentence_template": corpus.sentence_template[i].tolist(),
        "entity_names": corpus.entity_names[e].tolist(),
        "entity_values": corpus.entity_values[e].tolist(),
    }


def to_jsonl(
    corpus: Corpus | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    docs: int | None = None,
    latent: bool = False,
    tokens: bool = True,
    chunk_docs: int = 10_000,
) -> Path:
    """One line per document: ``{"index", "entity", "text"[, "tokens"][, "latent"]}``.

    ``text`` is ``Corpus.decode`` (special tokens left out); ``tokens`` the ids with ``BOS``
    and ``EOS``; ``latent`` the document's sentence attributes and templates and its entity's
    name and value tokens (docs/model.md#corpus-contents).
    """
    corpus = _corpus(corpus)
    n = _doc_range(corpus, docs)
    chunk_docs = _check_count("chunk_docs", chunk_docs, minimum=1)
    vocab = corpus.vocab
    with atomic_writer(Path(out)) as f:
        for a, b in _chunks(0, n, chunk_docs):
            offsets = np.asarray(corpus.doc_offsets[a : b + 1], dtype=np.int64)
            chunk = np.asarray(corpus.tokens[int(offsets[0]) : int(offsets[-1])])
            entities = np.asarray(corpus.doc_entity[a:b])
            lines = []
            for j in range(b - a):
                ids = chunk[int(offsets[j] - offsets[0]) : int(offsets[j + 1] - offsets[0])]
                record: dict[str, Any] = {
                    "index": a + j,
                    "entity": int(entities[j]),
                    "text": vocab.decode(ids),
                }
                if tokens:
                    record["tokens"] = ids.tolist()
                if latent:
                    record["latent"] = _latent(corpus, a + j)
                lines.append(json.dumps(record, separators=(",", ":")))
            f.write("\n".join(lines) + "\n")
    return Path(out)


def _require_pyarrow() -> Any:
    # importlib: pyarrow is optional and ships no stubs, so mypy need not know about it.
    try:
        pyarrow = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.parquet")
    except ModuleNotFoundError:
        raise missing("pyarrow", "export to Parquet") from None
    return pyarrow


def to_parquet(
    corpus: Corpus | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    docs: int | None = None,
    latent: bool = False,
    text: bool = True,
    chunk_docs: int = 100_000,
) -> Path:
    """One row per document: ``index``, ``entity``, ``tokens`` (list of ids), ``roles`` (list
    of role bytes, see ``synknow.ROLE_NAMES``), ``text`` (unless ``text=False``) and, with
    ``latent``, ``sentence_attribute`` and ``sentence_template``; one row group per chunk.
    ``datasets.Dataset.from_parquet(out)`` loads it for Hugging Face."""
    pa = _require_pyarrow()
    corpus = _corpus(corpus)
    n = _doc_range(corpus, docs)
    chunk_docs = _check_count("chunk_docs", chunk_docs, minimum=1)
    vocab = corpus.vocab
    writer = None
    with atomic_writer(Path(out), True) as f:
        try:
            for a, b in _chunks(0, n, chunk_docs):
                offsets = np.asarray(corpus.doc_offsets[a : b + 1], dtype=np.int64)
                t0, t1 = int(offsets[0]), int(offsets[-1])
                rel = pa.array(offsets - t0, type=pa.int64())
                ids = np.asarray(corpus.tokens[t0:t1])
                columns: dict[str, Any] = {
                    "index": pa.array(np.arange(a, b, dtype=np.int64)),
                    "entity": pa.array(np.asarray(corpus.doc_entity[a:b], dtype=np.int64)),
                    "tokens": pa.LargeListArray.from_arrays(rel, pa.array(ids)),
                    "roles": pa.LargeListArray.from_arrays(
                        rel, pa.array(np.asarray(corpus.roles[t0:t1]))
                    ),
                }
                if text:
                    columns["text"] = pa.array(
                        [
                            vocab.decode(ids[int(offsets[j] - t0) : int(offsets[j + 1] - t0)])
                            for j in range(b - a)
                        ],
                        type=pa.string(),
                    )
                if latent:
                    for name in ("sentence_attribute", "sentence_template"):
                        rows = np.asarray(getattr(corpus, name)[a:b])
                        step = rows.shape[1]
                        columns[name] = pa.FixedSizeListArray.from_arrays(
                            pa.array(rows.reshape(-1)), step
                        )
                table = pa.table(columns)
                if writer is None:
                    writer = pa.parquet.ParquetWriter(f, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return Path(out)
