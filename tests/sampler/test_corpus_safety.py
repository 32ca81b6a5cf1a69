"""Corpus directories under concurrency, kills and hostile manifests: an existing target is never
replaced without ``overwrite``, ``overwrite`` is atomic and only replaces a synknow corpus, a
load never mixes two corpora, manifest paths stay inside the directory, ``verify`` covers the
configuration, cheap invariants are checked on every load, leftovers of killed writers are
cleaned, and streaming checks the disk space before writing."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow import fsutil, presets
from synknow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"synknow {command}: error: ")
    return err[0]


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path: Path, m: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(m))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _same_arrays(a: synknow.Corpus, b: synknow.Corpus) -> bool:
    return all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return synknow.sample(presets.bios(seed=2), 300).save(tmp_path / "corpus")


# ---- (5) streaming checks feasibility before writing --------------------------------------------


def test_streaming_refuses_a_corpus_larger_than_the_free_disk_before_writing(
    tmp_path: Path,
) -> None:
    """10^12 documents need about 100 TB: refused up front, as sample() refuses them, instead of
    writing gigabytes first."""
    shards: list[int] = []

    def progress(done: int, total: int) -> None:
        shards.append(done)
        raise RuntimeError("the generation started writing")

    cfg = presets.bios(name_parts=(10_000,) * 4)
    with pytest.raises(ValueError, match=r"not enough disk space: .* TB .* free in"):
        synknow.generate(cfg, 10**12, tmp_path / "huge", shard_docs=1000, progress=progress)
    assert shards == []
    assert list(tmp_path.iterdir()) == []


def test_streaming_checks_the_name_supply_as_sample_does(tmp_path: Path) -> None:
    cfg = presets.bios(name_parts=(10, 10, 10))
    with pytest.raises(ValueError, match=r"'name_parts'.*too few names"):
        synknow.generate(cfg, 1_000_000, tmp_path / "c", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_refuses_too_large_corpora_in_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "huge"
    args = ["generate", "--docs", "1000000000000", "--out", str(out), "--quiet"]
    assert main([*args, "--set", "name_parts=[10000,10000,10000,10000]"]) == 2
    assert "not enough disk space" in _one_line_error(capsys, "generate")
    assert list(tmp_path.iterdir()) == []


# ---- (7) without overwrite, an existing target is never replaced --------------------------------


def test_a_target_that_appears_during_generation_is_not_replaced(tmp_path: Path) -> None:
    """The check at the start is not enough: another writer may finish first. The commit is an
    exclusive rename, so the later writer fails and the first corpus stays."""
    out = tmp_path / "c"
    first = synknow.sample(presets.bios(seed=1), 50)

    def progress(done: int, total: int) -> None:
        if done == 100:
            first.save(out)

    with pytest.raises(ValueError, match="already exists"):
        synknow.generate(presets.bios(seed=2), 300, out, shard_docs=100, progress=progress)
    loaded = synknow.load_corpus(out, verify=True)
    assert loaded.seed == 1 and _same_arrays(loaded, first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_two_concurrent_cli_generates_one_wins(tmp_path: Path) -> None:
    out = tmp_path / "c"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "synknow", "generate", "--docs", "20000", "--seed", str(s)]
            + ["--out", str(out), "--quiet", "--shard-docs", "2000"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (1, 2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 2], results
    loser_err = next(err for rc, _, err in results if rc == 2)
    assert "already exists" in loser_err
    winner = 1 + [rc for rc, _, _ in results].index(0)
    loaded = synknow.load_corpus(out, verify=True)
    assert loaded.seed == winner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


# ---- (9) overwrite is atomic and is not blocked by leftovers ------------------------------------


def test_overwrite_works_beside_a_leftover_of_an_interrupted_overwrite(saved: Path, capsys) -> None:
    """An older synknow, killed between its two renames, left ``.corpus.old``; every later
    overwrite then failed with 'Directory not empty'. Now the leftover is named, and kept."""
    legacy = saved.parent / ".corpus.old"
    shutil.copytree(saved, legacy)
    args = ["generate", "--docs", "40", "--seed", "3", "--out", str(saved), "--quiet"]
    assert main([*args, "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert str(legacy) in err and "interrupted overwrite" in err
    assert synknow.load_corpus(saved, verify=True).n_docs == 40
    assert synknow.load_corpus(legacy).n_docs == 300


# ---- (10) overwrite only replaces a synknow corpus ----------------------------------------------


def test_overwrite_refuses_a_directory_that_is_not_a_corpus(tmp_path: Path, capsys) -> None:
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years of work")
    corpus = synknow.sample(presets.bios(), 20)
    with pytest.raises(ValueError, match=r"refusing to overwrite .*'thesis.txt'"):
        corpus.save(thesis, overwrite=True)
    args = ["generate", "--docs", "20", "--out", str(thesis), "--quiet", "--overwrite"]
    assert main(args) == 2
    assert "refusing to overwrite" in _one_line_error(capsys, "generate")
    assert (thesis / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_overwrite_refuses_a_corpus_with_foreign_files(saved: Path) -> None:
    (saved / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="'notes.txt', which its manifest does not name"):
        synknow.sample(presets.bios(), 20).save(saved, overwrite=True)
    assert (saved / "notes.txt").read_text() == "mine"
    (saved / "notes.txt").unlink()
    synknow.sample(presets.bios(), 20).save(saved, overwrite=True)
    assert synknow.load_corpus(saved, verify=True).n_docs == 20


# ---- (11) loads are isolated from concurrent overwrites -----------------------------------------


def test_loads_never_mix_two_corpora_during_repeated_overwrites(tmp_path: Path) -> None:
    """A writer thread replaces the corpus 40 times, alternating two corpora of different
    seeds and sizes, while loads run. Every load must succeed (the target never disappears)
    and hold exactly one of the two corpora, the one its manifest names."""
    out = tmp_path / "c"
    versions = {s: synknow.sample(presets.bios(seed=s), 200 + 100 * s) for s in (1, 2)}
    versions[1].save(out)
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(40):
                versions[2 - i % 2].save(out, overwrite=True)
        except BaseException as e:  # reported by the main thread
            failures.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    loads = 0
    try:
        while not done.is_set() or loads < 5:
            loaded = synknow.load_corpus(out)
            expected = versions[loaded.seed]
            assert loaded.manifest["n_docs"] == expected.n_docs
            assert _same_arrays(loaded, expected), f"load {loads} mixed two corpora"
            loads += 1
    finally:
        thread.join(timeout=120)
    assert not failures, failures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


# ---- (12) manifest paths stay inside the corpus directory ---------------------------------------


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_manifest_file_outside_the_directory_is_rejected(saved: Path, where: str) -> None:
    outside = saved.parent / "elsewhere"
    outside.mkdir()
    shutil.copy(saved / "tokens.npy", outside / "x.npy")
    m = _manifest(saved)
    m["arrays"]["tokens"]["file"] = (
        "../elsewhere/x.npy" if where == "relative" else str(outside / "x.npy")
    )
    _write_manifest(saved, m)
    for verify in (False, True):
        with pytest.raises(synknow.CorpusError, match="leaves the corpus directory"):
            synknow.load_corpus(saved, verify=verify)


def test_symbolic_links_out_of_the_directory_are_rejected(saved: Path) -> None:
    outside = saved.parent / "x.npy"
    shutil.move(saved / "tokens.npy", outside)
    (saved / "tokens.npy").symlink_to(outside)
    with pytest.raises(synknow.CorpusError, match="tokens.npy is a symbolic link"):
        synknow.load_corpus(saved, verify=True)


# ---- (13) verify covers the configuration -------------------------------------------------------


def test_verify_rejects_an_edited_configuration(saved: Path) -> None:
    m = _manifest(saved)
    m["config"]["alpha"] = 0.9 if m["config"]["alpha"] != 0.9 else 0.3
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match="config_hash does not match"):
        synknow.load_corpus(saved, verify=True)


# ---- (14) cheap invariants without verify -------------------------------------------------------


def _rewrite_array(path: Path, name: str, edit) -> None:
    arr = np.load(path / f"{name}.npy")
    edit(arr)
    with open(path / f"{name}.npy", "r+b") as f:
        f.seek(128)
        f.write(arr.tobytes())


def test_offsets_that_do_not_increase_are_caught_without_verify(saved: Path) -> None:
    def edit(off: np.ndarray) -> None:
        off[5] = off[6]

    _rewrite_array(saved, "doc_offsets", edit)
    with pytest.raises(synknow.CorpusError, match="doc_offsets must increase strictly"):
        synknow.load_corpus(saved)


def test_entity_ids_beyond_the_table_are_caught_without_verify(saved: Path) -> None:
    def edit(z: np.ndarray) -> None:
        z[7] = 10**6

    _rewrite_array(saved, "doc_entity", edit)
    with pytest.raises(synknow.CorpusError, match="doc_entity holds entity ids beyond"):
        synknow.load_corpus(saved)


def test_out_of_vocabulary_tokens_are_a_clear_error(saved: Path, capsys) -> None:
    def edit(tokens: np.ndarray) -> None:
        tokens[3] = np.iinfo(tokens.dtype).max

    _rewrite_array(saved, "tokens", edit)
    corpus = synknow.load_corpus(saved)
    with pytest.raises(synknow.CorpusError, match="document 0: token id .* outside the vocab"):
        corpus.decode(0)
    assert corpus.decode(1)  # other documents still decode
    assert main(["inspect", str(saved), "--docs", "1"]) == 2
    assert "outside the vocabulary" in _one_line_error(capsys, "inspect")


# ---- (15) leftovers of killed writers -----------------------------------------------------------


def test_stale_staging_directories_are_removed_and_named(tmp_path: Path, capsys) -> None:
    stale = tmp_path / f".c.tmp-{_dead_pid()}-0badc0de"
    stale.mkdir()
    (stale / "tokens.npy").write_bytes(b"\0" * 1000)
    live = tmp_path / f".other.tmp-{os.getpid()}-12345678"
    live.mkdir()
    assert main(["generate", "--docs", "20", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"removed {stale}" in err
    assert not stale.exists() and live.exists()


def test_a_killed_generate_leaves_a_staging_directory_the_next_write_removes(
    tmp_path: Path,
) -> None:
    """The Rust writer names its staging directory like every other temporary
    (``.NAME.tmp-PID-HEX``), so fsutil recognises what a kill -9 left."""
    code = (
        "import os, signal, synknow\n"
        "def die(done, total):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"synknow.generate(synknow.presets.bios(), 500, {str(tmp_path / 'c')!r}, "
        "shard_docs=100, progress=die)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".c.tmp-"), left
    synknow.sample(presets.bios(), 10).save(tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert fsutil.remove_stale_temporaries(tmp_path) == []


# ---- (16) manifests with wrong types: one-line CorpusError --------------------------------------


WRONG_TYPES = [
    (lambda m: m.__setitem__("arrays", list(m["arrays"].values())), "'arrays' must be a JSON"),
    (lambda m: m["arrays"].__setitem__("tokens", "tokens.npy"), "arrays.tokens must be a JSON"),
    (lambda m: m["arrays"]["tokens"].__setitem__("file", 7), "arrays.tokens.file must be"),
    (lambda m: m["arrays"]["roles"].__setitem__("shape", "(300,)"), "arrays.roles.shape"),
    (lambda m: m["arrays"]["roles"].__setitem__("dtype", 1), "arrays.roles.dtype"),
    (lambda m: m.__setitem__("config", [1, 2]), "'config' must be a JSON object"),
    (lambda m: m.__setitem__("format_version", True), "format version True"),
    (lambda m: m.__setitem__("synknow_version", 0.1), "written by synknow 0.1"),
    (lambda m: m.__setitem__("n_docs", "300"), "n_docs='300'"),
    (lambda m: m.__setitem__("seed", 99), "seed=99"),
]


@pytest.mark.parametrize(("edit", "message"), WRONG_TYPES)
def test_manifest_fields_of_the_wrong_type(saved: Path, edit, message: str) -> None:
    m = _manifest(saved)
    edit(m)
    _write_manifest(saved, m)
    with pytest.raises(synknow.CorpusError, match=message) as info:
        synknow.load_corpus(saved)
    assert "\n" not in str(info.value)


def test_manifest_that_is_not_an_object(saved: Path) -> None:
    (saved / "manifest.json").write_text("[1, 2, 3]")
    with pytest.raises(synknow.CorpusError, match="not a synknow corpus manifest"):
        synknow.load_corpus(saved)
