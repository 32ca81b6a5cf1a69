"""The one place where synknow writes files: atomic replacement, permissions, stale leftovers.

Every file the project writes (corpus manifests, reports, figures, training runs, benchmark
results) goes through :func:`atomic_writer` or one of its wrappers, so that

* a reader sees either the old file or the new one, never a partial one (temporary file in
  the same directory, ``fsync``, then ``rename``: POSIX guarantees the rename is atomic on
  one file system);
* files get the permissions of an ordinary ``open()``: ``0o666`` less the process umask.
  ``tempfile.mkstemp`` creates ``0o600`` files, which left a training run's checkpoints
  unreadable by anyone but their owner;
* a temporary left behind by a killed process is recognisable: its name is
  ``.NAME.tmp-PID-RANDOM``, and :func:`remove_stale_temporaries` deletes those whose PID no
  longer runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

__all__ = [
    "atomic_writer",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_file_mode",
    "default_dir_mode",
    "temporary_name",
    "remove_stale_temporaries",
    "pid_alive",
]

_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+$")


def _umask() -> int:
    # os.umask can only be read by setting it; restore at once (single call, no await between).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Permissions of a file created by ``open(path, "w")`` under the current umask."""
    return 0o666 & ~_umask()


def default_dir_mode() -> int:
    """Permissions of a directory created by ``os.mkdir`` under the current umask."""
    return 0o777 & ~_umask()


def temporary_name(final_name: str) -> str:
    """Name of a sibling temporary for ``final_name``: ``.NAME.tmp-PID-RANDOM``."""
    return f".{final_name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (signal 0 probes, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@overload
def atomic_writer(
    path: str | os.PathLike[str], binary: Literal[False] = ..., *, mode: int | None = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def atomic_writer(
    path: str | os.PathLike[str], binary: Literal[True], *, mode: int | None = ...
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def atomic_writer(
    path: str | os.PathLike[str], binary: bool = False, *, mode: int | None = None
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Context manager giving a file object whose contents replace ``path`` on success.

    On any exception (``KeyboardInterrupt`` included) the temporary is removed and ``path`` is
    left as it was. ``mode`` defaults to :func:`default_file_mode`. Parent directories are
    created as needed.
    """
    return _atomic_writer(Path(path), binary, mode)


@contextlib.contextmanager
def _atomic_writer(path: Path, binary: bool, mode: int | None) -> Iterator[IO[Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temporary_name(path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        f: IO[Any]
        f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse O_RDONLY fsync on dirs.
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> Path:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_writer`); returns the path."""
    with atomic_writer(path, True, mode=mode) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, mode=mode) as f:
        f.write(text)
    return Path(path)


def remove_stale_temporaries(
    directory: str | os.PathLike[str], *, recursive: bool = False
) -> list[Path]:
    """Deletes ``.NAME.tmp-PID-*`` files and directories in ``directory`` whose PID is dead.

    Returns what was removed. Temporaries of live processes (a concurrent writer) are kept.
    A missing directory is not an error. ``recursive=True`` also cleans every subdirectory
    (symbolic links are not followed).
    """
    directory = Path(directory)
    removed: list[Path] = []
    if recursive:
        for sub, dirs, _files in os.walk(directory):
            dirs[:] = [d for d in dirs if _TMP_RE.match(d) is None]  # removed whole, below
            removed += remove_stale_temporaries(sub)
        return removed
    try:
        entries = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed
