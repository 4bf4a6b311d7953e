"""The example lifecycle on the running compose stack (the lifecycle step of scripts/compose_e2e.sh).

Run from the repository root with the project's virtual environment, once the stack is healthy::

    .venv/bin/python -m scripts.compose_e2e --compose-file FILE --project NAME --day 2026-12-05

1. logs in to the api-server as the stack's users do: the password Airflow's SimpleAuthManager
   generated in the api-server container, exchanged for a JWT at ``POST /auth/token``;
2. waits until ``fraud_detector__train`` is parsed, triggers it for ``--day`` (still paused, so the
   scheduler does not start a second run for the same day), unpauses it and waits for the run;
3. checks that every task that ran was executed by the Celery worker (its log names each one);
4. checks in MLflow that the champion alias points at a version whose gates passed and whose
   signature verifies with the public key from the ``signing-key`` volume
   (``fetch_verified_version``), and that the artifacts are in the S3 store.

Prints each step; exits non-zero, with the reason and the task states, when a check fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.demo_loop import AirflowAPI, finished_run, wait_for

AIRFLOW_URL = "http://127.0.0.1:8080"
MLFLOW_URL = "http://127.0.0.1:5000"
S3_URL = "http://127.0.0.1:9000"
PIPELINE = "fraud_detector"
TRAIN_DAG = f"{PIPELINE}__train"
MODEL = "fraud-detector"
ALIAS = "champion"
PASSWORDS_FILE = "/opt/airflow/simple_auth_manager_passwords.json.generated"
PUBLIC_KEY_FILE = "/opt/airflow/signing/signing_key.pub.pem"


class CheckFailed(RuntimeError):
    """A lifecycle check failed; the message says which and what was seen."""


def say(message: str) -> None:
    print(f"[lifecycle] {message}", flush=True)


class Compose:
    """``docker-compose -f FILE -p PROJECT`` (Debian's docker-compose 1.29)."""

    def __init__(self, file: str, project: str, binary: str = "/usr/bin/docker-compose") -> None:
        self.args = [binary, "-f", file, "-p", project]

    def run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [*self.args, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise CheckFailed(f"docker-compose {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def read_file(self, service: str, path: str) -> str:
        return self.run("exec", "-T", service, "cat", path)


def login(compose: Compose) -> AirflowAPI:
    passwords = wait_for(
        "the api-server's generated passwords",
        120,
        lambda: json.loads(compose.read_file("airflow-apiserver", PASSWORDS_FILE)),
    )
    username = "admin" if "admin" in passwords else next(iter(passwords))
    api = wait_for(
        f"a JWT for {username} from POST /auth/token",
        120,
        lambda: AirflowAPI.login(AIRFLOW_URL, username, passwords[username]),
    )
    say(f"logged in to {AIRFLOW_URL} as {username} (SimpleAuthManager's generated password, JWT)")
    return api


def run_train_dag(api: AirflowAPI, day: dt.date, timeout: float) -> tuple[str, dict[str, Any]]:
    dag = wait_for(
        f"{TRAIN_DAG} to be parsed by the dag-processor", 600, lambda: api.get(f"dags/{TRAIN_DAG}")
    )
    if not dag.get("is_paused", True):
        raise CheckFailed(f"{TRAIN_DAG} is already unpaused: not a fresh stack")
    logical_date = dt.datetime.combine(day, dt.time(), dt.UTC)
    # Triggered while paused: the scheduler then finds this run for the last closed day and
    # does not create its own for the same day when the DAG is unpaused.
    run_id = api.trigger(TRAIN_DAG, logical_date=logical_date, note="compose e2e")
    api.unpause(TRAIN_DAG)
    say(f"triggered {TRAIN_DAG} for {day}: {run_id}; waiting for it (at most {timeout:.0f} s)")
    started = time.monotonic()
    run = finished_run(api, TRAIN_DAG, run_id, timeout)
    say(f"{TRAIN_DAG} {run_id}: {run['state']} after {time.monotonic() - started:.0f} s")
    return run_id, run


def task_instances(api: AirflowAPI, run_id: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    path = f"dags/{TRAIN_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    return list(api.get(path)["task_instances"])


def check_celery_worker(compose: Compose, ran: list[str]) -> None:
    """Every task that ran is named in the Celery worker's log ("Executing workload in Celery")."""
    log = compose.run("logs", "--no-color", "airflow-worker", timeout=120)
    executed = set(re.findall(r"Executing workload in Celery: .*?task_id=([\w.]+)/attempt=", log))
    missing = sorted(set(ran) - executed)
    if missing:
        raise CheckFailed(
            f"tasks the Celery worker's log does not name: {missing} (it names {sorted(executed)})"
        )
    say(f"all {len(ran)} tasks that ran were executed by the Celery worker")


def check_champion(compose: Compose, workdir: Path) -> str:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import TAG_GATES, champion_version, fetch_verified_version

    # MLflow 3.17's server advertises presigned downloads for its S3 artifacts, and those URLs name
    # the S3 host the server uses (http://minio:9000): only containers resolve it. A client
    # outside the stack's network downloads through the server instead (docs/compose.md).
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    public_key = compose.read_file("airflow-worker", PUBLIC_KEY_FILE).encode()
    if b"PUBLIC KEY" not in public_key:
        raise CheckFailed(f"no public key in the signing-key volume ({PUBLIC_KEY_FILE})")
    client = MlflowClient(tracking_uri=MLFLOW_URL, registry_uri=MLFLOW_URL)
    champion = champion_version(client, MODEL, ALIAS, pipeline=PIPELINE)
    if champion is None:
        raise CheckFailed(f"MLflow has no {MODEL}@{ALIAS}")
    if (champion.tags or {}).get(TAG_GATES) != "passed":
        raise CheckFailed(f"{MODEL}@{ALIAS} v{champion.version}: gates tag {champion.tags.get(TAG_GATES)!r}")
    model_dir, _ = fetch_verified_version(client, MODEL, champion.version, public_key, workdir / "champion")
    if not (model_dir / "MLmodel").is_file():
        raise CheckFailed(f"the verified download of v{champion.version} has no MLmodel: {model_dir}")
    say(
        f"MLflow {MODEL}@{ALIAS} = v{champion.version}: gates passed, signature verified with the "
        "public key from the signing-key volume"
    )
    return str(champion.version)


def check_s3(env: dict[str, str]) -> None:
    """MLflow's artifacts (bucket mlflow) and the pipeline's (mlops-artifacts) are in the S3 store."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=S3_URL,
        aws_access_key_id=env["user"],
        aws_secret_access_key=env["password"],
        region_name="us-east-1",
    )

    def keys(bucket: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    mlflow_keys, store_keys = keys("mlflow"), keys("mlops-artifacts")
    if not any(k.endswith("/signature/model.sig") for k in mlflow_keys):
        raise CheckFailed(f"no signed model in s3://mlflow: {mlflow_keys[:20]}")
    if not any(k.endswith("evaluation.json") for k in store_keys):
        raise CheckFailed(f"no evaluation.json in s3://mlops-artifacts: {store_keys[:20]}")
    say(f"S3: {len(mlflow_keys)} objects in s3://mlflow, {len(store_keys)} in s3://mlops-artifacts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose-file", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--day", type=dt.date.fromisoformat, required=True, help="logical date of the run")
    parser.add_argument("--run-timeout", type=float, default=1500)
    parser.add_argument("--s3-user", default="mlops")
    parser.add_argument("--s3-password", default="mlops-secret")
    args = parser.parse_args(argv)
    compose = Compose(args.compose_file, args.project)
    try:
        api = login(compose)
        run_id, run = run_train_dag(api, args.day, args.run_timeout)
        items = task_instances(api, run_id)
        states = {t["task_id"]: t["state"] for t in items}
        if run["state"] != "success":
            raise CheckFailed(f"{TRAIN_DAG} {run_id} ended {run['state']}: {states}")
        ran = sorted(t["task_id"] for t in items if t["state"] == "success")
        if not {"data.validate", "training.fit", "release.promote"} <= set(ran):
            raise CheckFailed(f"the run succeeded without training and promoting: {states}")
        check_celery_worker(compose, ran)
        with tempfile.TemporaryDirectory(prefix="compose-e2e-") as tmp:
            check_champion(compose, Path(tmp))
        check_s3({"user": args.s3_user, "password": args.s3_password})
    except (CheckFailed, TimeoutError) as exc:
        print(f"[lifecycle] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
