"""operators/retrain_gate.py: the retrain gate on a run's triggering asset events, without an Airflow
server; and its place in the training DAG (first, only with ``schedule.policy``)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.operators.retrain_gate import RetrainGateOperator

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


class TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def gate(tmp_path: Path, **policy: Any) -> RetrainGateOperator:
    return RetrainGateOperator(
        task_id="gate",
        pipeline="p",
        artifact_root=str(tmp_path / "artifacts"),
        allowed_roots=[str(tmp_path)],
        policy=policy,
        model_name="p-model",
    )


def context(
    run_id: str, events: dict[str, list[dict[str, Any]]], run_type: str = "asset_triggered"
) -> dict[str, Any]:
    from airflow.sdk import Asset

    triggering = {
        Asset(uri): [SimpleNamespace(extra=e["extra"], timestamp=e["at"]) for e in items]
        for uri, items in events.items()
    }
    return {
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id="p__train"),
        "dag_run": SimpleNamespace(run_type=SimpleNamespace(value=run_type)),
        "triggering_asset_events": triggering,
        "ti": TI(),
    }


def drift_events(n: int, start: int = 0) -> dict[str, list[dict[str, Any]]]:
    return {
        "x-mlops://p/drift": [
            {"extra": {"window": f"/w/{i}.parquet"}, "at": T0 + dt.timedelta(seconds=i)}
            for i in range(start, start + n)
        ]
    }


def test_an_admitted_run_goes_on_and_says_what_was_suppressed(tmp_path: Path) -> None:
    op = gate(tmp_path, debounce=60)
    out = op.execute(context("r1", drift_events(3)))["decision"]
    assert out["admitted"] and out["trigger"] == "drift"
    assert out["counts"] == {"admitted": 1, "debounced": 2}
    assert [s["code"] for s in out["suppressed"]] == ["debounced", "debounced"]
    assert len(out["admitted_events"]) == 1 and len(out["admitted_events"][0]) == 64
    ledger = json.loads(Path(out["ledger"]).read_text())
    assert out["ledger"] == str(tmp_path / "artifacts" / "p" / "_state" / "retrain-ledger.json")
    assert set(ledger["runs"]) == {"r1"} and len(ledger["events"]) == 3


def test_a_run_with_nothing_admitted_is_skipped_with_its_reasons_in_xcom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    op = gate(tmp_path, cooldown=3600)
    op.execute(context("r1", drift_events(1)))
    ctx = context("r2", drift_events(2, start=10))
    capsys.readouterr()
    with pytest.raises(AirflowSkipException, match="all 2 event"):
        op.execute(ctx)
    decision = ctx["ti"].pushed["decision"]
    assert decision["admitted"] is False and decision["counts"] == {"cooldown": 2}
    assert all(s["reason"].startswith("cooldown: the last retrain (run r1") for s in decision["suppressed"])
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("Suppressed drift event") == 2  # Airflow logs to stdout


def test_a_retried_gate_returns_its_recorded_decision(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    op = gate(tmp_path, max_per_day=1)
    op.execute(context("r1", drift_events(1)))
    with pytest.raises(AirflowSkipException):
        op.execute(context("r2", drift_events(1, start=5)))
    ledger = Path(tmp_path / "artifacts" / "p" / "_state" / "retrain-ledger.json")
    before = ledger.read_bytes()
    with pytest.raises(AirflowSkipException):  # try 2 of r2: the same decision, nothing rewritten
        op.execute(context("r2", drift_events(1, start=5)))
    assert ledger.read_bytes() == before


def test_scheduled_and_manual_runs_are_admitted(tmp_path: Path) -> None:
    op = gate(tmp_path, cooldown=3600)
    assert op.execute(context("s", {}, run_type="scheduled"))["decision"]["trigger"] == "schedule"
    assert op.execute(context("m", {}, run_type="manual"))["decision"]["trigger"] == "manual"


def test_new_data_rows_are_read_from_the_event_or_counted_in_its_files(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    batch = tmp_path / "in" / "b1.csv"
    batch.parent.mkdir()
    batch.write_text("a,label\n" + "".join(f"{i},0\n" for i in range(30)))
    op = gate(tmp_path, min_new_rows=50)
    counted = {
        "x-mlops://p/new_data": [{"extra": {"payload": {"batch_id": "b1", "data": [str(batch)]}}, "at": T0}]
    }
    ctx = context("r1", counted)
    with pytest.raises(AirflowSkipException):
        op.execute(ctx)
    assert "30 of 50 new rows" in ctx["ti"].pushed["decision"]["suppressed"][0]["reason"]
    declared = {"x-mlops://p/new_data": [{"extra": {"batch_id": "b2", "rows": 20}, "at": T0}]}
    assert op.execute(context("r2", declared))["decision"]["admitted"]
    unreadable = {
        "x-mlops://p/new_data": [{"extra": {"batch_id": "b3", "data": ["/elsewhere/x.csv"]}, "at": T0}]
    }
    ctx = context("r3", unreadable)
    with pytest.raises(AirflowSkipException):
        op.execute(ctx)
    assert ctx["ti"].pushed["decision"]["counts"] == {"no_row_count": 1}


# --- forcing through a human approval ------------------------------------------------------------


class PullingTI(TI):
    def __init__(self, gate_output: Any) -> None:
        super().__init__()
        self.gate_output = gate_output

    def xcom_pull(self, task_ids: str) -> Any:
        assert task_ids == "retrain.gate"
        return self.gate_output


def force_op() -> Any:
    from airflow_mlops.operators.retrain_gate import RetrainForceOperator

    return RetrainForceOperator(task_id="force", gate_task_id="retrain.gate")


def test_with_force_approval_a_held_back_run_waits_for_a_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk.exceptions import AirflowSkipException

    op = gate(tmp_path, cooldown=3600)
    op.force_approval = True
    op.execute(context("r1", drift_events(1)))
    held = op.execute(context("r2", drift_events(1, start=5)))["decision"]  # not skipped: a person decides
    assert held["admitted"] is False and held["forceable"] is True

    asked: list[str] = []
    monkeypatch.setattr(ApprovalOperator, "execute", lambda self, ctx: asked.append(ctx["run_id"]))
    force = force_op()
    force.execute({"run_id": "r2", "ti": PullingTI({"decision": held})})
    assert asked == ["r2"]
    # an admitted run passes without a request; a decision that cannot be forced skips
    assert force.execute({"run_id": "r1", "ti": PullingTI({"decision": {"admitted": True}})}) is None
    with pytest.raises(AirflowSkipException):
        force.execute(
            {"run_id": "r3", "ti": PullingTI({"decision": {"admitted": False, "forceable": False}})}
        )
    with pytest.raises(AirflowSkipException):
        force.execute({"run_id": "r4", "ti": PullingTI(None)})  # no decision: fail closed
    assert asked == ["r2"]

    ledger = Path(held["ledger"])
    before = json.loads(ledger.read_text())
    answer = {"params_input": {}, "responded_at": T0}
    ctx = {"run_id": "r2", "ti": PullingTI({"decision": held}), "task": force}
    force.execute_complete(
        ctx, {**answer, "chosen_options": ["Reject"], "responded_by_user": {"id": "bob", "name": "Bob"}}
    )
    assert json.loads(ledger.read_text()) == before  # a rejection records nothing: the run is skipped
    force.execute_complete(
        ctx, {**answer, "chosen_options": ["Approve"], "responded_by_user": {"id": "alice", "name": "Alice"}}
    )
    after = json.loads(ledger.read_text())
    assert after["runs"]["r2"]["forced_by"] == "Alice" and after["runs"]["r2"]["admitted"] is True
    assert [r["run_id"] for r in after["retrains"]] == ["r1", "r2"]


# --- the gate in the training DAG ----------------------------------------------------------------


def test_the_gate_is_the_training_dags_first_task_only_with_a_policy() -> None:
    from airflow_mlops.factory import build_dags
    from airflow_mlops.spec.loader import load_spec, load_spec_text

    text = EXAMPLE.read_text()
    assert "events: [drift, new_data]" in text
    with_policy = text.replace(
        "events: [drift, new_data]",
        "events: [drift, new_data]\n  policy: {cooldown: 6h, debounce: 10m, max_per_day: 2, min_new_rows: 500}",
    )
    spec = load_spec_text(with_policy, str(EXAMPLE))
    dag = build_dags(spec, spec_path=EXAMPLE)["fraud_detector__train"]
    gate_task = dag.get_task("retrain.gate")
    assert isinstance(gate_task, RetrainGateOperator)
    assert gate_task.downstream_task_ids == {"data.validate"} and not gate_task.upstream_task_ids
    assert gate_task.policy["cooldown"] == 21600 and gate_task.policy["min_new_rows"] == 500
    assert gate_task.model_name == spec.registry.model_name
    assert "**Retrain policy**" in (dag.doc_md or "") and "cooldown 6h after a retrain" in (dag.doc_md or "")
    plain = build_dags(load_spec(EXAMPLE), spec_path=EXAMPLE)["fraud_detector__train"]
    assert "retrain.gate" not in plain.task_ids
    forced = load_spec_text(
        with_policy.replace("min_new_rows: 500}", "min_new_rows: 500, force: approval}"), str(EXAMPLE)
    )
    dag = build_dags(forced, spec_path=EXAMPLE)["fraud_detector__train"]
    assert dag.get_task("retrain.gate").downstream_task_ids == {"retrain.force"}
    force = dag.get_task("retrain.force")
    assert force.downstream_task_ids == {"data.validate"} and force.response_timeout == dt.timedelta(hours=1)
    assert dag.get_task("retrain.gate").force_approval is True


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ('{time: "@daily", policy: {cooldown: 1h}}', "`policy` guards the runs that `events` start"),
        ("{events: [new_data], policy: {require_estimated_drop: true}}", "add `drift` to `events`"),
        ("{events: [drift], policy: {min_new_rows: 10}}", "add `new_data` to `events`"),
        ("{events: [drift], policy: {cooldown: soon}}", "duration"),
        ("{events: [drift], policy: {max_per_day: -1}}", "greater than or equal to 0"),
        ("{events: [drift], policy: {coldown: 1h}}", "coldown"),
    ],
)
def test_a_policy_the_gate_cannot_apply_is_a_spec_error(schedule: str, says: str) -> None:
    from airflow_mlops.exceptions import SpecError
    from airflow_mlops.spec.loader import load_spec_text

    text = EXAMPLE.read_text()
    old = 'schedule:\n  time: "@daily"\n  events: [drift, new_data]\n'
    assert old in text
    with pytest.raises(SpecError, match=re.escape(says)):
        load_spec_text(text.replace(old, f"schedule: {schedule}\n"), str(EXAMPLE))


def test_new_data_rows_on_s3_are_counted(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 batch's rows are counted (a parquet object from its footer), not suppressed as
    ``no_row_count``; an object the gate cannot read still is."""
    import io

    import pandas as pd

    from tests.unit.moto_s3 import s3_client

    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="gate-lake")
    buffer = io.BytesIO()
    pd.DataFrame({"a": range(30), "label": [0] * 30}).to_parquet(buffer)
    client.put_object(Bucket="gate-lake", Key="in/b1.parquet", Body=buffer.getvalue())
    client.put_object(Bucket="gate-lake", Key="in/b2.csv", Body=b"a,label\n" + b"1,0\n" * 25)
    op = RetrainGateOperator(
        task_id="gate", pipeline="p", artifact_root=str(tmp_path / "artifacts"),
        allowed_roots=[str(tmp_path), "s3://gate-lake"], policy={"min_new_rows": 50}, model_name="p-model",
    )  # fmt: skip
    first = {"extra": {"payload": {"batch_id": "b1", "data": ["s3://gate-lake/in/b1.parquet"]}}, "at": T0}
    second = {
        "extra": {"payload": {"batch_id": "b2", "data": ["s3://gate-lake/in/b2.csv"]}},
        "at": T0 + dt.timedelta(minutes=1),
    }
    from airflow.sdk.exceptions import AirflowSkipException

    ctx = context("r1", {"x-mlops://p/new_data": [first]})
    with pytest.raises(AirflowSkipException):
        op.execute(ctx)
    assert "30 of 50 new rows" in ctx["ti"].pushed["decision"]["suppressed"][0]["reason"]
    # the next batch brings the pending rows to 55: admitted
    assert op.execute(context("r2", {"x-mlops://p/new_data": [second]}))["decision"]["admitted"]
    missing = {"extra": {"payload": {"batch_id": "b3", "data": ["s3://gate-lake/in/none.parquet"]}}, "at": T0}
    ctx = context("r3", {"x-mlops://p/new_data": [missing]})
    with pytest.raises(AirflowSkipException):
        op.execute(ctx)
    assert ctx["ti"].pushed["decision"]["counts"] == {"no_row_count": 1}
