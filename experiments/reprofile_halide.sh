#!/usr/bin/env bash
# Re-profile every Halide pipeline's schedule space on this machine and train its schedule
# model into trained/halide/<hardware>/ (2 threads, as the study):
#   flock /tmp/annpred-timing.lock bash experiments/reprofile_halide.sh [SECONDS] [PIPELINE ...]
# SECONDS bounds each pipeline's profile (default 200; it stops after the size that crosses
# it, a random subset of the 24 pool sizes); a rerun resumes the CSV. Remove a pipeline's
# CSV first to start it over (a changed schedule space needs that). Run it on an idle
# machine: each row records the load average it was measured under, and the log line before
# each pipeline prints `uptime`. REFINE=N then adds N refinement points per pipeline (the
# predicted-fastest schedules of a model trained on the profile, in 4 rounds; `annpred
# halide profile --sampler refine`, resumable); PROFILE=0 skips the random profile:
#   flock /tmp/annpred-timing.lock env PROFILE=0 REFINE=160 bash experiments/reprofile_halide.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BUDGET=${1:-200}
shift || true
PIPES=${*:-blur conv_layer harris iir_blur matmul max_filter stencil_chain unsharp}
SCHEDULES=${SCHEDULES:-160}
SIZES=${SIZES:-5}
REFINE=${REFINE:-0}
PROFILE=${PROFILE:-1}
hw=$($PY -c "from annpred.spec import hardware as hw; print(hw.cpu_id(2))")
d=trained/halide/$hw/data
for p in $PIPES; do
  echo "== $p: $(date -u +%H:%M:%S) $(uptime)"
  if [ "$PROFILE" != 0 ]; then
    $PY -m annpred.cli halide profile "$p" --threads 2 --schedules "$SCHEDULES" \
        --sizes-per-schedule "$SIZES" --seed 0 --max-seconds "$BUDGET" --out "$d/$p.csv" \
        > /dev/null
  fi
  if [ "$REFINE" != 0 ]; then
    echo "   refine: $(date -u +%H:%M:%S) $(uptime)"
    $PY -m annpred.cli halide profile "$p" --threads 2 --sampler refine --budget "$REFINE" \
        --rounds 4 --seed 0 --out "$d/$p.csv" > /dev/null
  fi
done
echo "== train: $(date -u +%H:%M:%S) $(uptime)"
for p in $PIPES; do
  $PY -m annpred.cli halide train "$p" --threads 2 --data "$d/$p.csv" --out trained
done
echo "== done: $(date -u +%H:%M:%S) $(uptime)"
