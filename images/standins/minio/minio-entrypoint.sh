#!/usr/bin/env bash
# `server ...` (minio's arguments, ignored) starts moto's S3 server on port 9000; anything else
# runs as given (e.g. `mc ...`).
set -euo pipefail
if [ "${1:-server}" = server ]; then
  echo "minio stand-in: moto S3 server on ${S3_LISTEN:-127.0.0.1}:9000 (in memory; ignoring: $*)"
  exec moto_server -H "${S3_LISTEN:-127.0.0.1}" -p 9000
fi
exec "$@"
