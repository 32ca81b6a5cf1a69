"""Bit-identical output for any thread count and any chunking, and nested prefixes
(docs/model.md#randomness)."""

from pathlib import Path

import numpy as np
import pytest
import synknow

ARRAYS = (
    "tokens",
    "roles",
    "doc_offsets",
    "doc_entity",
    "sentence_attribute",
    "sentence_template",
    "entity_names",
    "entity_values",
    "entity_first_doc",
    "entity_counts",
    "theta",
    "theta_offsets",
)
CONFIGS = {
    "bios": synknow.presets.bios(seed=3),
    "bios-m2-zipf": synknow.presets.bios(seed=4, attrs_per_doc=2, value_prior="zipf(0.8)"),
    "procedural-fixed": synknow.presets.procedural(
        seed=5, attribute_order="fixed", template_length=(20, 40)
    ),
    "procedural-u32-A9": synknow.presets.procedural(
        seed=6, n_attributes=9, name_parts=(300, 300, 80_000)
    ),
}
N = 5000


def _assert_same(a: synknow.Corpus, b: synknow.Corpus, n: int | None = None) -> None:
    for name in ARRAYS:
        x, y = a.arrays[name], b.arrays[name]
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), f"{name} differs"
    if n is not None:
        assert a.n_docs == n


@pytest.fixture(scope="module", params=list(CONFIGS))
def config(request) -> synknow.SyntaxKnowledgeConfig:
    return CONFIGS[request.param]


@pytest.fixture(scope="module")
def reference(config) -> synknow.Corpus:
    return synknow.sample(config, N, threads=1)


def test_thread_counts_give_identical_corpora(config, reference) -> None:
    for threads in (2, 3, None):
        _assert_same(reference, synknow.sample(config, N, threads=threads), N)
    # A second run is identical too (no hidden state).
    _assert_same(reference, synknow.sample(config, N, threads=1))


def test_streamed_shards_match_in_memory(config, reference, tmp_path: Path) -> None:
    """generate() with several shard sizes writes the same bytes as sample().save()."""
    saved = reference.save(tmp_path / "in-memory")
    files = sorted(p.name for p in saved.iterdir())
    assert "manifest.json" in files and "tokens.npy" in files
    for shard in (1, 333, 2048, N, 10 * N):
        out = synknow.generate(
            config, N, tmp_path / f"shard-{shard}", shard_docs=shard, threads=2, progress=False
        )
        assert sorted(p.name for p in out.iterdir()) == files
        for f in files:
            assert (out / f).read_bytes() == (saved / f).read_bytes(), f"{f}, shard {shard}"
    loaded = synknow.load_corpus(tmp_path / "shard-333", verify=True)
    _assert_same(reference, loaded, N)


def test_prefixes_are_nested(config, reference) -> None:
    """Document i is the same in corpora of every length > i (tokens, roles, records), and the
    entity table of a prefix is a prefix of the longer table (counts aside)."""
    for n in (1, 17, 2048, 2049, 3999):
        short = synknow.sample(config, n)
        end = int(short.doc_offsets[-1])
        assert np.array_equal(short.doc_offsets, reference.doc_offsets[: n + 1])
        assert np.array_equal(short.tokens, reference.tokens[:end])
        assert np.array_equal(short.roles, reference.roles[:end])
        for name in ("doc_entity", "sentence_attribute", "sentence_template"):
            assert np.array_equal(short.arrays[name], reference.arrays[name][:n]), name
        k = short.n_entities
        for name in ("entity_names", "entity_values", "entity_first_doc"):
            assert np.array_equal(short.arrays[name], reference.arrays[name][:k]), name
        assert np.array_equal(short.entity_counts, reference.entity_counts_at(n)[:k])
        assert np.all(reference.entity_counts_at(n)[k:] == 0)


def test_seed_changes_the_corpus(config, reference) -> None:
    other = synknow.sample(config, N, seed=config.seed + 1)
    assert not np.array_equal(other.doc_entity, reference.doc_entity) or not np.array_equal(
        other.sentence_template, reference.sentence_template
    )


def test_generate_is_deterministic_across_thread_counts(tmp_path: Path) -> None:
    cfg = CONFIGS["bios"]
    a = synknow.generate(cfg, 3000, tmp_path / "a", shard_docs=500, threads=1, progress=False)
    b = synknow.generate(cfg, 3000, tmp_path / "b", shard_docs=1200, threads=2, progress=False)
    for f in sorted(p.name for p in a.iterdir()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_empty_and_single_document_corpora() -> None:
    empty = synknow.sample(CONFIGS["bios"], 0)
    assert empty.n_docs == 0 and empty.n_tokens == 0 and empty.n_entities == 0
    assert empty.doc_offsets.tolist() == [0]
    one = synknow.sample(CONFIGS["bios"], 1)
    assert one.n_entities == 1 and one.doc_entity.tolist() == [0]
    assert one.tokens[0] == 1 and one.tokens[-1] == 2
