#!/usr/bin/env bash
# Every image the test suite runs, built once (or found in the cache) on the private engine:
# the base images (scripts/docker_engine.sh bases), the trainer image on the CPU torch base, and
# the compose check's stand-ins and Airflow image (scripts/compose_e2e.sh --build-only).
#
# Under a lock: scripts/run_tests.sh starts this in the background while lint and the unit tests
# run (the builds are mostly downloads), and the tests that need an image take the same lock, so
# they wait for a build in progress instead of repeating it, and then find every layer cached.
#   scripts/build_images.sh            all of them
#   scripts/build_images.sh trainer    bases + the trainer image only
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DIR=${MLOPS_DOCKER_DIR:-/var/lib/airflow-mlops-docker}
TRAINER_TAG=${MLOPS_TRAINER_TAG:-airflow-mlops/trainer:test}
DOCKER=/usr/bin/docker
what=${1:-all}

eval "$(bash scripts/docker_engine.sh start)"
mkdir -p "$DIR"
exec 9>"$DIR/images.lock"
flock 9
start=$SECONDS
bases=$(bash scripts/docker_engine.sh bases)
torch=$(sed -n 's/^TORCH_IMAGE=//p' <<<"$bases")
echo "build_images: bases ready ($((SECONDS - start)) s)"
t=$SECONDS
"$DOCKER" build -q --force-rm --network host --build-arg "TORCH_IMAGE=$torch" -f images/trainer/Dockerfile \
  -t "$TRAINER_TAG" . >/dev/null
echo "build_images: $TRAINER_TAG ($((SECONDS - t)) s)"
if [ "$what" = all ]; then
  t=$SECONDS
  bash scripts/compose_e2e.sh --build-only
  echo "build_images: compose images ($((SECONDS - t)) s)"
fi
echo "build_images: done in $((SECONDS - start)) s"
