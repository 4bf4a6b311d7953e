"""operators/run_events.py: what started a training run, as its tasks read it from the context --
the events the retrain gate admitted (and a person's approval added), their data and the run's
reason -- without an Airflow server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from run_context import Events, accessor, event, frame, validate_operator

from airflow_mlops.exceptions import DataError
from airflow_mlops.operators.data import DataValidateOperator
from airflow_mlops.operators.run_events import admitted_events, retrain_reason, triggering_data
from airflow_mlops.retrain.policy import RETRAIN_FORCE_TASK_ID, RETRAIN_GATE_TASK_ID, Trigger


def _event_id(ev: SimpleNamespace) -> str:
    return Trigger(ev.asset.uri, "", ev.timestamp, dict(ev.extra)).event_id


class _TI:
    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str) -> Any:
        return self.xcoms.get(task_ids)


def _gated(events: Events, decision: Any, *, force: Any = None, forced_task: bool = False) -> dict[str, Any]:
    ids = [RETRAIN_GATE_TASK_ID, "data.validate"] + ([RETRAIN_FORCE_TASK_ID] if forced_task else [])
    xcoms = {RETRAIN_GATE_TASK_ID: decision, RETRAIN_FORCE_TASK_ID: force}
    return {
        "triggering_asset_events": events,
        "dag": SimpleNamespace(task_ids=ids),
        "ti": _TI(xcoms),
        "dag_run": SimpleNamespace(run_type="asset_triggered"),
        "logical_date": None,
    }


def test_a_run_with_a_retrain_gate_reads_only_the_events_it_admitted(tmp_path: Path) -> None:
    """Events the gate held back (a duplicate window, a batch under min_new_rows) ride in the same
    run as the admitted ones: their data is not trained on and they are not the run's reason."""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame(4).to_parquet(a)
    frame(6, start=100).to_parquet(b)
    admitted = event("x-mlops://p/new_data", {"from_trigger": True, "payload": {"data": [str(a)]}})
    held = event("x-mlops://p/new_data", {"from_trigger": True, "payload": {"data": [str(b)]}}, minutes=1)
    drift_held = event("x-mlops://p/drift", {"drifted_features": ["amount"], "data": [str(b)]}, minutes=2)
    events = accessor(admitted, held, drift_held)
    decision = {"admitted": True, "admitted_events": [_event_id(admitted)], "forceable_events": []}
    context = _gated(events, {"decision": decision})
    kept = admitted_events(context)
    assert [(asset.uri, len(evs)) for asset, evs in kept.items()] == [("x-mlops://p/new_data", 1)]
    assert [i["uri"] for i in triggering_data(context)] == [str(a)]
    reason = retrain_reason(context)
    assert reason["kind"] == "new_data" and reason["kinds"] == {"new_data": 1}
    df, source = validate_operator(tmp_path, allowed_roots=[str(tmp_path)])._read_batch(
        context, tmp_path / "s"
    )
    assert source == str(a) and df["x"].tolist() == [0, 1, 2, 3]
    # without a gate in the DAG every event counts (no schedule.policy)
    ungated = {**context, "dag": SimpleNamespace(task_ids=["data.validate"])}
    assert [i["uri"] for i in triggering_data(ungated)] == [str(a), str(b)]


def test_a_forced_run_adds_the_held_back_events_only_when_a_person_approved() -> None:
    first = event("x-mlops://p/drift", {"data": ["/w/1"]})
    dup = event("x-mlops://p/drift", {"data": ["/w/0"]}, minutes=1)
    events = accessor(first, dup)
    # nothing admitted (a cooldown held `first`; `dup` is evidence already trained on)
    decision = {"admitted": False, "admitted_events": [], "forceable_events": [_event_id(first)]}
    approved = _gated(events, {"decision": decision}, force={"chosen_options": ["Approve"]}, forced_task=True)
    assert [i["uri"] for i in triggering_data(approved)] == ["/w/1"]
    for answer in ({"chosen_options": ["Reject"]}, None):
        refused = _gated(events, {"decision": decision}, force=answer, forced_task=True)
        assert triggering_data(refused) == []
    # an approval without a force task in the DAG counts for nothing
    assert (
        triggering_data(_gated(events, {"decision": decision}, force={"chosen_options": ["Approve"]})) == []
    )


@pytest.mark.parametrize("xcom", [None, {}, {"decision": None}, {"decision": {"admitted": True}}])
def test_a_gate_whose_decision_cannot_be_read_fails_closed(xcom: Any) -> None:
    events = accessor(event("x-mlops://p/drift", {"data": ["/w/1"]}))
    with pytest.raises(DataError, match="decision cannot be read"):
        triggering_data(_gated(events, xcom))


def test_the_factory_names_the_gate_and_its_approval_as_the_data_stage_reads_them(tmp_path: Path) -> None:
    from airflow_mlops.factory.builder import build_train_dag
    from airflow_mlops.spec.loader import load_spec

    example = Path(__file__).resolve().parents[3] / "dags" / "specs" / "fraud_detector.yaml"
    path = tmp_path / "spec.yaml"
    path.write_text(
        example.read_text().replace(
            "  events: [drift, new_data]\n",
            "  events: [drift, new_data]\n  policy: {cooldown: 6h, force: approval}\n",
        )
    )
    dag = build_train_dag(load_spec(path), spec_path=example)
    assert {RETRAIN_GATE_TASK_ID, RETRAIN_FORCE_TASK_ID} <= set(dag.task_ids)
    validate = next(t for t in dag.tasks if isinstance(t, DataValidateOperator))
    assert RETRAIN_GATE_TASK_ID in validate.upstream_task_ids | {
        u for t in validate.upstream_list for u in t.upstream_task_ids
    }
