#!/usr/bin/env bash
# The whole accuracy study of issue 12, one command:
#   bash experiments/accuracy_all.sh
# 1. the original study's protocol on this machine: measure (resumes; a no-op when the raw
#    CSVs in experiments/results/data/paper_protocol_*.csv are complete; delete them to
#    measure afresh, about 10 minutes on an idle machine), then analyse
#    -> experiments/results/paper_protocol.{csv,md}
# 2. Kernel Tuner cache files in ../shared/data/kernel_tuner/ (about 20-30 minutes, 10 seeds)
#    -> experiments/results/foreign.{csv,md}
# 3. the catalog study on the shipped profiles (about 15 minutes on 2 cores)
#    -> experiments/results/accuracy.{csv,md}, plots
# Timing (step 1's measure) wants an idle machine: set ANNPRED_TIMING_LOCK to a lock file
# shared with other timing jobs to hold it while measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ -n "${ANNPRED_TIMING_LOCK:-}" ]; then
  flock "$ANNPRED_TIMING_LOCK" "$PY" experiments/paper_protocol.py measure
else
  "$PY" experiments/paper_protocol.py measure
fi
"$PY" experiments/paper_protocol.py analyse
"$PY" experiments/foreign.py
"$PY" experiments/accuracy.py
