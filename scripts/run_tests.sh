#!/usr/bin/env bash
# The whole suite: lint, types, then every test. Any failure, or pytest finding no test
# (exit 5), fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
echo "== ruff"; $V/ruff check airflow_mlops dags tests scripts benchmarks
echo "== mypy"; $V/mypy
echo "== pytest"
set +e
$V/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
