"""What started a training run, as its tasks read it from their context: the triggering asset
events its retrain gate admitted, the data they name, and why the run trains."""

from __future__ import annotations

from typing import Any

from airflow_mlops.retrain.policy import RETRAIN_FORCE_TASK_ID, RETRAIN_GATE_TASK_ID, events_to_train_on

__all__ = ["admitted_events", "retrain_reason", "triggering_data"]


def admitted_events(context: Any) -> Any:
    """The run's triggering asset events that its retrain gate admitted: every one when the DAG
    has no gate (no ``schedule.policy``). A run a person forced (``retrain.force`` approved) also
    takes the events the policy's limits held back
    (:func:`~airflow_mlops.retrain.policy.events_to_train_on`).

    :raises DataError: the DAG has a gate and its XCom decision cannot be read.
    """
    events = context.get("triggering_asset_events")
    task_ids = getattr(context.get("dag"), "task_ids", None) or ()
    if not events or RETRAIN_GATE_TASK_ID not in task_ids:
        return events
    ti = context["ti"]
    decision = (ti.xcom_pull(task_ids=RETRAIN_GATE_TASK_ID) or {}).get("decision")
    answer = ti.xcom_pull(task_ids=RETRAIN_FORCE_TASK_ID) if RETRAIN_FORCE_TASK_ID in task_ids else None
    approved = isinstance(answer, dict) and answer.get("chosen_options") == ["Approve"]
    return events_to_train_on(events, decision, approved=approved)


def triggering_data(context: Any) -> list[dict[str, Any]]:
    """The data named by the admitted asset events that started this run (:func:`admitted_events`),
    oldest event first (:func:`airflow_mlops.data.validate_task.triggering_data` of them)."""
    from airflow_mlops.data.validate_task import triggering_data as named_by

    return named_by(admitted_events(context))


def retrain_reason(context: Any) -> dict[str, Any]:
    """Why this run trains, from its admitted triggering asset events (:func:`admitted_events`)
    and run type (any task of the run can tell): :func:`airflow_mlops.retrain.reason.retrain_reason`."""
    from airflow_mlops.retrain.reason import retrain_reason as reason_of

    run_type = getattr(context.get("dag_run"), "run_type", None)
    return reason_of(admitted_events(context), run_type)
