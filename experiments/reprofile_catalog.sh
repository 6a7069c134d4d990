#!/usr/bin/env bash
# Re-profile the shipped catalog models on this machine over the catalog's (widened) domains:
# for every kernel and 1 and 2 threads, measure 350 random points (250 to train, the rest held
# out by `train --n-train 250`), then train the models next to the AMD ones in trained/.
#   flock /tmp/annpred-timing.lock bash experiments/reprofile_catalog.sh [SECONDS] [KERNEL ...]
#   THREADS=2 ...   # only the 2-thread models
#   PASS=1 TRAIN=0 ...  # re-measure the same 350 points later, without training (the
#                       # two-pass noise floor; `annpred evaluate` holds them out)
#   SEED=1 SAMPLES=300 TRAIN=0 ...  # 300 other points: the evaluation's training pool
#   SAMPLES=650 TRAIN=0 ...; PASS=1 SAMPLES=650 FIRST=350 TRAIN=0 ...  # test points (0..349)
#                       # and training pool (350..649) measured in one shuffled run, then the
#                       # test points again (stop 45: no drift between pool and test set)
#   DATA_ROOT=DIR ...   # DIR/<hardware>/data/<kernel>.csv (and the models under DIR) instead
#                       # of under trained/
# SECONDS bounds each (kernel, threads) profile (default 240); profiling resumes where an
# interrupted run stopped (the CSV is appended to). Run it on an idle machine: each row
# records the load average it was measured under.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BUDGET=${1:-240}
shift || true
KERNELS=${*:-matmul matvec conv2d maxpool blur fft}
THREADS=${THREADS:-1 2}
PASS=${PASS:-0}
SEED=${SEED:-0}
SAMPLES=${SAMPLES:-350}
FIRST=${FIRST:-$SAMPLES}
DATA_ROOT=${DATA_ROOT:-trained}
TRAIN=${TRAIN:-1}
for t in $THREADS; do
  hw=$($PY -c "from annpred.spec import hardware as hw; print(hw.cpu_id($t))")
  d=$DATA_ROOT/$hw/data
  mkdir -p "$d"
  for kernel in $KERNELS; do
    echo "== $kernel, $t thread(s), pass $PASS, seed $SEED, $(uptime)"
    first=()
    [ "$PASS" = 0 ] || first=(--pass "$PASS" --first "$FIRST")
    $PY -m annpred.cli profile "$kernel" --threads "$t" --samples "$SAMPLES" --seed "$SEED" \
        --time-budget "$BUDGET" --quiet "${first[@]}" --out "$d/$kernel.csv"
  done
done
[ "$TRAIN" = 1 ] || exit 0
for t in $THREADS; do
  hw=$($PY -c "from annpred.spec import hardware as hw; print(hw.cpu_id($t))")
  for kernel in $KERNELS; do
    $PY -m annpred.cli train "$DATA_ROOT/$hw/data/$kernel.csv" --n-train 250 \
        --out "$DATA_ROOT" --quiet
  done
done
