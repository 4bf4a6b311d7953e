#!/usr/bin/env bash
# Runs once, when the postgres-data volume is first initialised (docker-entrypoint-initdb.d):
# MLflow gets its own database and user beside Airflow's, so neither can touch the other's tables.
set -euo pipefail
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set (docker-compose.yaml sets it)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE USER mlflow WITH PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
