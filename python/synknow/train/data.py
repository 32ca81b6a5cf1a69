"""Training windows and evaluation batches read straight from a (memory-mapped) corpus.

Splits follow docs/model.md#splits: the test split is the last ``n_test`` documents; training
uses the first ``n_train``. Training packs whole documents into windows of ``context_length``
tokens, each window starting at a document's ``BOS``; the targets of a document are its own
next tokens (the ``EOS -> next BOS`` transition and padding are ignored, ``-100``). Documents
longer than the window are rejected (synknow documents are short: ``m`` sentences).

The windows are :class:`synknow.torch.CorpusWindows` (the dataset other projects use), one per
epoch: epoch ``e`` packs the training documents in the order of a permutation keyed by
``(shuffle_seed, e)``, next fit. :class:`TrainData` chains the epochs into one endless,
map-style window stream (item ``i`` is window ``i``; their window counts can differ by a few,
as packing depends on the order), a pure function of ``(corpus, n_train, context_length,
shuffle_seed)``. Optimiser step ``s`` takes windows ``[s B, (s + 1) B)`` of that stream, so the
data position of a run is its step number, and rank ``r`` of ``W`` takes, in micro-step ``j``,
the slice at ``(j W + r) x micro_batch`` within the step: every rank reads only its own windows
and the union over ranks is the single-process batch. :meth:`TrainData.loader` serves one
rank's micro-batches through a ``torch.utils.data.DataLoader`` (optionally with worker
processes that assemble batches ahead of the training step).

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
import functools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from synknow.corpus import Corpus

# Special tokens and frequency buckets have one definition, in synknow.tokens; the names stay
# importable from here.
from synknow.tokens import BOS, EOS, IGNORE, PAD, bucket_label, frequency_bucket
from synknow.torch import CorpusWindows

__all__ = [
    "IGNORE",
    "PAD",
    "BOS",
    "EOS",
    "TrainBatch",
    "TrainData",
    "StepSampler",
    "collate_windows",
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
    segments (the corpus document id of each position, ``-1`` on padding: isolation lets a
    token attend only to tokens of its own segment); ``n_targets`` counts non-ignored
    targets."""

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

    def pin_memory(self) -> TrainBatch:
        """Page-locked copies (the DataLoader's ``pin_memory=True`` calls this)."""
        return TrainBatch(
            self.tokens.pin_memory(),
            self.targets.pin_memory(),
            self.positions.pin_memory(),
            self.segments.pin_memory(),
            self.n_targets,
        )


def collate_windows(
    items: Sequence[dict[str, torch.Tensor]], rows: int, context_length: int
) -> TrainBatch:
    """Stacks :class:`~synknow.torch.CorpusWindows` items into a :class:`TrainBatch` of
    ``rows`` rows; rows past the items are padding (targets ignored), so that every
    micro-batch keeps its shape when the stream ends inside a step."""
    if len(items) > rows:
        raise ValueError(f"{len(items)} windows do not fit a batch of {rows} rows")
    shape = (rows, context_length)
    tokens = torch.full(shape, PAD, dtype=torch.int64)
    targets = torch.full(shape, IGNORE, dtype=torch.int64)
    positions = torch.zeros(shape, dtype=torch.int64)
    segments = torch.full(shape, -1, dtype=torch.int64)
    n = len(items)
    if n:
        tokens[:n] = torch.stack([it["tokens"] for it in items])
        targets[:n] = torch.stack([it["targets"] for it in items])
        positions[:n] = torch.stack([it["positions"] for it in items])
        segments[:n] = torch.stack([it["doc"] for it in items])
    n_targets = int((targets != IGNORE).sum())
    return TrainBatch(tokens, targets, positions, segments, n_targets)


class TrainData(Dataset):
    """The deterministic window stream over the first ``n_train`` documents of a corpus.

    A map-style dataset without a length (the stream is endless): item ``i`` is window ``i``
    of the stream, a :class:`~synknow.torch.CorpusWindows` item.
    """

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
        self._epochs: dict[int, CorpusWindows] = {}
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
            self._epoch_start.append(self._epoch_start[-1] + len(self.epoch(e)))

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

    def epoch(self, epoch: int) -> CorpusWindows:
        """The windows of epoch ``epoch``: the training documents in the order of a permutation
        keyed by ``(shuffle_seed, epoch)``, packed by :class:`~synknow.torch.CorpusWindows`."""
        if epoch not in self._epochs:
            if len(self._epochs) >= 2:  # a step straddles at most two epochs
                del self._epochs[min(self._epochs)]
            rng = np.random.Generator(np.random.PCG64([self.shuffle_seed, epoch]))
            order = rng.permutation(self.n_train)
            self._epochs[epoch] = CorpusWindows(self.corpus, self.context_length, order=order)
        return self._epochs[epoch]

    def window_docs(self, index: int) -> np.ndarray:
        """Documents (in order) of window ``index`` of the endless stream."""
        epoch, w = self.locate(index)
        return self.epoch(epoch).window_docs(w)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch, w = self.locate(int(index))
        return self.epoch(epoch)[w]

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
        sampler = StepSampler(batch_size, mb, rank=rank, world_size=world_size, limit=limit)
        items = [self[i] for i in sampler.indices(step, micro)]
        return collate_windows(items, mb, self.context_length)

    def loader(
        self,
        batch_size: int,
        micro_batch_size: int,
        *,
        start_step: int = 0,
        stop_step: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        limit: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> DataLoader:
        """A DataLoader over this rank's micro-batches of steps ``[start_step, stop_step)``, in
        order (``batch_size / (micro_batch_size x world_size)`` per step), each the
        :meth:`batch` of the same arguments. With ``num_workers > 0`` worker processes
        assemble batches ahead of the training step; the batches are the same."""
        sampler = StepSampler(
            batch_size,
            micro_batch_size,
            rank=rank,
            world_size=world_size,
            limit=limit,
            start_step=start_step,
            stop_step=stop_step,
        )
        collate = functools.partial(
            collate_windows, rows=micro_batch_size, context_length=self.context_length
        )
        return DataLoader(
            self,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            pin_memory=pin_memory,
            # Its own generator: the loader draws the workers' base seed from it, and would
            # otherwise draw from (advance) the global torch RNG that a checkpoint records.
            generator=torch.Generator().manual_seed(0),
        )

    def step_targets(self, step: int, batch_size: int, limit: int | None = None) -> int:
        """Non-ignored targets in the whole step over all ranks (the loss normaliser)."""
        first = step * batch_size
        last = first + batch_size if limit is None else min(first + batch_size, limit)
        total = 0
        for i in range(first, last):
            docs = self.window_docs(i)
            total += int(self.doc_len[docs].sum()) - len(docs)
        return total


class StepSampler:
    """Batch sampler of one rank's window indices: per optimiser step from ``start_step`` (to
    ``stop_step``, or endless), its ``accum = batch_size / (micro_batch_size x world_size)``
    micro-batches in order. Micro-batch ``j`` of step ``s`` on rank ``r`` holds the windows
    ``s B + (j W + r) m + [0, m)`` below ``limit``; the ranks' micro-batches of a step together
    are its ``B`` windows, each once."""

    def __init__(
        self,
        batch_size: int,
        micro_batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        limit: int | None = None,
        start_step: int = 0,
        stop_step: int | None = None,
    ):
        if micro_batch_size < 1 or batch_size % (micro_batch_size * world_size):
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of micro_batch_size="
                f"{micro_batch_size} x world_size={world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        self.batch_size, self.micro_batch_size = batch_size, micro_batch_size
        self.rank, self.world_size, self.limit = rank, world_size, limit
        self.start_step, self.stop_step = start_step, stop_step
        self.accum = batch_size // (micro_batch_size * world_size)

    def indices(self, step: int, micro: int) -> list[int]:
        """Window indices of micro-batch ``micro`` of step ``step`` on this rank."""
        m = self.micro_batch_size
        first = step * self.batch_size + (micro * self.world_size + self.rank) * m
        last = first + m if self.limit is None else min(first + m, self.limit)
        return list(range(first, max(first, last)))

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.stop_step is None or step < self.stop_step:
            for micro in range(self.accum):
                yield self.indices(step, micro)
            step += 1

    def __len__(self) -> int:
        if self.stop_step is None:
            raise TypeError("an endless StepSampler has no length")
        return max(0, self.stop_step - self.start_step) * self.accum


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
