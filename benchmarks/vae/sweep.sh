#!/usr/bin/env bash
# The VAE benchmark sweep, run where a GPU is available:
#   benchmarks/vae/sweep.sh DEVICE DATA_DIR RESULTS_DIR GIT_REVISION TRAIN_BUDGET_S
# Runs {categorical 20x10, bernoulli 200} x {gs, st-gs} x {lr 1e-3, 3e-4} in parallel, each with
# the paper's annealing (tau = max(0.5, exp(-1e-4 t)), updated every 1000 steps), and picks the
# reported run per (latent, estimator) on the validation split (run.py --render does it).
# The number of epochs (at most 100) is the largest that fits TRAIN_BUDGET_S, from a measured
# calibration of the parallel step rate; it is recorded in every row.
set -euo pipefail
DEVICE=$1 DATA=$2 RES=$3 REV=$4 BUDGET=$5
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1 PYTHONPATH=$HERE/../../src PYTHONUNBUFFERED=1
CALIB=${CALIB_STEPS:-300}
# SMOKE_STEPS (testing the script only): stop each run early and evaluate cheaply.
SMOKE=()
if [ -n "${SMOKE_STEPS:-}" ]; then SMOKE=(--max-steps "$SMOKE_STEPS" --eval-samples 2 --valid-images 50); fi
mkdir -p "$RES" "$RES/calib"
configs=()
for latent in categorical bernoulli; do for est in gs st-gs; do for lr in 1e-3 3e-4; do
  configs+=("$latent $est $lr")
done; done; done
# Calibration: every configuration at once, for CALIB and 6*CALIB steps; the difference of the
# two wall times is the parallel step rate without start-up and evaluation costs.
calibrate() {
  local steps=$1
  for c in "${configs[@]}"; do set -- $c
    python3 "$HERE/run.py" --latent $1 --estimator $2 --lr $3 --tag=-lr$3-c$steps --device "$DEVICE" \
      --data-dir "$DATA" --results-dir "$RES/calib" --max-steps $steps --eval-samples 1 \
      --valid-images 100 --git-revision "$REV" > /dev/null &
  done; wait
}
t0=$(date +%s.%N); calibrate $CALIB; t1=$(date +%s.%N); calibrate $((6 * CALIB)); t2=$(date +%s.%N)
EPOCHS=$(python3 -c "
rate = 5 * $CALIB / max($t2 - $t1 - ($t1 - $t0), 1e-3)  # steps per second of each parallel run
print(max(1, min(100, int($BUDGET * rate / 500))))")
echo "calibration: $CALIB steps in $(python3 -c "print(round($t1 - $t0, 1))") s, $((6 * CALIB)) in $(python3 -c "print(round($t2 - $t1, 1))") s (x ${#configs[@]} runs in parallel) -> $EPOCHS epochs"
for c in "${configs[@]}"; do set -- $c
  python3 "$HERE/run.py" --latent $1 --estimator $2 --lr $3 --tag=-lr$3 --device "$DEVICE" \
    --data-dir "$DATA" --results-dir "$RES" --epochs "$EPOCHS" --git-revision "$REV" "${SMOKE[@]}" \
    > "$RES/log-$1-$2-$3.txt" 2>&1 &
done; wait
python3 "$HERE/run.py" --render --results-dir "$RES"
