"""Experiment outputs: strict JSON, CSV, text and figures, all written atomically through
:mod:`synknow.fsutil` (temporary file in the same directory, fsync, rename, umask permissions).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synknow.fsutil import atomic_write_text

__all__ = [
    "write_text",
    "write_json",
    "read_json",
    "write_csv",
    "read_csv",
    "jsonable",
]


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes ``text`` to ``path`` atomically: readers see the old file or the new one."""
    return atomic_write_text(path, text)


def jsonable(x: Any) -> Any:
    """numpy scalars/arrays -> Python; non-finite floats -> ``None`` (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Strict JSON (no NaN/inf: they become ``null``), indented, written atomically."""
    return write_text(path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> Path:
    """Rows (dicts) as CSV with a header; missing values and non-finite floats are empty."""
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        out = []
        for c in columns:
            v = jsonable(row.get(c))
            out.append("" if v is None else (repr(v) if isinstance(v, float) else v))
        writer.writerow(out)
    return write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
