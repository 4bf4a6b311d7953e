"""A backfill created with Airflow 3's backfill CLI runs one DAG run per interval, each on its own partition.

Starts a real Airflow (scheduler + dag-processor + api-server, LocalExecutor, SQLite, 127.0.0.1)
on a temp dags folder, creates a backfill over three daily intervals with
``airflow backfill create`` and checks, through the REST API and the artifact store, that each
run's ``data.validate`` snapshot is exactly that day's ``train/<ds>/batch.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, MLflowServer, free_port
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder

pytestmark = pytest.mark.integration

DAG_ID = "fraud_detector__train"
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor")
STARTUP_S = 180
BACKFILL_S = 480


def _backfill_spec(path: Path) -> None:
    """Edit the example spec's text: catch-up on, fast training, failures not retried."""
    spec = path.read_text()
    edits = {
        "catchup: false": "catchup: true",
        "retries: 1,": "retries: 0,",  # a failure shows at once instead of after a 1 min retry
        "epochs: 15,": "epochs: 2,",
    }
    for old, new in edits.items():
        assert old in spec, f"the example spec changed: {old!r} not found in {path}"
        spec = spec.replace(old, new)
    for line in ('schedule: "@daily"', "start_date: 2026-01-01", "{{ ds }}/batch.parquet"):
        assert line in spec, f"the example spec changed: {line!r} not found in {path}"
    path.write_text(spec)


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"({exc})"


class AirflowStack:
    """Airflow components started as separate process groups; stopped by their group ids only."""

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home = home
        self.env = env
        self.url = f"http://127.0.0.1:{port}"
        self.logs = home / "component-logs"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            with open(self.logs / f"{name}.log", "wb") as log:
                self.procs[name] = subprocess.Popen(
                    [AIRFLOW, name],
                    env=self.env,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the process group this test started
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            try:  # the group may still hold children (task supervisors, api workers)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def create_backfill(self, *args: str, attempts: int = 5) -> None:
        """``airflow backfill create``, retried while SQLite reports ``database is locked``.

        The CLI writes the backfill's runs while the scheduler and dag-processor write to the same
        SQLite file; a write that collides fails at once (WAL snapshot), and Airflow then removes
        the partial backfill so that the same command can simply be run again.
        """
        for attempt in range(1, attempts + 1):
            created = self.cli(*args)
            output = created.stdout + created.stderr
            if created.returncode == 0:
                return
            if "database is locked" not in output or attempt == attempts:
                raise AssertionError(
                    f"airflow {' '.join(args)} failed (attempt {attempt}):\n{output[-3000:]}"
                )
            print(f"backfill create hit 'database is locked' (attempt {attempt}); retrying", file=sys.stderr)
            time.sleep(2)

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow components exited: {dead}")

    def api(self, path: str) -> Any:
        # [core] simple_auth_manager_all_admins: the api-server adds an admin token itself.
        with urllib.request.urlopen(f"{self.url}/api/v2/{path}", timeout=20) as resp:
            return json.load(resp)

    def wait_for(self, what: str, seconds: float, probe: Any) -> Any:
        deadline = time.monotonic() + seconds
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = probe()
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(2)
        raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}; last: {last!r}")

    def diagnostics(self) -> str:
        parts = [f"--- {name} (tail) ---\n{_tail(self.logs / f'{name}.log')}" for name in COMPONENTS]
        task_logs = sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
        for path in task_logs[-3:]:
            parts.append(f"--- task log {path.relative_to(self.home)} (tail) ---\n{_tail(path, 3000)}")
        return "\n".join(parts)


@contextmanager
def airflow_stack(tmp: Path, env: dict[str, str]) -> Iterator[AirflowStack]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Unpaused at creation, so the scheduler starts the backfill's runs (it skips runs of
        # paused DAGs, backfill runs included) ...
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # ... but creates no scheduled (catch-up) runs of its own: only the backfill runs exist.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    stack = AirflowStack(Path(env["AIRFLOW_HOME"]), env, port)
    migrate = stack.cli("db", "migrate")
    assert migrate.returncode == 0, (migrate.stdout + migrate.stderr)[-3000:]
    stack.start()
    try:
        yield stack
    except BaseException:
        print(f"Airflow logs under {stack.home}:\n{stack.diagnostics()}", file=sys.stderr)
        raise
    finally:
        stack.stop()


def _frame_digest(path: Path | str) -> str:
    import pandas as pd

    df = pd.read_parquet(path).reset_index(drop=True)
    digest = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def test_backfill_over_three_intervals_reads_each_days_partition(
    tmp_path: Path, mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from airflow_mlops.artifacts import safe_segment, sha256_file

    started = time.monotonic()
    dags = make_dags_folder(tmp_path, example_data, f"fraud-detector-backfill-{secrets.token_hex(4)}")
    _backfill_spec(dags / "specs" / "fraud_detector.yaml")
    env = airflow_env(tmp_path, mlflow_server.url, signing_keys, dags)
    artifact_root = Path(env["AIRFLOW_MLOPS_ARTIFACT_ROOT"]).resolve()

    with airflow_stack(tmp_path, env) as stack:
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
