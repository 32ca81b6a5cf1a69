"""Compile every Triton kernel variant ahead of time for an H100 (sm_90) without a GPU.

The interpreter used by the CPU tests executes kernels with NumPy and accepts programs that the
real compiler rejects (type mismatches across loop iterations, unsupported ops, bad layouts).
This script runs the real Triton front end, MLIR passes, LLVM and ptxas for ``sm_90`` on the
CPU, so compile errors surface without a GPU. Run as a script (it must not see
``TRITON_INTERPRET=1``); ``test_compile_sm90.py`` does that in a subprocess.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

# The package re-exports functions named like their modules, so import the modules by path.
ce_mod = importlib.import_module("synknow_kernels.cross_entropy")
lce_mod = importlib.import_module("synknow_kernels.linear_cross_entropy")
te_mod = importlib.import_module("synknow_kernels.token_eval")

TARGET = GPUTarget("cuda", 90, 32)


def _compile(fn, types: dict[str, str], constexprs: dict[str, object], num_warps: int) -> str:
    names = fn.arg_names
    signature = {}
    for name in names:
        if name in constexprs:
            signature[name] = "constexpr"
        else:
            signature[name] = types.get(name, "i32")
    src = ASTSource(fn=fn, signature=signature, constexprs=dict(constexprs))
    k = triton.compile(src, target=TARGET, options={"num_warps": num_warps, "num_stages": 2})
    return f"smem={k.metadata.shared}B {_ptxas_usage(k.asm['ptx'])}"


def _ptxas_usage(ptx: str) -> str:
    """Registers and spills as reported by ``ptxas -v`` (informational only)."""
    import re
    import subprocess
    import tempfile

    from triton import knobs

    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
        path = f.name
    try:
        res = subprocess.run(
            [knobs.nvidia.ptxas_blackwell.path, "-arch=sm_90a", "-v", path, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(path)
    regs = re.search(r"Used (\d+) registers", res.stderr)
    spill = re.search(r"(\d+) bytes spill stores", res.stderr)
    return f"regs={regs.group(1) if regs else '?'} spill_stores={spill.group(1) if spill else '?'}"


def main() -> int:
    cases = []
    for dt in ("bf16", "fp32"):
        lce_blocks = (
            {"BLOCK_M": 128, "BLOCK_V": 128, "BLOCK_K": 64}
            if dt == "bf16"
            else {"BLOCK_M": 64, "BLOCK_V": 64, "BLOCK_K": 32}
        )
        prec = "tf32" if dt == "bf16" else "ieee"
        ptr = {
            "h_ptr": f"*{dt}",
            "w_ptr": f"*{dt}",
            "b_ptr": f"*{dt}",
            "t_ptr": "*i64",
            "softcap": "fp32",
        }
        for softcap in (False, True):
            cases.append(
                (
                    f"lce_fwd {dt} softcap={softcap}",
                    lce_mod._lce_fwd_kernel,
                    {**ptr, "lse_ptr": "*fp32", "zt_ptr": "*fp32", "zsum_ptr": "*fp32"},
                    {"HAS_BIAS": True, "SOFTCAP": softcap, "DOT_PRECISION": prec, **lce_blocks},
                )
            )
            cases.append(
                (
                    f"lce_bwd {dt} softcap={softcap}",
                    lce_mod._lce_bwd_kernel,
                    {
                        **ptr,
                        **{k: "*fp32" for k in ("lse_ptr", "glse_ptr", "gzt_ptr", "gzsum_ptr")},
                        **{k: "*fp32" for k in ("dh_ptr", "dw_ptr", "db_ptr")},
                        "v_begin": "i64",
                        "v_end": "i64",
                    },
                    {
                        "HAS_BIAS": True,
                        "SOFTCAP": softcap,
                        "COMPUTE_DH": True,
                        "COMPUTE_DW": True,
                        "COMPUTE_DB": True,
                        "GROUP_M": 8,
                        "DOT_PRECISION": prec,
                        **lce_blocks,
                    },
                )
            )
        cases.append(
            (
                f"token_eval {dt}",
                te_mod._token_eval_kernel,
                {**ptr, "part_ptr": "*fp32", "amax_ptr": "*i64"},
                {
                    "HAS_BIAS": True,
                    "SOFTCAP": True,
                    "HAS_RANGE": True,
                    "DOT_PRECISION": prec,
                    **lce_blocks,
                },
            )
        )
        ce_ptr = {"x_ptr": f"*{dt}", "t_ptr": "*i64", "softcap": "fp32"}
        for block_m, block_v in ((1, 8192), (2, 4096)):
            cases.append(
                (
                    f"ce_fwd {dt} {block_m}x{block_v}",
                    ce_mod._ce_fwd_kernel,
                    {**ce_ptr, "lse_ptr": "*fp32", "zt_ptr": "*fp32", "zsum_ptr": "*fp32"},
                    {"SOFTCAP": True, "BLOCK_M": block_m, "BLOCK_V": block_v},
                )
            )
            cases.append(
                (
                    f"ce_bwd {dt} {block_m}x{block_v}",
                    ce_mod._ce_bwd_kernel,
                    {
                        **ce_ptr,
                        **{k: "*fp32" for k in ("lse_ptr", "glse_ptr", "gzt_ptr", "gzsum_ptr")},
                        "dx_ptr": f"*{dt}",
                    },
                    {"SOFTCAP": True, "BLOCK_M": block_m, "BLOCK_V": block_v},
                )
            )
    only = sys.argv[1:]
    failed = 0
    for name, fn, types, constexprs in cases:
        if only and not any(o in name for o in only):
            continue
        t0 = time.perf_counter()
        try:
            info = _compile(fn, types, constexprs, num_warps=8)
        except Exception as exc:  # report every failing variant, not just the first
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"ok   {name} {info} ({time.perf_counter() - t0:.1f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
