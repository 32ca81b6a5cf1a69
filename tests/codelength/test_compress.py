"""The Bayes coder (docs/compression.md): lossless roundtrips over configurations, the size at
the exact code length, the seedless header, and clear errors on damaged files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import synknow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synknow import presets
from synknow.cli import main
from synknow.compress import compress, decompress, header_bytes

# The range coder's payload exceeds the code length by the leaky 24-bit quantisation (about
# 2^-24 per symbol of the support, relative) plus a final flush of at most 64 bits, so 0.1%
# leaves room on any corpus of a few hundred documents or more.
SIZE_TOLERANCE = 1e-3


def roundtrip(corpus: synknow.Corpus) -> tuple[bytes, float]:
    data = compress(corpus, progress=False)
    out = decompress(data, progress=False)
    np.testing.assert_array_equal(out.tokens, corpus.tokens)
    np.testing.assert_array_equal(out.doc_offsets, corpus.doc_offsets)
    assert out.tokens.dtype == corpus.tokens.dtype
    assert out.config.seed == 0
    assert out.config.to_json() == corpus.config.replace(seed=0, theta=None).to_json()
    bits = synknow.code_lengths(corpus, per_token=False, progress=False).total
    return data, bits


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_attributes=st.integers(1, 4),
    shared=st.booleans(),
    alpha=st.sampled_from([0.0, 0.3, 0.7]),
    m_less=st.booleans(),
    shuffled=st.booleans(),
    zipf=st.booleans(),
    n_docs=st.sampled_from([1, 2, 40, 150]),
    seed=st.integers(0, 2**32),
)
def test_roundtrip_over_configurations(
    n_attributes, shared, alpha, m_less, shuffled, zipf, n_docs, seed
) -> None:
    config = presets.procedural(
        n_attributes=n_attributes,
        pool_sizes=(30,) if shared else (30,) * n_attributes,
        attribute_pool=(0,) * n_attributes if shared else tuple(range(n_attributes)),
        name_parts=(300, 300),
        templates_per_attribute=3,
        alpha=alpha,
        attrs_per_doc=max(1, n_attributes - 1) if m_less else None,
        attribute_order="shuffled" if shuffled else "fixed",
        value_prior="zipf(1.2)" if zipf else "uniform",
    )
    corpus = synknow.sample(config, n_docs, seed=seed)
    data, bits = roundtrip(corpus)
    payload_bits = (len(data) - header_bytes(data)) * 8
    # The flush of the range coder: at most two 32-bit words beyond the information content.
    assert bits - 1e-6 <= payload_bits + 64
    assert payload_bits <= bits * (1 + SIZE_TOLERANCE) + 96


@pytest.mark.parametrize(
    "config",
    [presets.bios(), presets.procedural(value_prior="zipf(1.1)")],
    ids=["bios", "procedural-shared-pool"],
)
def test_size_at_the_code_length(config) -> None:
    corpus = synknow.sample(config, 3000, seed=11)
    data, bits = roundtrip(corpus)
    payload_bits = (len(data) - header_bytes(data)) * 8
    assert bits <= payload_bits <= bits * (1 + SIZE_TOLERANCE)
    # The header does not grow with the corpus.
    small = compress(synknow.sample(config, 10, seed=11), progress=False)
    assert header_bytes(small) == header_bytes(data)


def test_roundtrip_independent_of_threads() -> None:
    config = presets.bios()
    a = synknow.sample(config, 500, seed=5, threads=1)
    b = synknow.sample(config, 500, seed=5, threads=2)
    assert compress(a, progress=False) == compress(b, progress=False)


def test_header_holds_no_seed() -> None:
    corpus = synknow.sample(presets.procedural(), 50, seed=123456789)
    other = synknow.sample(presets.procedural(), 50, seed=987654321)
    data = compress(corpus, progress=False)
    text = json.loads(decompress(data, progress=False).config.to_json())
    assert text["seed"] == 0
    assert b"123456789" not in data
    # Two seeds, the same configuration: the headers' configuration texts are identical.
    assert (
        decompress(compress(other, progress=False), progress=False).config
        == decompress(data, progress=False).config
    )


@pytest.fixture(scope="module")
def small_file() -> bytes:
    return compress(synknow.sample(presets.bios(), 30, seed=1), progress=False)


@pytest.mark.parametrize("cut", [0, 4, 10, 19, 40, 200, -1])
def test_truncated_file_is_a_clear_error(small_file, cut) -> None:
    with pytest.raises(synknow.CorpusError, match="compressed file") as e:
        decompress(small_file[:cut], progress=False)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("where", [0, 9, 14, 25, 100, -3])
def test_altered_file_is_a_clear_error(small_file, where) -> None:
    bad = bytearray(small_file)
    bad[where] ^= 0x10
    with pytest.raises(synknow.CorpusError, match="compressed file") as e:
        decompress(bytes(bad), progress=False)
    assert "\n" not in str(e.value)


def test_not_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bytes"):
        decompress("not bytes", progress=False)  # type: ignore[arg-type]


def test_cli_roundtrip(tmp_path, capsys) -> None:
    path = tmp_path / "corpus"
    synknow.generate(presets.bios(), 200, path, seed=4, progress=False)
    out = tmp_path / "c.synkz"
    assert main(["compress", str(path), str(out), "--quiet"]) == 0
    assert "payload / code length" in capsys.readouterr().out
    assert main(["decompress", str(out), str(tmp_path / "dec"), "--quiet"]) == 0
    corpus = synknow.load_corpus(path)
    np.testing.assert_array_equal(np.load(tmp_path / "dec" / "tokens.npy"), corpus.tokens)
    np.testing.assert_array_equal(np.load(tmp_path / "dec" / "doc_offsets.npy"), corpus.doc_offsets)
    assert json.loads((tmp_path / "dec" / "config.json").read_text())["seed"] == 0


def test_corpus_the_model_cannot_produce_is_a_clear_error() -> None:
    corpus = synknow.sample(presets.bios(), 20, seed=2)
    arrays = dict(corpus.arrays)
    tokens = arrays["tokens"].copy()
    # The first syntax word of document 3 replaced by BOS: no template continues with it.
    start = int(corpus.doc_offsets[3])
    tokens[start + 1 : start + 3] = synknow.tokens.BOS
    arrays["tokens"] = tokens
    bad = synknow.Corpus(arrays, corpus.config)
    with pytest.raises(ValueError, match="document 3") as e:
        compress(bad, progress=False)
    assert "\n" not in str(e.value)


def test_cli_decompress_of_garbage_fails_cleanly(tmp_path, capsys) -> None:
    path = tmp_path / "garbage.synkz"
    path.write_bytes(b"SYNKZIP\0" + bytes(100))
    assert main(["decompress", str(path), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "compressed file" in err and not (tmp_path / "out").exists()


def test_docstring_example() -> None:
    import doctest

    import synknow.compress

    result = doctest.testmod(synknow.compress, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
