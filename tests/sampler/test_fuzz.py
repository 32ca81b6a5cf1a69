"""Fuzzed corpus directories: byte flips, truncations, appended bytes, deleted files, edited and
retyped manifest fields. ``load_corpus`` must raise a clear one-line ``CorpusError`` (a
``ValueError``) or give the right corpus: with ``verify=True`` a corpus that loads equals the
original (the corruption was harmless, e.g. in ``vocab.json`` or an unknown manifest key);
without it, a load may miss altered data bytes (only the hashes can tell, as documented) but
still never raises anything else, and decoding documents never fails with anything but a
``CorpusError``. Hypothesis runs derandomized with a fixed number of examples."""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import synknow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synknow import presets

FILES = [
    "manifest.json",
    "vocab.json",
    "tokens.npy",
    "roles.npy",
    "doc_offsets.npy",
    "doc_entity.npy",
    "sentence_attribute.npy",
    "sentence_template.npy",
    "entity_names.npy",
    "entity_values.npy",
    "entity_first_doc.npy",
    "entity_counts.npy",
    "theta.npy",
    "theta_offsets.npy",
]
ARRAYS = [f.removesuffix(".npy") for f in FILES if f.endswith(".npy")]

# Manifest fields an edit may hit, as key paths.
FIELDS = [
    ("format",),
    ("format_version",),
    ("synknow_version",),
    ("config_hash",),
    ("seed",),
    ("n_docs",),
    ("n_tokens",),
    ("n_entities",),
    ("n_attributes",),
    ("attrs_per_doc",),
    ("n_name_parts",),
    ("vocab_size",),
    ("arrays",),
    ("config",),
    ("config", "alpha"),
    ("config", "beta"),
    ("config", "seed"),
    ("config", "attrs_per_doc"),
    ("unknown_key",),
    *[("arrays", a) for a in ARRAYS],
    *[("arrays", a, k) for a in ARRAYS for k in ("file", "dtype", "shape", "xxh3_64")],
]

# Values small enough that an edited configuration stays cheap to validate.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.sampled_from([2**64, -(2**63), 10**30]),
    st.floats(-2.0, 2.0, allow_nan=False),
    st.sampled_from([float("nan"), float("inf")]),
    st.text(max_size=12),
    st.sampled_from(["../../x.npy", "/etc/passwd", "tokens.npy", "<u4", "|u1", "0" * 16]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

corruption = st.one_of(
    st.tuples(
        st.just("flip"),
        st.sampled_from(FILES),
        st.floats(0, 1, exclude_max=True),
        st.integers(1, 255),
    ),
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("append"), st.sampled_from(FILES), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.sampled_from(FILES)),
    st.tuples(st.just("edit"), st.sampled_from(FIELDS), json_values),
    st.tuples(st.just("remove"), st.sampled_from(FIELDS)),
)


def _apply(path: Path, change: tuple) -> None:
    kind, target = change[0], change[1]
    if kind in ("edit", "remove"):
        mpath = path / "manifest.json"
        try:
            manifest = json.loads(mpath.read_bytes())
        except (ValueError, FileNotFoundError):
            return  # an earlier corruption broke or deleted the manifest already
        node = manifest
        for key in target[:-1]:
            if not isinstance(node, dict) or key not in node:
                return
            node = node[key]
        if not isinstance(node, dict):
            return
        if kind == "edit":
            node[target[-1]] = change[2]
        else:
            node.pop(target[-1], None)
        mpath.write_text(json.dumps(manifest))
        return
    file = path / target
    if not file.exists():
        return
    data = bytearray(file.read_bytes())
    if kind == "flip" and data:
        data[int(change[2] * len(data))] ^= change[3]
    elif kind == "truncate":
        data = data[: int(change[2] * len(data))]
    elif kind == "append":
        data += change[2]
    elif kind == "delete":
        file.unlink()
        return
    file.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> tuple[Path, synknow.Corpus]:
    corpus = synknow.sample(presets.bios(seed=5), 40)
    path = corpus.save(tmp_path_factory.mktemp("fuzz") / "corpus")
    return path, synknow.load_corpus(path, verify=True)


def _load(path: Path, verify: bool) -> synknow.Corpus | None:
    """The loaded corpus, or None after a clear error; anything else fails the test."""
    try:
        return synknow.load_corpus(path, verify=verify)
    except ValueError as e:  # CorpusError is a ValueError
        message = str(e)
        assert message and "\n" not in message, repr(message)
        return None


def _decode_all(corpus: synknow.Corpus) -> list[str] | None:
    try:
        return [corpus.decode(i) for i in range(corpus.n_docs)]
    except synknow.CorpusError as e:
        assert "\n" not in str(e)
        return None


@settings(
    max_examples=250,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(corruption, min_size=1, max_size=3))
def test_corrupted_corpora_give_a_clear_error_or_the_right_corpus(original, changes) -> None:
    source, expected = original
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus"
        shutil.copytree(source, path)
        for change in changes:
            _apply(path, change)
        verified = _load(path, verify=True)
        if verified is not None:
            assert verified.config == expected.config
            for name, arr in expected.arrays.items():
                assert np.array_equal(verified.arrays[name], arr), name
            assert _decode_all(verified) == _decode_all(expected)
        unverified = _load(path, verify=False)
        if unverified is not None:
            assert unverified.n_docs == len(unverified.doc_offsets) - 1
            _decode_all(unverified)


def test_fuzz_sanity_an_untouched_copy_loads(original) -> None:
    source, expected = original
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus"
        shutil.copytree(source, path)
        _apply(path, ("edit", ("unknown_key",), [1, 2]))
        loaded = synknow.load_corpus(path, verify=True)
        assert loaded.n_tokens == expected.n_tokens
