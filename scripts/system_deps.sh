#!/usr/bin/env bash
# The system programs the test suite runs for real, from Debian's packages:
#   postgresql + redis-server  the distributed stack (CeleryExecutor, Airflow/MLflow on Postgres)
#   chromium + chromium-driver  the Models view's browser test
#   docker.io + debootstrap      a private Docker engine (scripts/docker_engine.sh) and the local
#                               base images: the trainer image, the docker backend, the compose stack
#   docker-compose              brings docker-compose.yaml up on that engine (scripts/compose_e2e.sh)
# Idempotent: installs only what is missing. Needs root (CI runs as root); without it, it says
# what to install and fails, so a test that needs a program is never skipped silently.
set -euo pipefail
declare -A need=(
  [postgresql]=/usr/lib/postgresql
  [redis-server]=/usr/bin/redis-server
  [chromium]=/usr/bin/chromium
  [chromium-driver]=/usr/bin/chromedriver
  [docker-compose]=/usr/bin/docker-compose
  [docker.io]=/usr/sbin/dockerd
  [debootstrap]=/usr/sbin/debootstrap
)
missing=()
for pkg in "${!need[@]}"; do [ -e "${need[$pkg]}" ] || missing+=("$pkg"); done
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: run  sudo apt-get install -y ${missing[*]}  and retry" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
