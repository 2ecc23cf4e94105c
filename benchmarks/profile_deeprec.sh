#!/usr/bin/env bash
# Samples where one benchmark worker spends its CPU time, with Linux perf.
#
#   bash benchmarks/profile_deeprec.sh [system] [dim] [threads] [train|lookup]
#   (defaults: deeprec 64 1 train; PYTHON defaults to /tmp/bench-venv/bin/python)
#
# Runs the same worker as benchmarks/ev_lookup_update.py (same Zipf data) for
# 100 steps of one mode under `perf record`, then prints the hottest shared
# objects and symbols. Needs `perf` (apt-get install linux-perf).
set -euo pipefail
SYSTEM="${1:-deeprec}"; DIM="${2:-64}"; THREADS="${3:-1}"; MODE="${4:-train}"
PY="${PYTHON:-/tmp/bench-venv/bin/python}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
# KEEP=1 keeps the work dir (perf.data for `perf annotate -i ...`).
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "work dir: $WORK"; fi
"$PY" -c "
import sys, numpy as np
sys.path.insert(0, '$HERE')
import ev_lookup_update as b
np.save('$WORK/batches.npy', b.make_batches(230))"
if [ "$MODE" = train ]; then STEPS=20,100,0,0; else STEPS=20,0,10,100; fi
cd "$WORK"
# perf starts disabled; the worker enables it only around its timed steps.
mkfifo "$WORK/ctl"
TF_CPP_MIN_LOG_LEVEL=2 OMP_NUM_THREADS="$THREADS" BENCH_PERF_CTL="$WORK/ctl" \
  perf record -F 1999 -g -D -1 --control "fifo:$WORK/ctl" -o "$WORK/perf.data" -- \
  "$PY" "$HERE/ev_lookup_update.py" --worker --system "$SYSTEM" --dim "$DIM" \
  --threads "$THREADS" --data "$WORK/batches.npy" --steps "$STEPS" --out "$WORK/out.json" \
  2> "$WORK/perf.log" || { cat "$WORK/perf.log"; exit 1; }
echo "== $SYSTEM dim=$DIM threads=$THREADS mode=$MODE (timed steps only) =="
"$PY" -c "import json; r=json.load(open('$WORK/out.json')); m=r['$MODE']; print('steps/s %.2f' % m['steps_per_s'])"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | head -8
echo "-- hottest symbols, all threads --"
perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none \
  --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
if [ -n "${CALLERS:-}" ]; then
  echo "-- callers of $CALLERS --"
  perf report -i "$WORK/perf.data" --no-children --symbol-filter="$CALLERS" --stdio \
    -G 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
fi
