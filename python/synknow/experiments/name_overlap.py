"""Unseen names that share name parts with a seen entity, and names that share as few as the
corpus allows (E5).

A name is a tuple of parts, one per slot (docs/model.md#1-vocabulary-and-token-classes). In
the generative model a name is atomic: an unseen name tells the Bayes predictor nothing,
whatever parts it shares, so it answers the prior ``H_a`` for both groups. A model that stores
facts through the name's parts may instead answer with the facts of the seen entity it
resembles.

"Shares none" is not always possible: with the cpu-small corpus every part of every slot is used
by some seen entity. The second group is then the least overlap the corpus allows: names that
share at most one part with any single seen entity. :func:`max_shared_parts` measures what each
group shares, and the report states it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["max_shared_parts", "shared_part_names", "unshared_part_names"]


def max_shared_parts(names: np.ndarray, seen: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Per row of ``names`` (one name per row, one part per column): the largest number of
    slots in which it equals one and the same row of ``seen``; 0 when ``seen`` is empty."""
    n = np.asarray(names, dtype=np.int64)
    s = np.asarray(seen, dtype=np.int64)
    if n.ndim != 2 or s.ndim != 2 or (s.size and n.shape[1] != s.shape[1]):
        raise ValueError(f"names and seen must be (rows, slots) alike, got {n.shape} and {s.shape}")
    if s.shape[0] == 0:
        return np.zeros(n.shape[0], dtype=np.int64)
    out = np.empty(n.shape[0], dtype=np.int64)
    for lo in range(0, n.shape[0], chunk):
        block = n[lo : lo + chunk]
        out[lo : lo + chunk] = (block[:, None, :] == s[None, :, :]).sum(axis=2).max(axis=1)
    return out


def shared_part_names(
    seen: np.ndarray,
    used: set[tuple[int, ...]],
    starts: np.ndarray,
    sizes: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` unused names, each a seen entity's name with one slot's part replaced; returns
    the names and the index (into ``seen``) of the entity each one was made from."""
    seen = np.asarray(seen, dtype=np.int64)
    if seen.shape[0] == 0:
        raise ValueError("no seen entity to share name parts with")
    taken = set(used)
    names: list[np.ndarray] = []
    source: list[int] = []
    for _ in range(100 * count):
        if len(names) == count:
            break
        k = int(rng.integers(seen.shape[0]))
        slot = int(rng.integers(seen.shape[1]))
        name = seen[k].copy()
        name[slot] = int(starts[slot] + rng.integers(sizes[slot]))
        key = tuple(name.tolist())
        if key not in taken:
            taken.add(key)
            names.append(name)
            source.append(k)
    if len(names) < count:
        raise ValueError(f"found only {len(names)} of {count} unused names sharing parts")
    return np.asarray(names, dtype=np.int64), np.asarray(source, dtype=np.int64)


def unshared_part_names(
    seen: np.ndarray,
    used: set[tuple[int, ...]],
    starts: np.ndarray,
    sizes: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` unused names sharing as little as possible with the seen names: from parts no
    seen entity uses in that slot when every slot has such parts (no part shared), otherwise
    uniform names kept only when they share at most one part with any single seen entity."""
    seen = np.asarray(seen, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    free = [
        np.setdiff1d(np.arange(st, st + sz), seen[:, j] if seen.size else [])
        for j, (st, sz) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True))
    ]
    taken = set(used)
    out: list[np.ndarray] = []
    if all(f.size for f in free):
        for _ in range(100 * count):
            if len(out) == count:
                break
            name = np.array([int(f[rng.integers(f.size)]) for f in free], dtype=np.int64)
            if tuple(name.tolist()) not in taken:
                taken.add(tuple(name.tolist()))
                out.append(name)
    else:
        for _ in range(200):
            if len(out) == count:
                break
            draw = starts + rng.integers(0, sizes, size=(4 * count, len(sizes)))
            keep = draw[max_shared_parts(draw, seen) <= 1]
            for name in keep:
                key = tuple(name.tolist())
                if key not in taken and len(out) < count:
                    taken.add(key)
                    out.append(name)
    if len(out) < count:
        raise ValueError(f"found only {len(out)} of {count} unused names sharing few parts")
    return np.asarray(out, dtype=np.int64)
