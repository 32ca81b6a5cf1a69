"""synknow.Sampler: the streaming sampler gives the documents of synknow.sample for any batch
split, start index and stride; it refuses what sample refuses; bad arguments are one line."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
from synknow.stream import DocumentBatch

CFG = synknow.presets.bios(seed=6)
N = 6000


@pytest.fixture(scope="module")
def reference() -> synknow.Corpus:
    return synknow.sample(CFG, N)


def _check(batch: DocumentBatch, corpus: synknow.Corpus) -> None:
    m = corpus.sentence_template.shape[1]
    assert batch.sentence_template.shape == (len(batch), m)
    for j, i in enumerate(batch.indices.tolist()):
        assert np.array_equal(batch.document(j), corpus.document(i)), i
        lo, hi = int(corpus.doc_offsets[i]), int(corpus.doc_offsets[i + 1])
        assert np.array_equal(batch.roles[batch.doc_offsets[j] : batch.doc_offsets[j + 1]],
                              corpus.roles[lo:hi])  # fmt: skip
        assert int(batch.doc_entity[j]) == int(corpus.doc_entity[i])
        assert np.array_equal(batch.sentence_attribute[j], corpus.sentence_attribute[i])
        assert np.array_equal(batch.sentence_template[j], corpus.sentence_template[i])


def test_batches_of_any_size_are_the_sampled_corpus(reference: synknow.Corpus) -> None:
    s = synknow.Sampler(CFG, threads=2)
    tokens = []
    for n in (1, 999, 2048, 0, 2952):
        batch = s.next_batch(n)
        assert batch.first_doc + len(batch) == s.n_docs
        tokens.append(batch.tokens)
    assert s.n_docs == N
    assert np.array_equal(np.concatenate(tokens), reference.tokens)
    entities = s.entities()
    for name, array in entities.items():
        assert np.array_equal(array, getattr(reference, name)), name
    assert s.n_entities == reference.n_entities


@pytest.mark.parametrize(("start", "stride", "n"), [(0, 3, 1500), (4321, 1, 300), (5000, 7, 143)])
def test_a_late_start_and_a_stride_give_the_same_documents(
    reference: synknow.Corpus, start: int, stride: int, n: int
) -> None:
    s = synknow.Sampler(CFG, start=start, threads=1)
    assert s.n_docs == start
    batch = s.next_batch(n, stride=stride)
    assert (batch.first_doc, batch.stride) == (start, stride)
    assert s.n_docs == start + (n - 1) * stride + 1
    _check(batch, reference)


def test_skip_equals_starting_later(reference: synknow.Corpus) -> None:
    s = synknow.Sampler(CFG)
    s.next_batch(100)
    s.skip(2900)
    later = synknow.Sampler(CFG, start=3000)
    a, b = s.next_batch(50), later.next_batch(50)
    assert np.array_equal(a.tokens, b.tokens) and a.first_doc == b.first_doc == 3000
    _check(a, reference)


def test_the_stream_refuses_what_sample_refuses() -> None:
    # U = 100 names: sample() accepts one document (E[K_1] = 1) and refuses two.
    tiny = synknow.presets.bios(name_parts=(10, 10))
    synknow.sample(tiny, 1)
    with pytest.raises(ValueError, match="too few names") as refused:
        synknow.sample(tiny, 2)
    s = synknow.Sampler(tiny)
    s.next_batch(1)
    with pytest.raises(ValueError, match="too few names") as streamed:
        s.next_batch(1)
    assert str(streamed.value) == str(refused.value)
    with pytest.raises(ValueError, match="too few names"):
        synknow.Sampler(tiny, start=5)


def test_bad_arguments_are_one_line_errors() -> None:
    s = synknow.Sampler(CFG)
    for call, message in [
        (lambda: s.next_batch(3, stride=0), "stride must be an integer >= 1"),
        (lambda: s.next_batch(-1), r"n_docs must be an integer in \[0, 2\^64\)"),
        (lambda: s.skip(1.5), r"n_docs must be an integer"),
        (lambda: synknow.Sampler(CFG, start=-2), r"start must be an integer in \[0, 2\^64\)"),
        (lambda: synknow.Sampler(CFG, threads=0), "threads must be an integer in 1..=1024"),
    ]:
        with pytest.raises(ValueError, match=message) as e:
            call()
        assert "\n" not in str(e.value)
    with pytest.raises(TypeError, match="SyntaxKnowledgeConfig"):
        synknow.Sampler({"seed": 1})  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="out of range"):
        s.next_batch(2).document(2)
    # A refused argument leaves the sampler usable.
    assert s.next_batch(1).first_doc == 2


def test_arrays_are_handed_to_numpy() -> None:
    batch = synknow.Sampler(CFG).next_batch(10)
    assert batch.tokens.dtype == np.uint16 and batch.doc_offsets[0] == 0
    assert batch.tokens.flags.writeable  # handed over to numpy, not a view of Rust memory
