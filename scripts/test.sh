#!/usr/bin/env bash
# The test command (README, CI): set up .venv, lint (ruff) and type-check (mypy), then run the whole suite.
# pytest's exit code 5 ("no tests collected") is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
. .venv/bin/activate
# Static checks first: a lint or type error fails CI before the (long) test run.
if ! ruff check src tests benchmarks; then
  echo "error: ruff check failed (fix the findings above; 'ruff check --fix' handles the safe ones)" >&2
  exit 1
fi
if ! mypy src; then
  echo "error: mypy src failed (type errors above)" >&2
  exit 1
fi
python -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
