#!/usr/bin/env bash
# What the official image's /entrypoint does with its arguments (the parts the compose stack
# uses): `airflow ARGS` and bare `ARGS` run airflow, `bash ARGS` / `python ARGS` run as given.
set -euo pipefail
umask 0002
case "${1:-}" in
  bash | python) exec "$@" ;;
  airflow) shift; exec airflow "$@" ;;
  *) exec airflow "$@" ;;
esac
