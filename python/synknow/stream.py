"""Streaming sampler: the documents of ``synknow.sample(config, n)``, batch after batch, for
any ``n``, from any start index (docs/integration.md#streaming-sampler).

Document ``i`` of a corpus depends on the documents before it only through the CRP's entity
draws (docs/model.md#generative-process); its attribute order, templates and tokens come from its
own random stream. So a :class:`Sampler` that starts at document ``k`` draws the entities of
documents ``0 .. k-1`` without rendering them (tens of nanoseconds and 4 bytes of memory per
document, some thirty times less time than rendering), and :meth:`Sampler.next_batch` with a
``stride`` renders only every ``stride``-th document: one of ``S`` interleaved shards pays for
rendering its own documents only.

>>> import synknow
>>> s = synknow.Sampler(synknow.presets.bios(), seed=7, start=500)
>>> batch = s.next_batch(3)
>>> ref = synknow.sample(synknow.presets.bios(), 503, seed=7)
>>> bool((batch.document(2) == ref.document(502)).all()), s.n_docs
(True, 503)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synknow import _core
from synknow.config import SyntaxKnowledgeConfig

__all__ = ["DocumentBatch", "Sampler"]


@dataclass(frozen=True, eq=False)
class DocumentBatch:
    """Documents ``first_doc, first_doc + stride, ...`` of a corpus, as numpy arrays.

    ``doc_offsets`` (``len + 1`` entries, from 0) index ``tokens`` and ``roles``; the other
    arrays are those of :class:`synknow.Corpus`, one row per document of the batch.
    """

    first_doc: int
    stride: int
    tokens: np.ndarray
    roles: np.ndarray
    doc_offsets: np.ndarray
    doc_entity: np.ndarray
    sentence_attribute: np.ndarray
    sentence_template: np.ndarray

    def __len__(self) -> int:
        return len(self.doc_entity)

    @property
    def indices(self) -> np.ndarray:
        """Corpus index of every document of the batch."""
        return self.first_doc + self.stride * np.arange(len(self), dtype=np.int64)

    def document(self, j: int) -> np.ndarray:
        """Tokens of document ``j`` of the batch (corpus document ``indices[j]``)."""
        if not -len(self) <= j < len(self):
            raise IndexError(f"document {j} out of range ({len(self)} documents)")
        j %= len(self)
        return self.tokens[int(self.doc_offsets[j]) : int(self.doc_offsets[j + 1])]


class Sampler:
    """The documents of ``synknow.sample(config, n, seed=seed)`` from index ``start`` on, in
    batches (Rust, GIL released, arrays handed to numpy without a copy).

    The stream goes on as long as ``synknow.sample`` would accept the corpus size (the name
    supply rule of docs/model.md#configuration); past it, :meth:`next_batch` raises the same
    ``ValueError``. After any error the sampler is unusable (create a new one).
    """

    def __init__(
        self,
        config: SyntaxKnowledgeConfig,
        *,
        seed: int | None = None,
        start: int = 0,
        threads: int | None = None,
    ):
        if not isinstance(config, SyntaxKnowledgeConfig):
            raise TypeError(f"config must be a SyntaxKnowledgeConfig, got {type(config).__name__}")
        self.config = config if seed is None else config.replace(seed=seed)
        self._core = _core.Sampler(self.config.to_json(), start, threads)

    @property
    def n_docs(self) -> int:
        """Index of the next document (documents drawn so far)."""
        return self._core.n_docs

    @property
    def n_entities(self) -> int:
        """Entities created by the documents drawn so far."""
        return self._core.n_entities

    def skip(self, n_docs: int) -> None:
        """Moves ``n_docs`` documents on, drawing only their entities."""
        self._core.skip(n_docs)

    def next_batch(self, n_docs: int, stride: int = 1) -> DocumentBatch:
        """Renders ``n_docs`` documents ``stride`` apart, from :attr:`n_docs` on; afterwards
        :attr:`n_docs` is one past the last of them."""
        return DocumentBatch(**self._core.next_batch(n_docs, stride))

    def entities(self) -> dict[str, np.ndarray]:
        """The entity table of the documents drawn so far (``entity_names``, ``entity_values``,
        ``entity_first_doc``, ``entity_counts``, as in :class:`synknow.Corpus`)."""
        return dict(self._core.entities())

    def __repr__(self) -> str:
        return f"Sampler(seed={self.config.seed}, n_docs={self.n_docs})"
