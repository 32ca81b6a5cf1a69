"""Exports of a corpus to the formats other training code reads (docs/integration.md).

``npy_memmap`` reads one ``.npy`` array of a corpus directory without numpy's ``np.load``: a
raw ``np.memmap(path)`` would read the npy header as tokens, the data starts after it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

__all__ = ["npy_data_offset", "npy_memmap"]


def npy_data_offset(path: str | os.PathLike[str]) -> tuple[int, np.dtype, tuple[int, ...]]:
    """``(offset, dtype, shape)`` of the data of a ``.npy`` file: the byte offset is where
    ``np.memmap`` (or any reader in another language) must start."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"npy version {version} is not supported")
        # numpy's header parser raises several types for garbage (ValueError, SyntaxError, ...).
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path}: not a readable .npy file ({e})") from None
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    expected = offset + math.prod(shape) * dtype.itemsize
    if size != expected:
        raise ValueError(f"{path}: {size} bytes, expected {expected} (truncated?)")
    return offset, dtype, tuple(shape)


def npy_memmap(path: str | os.PathLike[str]) -> np.memmap:
    """A read-only memory map of a ``.npy`` file's data (its header skipped), e.g.
    ``npy_memmap(corpus_dir / "tokens.npy")``."""
    offset, dtype, shape = npy_data_offset(path)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
