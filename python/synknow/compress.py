"""Lossless compression of a corpus's token stream at the exact Bayes code length
(docs/compression.md).

The coder is driven by the exact per-token predictive (docs/codelength.md#per-token) through a
range coder: the compressed size is the corpus's Bayes code length plus a small fixed header.
The decoder knows the configuration without its seed; the entities and the syntax parameters
are what the code pays for.

Example:
    >>> import synknow
    >>> from synknow.compress import compress, decompress
    >>> corpus = synknow.sample(synknow.presets.bios(), 200, seed=3)
    >>> data = compress(corpus, progress=False)
    >>> out = decompress(data, progress=False)
    >>> bool((out.tokens == corpus.tokens).all()), out.config.seed
    (True, 0)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synknow import _core
from synknow.codelength import Progress, _Bar, _check_corpus, _tokens
from synknow.config import SyntaxKnowledgeConfig
from synknow.corpus import Corpus

__all__ = ["Decompressed", "compress", "decompress", "header_bytes"]


@dataclasses.dataclass(frozen=True)
class Decompressed:
    """A decompressed token stream: the configuration the decoder used (seed 0, no theta),
    the tokens and the document offsets."""

    config: SyntaxKnowledgeConfig
    tokens: np.ndarray
    doc_offsets: np.ndarray
    coded_symbols: int

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1


def compress(corpus: Corpus, *, progress: Progress = True) -> bytes:
    """The bytes of a self-contained compressed file of ``corpus``'s token stream."""
    corpus = _check_corpus(corpus)
    tokens, offsets = _tokens(corpus)
    bar = _Bar(progress, "compress", "doc")
    try:
        return _core.compress(corpus.config.to_json(), tokens, offsets, bar.hook)
    finally:
        bar.close()


def decompress(data: bytes, *, progress: Progress = True) -> Decompressed:
    """Decodes bytes made by :func:`compress`. A truncated or altered file raises
    ``synknow.CorpusError`` (a ``ValueError``)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    bar = _Bar(progress, "decompress", "doc")
    try:
        raw = _core.decompress(bytes(data), bar.hook)
    finally:
        bar.close()
    config = SyntaxKnowledgeConfig.from_json(raw["config_json"])
    tokens = raw["tokens"]
    if int(_core.grammar_info(raw["config_json"])["vocab_size"]) <= 1 << 16:
        tokens = tokens.astype(np.uint16)
    return Decompressed(config, tokens, raw["doc_offsets"], int(raw["coded_symbols"]))


def header_bytes(data: bytes) -> int:
    """Size of the fixed part of a compressed file (everything but the range coder's payload)."""
    if len(data) < 20:
        raise ValueError("data is too short to be a compressed file")
    view = memoryview(data)
    # magic, version, checksum (20 bytes); four u64 counts; then two length-prefixed texts.
    offset = 20 + 32
    for _ in range(2):
        n = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4 + n
    return offset + 8
