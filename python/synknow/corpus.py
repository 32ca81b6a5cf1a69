"""Corpora: in-memory (zero-copy numpy views of the Rust sampler's output) or memory-mapped from
disk, with one format for both (docs/model.md#corpus-contents, docs/corpus-format.md)."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import stat
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from synknow import _core, fsutil
from synknow.config import SyntaxKnowledgeConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["Corpus", "CorpusError", "Vocab", "load_corpus", "sample", "generate", "ROLE_NAMES"]

_log = logging.getLogger(__name__)

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
    """Token ids <-> display strings, and the token blocks of docs/model.md#vocabulary."""

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
        tokens = np.asarray(tokens)
        if tokens.size and int(tokens.max()) >= len(self.strings):
            raise ValueError(
                f"token id {int(tokens.max())} is outside the vocabulary ({len(self.strings)} ids)"
            )
        words = [self.strings[int(t)] for t in tokens if int(t) > 2]
        return " ".join(words).replace(" .", ".").replace(" ,", ",").replace(" 's", "'s")

    def to_hf_tokenizer(self) -> PreTrainedTokenizerFast:
        """A Hugging Face fast tokenizer (``transformers.PreTrainedTokenizerFast``) whose ids are
        this vocabulary's: text of a document encodes to its ids and decodes back
        (``synknow.hf.to_hf_tokenizer``; needs ``pip install 'synknow[hf]'``)."""
        from synknow.hf import to_hf_tokenizer

        return to_hf_tokenizer(self)


class Corpus:
    """A Syntax-Knowledge corpus: flat token stream plus every latent record
    (docs/model.md#corpus-contents).

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
        try:
            return self.vocab.decode(self.document(i))
        except ValueError as e:
            where = f"{self.path}: " if self.path else ""
            raise CorpusError(f"{where}document {i}: {e} (corrupt tokens.npy?)") from None

    def entity_counts_at(self, n: int) -> np.ndarray:
        """``c_k(n)``: documents about each entity among the first ``n`` (docs/model.md#splits)."""
        if not 0 <= n <= self.n_docs:
            raise ValueError(f"prefix length n={n} out of range [0, {self.n_docs}]")
        return np.bincount(self.doc_entity[:n], minlength=self.n_entities).astype(np.int64)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Writes the corpus directory atomically (temp dir + rename); returns its path.

        An existing ``path`` is an error, unless ``overwrite=True`` and it is a synknow corpus
        directory, which is then replaced in one atomic exchange (docs/corpus-format.md).
        """
        path = Path(path)
        _remove_stale_staging(path)
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
    theta_offsets = arrays["theta_offsets"]
    if len(theta_offsets) != a + 1:
        raise bad(f"theta_offsets has {len(theta_offsets)} entries, expected {a + 1}")


def _check_invariants(arrays: dict[str, np.ndarray]) -> None:
    """What a corpus read from disk must also satisfy (in-memory corpora built by hand, e.g. for
    the code-length engines' own error tests, may break these on purpose)."""

    def bad(msg: str) -> CorpusError:
        return CorpusError(f"inconsistent corpus: {msg}")

    n, t, k = len(arrays["doc_entity"]), len(arrays["tokens"]), len(arrays["entity_counts"])
    off = arrays["doc_offsets"]
    if int(off[0]) != 0 or int(off[-1]) != t:
        raise bad(f"doc_offsets must run from 0 to len(tokens)={t}")
    # The O(N) and O(K) invariants below are cheap next to the O(T) token stream, and they are
    # what decode() and the statistics rely on: empty documents or entity ids beyond the table
    # would otherwise print empty text or wrong counts without a word.
    i = _first_not_increasing(off)
    if i is not None:
        raise bad(
            f"doc_offsets must increase strictly, but entry {i + 1} is {int(off[i + 1])} "
            f"after {int(off[i])} (document {i} would be empty)"
        )
    if n and (k == 0 or _chunked_max(arrays["doc_entity"]) >= k):
        raise bad(f"doc_entity holds entity ids beyond the {k} entities of the entity table")
    counts = arrays["entity_counts"]
    # With every count <= N the uint64 sum cannot wrap while K * N < 2^64 (K < 2^32 ids).
    if k and (_chunked_max(counts) > n or int(np.sum(counts, dtype=np.uint64)) != n):
        raise bad(f"entity_counts must sum to the {n} documents")
    first = arrays["entity_first_doc"]
    if k and (_first_not_increasing(first) is not None or int(first[-1]) >= n):
        raise bad(f"entity_first_doc must increase strictly and stay below {n}")
    theta_offsets = arrays["theta_offsets"]
    if (
        int(theta_offsets[0]) != 0
        or int(theta_offsets[-1]) != len(arrays["theta"])
        or _first_not_increasing(theta_offsets) is not None
    ):
        raise bad(f"theta_offsets must increase from 0 to len(theta)={len(arrays['theta'])}")


_CHUNK = 1 << 22


def _first_not_increasing(a: np.ndarray) -> int | None:
    """Index ``i`` of the first ``a[i + 1] <= a[i]``, or None; reads ``a`` in chunks (a
    memory-mapped array is never copied whole)."""
    for start in range(0, max(len(a) - 1, 0), _CHUNK):
        block = np.asarray(a[start : start + _CHUNK + 1])
        bad = np.flatnonzero(block[1:] <= block[:-1])
        if bad.size:
            return start + int(bad[0])
    return None


def _chunked_max(a: np.ndarray) -> int:
    return max(int(np.max(a[s : s + _CHUNK])) for s in range(0, len(a), _CHUNK))


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
    result is byte-identical to ``sample(...).save(path)``. A corpus that would not fit in the
    free disk space (estimated from the model) is refused before anything is written;
    ``overwrite`` works as in :meth:`Corpus.save`.
    """
    config = _with_seed(config, seed)
    n_docs = _check_count("n_docs", n_docs)
    shard_docs = _check_count("shard_docs", shard_docs, minimum=1)
    _remove_stale_staging(Path(path))
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


# How often a load starts again when a concurrent overwrite replaced the directory meanwhile.
_LOAD_ATTEMPTS = 8
# A manifest larger than this is not one synknow wrote (it holds a config and 12 entries).
_MAX_MANIFEST_BYTES = 64 << 20


class _Replaced(Exception):
    """The directory was replaced by a concurrent overwrite while it was being read."""


def load_corpus(path: str | os.PathLike[str], *, verify: bool = False, mmap: bool = True) -> Corpus:
    """Opens a corpus directory, memory-mapping every array.

    Checks the manifest (fields and their types), format version, the presence, dtype and shape
    of every file (a truncated file is caught here) and the cross-array invariants;
    ``verify=True`` also checks the content hashes (reads everything once) and the stored
    configuration against its ``config_hash``. Every file is opened relative to one handle on
    the directory, so a load never mixes two corpora when another process overwrites ``path``
    meanwhile (it starts again on the new one).
    """
    path = Path(path)
    for _ in range(_LOAD_ATTEMPTS):
        try:
            dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(f"corpus directory not found: {path}") from None
        try:
            return _load_at(dir_fd, path, verify=verify, mmap=mmap)
        except _Replaced:
            continue
        finally:
            os.close(dir_fd)
    raise CorpusError(
        f"{path}: replaced by another writer {_LOAD_ATTEMPTS} times while loading; try again"
    )


def _load_at(dir_fd: int, path: Path, *, verify: bool, mmap: bool) -> Corpus:
    mpath = path / "manifest.json"
    manifest = _read_manifest(dir_fd, path)
    config = _manifest_config(manifest, path, verify=verify)
    arrays = _manifest_arrays(dir_fd, manifest, path, verify=verify, mmap=mmap)
    for key, value in (
        ("n_docs", len(arrays["doc_entity"])),
        ("n_tokens", len(arrays["tokens"])),
        ("n_entities", len(arrays["entity_counts"])),
        ("seed", config.seed),
        ("n_attributes", config.n_attributes),
        ("attrs_per_doc", config.m),
        ("n_name_parts", len(config.name_parts)),
    ):
        if manifest.get(key) != value or isinstance(manifest.get(key), bool):
            raise CorpusError(
                f"{mpath}: {key}={manifest.get(key)!r:.40} but the corpus has {value}"
            )
    corpus = Corpus(arrays, config, path=path, manifest=manifest)
    _check_invariants(arrays)
    return corpus


def _manifest_config(
    manifest: dict[str, Any], path: Path, *, verify: bool
) -> SyntaxKnowledgeConfig:
    """The format, version and configuration of a manifest, checked."""
    mpath = path / "manifest.json"
    if manifest.get("format") != FORMAT:
        raise CorpusError(f"{mpath}: not a synknow corpus manifest")
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CorpusError(
            f"{path}: corpus format version {version!r:.40} is not supported "
            f"(this synknow reads version {FORMAT_VERSION}); regenerate the corpus"
        )
    written_by = manifest.get("synknow_version")
    if not isinstance(written_by, str) or (
        written_by.split(".")[:2] != _core.__version__.split(".")[:2]
    ):
        raise CorpusError(
            f"{path}: corpus written by synknow {written_by!s:.40}, incompatible with "
            f"{_core.__version__} (templates and vocabularies may differ); regenerate it"
        )
    raw_config = manifest.get("config")
    if not isinstance(raw_config, dict):
        raise CorpusError(f"{mpath}: 'config' must be a JSON object")
    try:
        config = SyntaxKnowledgeConfig.from_dict(raw_config)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as e:
        raise CorpusError(f"{mpath}: invalid config in manifest: {e}") from None
    if verify:
        _check_config_hash(manifest, raw_config, mpath)
        vocab_size = _core.grammar_info(config.to_json())["vocab_size"]
        if manifest.get("vocab_size") != vocab_size:
            raise CorpusError(
                f"{mpath}: vocab_size={manifest.get('vocab_size')!r:.40} but the "
                f"configuration has {vocab_size}"
            )
    return config


def _manifest_arrays(
    dir_fd: int, manifest: dict[str, Any], path: Path, *, verify: bool, mmap: bool
) -> dict[str, np.ndarray]:
    """Every array the manifest names, mapped relative to the directory handle and checked
    against its entry (and its hash with ``verify``)."""
    mpath = path / "manifest.json"
    entries = manifest.get("arrays")
    if not isinstance(entries, dict):
        raise CorpusError(f"{mpath}: 'arrays' must be a JSON object mapping names to entries")
    arrays: dict[str, np.ndarray] = {}
    for name, (dtypes, ndim) in _ARRAYS.items():
        entry = entries.get(name)
        if entry is None:
            raise CorpusError(f"{mpath}: array '{name}' missing from the manifest")
        file, dtype, shape = _check_entry(entry, name, mpath)
        arr = _map_array(dir_fd, path, file, mmap=mmap, allowed=dtypes, ndim=ndim)
        if list(arr.shape) != shape or arr.dtype.str != dtype:
            raise CorpusError(
                f"{path / file}: shape {list(arr.shape)} {arr.dtype.str} differs from the "
                f"manifest ({shape} {dtype})"
            )
        if verify:
            digest = _core.xxh3_64(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
            if digest != entry.get("xxh3_64"):
                raise CorpusError(f"{path / file}: content hash mismatch (file altered or corrupt)")
        arrays[name] = arr
    return arrays


def _open_member(dir_fd: int, path: Path, name: str) -> IO[bytes]:
    """Opens ``name`` inside the directory handle: no symbolic links, regular files only, and
    O_NONBLOCK so that a FIFO planted under a corpus name cannot block the open."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        _raise_if_replaced(dir_fd, path)
        if name == "manifest.json":
            raise CorpusError(f"{path} is not a synknow corpus (no manifest.json)") from None
        raise CorpusError(f"{path}: file {name} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CorpusError(
                f"{path}: {name} is a symbolic link; corpus files must be regular files "
                "inside the corpus directory"
            ) from None
        raise CorpusError(f"{path}: cannot open {name} ({e.strerror})") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise CorpusError(f"{path}: {name} is not a regular file")
    return f


def _raise_if_replaced(dir_fd: int, path: Path) -> None:
    try:
        now = os.stat(path)
    except OSError:
        raise _Replaced from None
    held = os.fstat(dir_fd)
    if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
        raise _Replaced


def _read_manifest(dir_fd: int, path: Path) -> dict[str, Any]:
    mpath = path / "manifest.json"
    with _open_member(dir_fd, path, "manifest.json") as f:
        raw = f.read(_MAX_MANIFEST_BYTES + 1)
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise CorpusError(f"{mpath}: larger than {_MAX_MANIFEST_BYTES >> 20} MB, not a manifest")
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise CorpusError(f"{mpath}: manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise CorpusError(f"{mpath}: not a synknow corpus manifest")
    return manifest


def _check_config_hash(manifest: dict[str, Any], raw_config: dict[str, Any], mpath: Path) -> None:
    """The manifest's ``config_hash`` is xxh3-64 of the canonical config JSON, ``|`` and the
    version that wrote it (docs/corpus-format.md): an edited configuration fails here."""
    try:
        canonical = _core.validate_config(json.dumps(raw_config))
    except ValueError as e:
        raise CorpusError(f"{mpath}: invalid config in manifest: {e}") from None
    text = f"{canonical}|{manifest.get('synknow_version')}".encode()
    digest = _core.xxh3_64(np.frombuffer(text, dtype=np.uint8))
    if digest != manifest.get("config_hash"):
        raise CorpusError(
            f"{mpath}: config_hash does not match the stored configuration (manifest edited?)"
        )


def _check_entry(entry: Any, name: str, mpath: Path) -> tuple[str, str, list[int]]:
    """The ``file``, ``dtype`` and ``shape`` of a manifest entry, each of the right type; the
    file must be a plain name inside the directory."""
    where = f"{mpath}: arrays.{name}"
    if not isinstance(entry, dict):
        raise CorpusError(f"{where} must be a JSON object, got {type(entry).__name__}")
    file, dtype, shape = entry.get("file"), entry.get("dtype"), entry.get("shape")
    if not isinstance(file, str):
        raise CorpusError(f"{where}.file must be a file name, got {file!r:.40}")
    if file in ("", ".", "..") or "/" in file or "\\" in file or "\0" in file:
        raise CorpusError(
            f"{where}.file {file!r:.60} leaves the corpus directory (must be a plain file name)"
        )
    if file != f"{name}.npy":
        # Always so when synknow wrote it; two entries naming one file would load silently.
        raise CorpusError(f"{where}.file must be {name}.npy, got {file!r:.60}")
    if not isinstance(dtype, str):
        raise CorpusError(f"{where}.dtype must be a string, got {dtype!r:.40}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CorpusError(f"{where}.shape must be a list of sizes, got {shape!r:.60}")
    return file, dtype, shape


def read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the header of an open ``.npy`` file, which is then
    positioned at the first data byte. Anything unreadable is a ValueError."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    # numpy's header parser raises several types for garbage (ValueError, SyntaxError, ...).
    except Exception as e:  # noqa: BLE001
        raise ValueError(str(e)) from None
    raise ValueError(f"npy version {version} is not supported")


def _map_array(
    dir_fd: int, path: Path, file: str, *, mmap: bool, allowed: tuple[str, ...], ndim: int
) -> np.ndarray:
    """Reads one ``.npy`` file's header and maps (or reads) its data through the open file."""
    fpath = path / file
    with _open_member(dir_fd, path, file) as f:
        try:
            shape, fortran, dtype = read_npy_header(f)
        except ValueError as e:
            raise CorpusError(f"{fpath}: unreadable or truncated ({e})") from None
        if dtype.str not in allowed or len(shape) != ndim or fortran:
            raise CorpusError(
                f"{fpath}: dtype {dtype.str}/ndim {len(shape)}"
                f"{' (Fortran order)' if fortran else ''}, expected {allowed}/{ndim}"
            )
        header = f.tell()
        count = math.prod(shape)
        data_bytes = os.fstat(f.fileno()).st_size - header
        if data_bytes != count * dtype.itemsize:
            raise CorpusError(
                f"{fpath}: {data_bytes} data bytes, expected {count * dtype.itemsize} (truncated?)"
            )
        if mmap:
            return np.memmap(f, dtype=dtype, mode="r", offset=header, shape=tuple(shape))
        return np.fromfile(f, dtype=dtype, count=count).reshape(shape)


def remove_stale_staging(path: str | os.PathLike[str]) -> list[str]:
    """Cleans up after killed writers in the parent of corpus directory ``path``; returns one
    line per thing found.

    Removes staging directories (``.NAME.tmp-PID-HEX``) whose process no longer runs, via
    :func:`synknow.fsutil.remove_stale_temporaries`, and names a ``.NAME.old`` directory that
    an older synknow left when killed during an overwrite (it holds the previous corpus).
    """
    path = Path(path)
    parent = path.parent
    lines = [
        f"removed {p} (left by a writer that no longer runs)"
        for p in fsutil.remove_stale_temporaries(parent)
    ]
    legacy = parent / f".{path.name}.old"
    if legacy.is_dir():
        lines.append(
            f"found {legacy}: the previous corpus, left by an interrupted overwrite of an older "
            f"synknow; rename it back to {path.name} or delete it"
        )
    return lines


def _remove_stale_staging(path: Path) -> None:
    for line in remove_stale_staging(path):
        _log.info("%s", line)


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
