#!/usr/bin/env bash
# The embedded stack: Airflow standalone (SQLite) + an MLflow server (SQLite, local artifacts),
# all bound to 127.0.0.1, all state under .stack/ (git-ignored). Only processes this script
# started are ever stopped, by the process-group id it recorded.
#
#   scripts/stack.sh demo    init + MLflow + the example training DAG end to end + Airflow UI
#   scripts/stack.sh up      init + MLflow + Airflow standalone (web UI)
#   scripts/stack.sh down    stop what `up`/`demo` started
#   scripts/stack.sh status
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
STACK="$ROOT/.stack"
VENV_BIN="$ROOT/.venv/bin"
MLFLOW_PORT="${MLOPS_MLFLOW_PORT:-5055}"
AIRFLOW_PORT="${MLOPS_AIRFLOW_PORT:-8080}"
# The example data ends yesterday (UTC), so the scheduler's first run of the @daily DAG (the last
# closed day) finds its partition.
DATA_DAYS=7
DATA_START="$(date -u -d "-$DATA_DAYS days" +%Y-%m-%d)"

export AIRFLOW_HOME="$STACK/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW_PORT/execution/"
export AIRFLOW_MLOPS_ARTIFACT_ROOT="$STACK/artifacts"
export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
export GX_ANALYTICS_ENABLED=False
export PATH="$VENV_BIN:$PATH"

say() { printf '\033[1m[stack]\033[0m %s\n' "$*"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop the process group whose leader's pid is in $1
  local f="$1" name="$2"
  if pid_alive "$f"; then
    local pid; pid="$(cat "$f")"
    say "stopping $name (process group $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

wait_http() {  # url seconds name
  for _ in $(seq 1 "$2"); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 1
  done
  say "$3 did not answer on $1 within $2 s; see its log in $STACK/logs"; return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

init() {
  mkdir -p "$STACK/logs" "$STACK/keys" "$STACK/artifacts" "$STACK/mlflow"
  say "example data in dags/data/fraud: reference + daily batches $DATA_START .. yesterday"
  python -m airflow_mlops.data.generate --out "$ROOT/dags/data/fraud" --start "$DATA_START" --days "$DATA_DAYS" > /dev/null
  mkdir -p "$ROOT/dags/data/fraud/incoming"  # watched: a batch dropped here starts a training run
  if [ ! -f "$STACK/keys/signing_key.pem" ]; then
    say "creating the model-signing key pair in .stack/keys (private key mode 0600)"
    python - "$STACK/keys" <<'PY'
import os, sys
from pathlib import Path
from airflow_mlops.security.signing import generate_key_pair
out = Path(sys.argv[1]); private, public = generate_key_pair()
fd = os.open(out / "signing_key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, private); os.close(fd)
(out / "signing_key.pub.pem").write_bytes(public)
PY
  fi
  # Connections come from environment variables (a secrets backend in production); the
  # private key lives only in .stack/keys and in this process environment.
  export AIRFLOW_CONN_MLFLOW_DEFAULT="{\"conn_type\": \"mlflow\", \"host\": \"http://127.0.0.1:$MLFLOW_PORT\"}"
  AIRFLOW_CONN_MLOPS_SIGNING="$(python -c 'import json,sys; print(json.dumps({"conn_type": "mlops_signing", "password": open(sys.argv[1]).read(), "extra": {"public_key": open(sys.argv[2]).read()}}))' "$STACK/keys/signing_key.pem" "$STACK/keys/signing_key.pub.pem")"
  export AIRFLOW_CONN_MLOPS_SIGNING
  if [ ! -f "$AIRFLOW_HOME/airflow.db" ]; then say "initialising Airflow (SQLite) in .stack/airflow"; fi
  airflow db migrate > "$STACK/logs/db-migrate.log" 2>&1 || { tail -20 "$STACK/logs/db-migrate.log"; exit 1; }
}

start_mlflow() {
  if pid_alive "$STACK/mlflow.pid"; then say "MLflow already running on :$MLFLOW_PORT"; return; fi
  port_free "$MLFLOW_PORT" || { say "port $MLFLOW_PORT is taken by another program; set MLOPS_MLFLOW_PORT"; exit 1; }
  say "starting MLflow on http://127.0.0.1:$MLFLOW_PORT"
  setsid mlflow server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --backend-store-uri "sqlite:///$STACK/mlflow/mlflow.db" \
    --artifacts-destination "$STACK/mlflow/artifacts" \
    > "$STACK/logs/mlflow.log" 2>&1 < /dev/null &
  echo $! > "$STACK/mlflow.pid"
  wait_http "http://127.0.0.1:$MLFLOW_PORT/health" 60 MLflow
}

start_airflow() {
  if pid_alive "$STACK/airflow.pid"; then say "Airflow already running on :$AIRFLOW_PORT"; return; fi
  port_free "$AIRFLOW_PORT" || { say "port $AIRFLOW_PORT is taken by another program; set MLOPS_AIRFLOW_PORT"; exit 1; }
  say "starting Airflow standalone on http://127.0.0.1:$AIRFLOW_PORT"
  setsid airflow standalone > "$STACK/logs/airflow.log" 2>&1 < /dev/null &
  echo $! > "$STACK/airflow.pid"
  wait_http "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 120 Airflow
}

where_to_look() {
  local pw_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  local pw="(see $pw_file)"
  [ -f "$pw_file" ] && pw="$(python -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("admin", next(iter(d.values()))))' "$pw_file")"
  cat <<MSG

Where to look:
  Airflow UI : http://127.0.0.1:$AIRFLOW_PORT   (login: admin / $pw)
               DAGs fraud_detector__train and fraud_detector__monitor; Assets
  MLflow UI  : http://127.0.0.1:$MLFLOW_PORT   (Models > fraud-detector; experiment fraud_detector)
  Artifacts  : $STACK/artifacts   (drift reports: */monitor/drift_report.html)
  New data   : drop a batch (parquet, same columns) into dags/data/fraud/incoming/ to train on it
  Stop       : make down
MSG
}

case "${1:-}" in
  up)
    init; start_mlflow; start_airflow; where_to_look ;;
  demo)
    init; start_mlflow; start_airflow
    say "the continuous-training loop, run by the scheduler: train v1, monitor, drift, retrain"
    if ! python "$ROOT/scripts/demo_loop.py" --airflow-url "http://127.0.0.1:$AIRFLOW_PORT" \
        --password-file "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"; then
      say "the loop did not close; task logs: $AIRFLOW_HOME/logs, Airflow: $STACK/logs/airflow.log"; exit 1
    fi
    python "$ROOT/scripts/demo_report.py" --model fraud-detector --alias champion
    where_to_look ;;
  down)
    stop_pidfile "$STACK/airflow.pid" Airflow
    stop_pidfile "$STACK/mlflow.pid" MLflow ;;
  status)
    for s in mlflow airflow; do
      if pid_alive "$STACK/$s.pid"; then echo "$s: running (pid $(cat "$STACK/$s.pid"))"; else echo "$s: stopped"; fi
    done ;;
  *) echo "usage: $0 {demo|up|down|status}" >&2; exit 2 ;;
esac
