#!/usr/bin/env bash
# Every GPU figure and check the open issues owe, in one command for the device machine (an H200
# lent for 15 minutes a session, 10 a call; nothing can be installed there, so this uses its own
# python3 with the working tree on PYTHONPATH):
#
#   run(command="bash scripts/device_checks.sh", timeout_s=600)
#
# Steps, most wanted first, each under its own time limit; a step is skipped when less than its
# limit is left of BUDGET_S, so the files of the steps that ran always come back:
#   1. the CUDA tests: no host synchronisation and CUDA-graph capture (samplers, distributions),
#      and the backends' semantics on the GPU                          -> cuda-tests.log
#   2. benchmarks/kernels/bench.py --device cuda (issue 10's GPU table) -> results-cuda.md
#   3. benchmarks/vae/stacked.py --device cuda (issue 15, G = 1, 6, 24) -> stacked-cuda.md
#   4. benchmarks/semisup/speedup.py --device cuda (issue 12)           -> speedup-cuda.{json,md,png}
# Everything lands in $OUT (at most 8 files come back); device.log has the whole output. Copy
# each file to the path named above under benchmarks/ and commit it with the session's note.
#
# Tested on the CPU first: DEVICE=cpu QUICK=1 OUT=/tmp/out bash scripts/device_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder whose files come back}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
BUDGET_S=${BUDGET_S:-540}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
START=$(date +%s)

step() {  # step NAME LIMIT_S COMMAND...: run it under `timeout` if LIMIT_S is still left
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET_S - ($(date +%s) - START)))
    if ((left < limit)); then
        echo "== $(date -u +%T) $name: skipped, ${left} s left of the budget, it needs ${limit}"
        return
    fi
    echo "== $(date -u +%T) $name (at most ${limit} s): $*"
    local t0=$(date +%s)
    timeout "$limit" "$@"
    echo "== $name: exit $? after $(($(date +%s) - t0)) s"
}

{
    echo "== $(date -u +%FT%TZ) device checks on $DEVICE, git $(git rev-parse --short HEAD 2>/dev/null)"
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    $PY -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'numba', numba.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
    if ((QUICK)); then
        kernels=(--quick) stacked=(--groups 1 6 --steps 3 --warmup 1)
        speedup=(--classes 10 --batch-size 10 --labelled-batch-size 4 --steps 1 --rounds 1)
    else
        kernels=(--repeats 5) stacked=(--steps 200 --warmup 10)
        speedup=()
    fi
    tests=(tests/backends/test_cuda_sync.py tests/backends/test_backend_semantics.py)
    step "CUDA tests" 120 $PY -m pytest -q -p no:cacheprovider "${tests[@]}" \
        >"$OUT/cuda-tests.log" 2>&1
    tail -n 5 "$OUT/cuda-tests.log"
    step "kernel benchmark" 240 $PY benchmarks/kernels/bench.py --device "$DEVICE" \
        "${kernels[@]}" --out "$OUT/results-$DEVICE.md"
    step "stacked training" 90 $PY benchmarks/vae/stacked.py --device "$DEVICE" \
        "${stacked[@]}" --out "$OUT/stacked-$DEVICE.md"
    step "semi-supervised speed-up" 90 $PY benchmarks/semisup/speedup.py --device "$DEVICE" \
        "${speedup[@]}" --out "$OUT"
    echo "== $(date -u +%T) done in $(($(date +%s) - START)) s; files: $(ls "$OUT" | tr '\n' ' ')"
} 2>&1 | tee "$OUT/device.log"
