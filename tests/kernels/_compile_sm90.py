"""Compile every Triton kernel variant ahead of time for an H100 (sm_90) without a GPU.

The interpreter used by the CPU tests executes kernels with NumPy and accepts programs that the
real compiler rejects (type mismatches across loop iterations, unsupported ops, bad layouts).
This script runs the real Triton front end, MLIR passes, LLVM and ptxas for ``sm_90`` on the
CPU, so compile errors surface without a GPU. Run as a script (it must not see
``TRITON_INTERPRET=1``); ``test_compile_sm90.py`` does that in a subprocess.

Every build is also checked: no register spills (ptxas), and no atomics in any kernel except
the opt-in "fused" backward (results must not depend on timing). With ``--strided`` the
kernels are built with every stride a runtime argument (as for column-major or sliced inputs)
and their Triton IR must compute every pointer offset product in int64 (spills are only
reported there).

    python tests/kernels/_compile_sm90.py [--strided] [NAME_SUBSTRING ...]
"""

from __future__ import annotations

import importlib
import os
import sys
import time

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _ttir import atomic_ops, narrow_offset_products  # noqa: E402

# The package re-exports functions named like their modules, so import the modules by path.
ce_mod = importlib.import_module("synknow_kernels.cross_entropy")
lce_mod = importlib.import_module("synknow_kernels.linear_cross_entropy")
te_mod = importlib.import_module("synknow_kernels.token_eval")
sh_mod = importlib.import_module("synknow_kernels.lce_small_h")

TARGET = GPUTarget("cuda", 90, 32)


# Mirror Triton's launch-time specialisation for typical contiguous LLM-sized inputs: integer
# arguments equal to 1 become constants, and pointers plus sizes/strides that are multiples of
# 16 carry a divisibility hint. Without this, loads look strided and the compiled code (and its
# register/shared-memory report) would not match what runs on the GPU.
_ONE = {"stride_hk", "stride_wk", "stride_b", "stride_t", "stride_xv"}
_DIV16 = {
    "N", "V", "H", "stride_hn", "stride_wv", "stride_xn", "v_begin", "v_end", "stride_dz",
    "tokens_per_split",
}  # fmt: skip


def _compile(
    fn,
    types: dict[str, str],
    constexprs: dict[str, object],
    num_warps: int,
    num_stages: int,
    strided: bool = False,
):
    """Build ``fn`` for sm_90; return the compiled kernel.

    ``strided=False`` specialises unit strides and 16-divisible sizes like a launch on
    contiguous inputs does; ``strided=True`` passes every stride as a runtime int32 argument
    without hints, which is how Triton launches on small non-unit strides.
    """
    if not strided:
        constexprs = {**constexprs, **{n: 1 for n in fn.arg_names if n in _ONE}}
    signature = {n: "constexpr" if n in constexprs else types.get(n, "i32") for n in fn.arg_names}
    hinted = {n for n in _DIV16 if not (strided and n.startswith("stride"))}
    attrs = {
        (i,): [["tt.divisibility", 16]]
        for i, n in enumerate(fn.arg_names)
        if n not in constexprs and (signature[n].startswith("*") or n in hinted)
    }
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    return triton.compile(src, target=TARGET, options=options)


def _ptxas_usage(ptx: str) -> tuple[str, int]:
    """Registers and spills as reported by ``ptxas -v``: (summary, spill-store bytes)."""
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
    if regs is None or spill is None:
        raise RuntimeError(f"could not read ptxas -v output: {res.stderr[-500:]}")
    return f"regs={regs.group(1)} spill_stores={spill.group(1)}", int(spill.group(1))


def _check(name: str, kernel, strided: bool) -> str:
    """Summary line of one build; raises on spills, atomics or int32 offset products."""
    usage, spills = _ptxas_usage(kernel.asm["ptx"])
    problems = []
    # Spills matter for the contiguous builds that normal training runs; strided inputs are
    # a correctness case (gathered loads need more registers), reported but not failed.
    if spills and not strided:
        problems.append(f"{spills} bytes of register spills")
    atomics = atomic_ops(kernel.asm["ttir"])
    if atomics and "fused" not in name:
        problems.append(f"atomics (results depend on timing): {atomics[0]}")
    if strided:
        narrow = narrow_offset_products(kernel.asm["ttir"])
        if narrow:
            problems.append(f"int32 product in a pointer offset: {narrow[0]}")
    if problems:
        raise RuntimeError(f"{usage}; " + "; ".join(problems))
    return f"smem={kernel.metadata.shared}B {usage}"


def _split(cfg: dict) -> tuple[dict, int, int]:
    blocks = {k: v for k, v in cfg.items() if k.startswith("BLOCK_")}
    return blocks, cfg.get("num_warps", 4), cfg.get("num_stages", 3)


def main() -> int:
    args = sys.argv[1:]
    strided = "--strided" in args
    only = [a for a in args if a != "--strided"]
    # Use the launch configurations the library itself picks on a GPU.
    cases = []
    for torch_dt, dt in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        prec = lce_mod._dot_precision(torch_dt)
        ptr = {
            "h_ptr": f"*{dt}",
            "w_ptr": f"*{dt}",
            "b_ptr": f"*{dt}",
            "t_ptr": "*i64",
            "softcap": "fp32",
        }
        stats = {"lse_ptr": "*fp32", "glse_ptr": "*fp32", "gzt_ptr": "*fp32", "gzsum_ptr": "*fp32"}
        partials = {k: "*fp32" for k in ("m_ptr", "rest_ptr", "zt_ptr", "zsum_ptr")}
        for softcap in (False, True):
            cases.append(
                (
                    f"lce_fwd {dt} softcap={softcap}",
                    lce_mod._lce_fwd_kernel,
                    {**ptr, **partials},
                    {
                        "HAS_BIAS": True,
                        "SOFTCAP": softcap,
                        "DOT_PRECISION": prec,
                        "DOT_UPCAST": False,
                    },
                    lce_mod._config(torch_dt, backward=False),
                )
            )
            for mode in ("fused", "chunked"):
                fused = mode == "fused"
                cases.append(
                    (
                        f"lce_bwd_{mode} {dt} softcap={softcap}",
                        lce_mod._lce_bwd_kernel,
                        {
                            **ptr,
                            **stats,
                            **{k: "*fp32" for k in ("dh_ptr", "dw_ptr", "db_ptr")},
                            "dz_ptr": f"*{dt}",
                        },
                        {
                            "HAS_BIAS": True,
                            "SOFTCAP": softcap,
                            "COMPUTE_DH": fused,
                            "COMPUTE_DW": fused,
                            "COMPUTE_DB": True,
                            "STORE_DZ": not fused,
                            "GROUP_M": 8,
                            "DOT_PRECISION": prec,
                            "DOT_UPCAST": False,
                        },
                        lce_mod._config(torch_dt, backward=fused or torch_dt == torch.float32),
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
                    "DOT_UPCAST": False,
                },
                te_mod._te_config(torch_dt),
            )
        )
        for hidden in (64, 256, 512, 768):
            sh_consts = {
                "HAS_BIAS": True,
                "SOFTCAP": True,
                "DOT_PRECISION": prec,
                "DOT_UPCAST": False,
            }
            cases.append(
                (
                    f"small_h_fwd {dt} H={hidden}",
                    sh_mod._small_h_fwd_kernel,
                    {**ptr, **partials, "a_ptr": "*fp32", "bsum_ptr": "*fp32"},
                    {**sh_consts, "COMPUTE_A": True, "COMPUTE_B": True},
                    sh_mod._config(hidden, backward=False, dtype=torch_dt),
                )
            )
            cases.append(
                (
                    f"small_h_bwd {dt} H={hidden}",
                    sh_mod._small_h_bwd_kernel,
                    {**ptr, **stats, "dw_ptr": "*fp32", "db_ptr": "*fp32"},
                    {**sh_consts, "COMPUTE_DW": True, "COMPUTE_DB": True},
                    sh_mod._config(hidden, backward=True, dtype=torch_dt),
                )
            )
        ce_ptr = {"x_ptr": f"*{dt}", "t_ptr": "*i64", "softcap": "fp32"}
        for vocab in (256000, 4096):
            cases.append(
                (
                    f"ce_fwd {dt} V={vocab}",
                    ce_mod._ce_fwd_kernel,
                    {**ce_ptr, **partials},
                    {"SOFTCAP": True},
                    ce_mod._config(vocab),
                )
            )
            cases.append(
                (
                    f"ce_bwd {dt} V={vocab}",
                    ce_mod._ce_bwd_kernel,
                    {**ce_ptr, **stats, "dx_ptr": f"*{dt}"},
                    {"SOFTCAP": True},
                    ce_mod._config(vocab),
                )
            )
    failed = 0
    for name, fn, types, constexprs, cfg in cases:
        if only and not any(o in name for o in only):
            continue
        blocks, warps, stages = _split(cfg)
        t0 = time.perf_counter()
        try:
            kernel = _compile(fn, types, {**constexprs, **blocks}, warps, stages, strided)
            info = _check(name, kernel, strided)
        except Exception as exc:  # report every failing variant, not just the first
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        else:
            tile = "x".join(str(v) for v in blocks.values())
            print(f"ok   {name} tile={tile} warps={warps} {info} ({time.perf_counter() - t0:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
