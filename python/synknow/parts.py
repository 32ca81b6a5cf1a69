"""A corpus generated in parts on several machines, then merged (docs/corpus-format.md#parts).

Part ``I`` of ``N`` (1-based) holds the documents ``[(I-1) D // N, I D // N)`` of the corpus of
``D`` documents. Each machine writes its part with :func:`generate_part` (or ``synknow generate
--part I/N``); :func:`merge_parts` (``synknow merge``) joins the ``N`` part directories into a
corpus directory byte-identical to ``synknow.generate(config, D, path)`` on one machine. A part
first draws the entities of the documents before it (the CRP, no rendering: tens of
nanoseconds per document), so the parts cost about the same wherever they sit in the corpus.

The train/test split of the trainer is by index (the last ``n_test`` documents are the test
split, docs/model.md#splits), so the merged corpus has the single-machine split; the parts
themselves are not splits.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synknow import _core
from synknow.config import SyntaxKnowledgeConfig
from synknow.corpus import remove_stale_staging

__all__ = ["generate_part", "merge_parts", "parse_part", "part_range"]

_log = logging.getLogger(__name__)
_PART = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_part(part: str | tuple[int, int]) -> tuple[int, int]:
    """``(I, N)`` from ``"I/N"`` (or a pair), with ``1 <= I <= N``; a one-line ``ValueError``
    otherwise.

    >>> parse_part("2/3")
    (2, 3)
    """
    if isinstance(part, str):
        match = _PART.fullmatch(part)
        pair = (int(match[1]), int(match[2])) if match else None
    elif (
        isinstance(part, tuple)
        and len(part) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in part)
    ):
        pair = (part[0], part[1])
    else:
        pair = None
    if pair is None or not 1 <= pair[0] <= pair[1]:
        raise ValueError(f"part must be I/N with integers 1 <= I <= N (e.g. 2/3), got {part!r}")
    return pair


def part_range(n_docs: int, part: str | tuple[int, int]) -> tuple[int, int]:
    """The documents ``[lo, hi)`` of ``part`` of a corpus of ``n_docs``.

    >>> [part_range(10, f"{i}/3") for i in (1, 2, 3)]
    [(0, 3), (3, 6), (6, 10)]
    """
    i, n = parse_part(part)
    if n > n_docs:
        raise ValueError(
            f"cannot split {n_docs} documents into {n} parts: every part needs a document"
        )
    return (i - 1) * n_docs // n, i * n_docs // n


def _progress(
    progress: bool | Callable[[int, int], None], desc: str, unit: str
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """The callback for the Rust side, and what closes its bar. The bar appears at the first
    report, so an argument refused before any work prints only the error."""
    if progress is not True:
        return (progress if callable(progress) else None), lambda: None
    from tqdm.auto import tqdm

    bars: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit=unit, unit_scale=True, desc=desc))
        bars[0].update(done - bars[0].n)

    def close() -> None:
        for bar in bars:
            bar.close()

    return update, close


def generate_part(
    config: SyntaxKnowledgeConfig,
    n_docs: int,
    part: str | tuple[int, int],
    path: str | os.PathLike[str],
    *,
    seed: int | None = None,
    shard_docs: int = 1_000_000,
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = True,
) -> Path:
    """Writes part ``part`` (``"I/N"``) of the corpus ``synknow.generate(config, n_docs, ...)``
    would write, to the directory ``path`` (atomically, bounded memory, as ``generate``)."""
    if not isinstance(config, SyntaxKnowledgeConfig):
        raise TypeError(f"config must be a SyntaxKnowledgeConfig, got {type(config).__name__}")
    config = config if seed is None else config.replace(seed=seed)
    i, n = parse_part(part)
    lo, hi = part_range(n_docs, (i, n))
    for line in remove_stale_staging(path):
        _log.info("%s", line)
    callback, close = _progress(progress, f"part {i}/{n}", "doc")
    try:
        _core.generate_part_to_dir(
            config.to_json(), n_docs, i, n, str(path), shard_docs, threads, overwrite, callback
        )
    finally:
        close()
    return Path(path)


def merge_parts(
    part_dirs: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = True,
) -> Path:
    """Joins the part directories (in any order) into the corpus directory ``path``,
    byte-identical to the corpus generated on one machine. Checks that they are all ``N``
    parts of one corpus (same configuration, seed and size), each once, and every array's
    size and hash; refuses otherwise with a one-line error naming the parts."""
    dirs = [str(p) for p in part_dirs]
    for line in remove_stale_staging(path):
        _log.info("%s", line)
    callback, close = _progress(progress, "merge", "B")
    try:
        _core.merge_parts(dirs, str(path), overwrite, callback)
    finally:
        close()
    return Path(path)
