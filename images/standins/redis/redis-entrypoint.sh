#!/usr/bin/env bash
# redis-server in the foreground, no persistence; extra arguments are passed on.
set -euo pipefail
if [ "${1:-}" != "" ] && [ "${1:-}" != redis-server ]; then exec "$@"; fi
[ $# -gt 0 ] && shift
read -r -a bind <<<"${REDIS_BIND:-127.0.0.1}"
exec redis-server --bind "${bind[@]}" --port 6379 --protected-mode no --save '' --appendonly no \
  --daemonize no "$@"
