#!/usr/bin/env bash
# The distributed topology on this machine, without Docker: Postgres and Redis from the
# distribution's packages, Airflow with the CeleryExecutor (api-server, scheduler, dag-processor,
# triggerer, Celery worker), MLflow on Postgres with S3 artifacts (moto), the artifact store on S3.
# Every service binds 127.0.0.1 on a free port; state is under .stack/distributed (git-ignored);
# only the process groups this run started are stopped, also on Ctrl-C or a failure.
#
#   scripts/distributed_stack.sh demo   start, run the example training DAG end to end, stop
#   scripts/distributed_stack.sh up     the same, then keep serving (UIs) until Ctrl-C
#
# Missing programs: scripts/system_deps.sh installs them (make system-deps).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
case "${1:-}" in
  demo|up) exec "$ROOT/.venv/bin/python" -m tests.integration.distributed_stack "$@" ;;
  *) echo "usage: $0 {demo|up} [--base DIR]" >&2; exit 2 ;;
esac
