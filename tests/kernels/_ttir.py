"""Checks on Triton IR (TTIR) text, shared by ``_compile_sm90.py`` and the tests.

Pure text analysis, no Triton import: the tests use it in-process (interpreter mode) on sample
IR, and the compile script on the IR of every kernel built for sm_90.
"""

from __future__ import annotations

import re

# "%name = dialect.op operands... : types loc(...)"; multi-result ops write "%name:2 = ...".
_DEF = re.compile(r"^\s*(%[\w.$#-]+)(?::\d+)?\s*=\s*([\w.]+)\b(.*)$")
_VALUE = re.compile(r"%[\w.$#-]+")
_LOC = re.compile(r"\s*loc\(.*\)\s*$")


def _parse(ttir: str) -> dict[str, tuple[str, list[str], str, str]]:
    """SSA name -> (op, operand names, result type text, the line)."""
    defs: dict[str, tuple[str, list[str], str, str]] = {}
    for line in ttir.splitlines():
        m = _DEF.match(line)
        if m is None:
            continue
        name, op, rest = m.groups()
        rest = _LOC.sub("", rest)
        operands_text, _, type_text = rest.rpartition(" : ")
        if not operands_text:
            operands_text, type_text = rest, ""
        defs[name] = (op, _VALUE.findall(operands_text), type_text.strip(), line.strip())
    return defs


def _is_i32(type_text: str) -> bool:
    """``i32`` or a tensor of i32 (the result type of a binary arith op)."""
    return type_text == "i32" or type_text.endswith("xi32>")


def narrow_offset_products(ttir: str) -> list[str]:
    """Lines of every 32-bit integer multiply that flows into a pointer offset.

    Walks back from the offset operand of each ``tt.addptr`` through the ops that define it;
    a 32-bit ``arith.muli`` anywhere on that path can wrap around before the result is
    widened, which is the int32-offset bug. Index products must be computed in int64.
    """
    defs = _parse(ttir)
    bad: dict[str, str] = {}
    seen: set[str] = set()
    stack: list[str] = []
    for op, operands, _, _ in defs.values():
        if op == "tt.addptr" and len(operands) >= 2:
            stack.append(operands[1])
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue  # block arguments (loop variables, kernel arguments) end the walk
        seen.add(name)
        op, operands, type_text, line = defs[name]
        if op == "arith.muli" and _is_i32(type_text):
            bad[name] = line
        stack.extend(operands)
    return sorted(bad.values())


def atomic_ops(ttir: str) -> list[str]:
    """Lines with an atomic read-modify-write or compare-and-swap (order-dependent results)."""
    return [
        line.strip()
        for line in ttir.splitlines()
        if "tt.atomic_rmw" in line or "tt.atomic_cas" in line
    ]
