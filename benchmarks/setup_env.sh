#!/usr/bin/env bash
# Creates the benchmark virtualenv (default /tmp/bench-venv, override with
# BENCH_VENV=/path) with stock tensorflow-cpu 2.15.1, TFRA 0.7.2 and deeprec
# from this repository.  TFRA is a *benchmark-only* comparison system: it is
# installed here and never becomes a dependency of deeprec.
#
#   bash benchmarks/setup_env.sh            # create / update the venv
#   BENCH_VENV=/opt/bv bash benchmarks/setup_env.sh
#
# deeprec is installed editable by default (the op library is compiled in
# place, exactly like a developer install).  Set DEEPREC_INSTALL=none to skip
# installing deeprec (e.g. when the repo is already importable in the venv)
# or DEEPREC_INSTALL=wheel for a non-editable install that leaves the source
# tree untouched.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-/tmp/bench-venv}"
PY="${PYTHON:-python3.11}"
MODE="${DEEPREC_INSTALL:-editable}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=68,<81" wheel
"$VENV/bin/python" -m pip install -q "tensorflow-cpu==2.15.1" "numpy<2"
# --no-deps: TFRA 0.7.2's metadata asks for a generic `tensorflow`; the CPU
# wheel above provides the same module, and we must not pull a second TF.
"$VENV/bin/python" -m pip install -q --no-deps "tensorflow-recommenders-addons==0.7.2"
"$VENV/bin/python" -m pip install -q "typeguard>=2.7,<3"

case "$MODE" in
  editable) "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps -e "$REPO" ;;
  wheel)
    # Build from a snapshot copy so nothing is written into the work tree
    # (safe while others are editing or building it).
    SNAP="$(mktemp -d)"
    tar -C "$REPO" --exclude=./.git --exclude=./build --exclude='*.so' \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$SNAP" -xf -
    "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps --force-reinstall "$SNAP"
    rm -rf "$SNAP" ;;
  none)     ;;
  *) echo "unknown DEEPREC_INSTALL=$MODE" >&2; exit 2 ;;
esac
# Provenance for benchmarks/ev_lookup_update.py's report.
if [ "$MODE" != none ]; then
  {
    printf '%s' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git -C "$REPO" status --porcelain -- deeprec csrc setup.py 2>/dev/null)" ]; then
      printf ' + uncommitted deeprec/csrc changes'
    fi
    printf ', %s install, built %s\n' "$MODE" "$(date -u +%Y-%m-%dT%H:%MZ)"
  } > "$VENV/deeprec_source.txt"
fi

"$VENV/bin/python" - <<'PY'
import tensorflow as tf
import tensorflow_recommenders_addons as tfra
print("tensorflow", tf.__version__, "| tfra", tfra.__version__)
PY
echo "benchmark venv ready: $VENV"
