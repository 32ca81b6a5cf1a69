"""Windows, splits and evaluation batches."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
import torch
from _train_testing import small_bios
from synknow.torch import CorpusWindows
from synknow.train import EvalData, TrainData, bucket_label, frequency_bucket
from synknow.train.data import BOS, IGNORE, StepSampler, check_split


def docs_of_epoch(data: TrainData, epoch: int) -> list[int]:
    first = data.stream_windows(epoch)
    last = first + data.epoch_windows(epoch)
    return [int(d) for i in range(first, last) for d in data.window_docs(i)]


def test_each_epoch_is_a_permutation_of_the_training_prefix(corpus):
    data = TrainData(corpus, 500, 128, shuffle_seed=4)
    e0, e1 = docs_of_epoch(data, 0), docs_of_epoch(data, 1)
    assert sorted(e0) == list(range(500)) == sorted(e1)
    assert e0 != e1  # a new order every epoch
    assert docs_of_epoch(TrainData(corpus, 500, 128, shuffle_seed=4), 0) == e0  # deterministic
    assert docs_of_epoch(TrainData(corpus, 500, 128, shuffle_seed=5), 0) != e0


def test_epochs_with_different_window_counts_chain_exactly():
    """Packing depends on the order, so epochs can pack into different numbers of windows; the
    stream still covers every document exactly once per epoch, across epoch boundaries."""
    config = synknow.presets.procedural(
        n_attributes=3, template_length=(1, 30), name_parts=(50, 50, 50)
    )
    c = synknow.sample(config, 400, seed=2)
    data = TrainData(c, 300, 100, shuffle_seed=1)
    counts = [data.epoch_windows(e) for e in range(4)]
    assert len(set(counts)) > 1  # the case this test is about
    for e in range(4):
        assert sorted(docs_of_epoch(data, e)) == list(range(300))
    assert data.stream_windows(2.0) == counts[0] + counts[1]
    assert data.stream_windows(1.5) == counts[0] + round(counts[1] / 2)
    assert data.epoch_at(counts[0] + counts[1]) == 2.0
    # Every window of four epochs, through batch(), in steps that straddle the boundaries.
    total = sum(counts)
    seen = 0
    for step in range(-(-total // 16)):
        seen += data.batch(step, 16, limit=total).n_targets
    assert seen == 4 * data.targets_per_epoch
    assert data.steps_for(4.0, 16) == -(-total // 16)


def test_windows_hold_whole_documents_from_bos(corpus):
    data = TrainData(corpus, 300, 128)
    batch = data.batch(0, data.windows_per_epoch)
    tokens, targets = batch.tokens.numpy(), batch.targets.numpy()
    seen = 0
    for row in range(tokens.shape[0]):
        assert tokens[row, 0] == BOS
        col = 0
        for doc in data.window_docs(row):
            d = np.asarray(corpus.document(int(doc)), dtype=np.int64)
            n = len(d)
            np.testing.assert_array_equal(tokens[row, col : col + n], d)
            np.testing.assert_array_equal(targets[row, col : col + n - 1], d[1:])
            assert targets[row, col + n - 1] == IGNORE  # EOS -> next BOS is not a target
            np.testing.assert_array_equal(batch.positions[row, col : col + n].numpy(), np.arange(n))
            col += n
            seen += n - 1
        assert (targets[row, col:] == IGNORE).all() and (batch.segments[row, col:] == -1).all()
    assert seen == batch.n_targets == data.targets_per_epoch
    assert data.step_targets(0, data.windows_per_epoch) == seen


def test_rank_shards_partition_the_single_process_step(corpus):
    data = TrainData(corpus, 400, 128)
    full = data.batch(3, 8)
    parts = [
        data.batch(3, 8, rank=r, world_size=2, micro=j, micro_batch_size=2)
        for j in range(2)
        for r in range(2)
    ]
    stacked = np.concatenate([p.tokens.numpy() for p in parts])
    np.testing.assert_array_equal(stacked, full.tokens.numpy())
    assert sum(p.n_targets for p in parts) == full.n_targets == data.step_targets(3, 8)


def test_epochs_are_corpus_windows_of_a_seeded_permutation(corpus):
    """The trainer's windows are synknow.torch's CorpusWindows (the dataset other projects
    use), not a private packing: epoch e packs permutation (shuffle_seed, e) of the prefix."""
    data = TrainData(corpus, 400, 128, shuffle_seed=7)
    for epoch in (0, 1):
        order = np.random.Generator(np.random.PCG64([7, epoch])).permutation(400)
        windows = CorpusWindows(corpus, 128, order=order)
        assert data.epoch_windows(epoch) == len(windows)
        first = data.stream_windows(epoch)
        for w in (0, len(windows) - 1):
            mine, theirs = data[first + w], windows[w]
            assert mine.keys() == theirs.keys()
            for key in theirs:
                torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0)
    batch = data.batch(0, 4)
    np.testing.assert_array_equal(
        batch.segments.numpy(), torch.stack([data[i]["doc"] for i in range(4)]).numpy()
    )


def test_loader_yields_the_micro_batches_of_each_step_in_order(corpus):
    """The DataLoader the loop draws from, in-line and with worker processes, gives exactly
    the micro-batches batch() describes, from a resumed step to the end of the stream."""
    data = TrainData(corpus, 100, 128, shuffle_seed=2)
    limit = data.stream_windows(1.5)
    steps = data.steps_for(1.5, 8)
    expected = [
        data.batch(s, 8, rank=1, world_size=2, micro=j, micro_batch_size=2, limit=limit)
        for s in range(3, steps)
        for j in range(2)
    ]
    for workers in (0, 2):
        loader = data.loader(
            8, 2, start_step=3, stop_step=steps, rank=1, world_size=2, limit=limit,
            num_workers=workers,
        )  # fmt: skip
        got = list(loader)
        assert isinstance(loader.batch_sampler, StepSampler)
        assert len(got) == len(expected) == len(loader.batch_sampler)
        for a, b in zip(got, expected, strict=True):
            assert a.n_targets == b.n_targets
            for key in ("tokens", "targets", "positions", "segments"):
                torch.testing.assert_close(getattr(a, key), getattr(b, key), rtol=0, atol=0)
    assert expected[-1].n_targets < expected[0].n_targets  # the stream ends inside the last step


def test_step_sampler_rejects_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="multiple of micro_batch_size=3 x world_size=2"):
        StepSampler(8, 3, world_size=2)
    with pytest.raises(ValueError, match="rank=2"):
        StepSampler(8, 2, rank=2, world_size=2)


def test_stream_limit_pads_the_last_batch(corpus):
    data = TrainData(corpus, 100, 128)
    limit = data.windows_per_epoch
    last = (limit - 1) // 8
    batch = data.batch(last, 8, limit=limit)
    real = limit - last * 8
    assert batch.tokens.shape == (8, 128)
    assert (batch.tokens[real:] == 0).all() and (batch.targets[real:] == IGNORE).all()
    assert data.steps_for(1.0, 8) == last + 1


def test_long_documents_are_rejected_with_a_clear_error(corpus):
    longest = int(np.diff(corpus.doc_offsets[:200]).max())
    with pytest.raises(ValueError, match="more than model.context_length"):
        TrainData(corpus, 200, longest - 1)


def test_split_checks(corpus):
    n = corpus.n_docs
    assert check_split(corpus, None, 100) == (n - 100, 100)
    with pytest.raises(ValueError, match="exceeds the corpus"):
        check_split(corpus, n - 99, 100)
    with pytest.raises(ValueError, match="leaves no training documents"):
        check_split(corpus, None, n)


def test_frequency_buckets_follow_spec_3_6():
    counts = np.array([0, 1, 2, 3, 4, 7, 8, 15, 16, 1000])
    np.testing.assert_array_equal(frequency_bucket(counts), [0, 1, 2, 2, 3, 3, 4, 4, 5, 10])
    labels = [bucket_label(b) for b in range(6)]
    assert labels == ["0", "1", "2-3", "4-7", "8-15", "16-31"]


def test_eval_batches_carry_roles_and_training_counts(corpus):
    data = EvalData(corpus, 1000, 150)
    counts = corpus.entity_counts_at(1000)
    assert list(data.docs) == list(range(corpus.n_docs - 150, corpus.n_docs))
    rows = 0
    for batch in data.batches(64):
        for r, doc in enumerate(batch.docs):
            d = np.asarray(corpus.document(int(doc)))
            n = len(d)
            lo = int(corpus.doc_offsets[doc])
            assert batch.lengths[r] == n
            np.testing.assert_array_equal(batch.tokens[r, :n].numpy(), d)
            np.testing.assert_array_equal(batch.roles[r, : n - 1], corpus.roles[lo + 1 : lo + n])
            assert (batch.targets[r, n - 1 :] == IGNORE).all()
            assert batch.count[r] == counts[corpus.doc_entity[doc]]
            rows += 1
    assert rows == 150 == len(data)
    assert data.n_tokens == int(corpus.doc_offsets[-1] - corpus.doc_offsets[-151])


def test_unseen_entities_count_zero():
    c = synknow.sample(small_bios(alpha=0.9, beta=50.0, name_parts=(40, 40, 100)), 400)
    data = EvalData(c, 100, 300)
    first = np.asarray(c.entity_first_doc)[data.entity]
    np.testing.assert_array_equal(data.count == 0, first >= 100)
    assert (data.count == 0).any() and (data.count > 0).any()
