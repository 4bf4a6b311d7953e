#!/usr/bin/env bash
# The whole suite: lint, types, then every test. Any failure, or pytest finding no test
# (exit 5), fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
paths=(); for p in airflow_mlops dags tests scripts benchmarks docs/examples; do [ -e "$p" ] && paths+=("$p"); done
echo "== ruff"; $V/ruff check "${paths[@]}"; $V/ruff format --check "${paths[@]}"
echo "== mypy"; $V/mypy
echo "== pytest"
set +e
$V/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
