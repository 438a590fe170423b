#!/usr/bin/env bash
# Creates .venv (Python >= 3.10) with the CPU build of PyTorch and crossnas installed.
# Usage: bash scripts/setup.sh [extra pip args]     (idempotent; rerun after pulling)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# The CPU wheel first: a bare "torch" range would pull a multi-GB CUDA build.
python -c "import torch" >/dev/null 2>&1 || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,postgres]" "$@"
