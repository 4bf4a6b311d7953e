#!/usr/bin/env bash
# The compose stack for real, on the local Docker engine: build, up, the example lifecycle, down.
#
#   scripts/compose_e2e.sh        prints its steps, then one verdict line:
#     compose e2e: PASS (build 412 s, up 95 s, lifecycle 180 s, down 12 s)
#     compose e2e: FAIL: <why>
#   exit 0 only on PASS.
#   scripts/compose_e2e.sh --build-only   steps 1 and the image builds of 3, nothing started
#     (scripts/build_images.sh runs it in the background of the test suite, under its lock).
#
# 1. starts the private engine (scripts/docker_engine.sh start) and builds its base images
#    (scripts/docker_engine.sh bases), then the stand-ins of the images no registry serves here
#    (images/standins/: postgres, redis, minio + mc, the Airflow base);
# 2. resolves docker-compose.yaml + docker-compose.e2e.yaml (stand-in images, the host network,
#    service names on 127.0.0.1) with `docker-compose config`, minus the `ports` entries (the
#    services listen on the host's ports themselves; docker-compose 1.29 refuses published ports
#    on the host network), and checks that every service and build uses the host network;
# 3. checks that the stack's host ports are free, writes the example data into dags/data/fraud
#    (the ./dags mount), builds the Airflow image, `up -d`, and waits until every long-running
#    service is healthy and every one-shot service exited 0;
# 4. the lifecycle (scripts/compose_e2e.py): fraud_detector__train triggered through the REST API
#    (JWT from the generated admin password), run by the Celery worker, a signed champion in
#    MLflow that verifies with the public key from the signing-key volume;
# 5. always (trap): saves every service's log, `down -v`, checks that no container, volume or
#    network of the project is left.
#
# Logs: $MLOPS_E2E_DIR (default .stack/compose-e2e): steps.log, compose.yaml, <service>.log, ps.txt.
# Settings: MLOPS_E2E_PROJECT (compose project name, default airflow-mlops-e2e),
# MLOPS_E2E_UP_TIMEOUT (s, default 900), MLOPS_E2E_RUN_TIMEOUT (s, default 1500),
# MLOPS_E2E_PORT_WAIT (s to wait for a host port another program holds, default 900),
# MLOPS_E2E_NO_CACHE=1 (build the stand-ins and the Airflow image without the layer cache: a cold
# build; the base images of scripts/docker_engine.sh stay cached by their content hash).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD_ONLY=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1
PROJECT=${MLOPS_E2E_PROJECT:-airflow-mlops-e2e}
OUT=${MLOPS_E2E_DIR:-$ROOT/.stack/compose-e2e}
[ "$BUILD_ONLY" = 1 ] && OUT="$OUT-build"
# The image lock of scripts/build_images.sh: a full run waits for a background build in progress.
IMAGES_LOCK="${MLOPS_DOCKER_DIR:-/var/lib/airflow-mlops-docker}/images.lock"
UP_TIMEOUT=${MLOPS_E2E_UP_TIMEOUT:-900}
RUN_TIMEOUT=${MLOPS_E2E_RUN_TIMEOUT:-1500}
PORT_WAIT=${MLOPS_E2E_PORT_WAIT:-900}
NO_CACHE=()
[ "${MLOPS_E2E_NO_CACHE:-0}" = 1 ] && NO_CACHE=(--no-cache)
DOCKER=/usr/bin/docker
COMPOSE_BIN=/usr/bin/docker-compose
PY="$ROOT/.venv/bin/python"
PORTS=(5432 6379 9000 5000 8080 8793 8794 8974)
LONG_RUNNING=(postgres redis minio mlflow airflow-apiserver airflow-scheduler airflow-dag-processor
  airflow-triggerer airflow-worker)
ONE_SHOT=(minio-buckets airflow-secrets-init airflow-init)
STANDIN_AIRFLOW=airflow-mlops-standin/airflow:3.3.2-python3.11
RESOLVED="$OUT/compose.yaml"

REASON="interrupted"
STACK_STARTED=0
NETWORKS_BEFORE=""
declare -A SECONDS_OF=()

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.txt
exec > >(tee "$OUT/steps.log") 2>&1

say() { printf '[compose-e2e] %s\n' "$*"; }
fail() { REASON="$*"; exit 1; }
compose() { "$COMPOSE_BIN" -f "$RESOLVED" -p "$PROJECT" "$@"; }
timed() {  # NAME COMMAND...: run it, record its seconds under NAME
  local name=$1 start=$SECONDS
  shift
  "$@"
  SECONDS_OF[$name]=$((SECONDS - start))
}
project_containers() { "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT"; }

save_logs() {
  local s
  compose ps >"$OUT/ps.txt" 2>&1 || true
  for s in "${ONE_SHOT[@]}" "${LONG_RUNNING[@]}"; do
    compose logs --no-color --timestamps "$s" >"$OUT/$s.log" 2>&1 || true
  done
}

service_tail() {  # the last lines of a service's log, for a failure message
  compose logs --no-color --tail=60 "$1" 2>&1 || true
}

teardown() {
  local start=$SECONDS left
  say "down -v (project $PROJECT)"
  if ! timeout 300 "$COMPOSE_BIN" -f "$RESOLVED" -p "$PROJECT" down -v --remove-orphans --timeout 30; then
    say "down failed or timed out"
    return 1
  fi
  SECONDS_OF[down]=$((SECONDS - start))
  left=$(project_containers)
  if [ -n "$left" ]; then
    say "containers of $PROJECT left after down: $left"
    return 1
  fi
  left=$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  if [ -n "$left" ]; then
    say "volumes of $PROJECT left after down: $left"
    return 1
  fi
  if [ "$("$DOCKER" network ls -q | sort)" != "$NETWORKS_BEFORE" ]; then
    say "the set of networks changed: $("$DOCKER" network ls)"
    return 1
  fi
  return 0
}

finish() {
  local rc=$? times
  trap - EXIT INT TERM
  set +e
  if [ "$STACK_STARTED" = 1 ] && [ -f "$RESOLVED" ]; then
    save_logs
    if ! teardown; then
      [ "$rc" = 0 ] && REASON="the stack was not torn down cleanly (see above)"
      rc=1
    fi
  fi
  times="build ${SECONDS_OF[build]:-?} s, up ${SECONDS_OF[up]:-?} s, lifecycle ${SECONDS_OF[lifecycle]:-?} s, down ${SECONDS_OF[down]:-?} s"
  if [ "$rc" = 0 ] && [ "$BUILD_ONLY" = 1 ]; then
    echo "compose e2e: images built (build ${SECONDS_OF[build]:-?} s)"
  elif [ "$rc" = 0 ]; then
    echo "compose e2e: PASS ($times)"
  else
    say "logs: $OUT"
    echo "compose e2e: FAIL: $REASON ($times)"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'REASON="interrupted"; exit 130' INT TERM

# --- 1. the engine, the bases, the stand-ins --------------------------------------------------
[ -x "$DOCKER" ] || fail "$DOCKER is missing (scripts/docker_engine.sh start installs docker.io)"
[ -x "$COMPOSE_BIN" ] || fail "$COMPOSE_BIN is missing (scripts/system_deps.sh installs docker-compose)"
[ -x "$PY" ] || fail "$PY is missing (the project's virtual environment)"
say "starting the Docker engine (scripts/docker_engine.sh start)"
ENGINE=$(bash scripts/docker_engine.sh start) || fail "the Docker engine did not start (scripts/docker_engine.sh start)"
eval "$ENGINE"
[ -n "${DOCKER_HOST:-}" ] || fail "scripts/docker_engine.sh start gave no DOCKER_HOST"
export DOCKER_HOST
"$DOCKER" info >/dev/null 2>&1 || fail "the engine at $DOCKER_HOST does not answer"
NETWORKS_BEFORE=$("$DOCKER" network ls -q | sort)

if [ "$BUILD_ONLY" = 0 ] && [ -n "$(project_containers)" ]; then
  fail "containers of compose project $PROJECT exist already (a run in progress, or left over: docker-compose -p $PROJECT down -v)"
fi

build_images() {
  local bases base torch s
  bases=$(bash scripts/docker_engine.sh bases) || fail "building the base images failed (scripts/docker_engine.sh bases)"
  base=$(sed -n 's/^BASE_IMAGE=//p' <<<"$bases")
  torch=$(sed -n 's/^TORCH_IMAGE=//p' <<<"$bases")
  [ -n "$base" ] && [ -n "$torch" ] || fail "scripts/docker_engine.sh bases printed no BASE_IMAGE/TORCH_IMAGE: $bases"
  export E2E_TORCH_IMAGE=$torch
  say "bases: $base, $torch"
  for s in postgres:16 redis:7.2 minio:latest; do
    say "building stand-in airflow-mlops-standin/$s"
    "$DOCKER" build -q "${NO_CACHE[@]}" --network host --build-arg "BASE_IMAGE=$base" -t "airflow-mlops-standin/$s" \
      -f "images/standins/${s%%:*}/Dockerfile" . >"$OUT/build-${s%%:*}.txt" 2>&1 \
      || { cat "$OUT/build-${s%%:*}.txt"; fail "the ${s%%:*} stand-in did not build"; }
  done
  say "building stand-in $STANDIN_AIRFLOW (FROM $torch)"
  "$DOCKER" build -q "${NO_CACHE[@]}" --network host --build-arg "TORCH_IMAGE=$torch" -t "$STANDIN_AIRFLOW" \
    -f images/standins/airflow/Dockerfile . >"$OUT/build-airflow-base.txt" 2>&1 \
    || { tail -40 "$OUT/build-airflow-base.txt"; fail "the Airflow stand-in did not build"; }
  resolve_config
  say "docker-compose build: the Airflow image (images/airflow/Dockerfile FROM $STANDIN_AIRFLOW)"
  # What `up -d --build` builds, timed on its own (`up` then starts what was just built).
  # Every Airflow service and mlflow build the same image: the first builds it (cold with
  # MLOPS_E2E_NO_CACHE=1), the others reuse its layers.
  { compose build "${NO_CACHE[@]}" airflow-apiserver && compose build; } >"$OUT/build-airflow.txt" 2>&1 \
    || { tail -60 "$OUT/build-airflow.txt"; fail "images/airflow/Dockerfile did not build"; }
}

# --- 2. the resolved compose file ---------------------------------------------------------------
resolve_config() {
  local raw="$OUT/compose.config.yaml"
  "$COMPOSE_BIN" -f docker-compose.yaml -f docker-compose.e2e.yaml -p "$PROJECT" config >"$raw" 2>"$OUT/config.err" \
    || { cat "$OUT/config.err"; fail "docker-compose config rejected docker-compose.yaml + docker-compose.e2e.yaml"; }
  "$PY" - "$raw" "$RESOLVED" <<'PY' || fail "the resolved compose file breaks the network rule (see above)"
import sys

import yaml

config = yaml.safe_load(open(sys.argv[1]))
problems = []
names = set(config["services"])
for name, service in config["services"].items():
    service.pop("ports", None)  # the host network: services listen on the host's ports directly
    if service.get("network_mode") != "host":
        problems.append(f"{name}: network_mode {service.get('network_mode')!r}, not host")
    if "build" in service and service["build"].get("network") != "host":
        problems.append(f"{name}: its build does not use the host network")
    if "networks" in service:
        problems.append(f"{name}: joins networks {service['networks']}")
    hosts = service.get("extra_hosts") or {}
    hosts = hosts if isinstance(hosts, dict) else dict(h.split(":", 1) for h in hosts)
    if any(hosts.get(n) != "127.0.0.1" for n in names):
        problems.append(f"{name}: not every service name maps to 127.0.0.1: {hosts}")
for net, spec in (config.get("networks") or {}).items():
    if not (spec or {}).get("external") or (spec or {}).get("name") != "host":
        problems.append(f"network {net!r} would be created: {spec}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
PY
}

taken_ports() {
  local p
  for p in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; fi
  done
}

check_ports() {  # the stack's host ports must be free; on a shared machine, wait for them (bounded)
  local deadline=$((SECONDS + PORT_WAIT)) taken said=0
  while :; do
    taken=$(taken_ports | xargs)
    [ -z "$taken" ] && return 0
    if [ "$said" = 0 ]; then
      say "host port(s) $taken in use; waiting up to ${PORT_WAIT} s for them to be free:"
      ss -ltnp 2>/dev/null | grep -E ":($(tr ' ' '|' <<<"$taken"))\b" || true
      said=1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "host port(s) $taken in use (the stack runs on the host network and needs ${PORTS[*]} free; see: ss -ltnp)"
    fi
    sleep 10
  done
}

# --- 3. data, up, healthy -----------------------------------------------------------------------
example_data() {
  local start
  start=$(date -u -d "-7 days" +%Y-%m-%d)
  say "example data in dags/data/fraud: $start .. $DAY (the ./dags mount)"
  "$PY" -m airflow_mlops.data.generate --out dags/data/fraud --start "$start" --days 7 >"$OUT/data.txt" 2>&1 \
    || { cat "$OUT/data.txt"; fail "python -m airflow_mlops.data.generate failed"; }
  mkdir -p dags/data/fraud/incoming
  chmod -R a+rX dags/data
}

container_of() { compose ps -q "$1" 2>/dev/null | head -1; }

state_of() {  # "<status> <health> <exit code>" of a service's container
  local id
  id=$(container_of "$1")
  [ -n "$id" ] || { echo "missing - -"; return; }
  "$DOCKER" inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}}' "$id" 2>/dev/null \
    || echo "missing - -"
}

wait_healthy() {
  local deadline=$((SECONDS + UP_TIMEOUT)) s st pending
  while :; do
    pending=()
    for s in "${ONE_SHOT[@]}"; do
      read -r -a st <<<"$(state_of "$s")"
      if [ "${st[0]}" = exited ] && [ "${st[2]}" != 0 ]; then
        service_tail "$s"
        fail "one-shot service $s exited with ${st[2]}"
      fi
      [ "${st[0]}" = exited ] || pending+=("$s:${st[0]}")
    done
    for s in "${LONG_RUNNING[@]}"; do
      read -r -a st <<<"$(state_of "$s")"
      if [ "${st[0]}" = exited ] || [ "${st[0]}" = dead ]; then
        service_tail "$s"
        fail "service $s stopped (exit code ${st[2]})"
      fi
      if [ "${st[1]}" = unhealthy ]; then
        service_tail "$s"
        fail "service $s is unhealthy"
      fi
      [ "${st[1]}" = healthy ] || pending+=("$s:${st[0]}/${st[1]}")
    done
    [ "${#pending[@]}" -eq 0 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      for s in "${pending[@]}"; do
        say "--- ${s%%:*} (${s#*:}): last log lines"
        service_tail "${s%%:*}"
      done
      fail "not healthy within ${UP_TIMEOUT} s: ${pending[*]}"
    fi
    sleep 5
  done
}

up() {
  say "up -d (project $PROJECT; compose waits for each service's dependencies)"
  STACK_STARTED=1
  timeout "$UP_TIMEOUT" "$COMPOSE_BIN" -f "$RESOLVED" -p "$PROJECT" up -d --no-build \
    || fail "docker-compose up failed or took over ${UP_TIMEOUT} s"
  say "waiting until every long-running service is healthy (at most ${UP_TIMEOUT} s)"
  wait_healthy
  if [ "$("$DOCKER" network ls -q | sort)" != "$NETWORKS_BEFORE" ]; then
    fail "up created a network: $("$DOCKER" network ls)"
  fi
  say "healthy: ${LONG_RUNNING[*]}; completed: ${ONE_SHOT[*]}; no network created"
}

lifecycle() {
  "$PY" -m scripts.compose_e2e --compose-file "$RESOLVED" --project "$PROJECT" --day "$DAY" \
    --run-timeout "$RUN_TIMEOUT" --s3-user "${MINIO_ROOT_USER:-mlops}" \
    --s3-password "${MINIO_ROOT_PASSWORD:-mlops-secret}" || fail "the lifecycle check failed (see above)"
}

# --- run ---------------------------------------------------------------------------------------
DAY=$(date -u -d "-1 day" +%Y-%m-%d)  # the last closed day: the run's logical date
if [ "$BUILD_ONLY" = 1 ]; then
  timed build build_images  # the caller holds the image lock
  REASON="ok"
  exit 0
fi
mkdir -p "$(dirname "$IMAGES_LOCK")"
exec 8>"$IMAGES_LOCK"
flock 8  # a background build (scripts/build_images.sh) finishes first; then all is cached
timed build build_images
flock -u 8
check_ports
example_data
timed up up
timed lifecycle lifecycle
REASON="ok"
