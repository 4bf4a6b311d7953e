#!/usr/bin/env bash
# A private Docker engine for the test suite and the compose check, and the local base images
# they build on (no registry image can be pulled here).
#
#   scripts/docker_engine.sh start    install docker.io + debootstrap if missing, start a private
#                                     dockerd (its own socket, data root, exec root and pid file),
#                                     print  export DOCKER_HOST=unix://...
#   scripts/docker_engine.sh bases    build the base images once per machine, cached by a content
#                                     hash of their inputs; prints the tags as NAME=TAG lines
#   scripts/docker_engine.sh stop     stop the dockerd this script started, by its pid file
#   scripts/docker_engine.sh status   running or not, and its DOCKER_HOST
#
# Network rule: the engine never creates a bridge (--bridge=none, no iptables, no masquerading);
# builds and containers use the host network, and nothing in them talks to an address outside
# 127.0.0.0/8 except the builds' package downloads (the same package index and Debian archive the
# host uses, through the host's CA bundle).
#
# Base images (tags carry the first 16 hex digits of the hash of their inputs, so a second run
# reuses them and a change to any input builds a new one):
#   airflow-mlops-base/debian      debootstrap bookworm (minbase) + python3.11, venv, pip, curl,
#                                  tini and the host's CA bundle; the host's apt sources
#   airflow-mlops-base/torch-cpu   the above + the CPU build of torch 2.13.0 (the wheel pip uses
#                                  here), for images/trainer (--build-arg TORCH_IMAGE=...)
#
# Settings (environment): MLOPS_DOCKER_DIR (data root and state; default
# /var/lib/airflow-mlops-docker, kept between runs so images stay cached), MLOPS_DOCKER_RUN (exec
# root and socket; default /run/airflow-mlops-docker), MLOPS_TORCH_SPEC (default torch==2.13.0).
set -euo pipefail

DIR=${MLOPS_DOCKER_DIR:-/var/lib/airflow-mlops-docker}
RUN=${MLOPS_DOCKER_RUN:-/run/airflow-mlops-docker}
SOCK="$RUN/docker.sock"
PIDFILE="$RUN/dockerd.pid"
LOG="$DIR/dockerd.log"
export DOCKER_HOST="unix://$SOCK"
TORCH_SPEC=${MLOPS_TORCH_SPEC:-torch==2.13.0}
BASE_PACKAGES="python3.11,python3.11-venv,python3-pip,python3-venv,ca-certificates,curl,tini,procps"
HERE="$(cd "$(dirname "$0")/.." && pwd)"

SCRATCH=()
cleanup() { local d; for d in "${SCRATCH[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

log() { echo "docker_engine: $*" >&2; }
die() { log "$*"; exit 1; }

docker_cli() {
  # Debian's client; a newer client elsewhere on PATH negotiates down to the engine's API.
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

install_missing() {
  local missing=()
  [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "not root: run  sudo apt-get install -y ${missing[*]}  and retry"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  install_missing
  mkdir -p "$DIR/data" "$RUN"
  if running; then
    log "already running (pid $(cat "$PIDFILE"))"
  else
    [ "$(id -u)" -eq 0 ] || die "a private dockerd needs root"
    rm -f "$PIDFILE" "$SOCK"
    log "starting dockerd (data root $DIR/data, socket $SOCK)"
    # setsid: its own session, so it outlives nothing but is stopped by pid only (stop).
    setsid /usr/sbin/dockerd \
      --host "$DOCKER_HOST" --data-root "$DIR/data" --exec-root "$RUN/exec" --pidfile "$PIDFILE" \
      --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
      --storage-driver "${MLOPS_DOCKER_STORAGE:-overlay2}" \
      --log-level warn >>"$LOG" 2>&1 < /dev/null &
    local i
    for i in $(seq 1 120); do
      docker_cli info >/dev/null 2>&1 && break
      if ! kill -0 $! 2>/dev/null; then tail -20 "$LOG" >&2; die "dockerd exited (log: $LOG)"; fi
      sleep 0.5
    done
    docker_cli info >/dev/null 2>&1 || { tail -20 "$LOG" >&2; die "dockerd did not answer in 60 s (log: $LOG)"; }
  fi
  echo "export DOCKER_HOST=$DOCKER_HOST"
}

stop() {
  if ! running; then log "not running"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  # Containers this engine runs are stopped with it (their own shims exit with dockerd's
  # containerd); no container of another engine is touched.
  kill -TERM "$pid"
  local i
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "dockerd $pid did not stop in 30 s: SIGKILL"; kill -KILL "$pid"; fi
  log "stopped (pid $pid)"
}

status() {
  if running; then echo "running pid=$(cat "$PIDFILE") DOCKER_HOST=$DOCKER_HOST"; else echo "not running"; exit 1; fi
}

hash_of() { sha256sum | cut -c1-16; }

have_image() { docker_cli image inspect "$1" >/dev/null 2>&1; }

apt_sources() {
  # The host's Debian sources (deb822 or one-line), to reach the same archive from the image.
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && grep -q debian "$f" && case "$f" in *disabled*) ;; *) echo "$f";; esac
  done
}

debian_mirror() {
  # The first Debian archive the host's apt uses (deb822 "URIs:" or a one-line "deb" entry).
  local f uri
  for f in $(apt_sources); do
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  die "no Debian archive in the host's apt sources"
}

base_debian() {
  local ca=/etc/ssl/certs/ca-certificates.crt mirror inputs tag
  [ -f "$ca" ] || die "no CA bundle at $ca"
  mirror=$(debian_mirror)
  inputs=$({ echo "v1 bookworm minbase $BASE_PACKAGES $mirror"; cat "$ca"; cat $(apt_sources); } | hash_of)
  tag="airflow-mlops-base/debian:$inputs"
  if have_image "$tag"; then echo "BASE_IMAGE=$tag"; return; fi
  local root; root=$(mktemp -d "$DIR/rootfs.XXXXXX"); SCRATCH+=("$root")
  log "debootstrap bookworm ($BASE_PACKAGES) from the host's Debian archive"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" "$mirror" >"$DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/debootstrap.log" >&2; die "debootstrap failed (log: $DIR/debootstrap.log)"; }
  cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
  rm -f "$root/etc/apt/sources.list"
  for f in $(apt_sources); do cp "$f" "$root/etc/apt/sources.list.d/"; done
  ln -sf python3 "$root/usr/bin/python"
  chroot "$root" apt-get clean
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
  # pip through the host's CA bundle, Debian's system python allowed (images are single-purpose).
  tar -C "$root" -c . | docker_cli import \
    -c 'ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  echo "BASE_IMAGE=$tag"
}

torch_wheel() {
  # The CPU wheel pip takes here (find-links), or one pip downloads into a scratch folder.
  local out=$1 version=${TORCH_SPEC#torch==}
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$out" "$TORCH_SPEC" >&2 \
    || die "could not get a wheel for $TORCH_SPEC"
  ls "$out"/torch-"$version"*.whl | head -1
}

base_torch() {
  local base=$1 ctx wheel inputs tag
  ctx=$(mktemp -d "$DIR/ctx.XXXXXX"); SCRATCH+=("$ctx")
  wheel=$(torch_wheel "$ctx")
  inputs=$({ echo "v1 $base"; sha256sum "$wheel" | cut -d' ' -f1; } | hash_of)
  tag="airflow-mlops-base/torch-cpu:$inputs"
  if have_image "$tag"; then echo "TORCH_IMAGE=$tag"; return; fi
  log "building $tag ($(basename "$wheel"))"
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY $(basename "$wheel") /tmp/
RUN python -m pip install --no-cache-dir /tmp/$(basename "$wheel") \\
 && rm /tmp/*.whl && python -c "import torch; print('torch', torch.__version__)"
EOF
  docker_cli build -q --force-rm --network host -t "$tag" "$ctx" >/dev/null
  echo "TORCH_IMAGE=$tag"
}

bases() {
  running || die "the engine is not running: scripts/docker_engine.sh start"
  local base
  base=$(base_debian); echo "$base"
  base_torch "${base#BASE_IMAGE=}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  bases) bases ;;
  *) echo "usage: $0 start|bases|stop|status" >&2; exit 2 ;;
esac
