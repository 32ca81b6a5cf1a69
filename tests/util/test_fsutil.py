"""synknow.fsutil: atomicity, permissions and stale-temporary cleanup."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from synknow import fsutil


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        out = fsutil.atomic_write_text(tmp_path / "a.json", "{}")
        fsutil.atomic_write_bytes(tmp_path / "b.bin", b"\x00")
    finally:
        os.umask(old)
    assert _mode(out) == 0o666 & ~umask
    assert _mode(tmp_path / "b.bin") == 0o666 & ~umask


def test_explicit_mode_wins(tmp_path: Path) -> None:
    out = fsutil.atomic_write_text(tmp_path / "secret", "x", mode=0o600)
    assert _mode(out) == 0o600


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), fsutil.atomic_writer(target) as f:
        f.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_binary_and_text_round_trip(tmp_path: Path) -> None:
    with fsutil.atomic_writer(tmp_path / "x.bin", True) as f:
        f.write(bytes(range(256)))
    assert (tmp_path / "x.bin").read_bytes() == bytes(range(256))
    fsutil.atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"


def test_parents_are_created(tmp_path: Path) -> None:
    out = fsutil.atomic_write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert out.read_text() == "x"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale_file = tmp_path / f".eval.json.tmp-{dead}-deadbeef"
    stale_file.write_text("partial")
    stale_dir = tmp_path / f".step_00000010.tmp-{dead}-0badc0de"
    (stale_dir / "inner").mkdir(parents=True)
    live = tmp_path / f".eval.json.tmp-{os.getpid()}-01234567"
    live.write_text("being written right now")
    unrelated = tmp_path / ".eval.json.tmp"  # not our pattern: never touched
    unrelated.write_text("user file")
    removed = fsutil.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([stale_file.name, stale_dir.name])
    assert live.exists() and unrelated.exists()
    assert not stale_file.exists() and not stale_dir.exists()


def test_stale_cleanup_of_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    assert fsutil.remove_stale_temporaries(tmp_path / "nope") == []


def test_temporary_names_are_unique_and_recognisable() -> None:
    names = {fsutil.temporary_name("x.npy") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(f".x.npy.tmp-{os.getpid()}-") for n in names)


def test_pid_alive() -> None:
    assert fsutil.pid_alive(os.getpid())
    assert not fsutil.pid_alive(_dead_pid())
    assert not fsutil.pid_alive(0) and not fsutil.pid_alive(-5)


def test_recursive_cleanup_reaches_subdirectories(tmp_path: Path) -> None:
    dead = _dead_pid()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    stale = deep / f".x.csv.tmp-{dead}-00ff00ff"
    stale.write_text("partial")
    assert fsutil.remove_stale_temporaries(tmp_path) == []  # not recursive by default
    assert fsutil.remove_stale_temporaries(tmp_path, recursive=True) == [stale]
    assert not stale.exists()
