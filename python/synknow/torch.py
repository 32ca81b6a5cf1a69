"""PyTorch datasets over synknow corpora (docs/integration.md#pytorch).

* :class:`CorpusWindows`: a map-style ``Dataset`` over a corpus (on disk, memory-mapped, or in
  memory): whole documents packed into windows of ``context_length`` tokens, each window
  starting at a document's ``BOS`` (next fit, in document order), with the targets, roles,
  positions and the document and entity id of every token beside the tokens, so per-role or
  per-entity losses need no re-derivation.
* :class:`GeneratedDocuments`: an ``IterableDataset`` that samples documents on the fly from a
  configuration and seed. Document ``i`` is document ``i`` of ``synknow.sample(config, n)`` for
  every ``n > i``; documents are sharded over DataLoader workers and distributed ranks by index
  (``i % shards``), without overlap or gaps, and the stream resumes from any document index.

Importing this module needs torch (``pip install 'synknow[train]'``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ModuleNotFoundError as e:  # pragma: no cover - exercised in an environment without torch
    raise ImportError(f"synknow.torch needs torch ({e}): pip install 'synknow[train]'") from None

from synknow.config import SyntaxKnowledgeConfig
from synknow.corpus import Corpus, load_corpus
from synknow.export import npy_data_offset, npy_memmap
from synknow.stream import Sampler
from synknow.tokens import IGNORE, PAD

__all__ = [
    "CorpusWindows",
    "GeneratedDocuments",
    "collate_documents",
    "npy_data_offset",
    "npy_memmap",
]


def _count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class CorpusWindows(Dataset):
    """Windows of whole documents of a corpus, packed from ``BOS``.

    The documents are ``[start, stop)`` in order, or ``order`` (document ids, e.g. a seeded
    permutation per epoch) when given; they are packed next fit: a document that does not fit
    closes the window, the rule of the project's trainer (``synknow.train.data.TrainData``
    packs ``order = permutation(n_train)`` the same way).

    Item ``w`` is a dict of 1-D tensors of length ``context_length``: ``tokens`` (int64, PAD
    after the last document), ``targets`` (int64; each document's next tokens, ``IGNORE`` = -100
    at its last token and on padding, the convention of the project's trainer), ``roles``
    (uint8, see ``synknow.ROLE_NAMES``), ``positions`` (int64, position within the document),
    ``doc`` and ``entity`` (int64, -1 on padding). Shuffle with the DataLoader's sampler.
    """

    def __init__(
        self,
        corpus: Corpus | str | os.PathLike[str],
        context_length: int,
        *,
        start: int = 0,
        stop: int | None = None,
        order: Sequence[int] | np.ndarray | None = None,
    ):
        if not isinstance(corpus, Corpus):
            corpus = load_corpus(Path(corpus))
        self.corpus = corpus
        self.context_length = _count("context_length", context_length, minimum=2)
        if order is None:
            stop = corpus.n_docs if stop is None else stop
            start, stop = _count("start", start), _count("stop", stop)
            if not start < stop <= corpus.n_docs:
                raise ValueError(f"documents [{start}, {stop}) are not within [0, {corpus.n_docs})")
            docs = np.arange(start, stop, dtype=np.int64)
        else:
            if start != 0 or stop is not None:
                raise ValueError("give either order or start/stop, not both")
            docs = np.asarray(order)
            if docs.ndim != 1 or not len(docs) or docs.dtype.kind not in "iu":
                raise ValueError("order must be a non-empty 1-D array of document ids")
            docs = docs.astype(np.int64)
            if int(docs.min()) < 0 or int(docs.max()) >= corpus.n_docs:
                raise ValueError(f"order has document ids outside [0, {corpus.n_docs})")
        self.docs = docs
        offsets = np.asarray(corpus.doc_offsets, dtype=np.int64)
        self._doc_start = offsets[docs]
        lengths = offsets[docs + 1] - self._doc_start
        self._doc_len = lengths
        longest = int(lengths.max())
        if longest > self.context_length:
            doc = int(docs[int(np.argmax(lengths))])
            raise ValueError(
                f"document {doc} has {longest} tokens, more than context_length="
                f"{self.context_length} (documents are never split)"
            )
        ptr = [0]
        used = 0
        # Next fit: a document that does not fit closes the window (same rule as the trainer).
        for i, length in enumerate(lengths.tolist()):
            if used + length > self.context_length:
                ptr.append(i)
                used = 0
            used += length
        ptr.append(len(lengths))
        self._window_ptr = np.asarray(ptr, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._window_ptr) - 1

    def _slots(self, index: int) -> slice:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        index %= len(self)
        return slice(int(self._window_ptr[index]), int(self._window_ptr[index + 1]))

    def window_docs(self, index: int) -> np.ndarray:
        """Corpus document ids packed into window ``index``, in order."""
        return self.docs[self._slots(index)]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        slots = self._slots(int(index))
        t = self.context_length
        tokens = np.full(t, PAD, dtype=np.int64)
        targets = np.full(t, IGNORE, dtype=np.int64)
        roles = np.zeros(t, dtype=np.uint8)
        positions = np.zeros(t, dtype=np.int64)
        doc = np.full(t, -1, dtype=np.int64)
        entity = np.full(t, -1, dtype=np.int64)
        col = 0
        for d, lo, n in zip(
            self.docs[slots].tolist(),
            self._doc_start[slots].tolist(),
            self._doc_len[slots].tolist(),
            strict=True,
        ):
            span = slice(col, col + n)
            tokens[span] = self.corpus.tokens[lo : lo + n]
            roles[span] = self.corpus.roles[lo : lo + n]
            targets[col : col + n - 1] = tokens[col + 1 : col + n]
            positions[span] = np.arange(n)
            doc[span] = d
            entity[span] = int(self.corpus.doc_entity[d])
            col += n
        return {
            "tokens": torch.from_numpy(tokens),
            "targets": torch.from_numpy(targets),
            "roles": torch.from_numpy(roles),
            "positions": torch.from_numpy(positions),
            "doc": torch.from_numpy(doc),
            "entity": torch.from_numpy(entity),
        }


class GeneratedDocuments(IterableDataset):
    """Documents ``start, start + 1, ... (< stop)`` of ``synknow.sample(config, seed=seed)``,
    sampled on the fly.

    Each item is a dict: ``index`` (document id), ``entity`` (its entity id), ``tokens`` (int64
    tensor, ``BOS ... EOS``) and ``roles`` (uint8 tensor). Shard ``s`` of ``S`` (``S`` =
    world size x DataLoader workers, ``s = rank x workers + worker``) yields the documents with
    ``index % S == s``, in increasing order. With ``batch_size=None`` the DataLoader polls its
    workers in turn, so the consumer sees the documents in index order and a run resumes
    exactly with ``start`` = last index seen + 1. ``rank``/``world_size`` default to
    ``torch.distributed``'s when it is initialised.

    Every shard runs a :class:`synknow.Sampler`: it starts at its first document by drawing
    only the entities of the documents before it (tens of nanoseconds each, no tokens), then
    renders ``chunk_docs`` of its own documents per call, ``S`` apart, the documents between
    taking only their entity draw. So a shard renders only its own documents, resuming at a
    late ``start`` does not re-render the prefix, and a shard holds 4 bytes per document
    drawn plus the entity table and one chunk in memory.
    """

    def __init__(
        self,
        config: SyntaxKnowledgeConfig,
        *,
        seed: int | None = None,
        start: int = 0,
        stop: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        chunk_docs: int = 16_384,
        threads: int = 1,
    ):
        if not isinstance(config, SyntaxKnowledgeConfig):
            raise TypeError(f"config must be a SyntaxKnowledgeConfig, got {type(config).__name__}")
        self.config = config if seed is None else config.replace(seed=seed)
        self.start = _count("start", start)
        self.stop = None if stop is None else _count("stop", stop)
        if self.stop is not None and self.stop < self.start:
            raise ValueError(f"stop={self.stop} is before start={self.start}")
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        if rank is None or world_size is None:
            rank, world_size = 0, 1
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.world_size = _count("world_size", world_size, minimum=1)
        self.rank = _count("rank", rank)
        if self.rank >= self.world_size:
            raise ValueError(f"rank={self.rank} must be below world_size={self.world_size}")
        self.chunk_docs = _count("chunk_docs", chunk_docs, minimum=1)
        self.threads = _count("threads", threads, minimum=1)

    def shard(self) -> tuple[int, int]:
        """``(shard, shards)`` of the calling process (and DataLoader worker)."""
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        shard, shards = self.shard()
        # First index >= start that belongs to this shard.
        index = self.start + (shard - self.start) % shards
        if self.stop is not None and index >= self.stop:
            return
        sampler = Sampler(self.config, start=index, threads=self.threads)
        while self.stop is None or index < self.stop:
            n = self.chunk_docs
            if self.stop is not None:
                n = min(n, -(-(self.stop - index) // shards))
            # The documents between the previous batch's last and this shard's next.
            sampler.skip(index - sampler.n_docs)
            batch = sampler.next_batch(n, stride=shards)
            # One split per batch into numpy views, each its own tensor (a DataLoader worker
            # then ships each document alone, not the batch's storage with every document).
            cuts = batch.doc_offsets[1:-1]
            tokens = np.split(batch.tokens.astype(np.int64), cuts)
            roles = np.split(batch.roles, cuts)
            for j, (doc_tokens, doc_roles, entity) in enumerate(
                zip(tokens, roles, batch.doc_entity.tolist(), strict=True)
            ):
                yield {
                    "index": index + j * shards,
                    "entity": entity,
                    "tokens": torch.from_numpy(doc_tokens),
                    "roles": torch.from_numpy(doc_roles),
                }
            index += n * shards


def collate_documents(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stacks documents of :class:`GeneratedDocuments` into a right-padded batch: ``tokens``
    (PAD), ``targets`` (IGNORE past each document's last token), ``roles``, ``index``,
    ``entity`` and ``lengths``."""
    if not items:
        raise ValueError("collate_documents needs at least one document")
    lengths = torch.tensor([len(it["tokens"]) for it in items], dtype=torch.int64)
    rows, width = len(items), int(lengths.max())
    # One scatter for the whole batch: (row, column) of every token of the concatenation.
    flat = torch.cat([it["tokens"] for it in items])
    row = torch.repeat_interleave(torch.arange(rows), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    col = torch.arange(len(flat)) - torch.repeat_interleave(starts, lengths)
    tokens = torch.full((rows, width), PAD, dtype=torch.int64)
    tokens[row, col] = flat
    next_flat = torch.cat([flat[1:], flat.new_full((1,), IGNORE)])
    last = col == torch.repeat_interleave(lengths - 1, lengths)
    targets = torch.full((rows, width), IGNORE, dtype=torch.int64)
    targets[row, col] = torch.where(last, IGNORE, next_flat)
    roles = torch.zeros((rows, width), dtype=torch.uint8)
    roles[row, col] = torch.cat([it["roles"] for it in items])
    return {
        "tokens": tokens,
        "targets": targets,
        "roles": roles,
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "entity": torch.tensor([it["entity"] for it in items], dtype=torch.int64),
        "lengths": lengths,
    }
