"""The example lifecycle on the distributed topology, run for real without Docker.

Postgres and Redis from the distribution's packages, Airflow with the CeleryExecutor (api-server,
scheduler, dag-processor, triggerer, Celery worker as separate processes, metadata and Celery
results on Postgres), MLflow on Postgres with its artifacts in S3 (moto), the artifact store on
S3: the example training DAG is triggered through the REST API and must end with a signed champion
whose every task ran on the Celery worker. See tests/integration/distributed_stack.py.

Where a program is missing this test fails (never skips), saying that scripts/system_deps.sh
installs it.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest

from tests.integration.distributed_stack import (
    ARTIFACT_ROOT,
    BUCKET,
    StackError,
    distributed_stack,
    example_setup,
    postgres_bin,
    redis_server,
    run_example,
)

pytestmark = pytest.mark.integration

MODEL = "fraud-detector-distributed"
TRAIN = "fraud_detector__train"


def test_missing_programs_fail_with_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"scripts/system_deps\.sh installs it"):
        postgres_bin(tmp_path)
    with pytest.raises(StackError, match=r"scripts/system_deps\.sh installs it"):
        redis_server(tmp_path / "redis-server")
    # A folder without initdb beside postgres is no installation either.
    (tmp_path / "15" / "bin").mkdir(parents=True)
    (tmp_path / "15" / "bin" / "postgres").write_text("")
    with pytest.raises(StackError, match="Postgres is not installed"):
        postgres_bin(tmp_path)


def _s3_keys(client: object, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_example_lifecycle_on_celery_postgres_and_s3(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import TAG_GATES, champion_version, fetch_verified_version
    from scripts.demo_loop import AirflowAPI

    dags, connections, public_key = example_setup(tmp_path, model=MODEL)
    with distributed_stack(tmp_path / "stack", dags=dags, connections=connections) as stack:
        # The topology is the one asked for, not a fallback.
        assert stack.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert stack.env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:")

        run_id, run = run_example(stack, day=dt.date(2026, 1, 2))
        api = AirflowAPI(stack.airflow.url)
        items = api.get(f"dags/{TRAIN}/dagRuns/{_quote(run_id)}/taskInstances?limit=100")["task_instances"]
        states = {t["task_id"]: t["state"] for t in items}
        assert run["state"] == "success", (states, stack.diagnostics())

        # Every task that ran was executed by the Celery worker: the worker's log names each one,
        # and Celery's result backend (a table in the Postgres metadata DB) holds one successful
        # result per task run.
        ran = sorted(t["task_id"] for t in items if t["state"] == "success")
        assert {"data.validate", "training.fit", "release.promote"} <= set(ran), states
        worker_log = (stack.airflow.logs / "celery-worker.log").read_text(errors="replace")
        executed = set(re.findall(r"Executing workload in Celery: .*?task_id=([\w.]+)/attempt=", worker_log))
        assert set(ran) <= executed, sorted(set(ran) - executed)
        assert {t["queue"] for t in items if t["state"] == "success"} == {"default"}
        assert all(t["hostname"] for t in items if t["state"] == "success"), items
        # The worker writes a task's final Celery result just after Airflow records its state: on a
        # busy machine the last one may still read STARTED for a moment. Wait for it (bounded).
        deadline = time.monotonic() + 120
        while True:
            conn = stack.pg_connect("airflow")
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
                    results = dict(cur.fetchall())
            finally:
                conn.close()
            if set(results) == {"SUCCESS"} or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert results.get("SUCCESS", 0) >= len(ran), results
        assert set(results) == {"SUCCESS"}, results

        # A signed champion in MLflow (backend store Postgres): the signature of the exact
        # registered artifact verifies with the public key, and its gates passed.
        client = MlflowClient(tracking_uri=stack.mlflow_url)
        champion = champion_version(client, MODEL, "champion")
        assert champion is not None and champion.version == "1"
        assert champion.tags[TAG_GATES] == "passed"
        model_dir, _ = fetch_verified_version(client, MODEL, champion.version, public_key, tmp_path / "check")
        assert (model_dir / "MLmodel").is_file()

        # MLflow's artifacts and the pipeline's artifact store both live in S3.
        s3 = stack.s3_client()
        mlflow_keys = _s3_keys(s3, "mlflow/")
        assert any(k.endswith("/model/MLmodel") for k in mlflow_keys), mlflow_keys[:20]
        assert any(k.endswith("/signature/model.sig") for k in mlflow_keys), mlflow_keys[:20]
        store_prefix = ARTIFACT_ROOT.removeprefix(f"s3://{BUCKET}/")
        store_keys = _s3_keys(s3, f"{store_prefix}/fraud_detector/")
        assert any(k.endswith("screen_summary.json") for k in store_keys), store_keys[:20]
        assert any(k.endswith("evaluation.json") for k in store_keys), store_keys[:20]
        # Nothing fell back to a local artifact directory.
        assert not (tmp_path / "stack" / "airflow" / "mlops-artifacts").exists()

    # Every process the stack started is gone (stopped by its process group).
    for service in stack.services.started:
        assert service.proc.poll() is not None, service.name
    for proc in stack.airflow.procs.values():
        assert proc.poll() is not None


def _quote(value: str) -> str:
    import urllib.parse

    return urllib.parse.quote(value, safe="")
