"""A backfill created with Airflow 3's backfill CLI runs one DAG run per interval, each on its own partition.

Starts a real Airflow (scheduler + dag-processor + api-server, LocalExecutor, SQLite, 127.0.0.1)
on a temp dags folder, creates a backfill over three daily intervals with
``airflow backfill create`` and checks, through the REST API and the artifact store, that each
run's ``data.validate`` snapshot is exactly that day's ``train/<ds>/batch.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.airflow_stack import airflow_stack
from tests.integration.conftest import MLflowServer
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder

pytestmark = pytest.mark.integration

DAG_ID = "fraud_detector__train"
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
STARTUP_S = 180
BACKFILL_S = 480


def _backfill_spec(path: Path) -> None:
    """Edit the example spec's text: catch-up on, fast training, failures not retried."""
    spec = path.read_text()
    edits = {
        "catchup: false": "catchup: true",
        "retries: 1,": "retries: 0,",  # a failure shows at once instead of after a 1 min retry
        "epochs: 15,": "epochs: 2,",
        # After 2 epochs the validation rows sometimes hold no threshold with precision 0.8
        # (the rule then refuses the model) and the holdout precision is lower: this test is about
        # scheduling, not about the example's operating point.
        "threshold: {rule: min_precision, value: 0.8}": "threshold: {rule: best_f1}",
        # After 2 epochs the example's quality floors are not always met (pr_auc 0.297 < 0.3
        # seen on one day): loose floors, so a day's run fails only for a scheduling reason.
        "metrics: {roc_auc: {min: 0.8}, pr_auc: {min: 0.3}, precision: {min: 0.5}}": (
            "metrics: {roc_auc: {min: 0.6}, pr_auc: {min: 0.1}}"
        ),
        "compare_to_champion: {roc_auc: {max_regression: 0.03}}": (
            "compare_to_champion: {roc_auc: {max_regression: 0.2}}"
        ),
    }
    for old, new in edits.items():
        assert old in spec, f"the example spec changed: {old!r} not found in {path}"
        spec = spec.replace(old, new)
    for line in ('time: "@daily"', "start_date: 2026-01-01", "{{ ds }}/batch.parquet"):
        assert line in spec, f"the example spec changed: {line!r} not found in {path}"
    path.write_text(spec)


def _frame_digest(path: Path | str) -> str:
    import pandas as pd

    df = pd.read_parquet(path).reset_index(drop=True)
    digest = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def test_backfill_over_three_intervals_reads_each_days_partition(
    tmp_path: Path, fresh_mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from airflow_mlops.artifacts import safe_segment, sha256_file

    started = time.monotonic()
    dags = make_dags_folder(tmp_path, example_data, f"fraud-detector-backfill-{secrets.token_hex(4)}")
    _backfill_spec(dags / "specs" / "fraud_detector.yaml")
    env = airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags)
    artifact_root = Path(env["AIRFLOW_MLOPS_ARTIFACT_ROOT"]).resolve()

    with airflow_stack(
        tmp_path,
        env,
        # Unpaused at creation, so the scheduler starts the backfill's runs (it skips runs of
        # paused DAGs, backfill runs included) ...
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        # ... but creates no scheduled (catch-up) runs of its own: only the backfill runs exist.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
    ) as stack:
        stack.wait_for("the api-server", STARTUP_S, lambda: stack.api("monitor/health"))
        dag = stack.wait_for(
            f"{DAG_ID} to be parsed and serialized", STARTUP_S, lambda: stack.api(f"dags/{DAG_ID}")
        )
        assert dag["is_paused"] is False, dag

        # One run at a time: a backfill ignores the DAG's max_active_runs=1 (its own default is
        # 10), and concurrent runs would race on the champion they compare against.
        create = ["backfill", "create", "--dag-id", DAG_ID, "--from-date", DAYS[0], "--to-date", DAYS[-1]]
        stack.create_backfill(*create, "--max-active-runs", "1")

        def backfill_done() -> dict[str, Any] | None:
            backfills = stack.api(f"backfills?dag_id={DAG_ID}")["backfills"]
            assert len(backfills) == 1, backfills
            return backfills[0] if backfills[0]["completed_at"] else None

        backfill = stack.wait_for("the backfill to complete", BACKFILL_S, backfill_done)
        runs = stack.api(f"dags/{DAG_ID}/dagRuns?limit=100&order_by=logical_date")["dag_runs"]
        summary = [(r["dag_run_id"], r["run_type"], r["state"]) for r in runs]

        # Exactly the backfill's three runs, all successful, one per daily interval.
        assert [r["run_type"] for r in runs] == ["backfill"] * 3, summary
        assert [r["state"] for r in runs] == ["success"] * 3, summary
        assert [r["triggered_by"] for r in runs] == ["backfill"] * 3, summary
        assert [r["logical_date"][:10] for r in runs] == DAYS, summary
        assert [r["data_interval_start"][:10] for r in runs] == DAYS, summary
        # The factory makes "@daily" a data-interval timetable: each run covers one whole day,
        # [day, day + 1), and {{ ds }} is the day it covers.
        for day, run in zip(DAYS, runs, strict=True):
            next_day = f"2026-01-{int(day[-2:]) + 1:02d}"
            assert run["data_interval_end"][:10] == next_day, run
        assert backfill["from_date"][:10] == DAYS[0] and backfill["to_date"][:10] == DAYS[-1], backfill

        digests = []
        for day, run in zip(DAYS, runs, strict=True):
            run_id = urllib.parse.quote(run["dag_run_id"], safe="")
            xcom = stack.api(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/data.validate/xcomEntries/data")
            ref = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])

            # The templated source rendered to this run's own partition ...
            partition = (example_data / "train" / day / "batch.parquet").resolve()
            assert Path(ref["metadata"]["source"]).resolve() == partition, ref
            # ... and the snapshot lives under this run's prefix, pinned by its sha256 ...
            snapshot = Path(ref["uri"])
            run_prefix = artifact_root / "fraud_detector" / safe_segment(run["dag_run_id"]) / "validate"
            assert snapshot == run_prefix / "batch.parquet", ref
            assert sha256_file(snapshot) == ref["sha256"], ref
            # ... holding exactly that day's rows.
            digest = _frame_digest(snapshot)
            assert digest == _frame_digest(partition), f"{snapshot} differs from {partition}"
            assert ref["metadata"]["rows"] > 0, ref
            digests.append(digest)

        assert len(set(digests)) == 3, "two runs snapshotted the same data"
        runs_dirs = sorted(p.name for p in (artifact_root / "fraud_detector").iterdir())
        assert runs_dirs == sorted(safe_segment(r["dag_run_id"]) for r in runs), runs_dirs

    print(f"backfill test took {time.monotonic() - started:.0f}s")
