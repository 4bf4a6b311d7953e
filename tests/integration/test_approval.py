"""Human approval before promotion, on a real Airflow (scheduler, dag-processor, api-server):
the run waits in `release.approve` (Airflow 3's human-in-the-loop), the alias does not move until
someone answers; an approval promotes and records the approver, a rejection skips the promotion
and the alias stays."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from scripts.demo_loop import AirflowAPI, _q, wait_for
from tests.integration.airflow_stack import COMPONENTS, AirflowStack, airflow_stack, unpaused_api
from tests.integration.conftest import MLflowServer
from tests.integration.test_continuous_training import _loop_spec
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder

pytestmark = pytest.mark.integration

TRAIN = "fraud_detector__train"
APPROVE = "release.approve"


def _await_input(api: AirflowAPI, stack: AirflowStack, run_id: str) -> None:
    """Wait until ``release.approve`` is parked and its parked try has ended for the scheduler too.

    Airflow 3.3 parks the task (``awaiting_input``) before the worker process that parked it
    exits; the resume after an answer reuses the same try number. If the answer comes before the
    scheduler has read the parked process's exit from the executor, that stale "finished" event
    reaches the scheduler while the resumed try is queued or running: the executor has already
    dropped the key, so the scheduler takes the resumed try for one killed externally and fails
    it ("Cannot start Task Instance in invalid state"; the promotion ends ``upstream_failed``).
    A person answers seconds later; this test answers as soon as it can, so it waits for the
    scheduler's "TaskInstance Finished" line of the parked try, as a person's delay would.
    """

    def waiting() -> bool:
        states = api.task_states(TRAIN, run_id)
        failed = {t: s for t, s in states.items() if s in ("failed", "upstream_failed")}
        assert not failed, failed
        return states.get(APPROVE) == "awaiting_input"

    wait_for(f"{APPROVE} to wait for an answer", 600, waiting, check=stack.check_alive)
    parked_exit = f"TaskInstance Finished: dag_id={TRAIN}, task_id={APPROVE}, run_id={run_id},"
    scheduler_log = stack.logs / "scheduler.log"
    wait_for(
        "the scheduler to see the parked try end",
        120,
        lambda: parked_exit in scheduler_log.read_text(errors="replace"),
        check=stack.check_alive,
    )


def _answer(api: AirflowAPI, run_id: str, option: str) -> dict:
    return api.call(
        "PATCH",
        f"dags/{TRAIN}/dagRuns/{_q(run_id)}/taskInstances/{APPROVE}/-1/hitlDetails",
        {"chosen_options": [option], "params_input": {}},
    )


def _finished(api: AirflowAPI, run_id: str, check) -> dict[str, str | None]:
    wait_for(
        "the run to finish",
        300,
        lambda: api.run(TRAIN, run_id)["state"] in ("success", "failed"),
        check=check,
    )
    return api.task_states(TRAIN, run_id)


def test_promotion_waits_for_a_person_and_records_who_approved(
    tmp_path: Path, fresh_mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.audit import audit_history
    from airflow_mlops.registry.mlflow_registry import champion_version

    model = "fraud-detector-approval"
    dags = make_dags_folder(tmp_path, example_data, model)
    spec = dags / "specs" / "fraud_detector.yaml"
    _loop_spec(spec)  # runs only by hand here (no time schedule), fast training, no retries
    text = spec.read_text()
    assert "  connection: mlflow_default\n" in text
    spec.write_text(
        text.replace(
            "  connection: mlflow_default\n", "  connection: mlflow_default\n  approval: {timeout: 1h}\n", 1
        )
    )
    env = airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags)
    client = MlflowClient(tracking_uri=fresh_mlflow_server.url)

    with airflow_stack(tmp_path, env, components=COMPONENTS) as stack:
        api = unpaused_api(stack, TRAIN)

        first = api.trigger(TRAIN, logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
        _await_input(api, stack, first)
        assert champion_version(client, model, "champion", pipeline="fraud_detector") is None  # not yet
        detail = api.get(f"dags/{TRAIN}/dagRuns/{_q(first)}/taskInstances/{APPROVE}/-1/hitlDetails")
        assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
        assert model in detail["subject"] and "roc_auc" in detail["body"]
        answered = _answer(api, first, "Approve")
        states = _finished(api, first, stack.check_alive)
        assert states["release.promote"] == "success", states
        champion = champion_version(client, model, "champion", pipeline="fraud_detector")
        assert champion is not None and champion.version == "1"
        (entry,) = [e for e in audit_history(client, model) if e["action"] == "promoted"]
        approver = answered["responded_by"]["name"]
        assert entry["approved_by"].startswith(approver), entry
        promotion = api.xcom(TRAIN, first, "release.promote", "approved_by")
        assert promotion.startswith(approver)

        second = api.trigger(TRAIN, logical_date=dt.datetime(2026, 1, 3, tzinfo=dt.UTC))
        _await_input(api, stack, second)
        _answer(api, second, "Reject")
        states = _finished(api, second, stack.check_alive)
        assert states["release.promote"] == "skipped", states
        assert champion_version(client, model, "champion", pipeline="fraud_detector").version == "1"
        assert json.loads(client.get_model_version(model, "2").tags["mlops.audit.registered"])
        assert [e["version"] for e in audit_history(client, model) if e["action"] == "promoted"] == ["1"]
