"""synknow.torch: the on-the-fly stream equals synknow.sample, shards without overlap or gaps,
resumes from an index; the packed windows carry the corpus exactly; npy headers are skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import synknow  # noqa: E402
from synknow.tokens import BOS, IGNORE, PAD  # noqa: E402
from synknow.torch import (  # noqa: E402
    CorpusWindows,
    GeneratedDocuments,
    collate_documents,
    npy_memmap,
)

CFG = synknow.presets.bios()


def _same_as_sample(items: list[dict], corpus: synknow.Corpus) -> None:
    for it in items:
        i = it["index"]
        assert np.array_equal(it["tokens"].numpy(), corpus.document(i)), i
        lo, hi = int(corpus.doc_offsets[i]), int(corpus.doc_offsets[i + 1])
        assert np.array_equal(it["roles"].numpy(), corpus.roles[lo:hi]), i
        assert it["entity"] == int(corpus.doc_entity[i]), i


def test_stream_is_synknow_sample() -> None:
    # chunk_docs=37: eight batches, the last one short.
    items = list(GeneratedDocuments(CFG, seed=5, stop=300, chunk_docs=37))
    assert [it["index"] for it in items] == list(range(300))
    _same_as_sample(items, synknow.sample(CFG, 1000, seed=5))


def test_dataloader_workers_shard_without_overlap_or_gaps() -> None:
    ds = GeneratedDocuments(CFG, seed=2, stop=201, chunk_docs=50)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    items = list(loader)
    # Workers are polled in turn, so the documents arrive in index order: none twice, none lost.
    assert [it["index"] for it in items] == list(range(201))
    _same_as_sample(items, synknow.sample(CFG, 201, seed=2))


def test_ranks_times_workers_partition_the_documents() -> None:
    seen: list[int] = []
    for rank in range(2):
        ds = GeneratedDocuments(CFG, seed=2, start=3, stop=120, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, collate_fn=list)
        mine = [it["index"] for batch in loader for it in batch]
        assert all(i % 4 in (2 * rank, 2 * rank + 1) for i in mine), rank
        seen += mine
    assert sorted(seen) == list(range(3, 120))


def test_resume_from_an_index_continues_the_stream() -> None:
    full = list(GeneratedDocuments(CFG, seed=9, stop=250, chunk_docs=64))
    resumed = list(GeneratedDocuments(CFG, seed=9, start=137, stop=250, chunk_docs=64))
    assert [it["index"] for it in resumed] == list(range(137, 250))
    for a, b in zip(full[137:], resumed, strict=True):
        assert torch.equal(a["tokens"], b["tokens"]) and a["entity"] == b["entity"]


def test_a_late_shard_renders_its_documents_only(monkeypatch) -> None:
    # Counted, not timed: the sampler renders exactly the documents the shard yields, none of
    # the 40,000 before its start and none of the other shards'.
    import synknow.torch as synknow_torch

    rendered: list[int] = []

    class Counting(synknow_torch.Sampler):
        def next_batch(self, n_docs: int, stride: int = 1) -> synknow.stream.DocumentBatch:
            batch = super().next_batch(n_docs, stride)
            rendered.extend(batch.indices.tolist())
            return batch

    monkeypatch.setattr(synknow_torch, "Sampler", Counting)
    ds = GeneratedDocuments(CFG, seed=3, start=40_000, stop=40_090, rank=1, world_size=3)
    items = list(GeneratedDocuments(CFG, seed=3, start=40_000, stop=40_090, chunk_docs=7))
    mine = list(ds)
    assert [it["index"] for it in mine] == list(range(40_000, 40_090, 3))
    assert rendered == list(range(40_000, 40_090)) + [it["index"] for it in mine]
    _same_as_sample(items, synknow.sample(CFG, 40_090, seed=3))
    by_index = {it["index"]: it for it in items}
    for it in mine:
        assert torch.equal(it["tokens"], by_index[it["index"]]["tokens"])


def test_collate_pads_and_masks() -> None:
    items = list(GeneratedDocuments(CFG, seed=1, stop=4))
    batch = collate_documents(items)
    for row, it in enumerate(items):
        n = len(it["tokens"])
        assert int(batch["lengths"][row]) == n
        assert torch.equal(batch["tokens"][row, :n], it["tokens"])
        assert (batch["tokens"][row, n:] == PAD).all()
        assert torch.equal(batch["targets"][row, : n - 1], it["tokens"][1:])
        assert (batch["targets"][row, n - 1 :] == IGNORE).all()


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="rank=2 must be below world_size=2"):
        GeneratedDocuments(CFG, rank=2, world_size=2)
    with pytest.raises(ValueError, match="give both rank and world_size"):
        GeneratedDocuments(CFG, rank=0)
    with pytest.raises(ValueError, match="stop=1 is before start=5"):
        GeneratedDocuments(CFG, start=5, stop=1)
    with pytest.raises(TypeError, match="SyntaxKnowledgeConfig"):
        GeneratedDocuments({"m": 1})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torch") / "corpus"
    synknow.sample(CFG, 400, seed=4).save(path)
    return path


def test_windows_carry_the_corpus_exactly(corpus_dir: Path) -> None:
    corpus = synknow.load_corpus(corpus_dir)
    ds = CorpusWindows(corpus_dir, context_length=256, start=10, stop=390)
    tokens, docs = [], []
    for w in range(len(ds)):
        item = ds[w]
        assert int(item["tokens"][0]) == BOS
        real = item["doc"] >= 0
        n = int(real.sum())
        assert real[:n].all() and not real[n:].any()  # documents first, padding after
        assert (item["tokens"][n:] == PAD).all() and (item["targets"][n:] == IGNORE).all()
        for d in item["doc"][:n].unique().tolist():
            sel = item["doc"] == d
            assert (item["entity"][sel] == int(corpus.doc_entity[d])).all()
            assert torch.equal(item["positions"][sel], torch.arange(int(sel.sum())))
            doc_targets = item["targets"][sel]
            assert torch.equal(doc_targets[:-1], item["tokens"][sel][1:])
            assert int(doc_targets[-1]) == IGNORE
        tokens.append(item["tokens"][:n].numpy())
        docs.append(item["doc"][:n].numpy())
    lo, hi = int(corpus.doc_offsets[10]), int(corpus.doc_offsets[390])
    assert np.array_equal(np.concatenate(tokens), corpus.tokens[lo:hi])
    flat_roles = np.concatenate([ds[w]["roles"][ds[w]["doc"] >= 0].numpy() for w in range(len(ds))])
    assert np.array_equal(flat_roles, corpus.roles[lo:hi])
    assert np.array_equal(np.unique(np.concatenate(docs)), np.arange(10, 390))


def test_windows_reject_documents_longer_than_the_context(corpus_dir: Path) -> None:
    with pytest.raises(ValueError, match="more than context_length=8"):
        CorpusWindows(corpus_dir, context_length=8)
    with pytest.raises(ValueError, match=r"documents \[5, 500\) are not within"):
        CorpusWindows(corpus_dir, context_length=256, start=5, stop=500)


def test_raw_memmap_reads_the_header_npy_memmap_does_not(corpus_dir: Path) -> None:
    corpus = synknow.load_corpus(corpus_dir)
    raw = np.memmap(corpus_dir / "tokens.npy", dtype=corpus.tokens.dtype, mode="r")
    assert not np.array_equal(raw[:16], corpus.tokens[:16])  # the pitfall: header bytes
    mapped = npy_memmap(corpus_dir / "tokens.npy")
    assert mapped.dtype == corpus.tokens.dtype and np.array_equal(mapped, corpus.tokens)


def test_import_without_torch_is_one_clear_line() -> None:
    code = "import sys; sys.modules['torch'] = None\nimport synknow.torch"
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: synknow.torch needs torch")
    assert "pip install 'synknow[train]'" in last


def test_windows_in_the_trainers_order_equal_the_trainers_windows(corpus_dir: Path) -> None:
    # The trainer could read its windows from CorpusWindows: with its epoch permutation as
    # `order`, the packing and every window's tokens, targets and positions are the same.
    from synknow.train.data import TrainData

    corpus = synknow.load_corpus(corpus_dir)
    data = TrainData(corpus, n_train=300, context_length=256, shuffle_seed=3)
    order = np.random.Generator(np.random.PCG64([3, 0])).permutation(300)
    ds = CorpusWindows(corpus, 256, order=order)
    assert len(ds) == data.windows_per_epoch
    for w in range(len(ds)):
        assert np.array_equal(ds.window_docs(w), data.window_docs(w)), w
        batch, item = data.batch(step=w, batch_size=1), ds[w]
        assert torch.equal(batch.tokens[0], item["tokens"])
        assert torch.equal(batch.targets[0], item["targets"])
        real = item["doc"] >= 0
        assert torch.equal(batch.positions[0][real], item["positions"][real])


def test_windows_order_errors(corpus_dir: Path) -> None:
    with pytest.raises(ValueError, match="either order or start/stop"):
        CorpusWindows(corpus_dir, 256, order=[0, 1], stop=5)
    with pytest.raises(ValueError, match=r"outside \[0, 400\)"):
        CorpusWindows(corpus_dir, 256, order=[0, 400])
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        CorpusWindows(corpus_dir, 256, order=[])
