#!/usr/bin/env bash
# One GPU check, in one call, within about 10 minutes on one H100/H200:
#   1. every `gpu`-marked test in the repository,
#   2. the kernel test suite on CUDA (its `triton` cases then run the compiled kernels),
#   3. the kernel benchmark (benches/bench_kernels.py), GPT-2- and Gemma-like heads first, then
#      the project's own heads (each method's gradients checked against fp64 before timing),
#   4. the training throughput / MFU benchmark (benches/bench_train.py), one model size per run,
#   5. the gpu-small experiments (`synknow experiment all --preset gpu-small`).
# Every result goes under one folder: the argument, else $OUT. Each part runs under its own time
# limit and a global deadline; a part that fails or runs out of time is recorded and the check
# goes on (benchmarks write one file per invocation, so finished pieces survive; the experiments
# resume where they stopped when the check is run again on the same folder). Logs go to
# OUTDIR/logs, test reports to OUTDIR/tests; the summary is printed and written to
# OUTDIR/SUMMARY.txt and OUTDIR/summary.json. Exit status 0 only if every part finished.
#
#   benches/gpu_check.sh [--dry-run] [OUTDIR]
#   --dry-run   list the parts with their time limits and commands, run nothing, exit 0
#
# Environment: PYTHON (default: python), GPU_CHECK_BUDGET_S (default 570: total wall-clock
# seconds, leaving a margin inside a 10-minute session).
set -uo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

dry_run=0
outdir=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
        *)
            if [[ -n "$outdir" ]]; then
                echo "gpu_check.sh: one output folder only, got '$outdir' and '$arg'" >&2
                exit 2
            fi
            outdir="$arg"
            ;;
    esac
done
outdir="${outdir:-${OUT:-}}"
if [[ -z "$outdir" ]]; then
    if [[ $dry_run -eq 1 ]]; then
        outdir="OUTDIR"
    else
        echo "gpu_check.sh: give the output folder as the argument or in \$OUT" >&2
        exit 2
    fi
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python}"
budget="${GPU_CHECK_BUDGET_S:-570}"
if ! [[ "$budget" =~ ^[0-9]+$ ]] || ((budget < 60)); then
    echo "gpu_check.sh: GPU_CHECK_BUDGET_S must be a whole number of seconds >= 60, got '$budget'" >&2
    exit 2
fi
if [[ $dry_run -eq 0 ]]; then
    mkdir -p "$outdir" || exit 2
    outdir="$(cd "$outdir" && pwd)"  # the parts run from the repository root
fi

# name | time limit (s) | command. The limits add up to the default budget and are estimates
# (nothing here has run on a GPU yet); the global deadline shortens later parts when earlier
# ones overrun. Order = priority: correctness, then the kernel benchmark, then the rest.
exp_dir="$outdir/experiments-gpu-small"
tests="CUBLAS_WORKSPACE_CONFIG=:4096:8 $py -m pytest -q -p no:cacheprovider -rs"
parts=(
    "environment|15|nvidia-smi; $py -c 'import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'"
    "gpu-tests|120|$tests -m gpu tests --junitxml=$outdir/tests/gpu-tests.xml"
    "kernel-tests-on-cuda|75|$tests -m 'not gpu' tests/kernels --ignore=tests/kernels/test_compile_sm90.py --junitxml=$outdir/tests/kernel-tests-on-cuda.xml"
    "bench-kernels-llm|100|$py benches/bench_kernels.py --shapes llm --repeats 5 --warmup 2 --out $outdir/bench-kernels/llm.json"
    "bench-kernels-small|70|$py benches/bench_kernels.py --shapes small --methods synknow,synknow_fused,eager,compile,liger,cce --repeats 5 --warmup 2 --out $outdir/bench-kernels/small.json"
    "bench-train-5m|25|$py benches/bench_train.py --sizes 5m --steps 10 --out $outdir/bench-train/train-5m.json"
    "bench-train-100m|35|$py benches/bench_train.py --sizes 100m --steps 10 --out $outdir/bench-train/train-100m.json"
    "experiments-gpu-small|130|$py -m synknow experiment all --preset gpu-small --out $exp_dir --quiet"
)

if [[ $dry_run -eq 1 ]]; then
    echo "gpu_check.sh --dry-run: would run in $repo, writing under $outdir (budget ${budget}s):"
    total=0
    for part in "${parts[@]}"; do
        IFS='|' read -r name limit cmd <<<"$part"
        total=$((total + limit))
        printf '  %-24s %4ss  %s\n' "$name" "$limit" "$cmd"
    done
    echo "  (time limits add up to ${total}s; each part is cut short by the ${budget}s deadline)"
    exit 0
fi

cd "$repo" || exit 2
export PYTHONPATH="$repo/python:$repo/kernels${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # compiled kernels on the GPU, never the CPU interpreter
mkdir -p "$outdir/logs" "$outdir/tests" "$outdir/bench-kernels" "$outdir/bench-train" || exit 2
start=$SECONDS
summary=()
json_rows=()
for part in "${parts[@]}"; do
    IFS='|' read -r name limit cmd <<<"$part"
    log="$outdir/logs/$name.log"
    if [[ "$name" == experiments-* && -d "$exp_dir" ]]; then
        cmd="$cmd --resume"  # a second run continues the experiments where they stopped
    fi
    left=$((budget - (SECONDS - start)))
    if ((left < 10)); then
        summary+=("$(printf '%-24s %-14s %5ss  %s' "$name" "not-run" 0 "no time left in the ${budget}s budget")")
        json_rows+=("{\"part\": \"$name\", \"status\": \"not-run\", \"seconds\": 0}")
        continue
    fi
    ((limit > left)) && limit=$left
    echo "=== $name (limit ${limit}s): $cmd" | tee "$log"
    t0=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" bash -c "$cmd" >>"$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    if ((rc == 0)); then
        status="ok"
    elif ((rc == 124 || rc == 137)); then
        status="timed-out"
    else
        status="failed(rc=$rc)"
    fi
    tail -n +2 "$log" | tail -n 3 | sed 's/^/    /'
    summary+=("$(printf '%-24s %-14s %5ss  %s' "$name" "$status" "$took" "$log")")
    json_rows+=("{\"part\": \"$name\", \"status\": \"$status\", \"seconds\": $took, \"log\": \"$log\"}")
done

{
    echo "gpu_check.sh summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - start))s of ${budget}s, results under $outdir)"
    printf '%s\n' "${summary[@]}"
} | tee "$outdir/SUMMARY.txt"
{
    echo "{\"budget_s\": $budget, \"elapsed_s\": $((SECONDS - start)), \"outdir\": \"$outdir\", \"parts\": ["
    last=$((${#json_rows[@]} - 1))
    for i in "${!json_rows[@]}"; do
        sep=","
        ((i == last)) && sep=""
        echo "  ${json_rows[$i]}$sep"
    done
    echo "]}"
} >"$outdir/summary.json"
if grep -Eq 'failed|timed-out|not-run' "$outdir/SUMMARY.txt"; then
    exit 1
fi
exit 0
