"""Bad input gets a clear ValueError naming the problem, never a panic or a deep traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import synknow
from synknow import _core
from synknow.codelength import predictive_distribution


@pytest.fixture(scope="module")
def corpus() -> synknow.Corpus:
    return synknow.sample(synknow.presets.bios(alpha=0.5, beta=1.0), 300, seed=2)


def _with(corpus: synknow.Corpus, config=None, **arrays: np.ndarray) -> synknow.Corpus:
    a = dict(corpus.arrays)
    a.update(arrays)
    return synknow.Corpus(a, config or corpus.config)


def test_token_outside_vocabulary(corpus) -> None:
    tokens = np.array(corpus.tokens)
    pos = int(corpus.doc_offsets[5]) + 4
    tokens[pos] = len(corpus.vocab) + 3
    bad = _with(corpus, tokens=tokens)
    with pytest.raises(ValueError, match=rf"document 5, token {pos} .*outside the vocabulary"):
        synknow.code_lengths(bad, progress=False)
    with pytest.raises(ValueError, match="document 5"):
        synknow.bayes_curve(bad, 200, [10, 100], progress=False)
    with pytest.raises(ValueError, match="document 5"):
        synknow.code_lengths(bad, threads=2, progress=False)


def test_broken_document_structure(corpus) -> None:
    tokens = np.array(corpus.tokens)
    tokens[int(corpus.doc_offsets[3])] = 3  # BOS replaced by a syntax word
    with pytest.raises(ValueError, match="document 3.*BOS"):
        synknow.code_lengths(_with(corpus, tokens=tokens), progress=False)
    tokens = np.array(corpus.tokens)
    tokens[int(corpus.doc_offsets[4]) - 1] = 3  # EOS of document 3 replaced
    with pytest.raises(ValueError, match="document 3.*EOS"):
        synknow.code_lengths(_with(corpus, tokens=tokens), progress=False)


def test_contradicting_value_has_probability_zero(corpus) -> None:
    # A later document about an entity restates one of its values differently.
    d = next(d for d in range(1, corpus.n_docs) if corpus.doc_entity[d] in corpus.doc_entity[:d])
    lo = int(corpus.doc_offsets[d])
    pos = lo + int(np.flatnonzero(corpus.roles[lo:] == 3)[0])
    tokens = np.array(corpus.tokens)
    a = int(corpus.sentence_attribute[d, 0])
    pool = corpus.vocab.pool_ranges[corpus.config.attribute_pool[a]]
    tokens[pos] = pool.start if tokens[pos] != pool.start else pool.start + 1
    with pytest.raises(ValueError, match=rf"document {d}.*probability 0"):
        synknow.code_lengths(_with(corpus, tokens=tokens), progress=False)
    # The parse-only training pass of the learning curve refuses it too.
    with pytest.raises(ValueError, match=rf"document {d}"):
        synknow.bayes_curve(_with(corpus, tokens=tokens), 290, [d + 1], progress=False)


def test_corpus_of_another_configuration(corpus) -> None:
    fewer = synknow.presets.bios(alpha=0.5, beta=1.0, templates_per_attribute=4)
    with pytest.raises(ValueError, match="not in the pool"):  # the vocabulary layout differs
        synknow.closed_form_total(_with(corpus, config=fewer))
    fixed = synknow.presets.bios(alpha=0.5, beta=1.0, attribute_order="fixed")
    with pytest.raises(ValueError, match="not allowed by the attribute order"):
        synknow.closed_form_total(_with(corpus, config=fixed))
    with pytest.raises(ValueError, match="document 0.*do not fit this configuration"):
        synknow.code_lengths(_with(corpus, config=fixed), progress=False)
    proc = synknow.presets.procedural(alpha=0.5, beta=1.0)
    with pytest.raises(ValueError, match="do not fit this configuration"):
        synknow.code_lengths(_with(corpus, config=proc), progress=False)


def test_latent_records_out_of_range(corpus) -> None:
    de = np.array(corpus.doc_entity)
    de[7] = corpus.n_entities + 1
    with pytest.raises(ValueError, match=r"doc_entity\[7\]"):
        synknow.closed_form_per_doc(_with(corpus, doc_entity=de))
    vals = np.array(corpus.entity_values)
    vals[0, 2] = 0
    with pytest.raises(ValueError, match=r"entity_values\[0, 2\].*pool"):
        synknow.structure_function(_with(corpus, entity_values=vals))
    attrs = np.array(corpus.sentence_attribute)
    attrs[3, 1] = attrs[3, 0]
    with pytest.raises(ValueError, match=r"sentence_attribute\[3, 1\].*attribute order"):
        synknow.closed_form_total(_with(corpus, sentence_attribute=attrs))
    names = np.array(corpus.entity_names)
    names[1] = names[0]
    with pytest.raises(ValueError, match="same name"):
        synknow.closed_form_total(_with(corpus, entity_names=names))


def test_raw_bindings_check_arrays(corpus) -> None:
    cfg = corpus.config.to_json()
    tokens = np.ascontiguousarray(corpus.tokens)
    off = np.ascontiguousarray(corpus.doc_offsets)
    with pytest.raises(ValueError, match="doc_offsets.*end"):
        _core.code_lengths(cfg, tokens[:-1], off)
    with pytest.raises(ValueError, match="uint16 or uint32"):
        _core.code_lengths(cfg, tokens.astype(np.int64), off)
    with pytest.raises(ValueError, match="doc_offsets must be a 1-D numpy array of dtype u64"):
        _core.code_lengths(cfg, tokens, off.astype(np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        _core.code_lengths(cfg, tokens, np.repeat(off, 2)[::2])
    bad_off = off.copy()
    bad_off[10] = bad_off[9]
    with pytest.raises(ValueError, match="document 9"):
        _core.code_lengths(cfg, tokens, bad_off)
    with pytest.raises(ValueError, match="sentence_attribute has"):
        _core.closed_form_total(
            cfg,
            corpus.doc_entity,
            corpus.sentence_attribute.reshape(-1)[:-1],
            corpus.sentence_template.reshape(-1),
            corpus.entity_names.reshape(-1),
            corpus.entity_values.reshape(-1),
            10,
        )
    with pytest.raises(ValueError, match="invalid config"):
        _core.code_lengths(json.dumps({"alpha": 2.0}), tokens, off)


def test_python_layer_arguments(corpus) -> None:
    with pytest.raises(TypeError, match="synknow.Corpus"):
        synknow.code_lengths(corpus.tokens)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_docs=301 out of range"):
        synknow.closed_form_total(corpus, 301)
    with pytest.raises(ValueError, match="n_train"):
        synknow.structure_function(corpus, 0)
    with pytest.raises(ValueError, match="position 999999 out of range"):
        predictive_distribution(corpus, [999_999])
    with pytest.raises(ValueError, match="non-negative"):
        predictive_distribution(corpus, [-1])
    with pytest.raises(ValueError, match="progress"):
        synknow.code_lengths(corpus, progress="yes")  # type: ignore[arg-type]


def test_progress_callback_errors_propagate(corpus) -> None:
    seen = []

    def stop(done: int, total: int) -> None:
        seen.append((done, total))
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        synknow.code_lengths(corpus, progress=stop)
    assert seen and seen[-1][1] > 0
    calls = []
    synknow.bayes_curve(corpus, 200, [10, 200], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1]


def test_incompatible_corpus_version_is_refused(tmp_path, corpus) -> None:
    path = corpus.save(tmp_path / "c")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["synknow_version"] = "9.9.0"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(synknow.CorpusError, match="incompatible"):
        synknow.load_corpus(path)
