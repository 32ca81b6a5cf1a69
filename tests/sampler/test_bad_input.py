"""Bad input gets a clear error: a ValueError naming the field and its valid range for every
invalid configuration field, ValueError (never a Rust panic or an abort) for bad arguments, and
``synknow.CorpusError`` for a truncated or altered corpus directory."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow import presets

# Each case: (overrides of the bios preset, field the message must name, text of the valid range).
INVALID_FIELDS = [
    ({"alpha": 1.0}, "alpha", "0 <= alpha < 1"),
    ({"alpha": 1.5}, "alpha", "0 <= alpha < 1"),
    ({"alpha": -0.1}, "alpha", "0 <= alpha < 1"),
    ({"beta": -0.7}, "beta", "beta > -alpha"),
    ({"alpha": 0.5, "beta": -0.6}, "beta", "beta > -alpha"),
    ({"alpha": 0.0, "beta": 0.0}, "beta", "> 0 when alpha == 0"),
    ({"alpha": 0.0, "beta": -0.0}, "beta", "> 0 when alpha == 0"),
    ({"alpha": 0.0, "beta": -1.0}, "beta", "> 0 when alpha == 0"),
    ({"n_attributes": 0}, "n_attributes", "1..="),
    ({"pool_sizes": ()}, "pool_sizes", "at least one pool"),
    ({"pool_sizes": (200, 1, 120, 48, 160)}, "pool_sizes", ">= 2"),
    ({"pool_sizes": (200, 0, 120, 48, 160)}, "pool_sizes", ">= 2"),
    ({"attribute_pool": (0, 0, 1, 2, 3, 9)}, "attribute_pool", "valid pools are 0..5"),
    ({"attribute_pool": (0, 0, 1)}, "attribute_pool", "one pool index per attribute"),
    ({"n_attributes": 7}, "attribute_pool", "one pool index per attribute"),
    ({"value_prior": "normal"}, "value_prior", "'uniform' or 'zipf(s)' with s > 0"),
    ({"value_prior": "zipf(0)"}, "value_prior", "'uniform' or 'zipf(s)' with s > 0"),
    ({"value_prior": "zipf(-2)"}, "value_prior", "'uniform' or 'zipf(s)' with s > 0"),
    ({"name_parts": ()}, "name_parts", "at least one name position"),
    ({"name_parts": (400, 0, 1000)}, "name_parts", "empty list"),
    ({"name_parts": (2**30, 2**30)}, "name_parts", "vocabulary overflow"),
    ({"templates_per_attribute": 0}, "templates_per_attribute", "1..=65535"),
    ({"templates_per_attribute": (16, 16)}, "templates_per_attribute", "one entry per attribute"),
    ({"templates_per_attribute": 25}, "templates_per_attribute", "24 templates per attribute"),
    ({"template_length": (0, 4)}, "template_length", "1 <= min <= max <= 1000"),
    ({"template_length": (6, 4)}, "template_length", "1 <= min <= max <= 1000"),
    ({"syntax_vocab": 1}, "syntax_vocab", ">= 2"),
    ({"template_prior": 0.0}, "template_prior", "> 0"),
    ({"template_prior": -1.0}, "template_prior", "> 0"),
    ({"attrs_per_doc": 0}, "attrs_per_doc", "1..=6"),
    ({"attrs_per_doc": 7}, "attrs_per_doc", "1..=6"),
    ({"seed": -1}, "seed", "[0, 2^64)"),
    ({"seed": 2**64}, "seed", "[0, 2^64)"),
    ({"theta": ((1.0,),)}, "theta", "one vector per attribute"),
    ({"templates_per_attribute": 2, "theta": ((0.5, 0.6),) * 6}, "theta", "sum to 1"),
    ({"templates_per_attribute": 2, "theta": ((1.5, -0.5),) * 6}, "theta", ">= 0"),
    ({"templates_per_attribute": 2, "theta": ((1.0,),) * 6}, "theta", "2 templates"),
    ({"attribute_names": ("a", "b")}, "attribute_names", "one name per attribute"),
    (
        {
            "preset": "procedural",
            "syntax_vocab": 2,
            "template_length": (1, 1),
            "templates_per_attribute": 50,
        },
        "syntax_vocab",
        "raise either",
    ),
]

TWO_ATTRIBUTES = {"n_attributes": 2, "pool_sizes": (5,), "attribute_pool": (0, 0)}
BAD_TEMPLATES = [
    ((("[NAME] is [VALUE] .",), ("[NAME] is [VALUE] .",)), "duplicate skeleton"),
    ((("[NAME] is [VALUE]",), ("[NAME] has [VALUE] .",)), "must end with the END word"),
    ((("[VALUE] is [NAME] .",), ("[NAME] has [VALUE] .",)), "[NAME] must come before [VALUE]"),
    ((("[NAME] . is [VALUE] .",), ("[NAME] has [VALUE] .",)), "may only be the last word"),
    ((("[NAME] is .",), ("[NAME] has [VALUE] .",)), "exactly one [NAME] and exactly one [VALUE]"),
    ((("[NAME] [NAME] [VALUE] .",), ("[NAME] has [VALUE] .",)), "exactly one [NAME]"),
    ((("[NAME] is [VALUE] .",),), "one list per attribute"),
    (((), ("[NAME] has [VALUE] .",)), "needs 1..=65535 templates"),
]


@pytest.mark.parametrize(("overrides", "field", "valid"), INVALID_FIELDS)
def test_invalid_field_is_named_with_its_range(overrides, field, valid) -> None:
    with pytest.raises(ValueError) as info:
        presets.bios(**overrides)
    msg = str(info.value)
    assert f"'{field}'" in msg, msg
    assert valid in msg, msg


@pytest.mark.parametrize(("templates", "why"), BAD_TEMPLATES)
def test_bad_explicit_templates(templates, why) -> None:
    with pytest.raises(ValueError) as info:
        presets.bios(templates=templates, **TWO_ATTRIBUTES)
    msg = str(info.value)
    assert "'templates'" in msg and why in msg, msg


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ValueError, match="alpah"):
        synknow.SyntaxKnowledgeConfig.from_dict({"alpah": 0.5})
    with pytest.raises(ValueError, match="alpah"):
        presets.bios().with_overrides(["alpah=0.5"])
    with pytest.raises(ValueError, match="unknown preset 'bio'"):
        presets.by_name("bio")
    with pytest.raises(TypeError):
        presets.bios(alpah=0.5)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"alpha": "x"}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"beta": float("inf")}, "beta"),
        ({"attribute_order": "random"}, "attribute_order"),
        ({"preset": "foo"}, "preset"),
    ],
)
def test_wrong_types_name_the_field(overrides, field) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        presets.bios(**overrides)


def test_too_few_names_for_the_requested_documents() -> None:
    cfg = presets.bios(name_parts=(10, 10, 10))
    with pytest.raises(ValueError, match=r"'name_parts'.*too few names.*U >= 100 \* E\[K_N\]"):
        synknow.sample(cfg, 1_000_000)
    synknow.sample(cfg, 5)  # the same config is fine for fewer documents


@pytest.mark.parametrize("n_docs", [-1, 1.5, "10", True])
def test_bad_document_counts(n_docs) -> None:
    with pytest.raises(ValueError, match="n_docs"):
        synknow.sample(presets.bios(), n_docs)


@pytest.mark.parametrize("threads", [0, -2, 2.0, 5000])
def test_bad_thread_counts(threads) -> None:
    with pytest.raises(ValueError, match="threads"):
        synknow.sample(presets.bios(), 10, threads=threads)


def test_impossible_allocations_are_errors_not_aborts() -> None:
    """10^12 documents cannot be held in memory: a ValueError, not an abort (allocations use
    try_reserve). With names enough for them, the name-supply check passes first."""
    cfg = presets.bios(name_parts=(10**6, 10**6, 10**6))
    with pytest.raises(ValueError, match="cannot allocate"):
        synknow.sample(cfg, 10**12)


def test_counts_beyond_u64_are_value_errors() -> None:
    with pytest.raises(ValueError):
        synknow.sample(presets.bios(), 10**30)


def test_no_panic_reaches_python() -> None:
    """A fresh interpreter runs the nastiest inputs; none may abort the process or print a Rust
    panic."""
    code = """
import synknow
from synknow import presets
cases = [
    lambda: synknow.sample(presets.bios(name_parts=(10**6, 10**6, 10**6)), 10**12),
    lambda: synknow.sample(presets.bios(name_parts=(2, 2, 2), alpha=0.0, beta=0.1), 10),
    lambda: synknow.sample(presets.bios(), 10, threads=5000),
    lambda: synknow.generate(presets.bios(), 10, "/proc/definitely/not/here", progress=False),
    lambda: synknow.generate(presets.bios(), 10, "x", shard_docs=0, progress=False),
    lambda: synknow._core.sample("{not json", 10),
    lambda: synknow._core.sample('{"alpha": 0.5}', 10, 0),
    lambda: synknow._core.generate_to_dir('{}', 10, "", 0),
]
for case in cases:
    try:
        case()
    except (ValueError, OSError) as e:
        print(type(e).__name__, str(e)[:60])
print("survived")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/tmp"
    )
    assert out.returncode == 0, out.stderr
    assert "survived" in out.stdout
    assert "panicked" not in out.stderr and "panic" not in out.stdout.lower(), out.stderr


# ---- corrupt corpus directories -----------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return synknow.sample(presets.bios(seed=2), 500).save(tmp_path / "corpus")


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path: Path, m: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(m))


def test_intact_corpus_loads_and_verifies(saved: Path) -> None:
    c = synknow.load_corpus(saved, verify=True)
    assert c.n_docs == 500


def test_truncated_tokens(saved: Path) -> None:
    f = saved / "tokens.npy"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(synknow.CorpusError, match="tokens.npy"):
        synknow.load_corpus(saved)


def test_truncated_to_the_header_only(saved: Path) -> None:
    f = saved / "roles.npy"
    f.write_bytes(f.read_bytes()[:128])
    with pytest.raises(synknow.CorpusError, match="roles.npy"):
        synknow.load_corpus(saved)


def test_truncated_inside_the_header(saved: Path) -> None:
    f = saved / "doc_entity.npy"
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(synknow.CorpusError, match="doc_entity.npy"):
        synknow.load_corpus(saved)


@pytest.mark.parametrize("name", ["tokens.npy", "entity_counts.npy", "theta.npy"])
def test_deleted_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(synknow.CorpusError, match=re.escape(name)):
        synknow.load_corpus(saved)


def test_deleted_manifest(saved: Path) -> None:
    (saved / "manifest.json").unlink()
    with pytest.raises(synknow.CorpusError, match="no manifest.json"):
        synknow.load_corpus(saved)


def test_manifest_shape_edited(saved: Path) -> None:
    m = _manifest(saved)
    m["arrays"]["doc_entity"]["shape"] = [499]
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match="differs from the manifest"):
        synknow.load_corpus(saved)


def test_manifest_counts_edited(saved: Path) -> None:
    m = _manifest(saved)
    m["n_docs"] = 501
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match="n_docs"):
        synknow.load_corpus(saved)


def test_manifest_not_json(saved: Path) -> None:
    (saved / "manifest.json").write_text("{ not json")
    with pytest.raises(synknow.CorpusError, match="not valid JSON"):
        synknow.load_corpus(saved)


def test_flipped_bytes_are_caught_by_verify(saved: Path) -> None:
    f = saved / "tokens.npy"
    data = bytearray(f.read_bytes())
    data[-7] ^= 0xFF
    f.write_bytes(bytes(data))
    synknow.load_corpus(saved)  # sizes still agree: only the hash can tell
    with pytest.raises(synknow.CorpusError, match="hash mismatch"):
        synknow.load_corpus(saved, verify=True)


def test_wrong_format_version(saved: Path) -> None:
    m = _manifest(saved)
    m["format_version"] = 99
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match="format version 99 is not supported"):
        synknow.load_corpus(saved)


def test_incompatible_synknow_version(saved: Path) -> None:
    m = _manifest(saved)
    m["synknow_version"] = "9.0.0"
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match="written by synknow 9.0.0"):
        synknow.load_corpus(saved)


def test_inconsistent_arrays_are_caught(saved: Path) -> None:
    """An array replaced by a well-formed file of another length (manifest edited to match)."""
    np.save(saved / "roles.npy", np.zeros(10, dtype=np.uint8))
    m = _manifest(saved)
    m["arrays"]["roles"]["shape"] = [10]
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match="roles has 10 entries"):
        synknow.load_corpus(saved)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        synknow.load_corpus(tmp_path / "nothing-here")


def test_existing_output_is_not_overwritten(saved: Path) -> None:
    with pytest.raises(ValueError, match="already exists"):
        synknow.generate(presets.bios(), 10, saved, progress=False)
    with pytest.raises(ValueError, match="already exists"):
        synknow.sample(presets.bios(), 10).save(saved)
    assert synknow.load_corpus(saved).n_docs == 500
