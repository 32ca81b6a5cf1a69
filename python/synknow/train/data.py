"""Training windows and evaluation batches read straight from a (memory-mapped) corpus.

Splits follow docs/model.md#splits: the test split is the last ``n_test`` documents; training uses
the first
``n_train``. Training packs whole documents into windows of ``context_length`` tokens, each
window starting at a document's ``BOS``; the targets of a document are its own next tokens (the
``EOS -> next BOS`` transition and padding are ignored, ``-100``). Documents longer than the
window are rejected (synknow documents are short: ``m`` sentences).

The window stream is a pure function of ``(corpus, n_train, context_length, shuffle_seed)``:
epoch ``e`` shuffles the training documents with a generator keyed by ``(shuffle_seed, e)`` and
packs them in that order (next fit); epochs follow each other (their window counts can differ
by a few, as packing depends on the order). Optimiser step ``s`` takes windows
``[s B, (s + 1) B)`` of that stream, so the data position of a run is its step number, and rank
``r`` of ``W`` takes, in micro-step ``j``, the slice at ``(j W + r) x micro_batch`` within the
step: every rank reads only its own windows and the union over ranks is the single-process batch.

>>> import synknow
>>> corpus = synknow.sample(synknow.presets.bios(), 200, seed=1)
>>> data = TrainData(corpus, n_train=150, context_length=128)
>>> data.windows_per_epoch > 0 and data.tokens_per_epoch == int(corpus.doc_offsets[150])
True
>>> batch = data.batch(step=0, batch_size=4)
>>> tuple(batch.tokens.shape), int(batch.tokens[0, 0]) == 1  # each window starts at BOS
((4, 128), True)
"""

from __future__ import annotations

import bisect
import dataclasses

import numpy as np
import torch

from synknow.corpus import Corpus

# Special tokens and frequency buckets have one definition, in synknow.tokens; the names stay
# importable from here.
from synknow.tokens import BOS, EOS, IGNORE, PAD, bucket_label, frequency_bucket

__all__ = [
    "IGNORE",
    "PAD",
    "BOS",
    "EOS",
    "TrainBatch",
    "TrainData",
    "EvalBatch",
    "EvalData",
    "check_split",
    "frequency_bucket",
    "bucket_label",
]


def check_split(corpus: Corpus, n_train: int | None, n_test: int) -> tuple[int, int]:
    """``(n_train, n_test)`` for a corpus, with clear errors; ``n_train=None`` means every
    document before the test split."""
    n = corpus.n_docs
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    if n_test >= n:
        raise ValueError(
            f"n_test={n_test} leaves no training documents: the corpus has {n} documents"
        )
    if n_train is None:
        n_train = n - n_test
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    if n_train + n_test > n:
        raise ValueError(
            f"n_train={n_train} + n_test={n_test} exceeds the corpus's {n} documents (the test "
            "split is the last n_test documents and must not overlap the training prefix)"
        )
    return n_train, n_test


@dataclasses.dataclass
class TrainBatch:
    """``(B, T)`` int64 tensors: inputs, targets (``-100`` = ignored), rotary positions and
    document segment ids (``-1`` on padding); ``n_targets`` counts non-ignored targets."""

    tokens: torch.Tensor
    targets: torch.Tensor
    positions: torch.Tensor
    segments: torch.Tensor
    n_targets: int

    def to(self, device: torch.device | str) -> TrainBatch:
        nb = torch.device(device).type == "cuda"
        return TrainBatch(
            self.tokens.to(device, non_blocking=nb),
            self.targets.to(device, non_blocking=nb),
            self.positions.to(device, non_blocking=nb),
            self.segments.to(device, non_blocking=nb),
            self.n_targets,
        )


class TrainData:
    """The deterministic window stream over the first ``n_train`` documents of a corpus."""

    def __init__(
        self,
        corpus: Corpus,
        n_train: int,
        context_length: int,
        *,
        shuffle_seed: int = 0,
    ):
        if not 1 <= n_train <= corpus.n_docs:
            raise ValueError(f"n_train={n_train} out of range [1, {corpus.n_docs}]")
        self.corpus = corpus
        self.n_train = n_train
        self.context_length = context_length
        self.shuffle_seed = shuffle_seed
        offsets = np.asarray(corpus.doc_offsets[: n_train + 1], dtype=np.int64)
        self.doc_start = offsets[:-1]
        self.doc_len = np.diff(offsets)
        longest = int(self.doc_len.max())
        if longest > context_length:
            doc = int(np.argmax(self.doc_len))
            raise ValueError(
                f"document {doc} has {longest} tokens, more than model.context_length="
                f"{context_length}; raise context_length (documents are never split)"
            )
        if int(self.doc_len.min()) < 2:
            raise ValueError("corpus has a document shorter than BOS + EOS")
        self.tokens_per_epoch = int(offsets[-1])
        self.targets_per_epoch = int(self.doc_len.sum() - n_train)
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._epoch_start = [0]  # stream index of the first window of each packed epoch
        self.windows_per_epoch = self.epoch_windows(0)
        """Windows in epoch 0 (later epochs may differ by a few)."""

    def epoch_windows(self, epoch: int) -> int:
        """Number of windows that epoch ``epoch`` packs into."""
        self._extend(epoch + 1)
        return self._epoch_start[epoch + 1] - self._epoch_start[epoch]

    def _extend(self, epochs: int) -> None:
        # Window counts of every epoch so far are kept (ints); packs only for the latest two.
        while len(self._epoch_start) <= epochs:
            e = len(self._epoch_start) - 1
            self._epoch_start.append(self._epoch_start[-1] + len(self._epoch(e)[1]) - 1)

    def locate(self, index: int) -> tuple[int, int]:
        """``(epoch, window within the epoch)`` of window ``index`` of the stream."""
        while self._epoch_start[-1] <= index:
            self._extend(len(self._epoch_start))
        epoch = bisect.bisect_right(self._epoch_start, index) - 1
        return epoch, index - self._epoch_start[epoch]

    def stream_windows(self, epochs: float) -> int:
        """Windows in the first ``epochs`` passes (a fractional last pass is rounded)."""
        whole = int(epochs)
        self._extend(whole + 1)
        partial = round((epochs - whole) * self.epoch_windows(whole))
        return self._epoch_start[whole] + partial

    def epoch_at(self, index: int) -> float:
        """Fractional epoch reached after ``index`` windows of the stream."""
        epoch, w = self.locate(index)
        return epoch + w / self.epoch_windows(epoch)

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(order, window_ptr)``: documents in packing order, and CSR pointers of windows."""
        if epoch not in self._epochs:
            if len(self._epochs) >= 2:  # a step straddles at most two epochs
                del self._epochs[min(self._epochs)]
            self._epochs[epoch] = self._pack(epoch)
        return self._epochs[epoch]

    def _pack(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.Generator(np.random.PCG64([self.shuffle_seed, epoch]))
        order = rng.permutation(self.n_train)
        lens = self.doc_len[order]
        ptr = [0]
        used = 0
        # Next-fit packing: a document that does not fit closes the window.
        for i, length in enumerate(lens.tolist()):
            if used + length > self.context_length:
                ptr.append(i)
                used = 0
            used += length
        ptr.append(len(order))
        return order, np.asarray(ptr, dtype=np.int64)

    def window_docs(self, index: int) -> np.ndarray:
        """Documents (in order) of window ``index`` of the endless stream."""
        epoch, w = self.locate(index)
        order, ptr = self._epoch(epoch)
        return order[ptr[w] : ptr[w + 1]]

    def steps_for(self, epochs: float, batch_size: int) -> int:
        """Optimiser steps that cover ``epochs`` passes (the last batch may be partial)."""
        return max(1, -(-self.stream_windows(epochs) // batch_size))

    def batch(
        self,
        step: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        micro: int = 0,
        micro_batch_size: int | None = None,
        limit: int | None = None,
    ) -> TrainBatch:
        """The windows of one micro-batch of optimiser step ``step``.

        ``limit`` is the stream length (windows); windows past it are all padding (targets
        ignored), so every micro-batch keeps the shape ``(micro_batch_size, T)``.
        """
        mb = micro_batch_size or batch_size // world_size
        first = step * batch_size + (micro * world_size + rank) * mb
        indices = [i for i in range(first, first + mb) if limit is None or i < limit]
        return self._assemble([self.window_docs(i) for i in indices], mb)

    def step_targets(self, step: int, batch_size: int, limit: int | None = None) -> int:
        """Non-ignored targets in the whole step over all ranks (the loss normaliser)."""
        first = step * batch_size
        last = first + batch_size if limit is None else min(first + batch_size, limit)
        total = 0
        for i in range(first, last):
            docs = self.window_docs(i)
            total += int(self.doc_len[docs].sum()) - len(docs)
        return total

    def _assemble(self, windows: list[np.ndarray], rows: int) -> TrainBatch:
        t = self.context_length
        tokens = np.full((rows, t), PAD, dtype=np.int64)
        targets = np.full((rows, t), IGNORE, dtype=np.int64)
        positions = np.zeros((rows, t), dtype=np.int64)
        segments = np.full((rows, t), -1, dtype=np.int64)
        src = self.corpus.tokens
        n_targets = 0
        for row, docs in enumerate(windows):
            col = 0
            for seg, doc in enumerate(docs.tolist()):
                start, length = int(self.doc_start[doc]), int(self.doc_len[doc])
                span = np.asarray(src[start : start + length], dtype=np.int64)
                tokens[row, col : col + length] = span
                targets[row, col : col + length - 1] = span[1:]
                positions[row, col : col + length] = np.arange(length)
                segments[row, col : col + length] = seg
                col += length
                n_targets += length - 1
        return TrainBatch(
            torch.from_numpy(tokens),
            torch.from_numpy(targets),
            torch.from_numpy(positions),
            torch.from_numpy(segments),
            n_targets,
        )


@dataclasses.dataclass
class EvalBatch:
    """One test document per row, left-aligned and padded.

    ``tokens``/``targets`` ``(B, T)`` int64 (targets ``-100`` on padding and after ``EOS``);
    ``roles`` ``(B, T)`` the role of each *target* token (of ``tokens[:, 1:]``), 255 where
    ignored; ``docs``, ``entity``, ``count`` (the entity's training count ``c_k(n_train)``) and
    ``bucket`` per row; ``lengths`` the documents' token counts (``BOS`` included).
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    roles: np.ndarray
    docs: np.ndarray
    entity: np.ndarray
    count: np.ndarray
    bucket: np.ndarray
    lengths: np.ndarray


class EvalData:
    """Test documents (the last ``n_test`` of the corpus) with role and frequency metadata."""

    def __init__(
        self,
        corpus: Corpus,
        n_train: int,
        n_test: int,
        *,
        max_docs: int | None = None,
        context_length: int | None = None,
    ):
        n_train, n_test = check_split(corpus, n_train, n_test)
        self.corpus = corpus
        self.n_train = n_train
        first = corpus.n_docs - n_test
        count = n_test if max_docs is None else min(n_test, max_docs)
        self.docs = np.arange(first, first + count, dtype=np.int64)
        offsets = np.asarray(corpus.doc_offsets, dtype=np.int64)
        self.start = offsets[self.docs]
        self.lengths = offsets[self.docs + 1] - self.start
        longest = int(self.lengths.max())
        if context_length is not None and longest > context_length:
            raise ValueError(
                f"test document has {longest} tokens, more than the model's context length "
                f"{context_length}"
            )
        counts = corpus.entity_counts_at(n_train)
        self.entity = np.asarray(corpus.doc_entity[self.docs], dtype=np.int64)
        self.count = counts[self.entity]
        self.bucket = frequency_bucket(self.count)

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def batches(self, batch_size: int):
        """Yields :class:`EvalBatch` es of up to ``batch_size`` documents, padded to the
        longest document of the batch."""
        src, roles = self.corpus.tokens, self.corpus.roles
        for lo in range(0, len(self.docs), batch_size):
            sl = slice(lo, min(lo + batch_size, len(self.docs)))
            lens = self.lengths[sl]
            t = int(lens.max())
            rows = len(lens)
            tokens = np.full((rows, t), PAD, dtype=np.int64)
            targets = np.full((rows, t), IGNORE, dtype=np.int64)
            trole = np.full((rows, t), 255, dtype=np.uint8)
            for r, (start, length) in enumerate(zip(self.start[sl], lens, strict=True)):
                start, length = int(start), int(length)
                tokens[r, :length] = src[start : start + length]
                targets[r, : length - 1] = tokens[r, 1:length]
                trole[r, : length - 1] = roles[start + 1 : start + length]
            yield EvalBatch(
                torch.from_numpy(tokens),
                torch.from_numpy(targets),
                trole,
                self.docs[sl],
                self.entity[sl],
                self.count[sl],
                self.bucket[sl],
                lens,
            )
