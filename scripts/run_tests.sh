#!/usr/bin/env bash
# The whole suite: lint, types, then every test. Any failure, or pytest finding no test
# (exit 5), fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
paths=(); for p in airflow_mlops dags tests scripts benchmarks docs/examples; do [ -e "$p" ] && paths+=("$p"); done
# The images of the Docker tests (trainer, compose stand-ins, the Airflow image) build in the
# background, mostly downloads, while lint, types and the other tests run; those tests run last and
# wait for the build under its lock (scripts/build_images.sh). A private dockerd this run started
# is stopped by its pid file at the end.
mkdir -p .stack
engine_was_running=0
bash scripts/docker_engine.sh status >/dev/null 2>&1 && engine_was_running=1
setsid bash scripts/build_images.sh >.stack/build_images.log 2>&1 &
build_pid=$!
finish() {
  kill -- "-$build_pid" 2>/dev/null || true
  [ "$engine_was_running" = 1 ] || bash scripts/docker_engine.sh stop >/dev/null 2>&1 || true
}
trap finish EXIT
echo "== ruff"; $V/ruff check "${paths[@]}"; $V/ruff format --check "${paths[@]}"
echo "== mypy"; $V/mypy
echo "== pytest"
set +e
$V/python -m pytest --durations=30 "$@"  # the slowest 30: where CI time goes
rc=$?
set -e
echo "== image builds (background)"; tail -8 .stack/build_images.log || true
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
