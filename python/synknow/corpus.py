"""Corpora: in-memory (zero-copy numpy views of the Rust sampler's output) or memory-mapped from
disk, with one format for both (SPEC 3.5, docs/corpus-format.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from synknow import _core
from synknow.config import SyntaxKnowledgeConfig

__all__ = ["Corpus", "CorpusError", "Vocab", "load_corpus", "sample", "generate", "ROLE_NAMES"]

FORMAT = "synknow-corpus"
FORMAT_VERSION = 1
ROLE_NAMES = ("special", "syntax", "name", "value")
ROLE_SPECIAL, ROLE_SYNTAX, ROLE_NAME, ROLE_VALUE = 0, 1, 2, 3

# name -> (dtype kinds allowed, ndim)
_ARRAYS: dict[str, tuple[tuple[str, ...], int]] = {
    "tokens": (("<u2", "<u4"), 1),
    "roles": (("|u1",), 1),
    "doc_offsets": (("<u8",), 1),
    "doc_entity": (("<u4",), 1),
    "sentence_attribute": (("<u2",), 2),
    "sentence_template": (("<u2",), 2),
    "entity_names": (("<u4",), 2),
    "entity_values": (("<u4",), 2),
    "entity_first_doc": (("<u8",), 1),
    "entity_counts": (("<u8",), 1),
    "theta": (("<f8",), 1),
    "theta_offsets": (("<u8",), 1),
}


# A corpus directory (or a set of arrays) that is truncated, altered or inconsistent: one class,
# created by the Rust extension (a ValueError subclass), raised by the Rust core and this loader.
CorpusError = _core.CorpusError


class Vocab:
    """Token ids <-> display strings, and the token blocks of SPEC 1."""

    def __init__(self, strings: list[str], info: dict[str, Any]):
        self.strings = strings
        self.info = info
        self.syntax_range = range(info["syntax_start"], info["syntax_start"] + info["n_syntax"])
        self.name_ranges = [
            range(s, s + n) for s, n in zip(info["name_start"], info["name_size"], strict=True)
        ]
        self.pool_ranges = [
            range(s, s + n) for s, n in zip(info["pool_start"], info["pool_size"], strict=True)
        ]
        self.value_range = range(info["pool_start"][0], info["vocab_size"])

    def __len__(self) -> int:
        return len(self.strings)

    def __getitem__(self, token: int) -> str:
        return self.strings[token]

    @cached_property
    def ids(self) -> dict[str, int]:
        """Display string -> id (the first id wins where two blocks share a string)."""
        out: dict[str, int] = {}
        for i, s in enumerate(self.strings):
            out.setdefault(s, i)
        return out

    def decode(self, tokens: np.ndarray) -> str:
        words = [self.strings[int(t)] for t in tokens if int(t) > 2]
        return " ".join(words).replace(" .", ".").replace(" ,", ",").replace(" 's", "'s")


class Corpus:
    """A Syntax-Knowledge corpus: flat token stream plus every latent record (SPEC 3.5).

    All arrays are numpy arrays that share memory with the sampler's output or with the files on
    disk (``load_corpus`` memory-maps); nothing is copied.

    Example:
        >>> import synknow
        >>> c = synknow.sample(synknow.presets.bios(), 100, seed=1)
        >>> c.n_docs, int(c.doc_offsets[-1]) == len(c.tokens)
        (100, True)
        >>> c.decode(0).count(".") == c.config.m
        True
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        config: SyntaxKnowledgeConfig,
        *,
        path: Path | None = None,
        manifest: dict[str, Any] | None = None,
    ):
        missing = sorted(set(_ARRAYS) - set(arrays))
        if missing:
            raise CorpusError(f"corpus is missing arrays: {', '.join(missing)}")
        self._arrays = arrays
        self.config = config
        self.path = path
        self.manifest = manifest
        _check_consistency(arrays, config)

    # ---- arrays (views, no copies) ------------------------------------------------------------
    tokens = property(lambda self: self._arrays["tokens"], doc="Flat token ids (uint16/uint32).")
    roles = property(lambda self: self._arrays["roles"], doc="One role byte per token.")
    doc_offsets = property(lambda self: self._arrays["doc_offsets"], doc="N+1 token offsets.")
    doc_entity = property(lambda self: self._arrays["doc_entity"], doc="Entity of each document.")
    sentence_attribute = property(lambda self: self._arrays["sentence_attribute"], doc="(N, m)")
    sentence_template = property(lambda self: self._arrays["sentence_template"], doc="(N, m)")
    entity_names = property(lambda self: self._arrays["entity_names"], doc="(K, J) name tokens.")
    entity_values = property(lambda self: self._arrays["entity_values"], doc="(K, A) value tokens.")
    entity_first_doc = property(lambda self: self._arrays["entity_first_doc"], doc="Creation doc.")
    entity_counts = property(lambda self: self._arrays["entity_counts"], doc="c_k in the corpus.")

    @property
    def theta(self) -> list[np.ndarray]:
        """The true syntax parameters, one probability vector per attribute."""
        flat, off = self._arrays["theta"], self._arrays["theta_offsets"]
        return [flat[int(off[a]) : int(off[a + 1])] for a in range(len(off) - 1)]

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def n_docs(self) -> int:
        return len(self.doc_entity)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_entities(self) -> int:
        return len(self.entity_counts)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """All arrays by name (views)."""
        return dict(self._arrays)

    @cached_property
    def vocab(self) -> Vocab:
        cfg = self.config.to_json()
        return Vocab(_core.vocab(cfg), dict(_core.grammar_info(cfg)))

    @cached_property
    def grammar(self) -> dict[str, Any]:
        """Vocabulary layout, templates (text and skeletons) and value log-priors."""
        return dict(_core.grammar_info(self.config.to_json()))

    def document(self, i: int) -> np.ndarray:
        """Token ids of document ``i`` (a view)."""
        self._check_index(i)
        return self.tokens[int(self.doc_offsets[i]) : int(self.doc_offsets[i + 1])]

    def decode(self, i: int) -> str:
        """Document ``i`` as readable text."""
        return self.vocab.decode(self.document(i))

    def entity_counts_at(self, n: int) -> np.ndarray:
        """``c_k(n)``: documents about each entity among the first ``n`` (SPEC 3.6)."""
        if not 0 <= n <= self.n_docs:
            raise ValueError(f"prefix length n={n} out of range [0, {self.n_docs}]")
        return np.bincount(self.doc_entity[:n], minlength=self.n_entities).astype(np.int64)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Writes the corpus directory atomically (temp dir + rename); returns its path."""
        path = Path(path)
        arrays = []
        for name in _ARRAYS:
            arr = np.ascontiguousarray(self._arrays[name])
            dtype = arr.dtype.str if arr.dtype.itemsize > 1 else "|u1"
            arrays.append((name, dtype, list(arr.shape), arr.reshape(-1).view(np.uint8)))
        _core.save_arrays(str(path), self.config.to_json(), arrays, overwrite)
        return path

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.n_docs:
            raise IndexError(f"document index {i} out of range [0, {self.n_docs})")

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return (
            f"Corpus(n_docs={self.n_docs}, n_tokens={self.n_tokens}, "
            f"n_entities={self.n_entities}, alpha={self.config.alpha}, "
            f"beta={self.config.beta}{where})"
        )


def _check_consistency(arrays: dict[str, np.ndarray], config: SyntaxKnowledgeConfig) -> None:
    def bad(msg: str) -> CorpusError:
        return CorpusError(f"inconsistent corpus: {msg}")

    n = len(arrays["doc_entity"])
    t = len(arrays["tokens"])
    k = len(arrays["entity_counts"])
    off = arrays["doc_offsets"]
    if len(off) != n + 1:
        raise bad(f"doc_offsets has {len(off)} entries for {n} documents (needs N+1)")
    if n and (int(off[0]) != 0 or int(off[-1]) != t):
        raise bad(
            f"doc_offsets must run from 0 to len(tokens)={t}, got {int(off[0])}..{int(off[-1])}"
        )
    if len(arrays["roles"]) != t:
        raise bad(f"roles has {len(arrays['roles'])} entries for {t} tokens")
    m, a, j = config.m, config.n_attributes, len(config.name_parts)
    for name, shape in (
        ("sentence_attribute", (n, m)),
        ("sentence_template", (n, m)),
        ("entity_names", (k, j)),
        ("entity_values", (k, a)),
        ("entity_first_doc", (k,)),
    ):
        if tuple(arrays[name].shape) != shape:
            raise bad(f"{name} has shape {tuple(arrays[name].shape)}, expected {shape}")
    if len(arrays["theta_offsets"]) != a + 1:
        raise bad(f"theta_offsets has {len(arrays['theta_offsets'])} entries, expected {a + 1}")


def sample(
    config: SyntaxKnowledgeConfig,
    n_docs: int,
    *,
    seed: int | None = None,
    threads: int | None = None,
) -> Corpus:
    """Samples ``n_docs`` documents in memory (Rust, parallel, GIL released).

    ``seed`` replaces ``config.seed`` (the master seed). The output is bit-identical for every
    ``threads`` value, and document ``i`` is the same for every ``n_docs > i``.
    """
    config = _with_seed(config, seed)
    n_docs = _check_count("n_docs", n_docs)
    if threads is not None:
        threads = _check_count("threads", threads, minimum=1)
    arrays = dict(_core.sample(config.to_json(), n_docs, threads))
    return Corpus(arrays, config)


def generate(
    config: SyntaxKnowledgeConfig,
    n_docs: int,
    path: str | os.PathLike[str],
    *,
    seed: int | None = None,
    shard_docs: int = 1_000_000,
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = True,
) -> Path:
    """Streams ``n_docs`` documents to a corpus directory, ``shard_docs`` at a time.

    Memory stays bounded by the entity table, 4 bytes per document (the CRP's entity ids) and
    one shard. The directory appears only when complete; Ctrl-C leaves nothing behind. The
    result is byte-identical to ``sample(...).save(path)``.
    """
    config = _with_seed(config, seed)
    n_docs = _check_count("n_docs", n_docs)
    shard_docs = _check_count("shard_docs", shard_docs, minimum=1)
    callback: Callable[[int, int], None] | None
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_docs, unit="doc", unit_scale=True, desc="generate")

        def callback(done: int, total: int) -> None:
            bar.update(done - bar.n)

    elif callable(progress):
        callback = progress
    else:
        callback = None
    try:
        _core.generate_to_dir(
            config.to_json(), n_docs, str(path), shard_docs, threads, overwrite, callback
        )
    finally:
        if bar is not None:
            bar.close()
    return Path(path)


def load_corpus(path: str | os.PathLike[str], *, verify: bool = False, mmap: bool = True) -> Corpus:
    """Opens a corpus directory, memory-mapping every array.

    Checks the manifest, format version, the presence, dtype and shape of every file (a
    truncated file is caught here) and the cross-array invariants; ``verify=True`` also checks
    the content hashes (reads everything once).
    """
    path = Path(path)
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {path}")
    if not mpath.is_file():
        raise CorpusError(f"{path} is not a synknow corpus (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{mpath}: manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorpusError(f"{mpath}: not a synknow corpus manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorpusError(
            f"{path}: corpus format version {manifest.get('format_version')} is not supported "
            f"(this synknow reads version {FORMAT_VERSION}); regenerate the corpus"
        )
    written_by = str(manifest.get("synknow_version", "?"))
    if written_by.split(".")[:2] != _core.__version__.split(".")[:2]:
        raise CorpusError(
            f"{path}: corpus written by synknow {written_by}, incompatible with "
            f"{_core.__version__} (templates and vocabularies may differ); regenerate it"
        )
    try:
        config = SyntaxKnowledgeConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CorpusError(f"{mpath}: invalid config in manifest: {e}") from None
    entries = manifest.get("arrays", {})
    arrays: dict[str, np.ndarray] = {}
    for name, (dtypes, ndim) in _ARRAYS.items():
        entry = entries.get(name)
        if entry is None:
            raise CorpusError(f"{mpath}: array '{name}' missing from the manifest")
        file = path / entry["file"]
        if not file.is_file():
            raise CorpusError(f"{path}: file {entry['file']} is missing")
        try:
            arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CorpusError(f"{file}: unreadable or truncated ({e})") from None
        if arr.dtype.str not in dtypes or arr.ndim != ndim:
            raise CorpusError(f"{file}: dtype {arr.dtype.str}/ndim {arr.ndim}, expected {dtypes}")
        if list(arr.shape) != list(entry["shape"]) or arr.dtype.str != entry["dtype"]:
            raise CorpusError(
                f"{file}: shape {list(arr.shape)} {arr.dtype.str} differs from the manifest "
                f"({entry['shape']} {entry['dtype']})"
            )
        expected_bytes = int(np.prod(arr.shape)) * arr.dtype.itemsize
        data_bytes = file.stat().st_size - _npy_header_size(file)
        if data_bytes != expected_bytes:
            raise CorpusError(
                f"{file}: {data_bytes} data bytes, expected {expected_bytes} (truncated?)"
            )
        if verify:
            digest = _core.xxh3_64(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
            if digest != entry.get("xxh3_64"):
                raise CorpusError(f"{file}: content hash mismatch (file altered or corrupt)")
        arrays[name] = arr
    for key, value in (("n_docs", len(arrays["doc_entity"])), ("n_tokens", len(arrays["tokens"]))):
        if manifest.get(key) != value:
            raise CorpusError(f"{mpath}: {key}={manifest.get(key)} but the arrays hold {value}")
    return Corpus(arrays, config, path=path, manifest=manifest)


def _npy_header_size(file: Path) -> int:
    with open(file, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def _with_seed(config: SyntaxKnowledgeConfig, seed: int | None) -> SyntaxKnowledgeConfig:
    if not isinstance(config, SyntaxKnowledgeConfig):
        raise TypeError(f"config must be a SyntaxKnowledgeConfig, got {type(config).__name__}")
    return config if seed is None else config.replace(seed=seed)


def _check_count(name: str, value: int, minimum: int = 0) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not minimum <= value < 2**63
    ):
        raise ValueError(f"{name} must be an integer in [{minimum}, 2^63), got {value!r}")
    return int(value)
