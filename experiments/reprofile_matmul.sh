#!/usr/bin/env bash
# Re-profile the shipped matmul models on this machine over the widened domain (sides up to
# 2048) with the performance-representatives sampler, then a random held-out set, then train.
#   bash experiments/reprofile_matmul.sh [SECONDS_PER_PROFILE]
# Writes trained/<this machine's id>-t{1,2}/data/matmul.csv (PR) and matmul_heldout.csv, and
# the models trained/<id>/matmul/*.json. Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BUDGET=${1:-150}
for t in 1 2; do
  hw=$($PY -c "from annpred.spec import hardware as hw; print(hw.cpu_id($t))")
  d=trained/$hw/data
  uptime
  $PY -m annpred.cli profile matmul --threads $t --sampler pr --samples 250 --seed 0 \
      --time-budget "$BUDGET" --quiet --out "$d/matmul.csv"
  $PY -m annpred.cli profile matmul --threads $t --samples 100 --seed 7 \
      --time-budget $((BUDGET / 3)) --quiet --out "$d/matmul_heldout.csv"
  $PY -m annpred.cli train "$d/matmul.csv" --out trained
done
