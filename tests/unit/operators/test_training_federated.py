"""ModelFitFederatedOperator: submit, defer to the trigger, collect the global model, stop on kill."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import ArtifactIntegrityError, TrainingError, TrainingRejectedError
from airflow_mlops.operators.training_federated import ModelFitFederatedOperator
from airflow_mlops.training.federated.common import APP_DIR, app_sha256
from airflow_mlops.triggers.federated import FlowerRunTrigger
from tests.unit.triggers.fake_flwr import calls, make_fake_flwr

RUN = "manual__2026-01-02"


def write_job(tmp_path: Path, model: str = "mlp", task: str | None = "binary") -> dict[str, Any]:
    """A prepared job.json in the operator's store (the training table is never read here)."""
    from airflow_mlops.training.job import TrainingJob
    from airflow_mlops.training.job import write_job as put_job

    store = ArtifactStore(str(tmp_path / "store"))
    (tmp_path / "train.parquet").write_bytes(b"PAR1")
    train = store.put_file(tmp_path / "train.parquet", f"p/{RUN}/train/train.parquet")
    config = {"target": "is_fraud", "features": ["amount"], "task": task}
    job = TrainingJob(store_root=store.root, train=train, model=model, config=config,
                      output_key=f"p/{RUN}/train/weights")  # fmt: skip
    return put_job(store, f"p/{RUN}/train/job.json", job).to_dict()


def context() -> dict[str, Any]:
    return {"run_id": RUN, "dag": SimpleNamespace(dag_id="p__train"), "ti": None}


def operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statuses: list[str], **kw: Any
) -> tuple[Any, Path]:
    cli, state = make_fake_flwr(tmp_path / "cli", statuses)
    conn = {"conn_type": "flower", "host": "127.0.0.1", "port": 9093, "extra": {"insecure": True, "cli": cli}}
    monkeypatch.setenv("AIRFLOW_CONN_FL", json.dumps(conn))
    job = write_job(tmp_path, **kw.pop("job", {}))
    federated = {"rounds": 3, "min_clients": 3, "partitions": 3, "timeout": 60.0, "poll_interval": 0.01, **kw}
    op = ModelFitFederatedOperator(
        task_id="fit", pipeline="p", artifact_root=str(tmp_path / "store"), job=job, federated=federated,
        flower_conn_id="fl", deferrable=kw.pop("deferrable", True),
    )  # fmt: skip
    return op, state


def write_result(tmp_path: Path, *, app: str | None = None, key: str = "weights") -> dict[str, Any]:
    store = ArtifactStore(str(tmp_path / "store"))
    (tmp_path / "w").mkdir(exist_ok=True)
    (tmp_path / "w" / "model.safetensors").write_bytes(b"x")
    weights = store.put_directory(tmp_path / "w", f"p/{RUN}/train/{key}")
    result = {"format_version": 1, "weights": weights.to_dict(),
              "metrics": {"federated_app_sha256": app or app_sha256(), "federated_rounds": 3}}  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps(result))
    store.put_file(tmp_path / "r.json", f"p/{RUN}/train/federated_result.json")
    return result


def test_execute_submits_the_app_and_defers_to_the_trigger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    op, state = operator(tmp_path, monkeypatch, ["running"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, FlowerRunTrigger)
    assert (trigger.run_id, trigger.flower_conn_id, trigger.poll_interval) == (4242, "fl", 0.01)
    assert deferred.value.method_name == "execute_complete"
    assert not deferred.value.kwargs  # the event names the run: `airflow dags test` resumes with it only
    [run] = calls(state)
    assert run[:3] == ["run", str(APP_DIR), "mlops"]
    config = tomllib.loads((state / "run.toml").read_text())
    assert (config["job-uri"], config["job-sha256"]) == (op.job["uri"], op.job["sha256"])
    assert config["result-key"] == f"p/{RUN}/train/federated_result.json"
    assert (config["rounds"], config["min-clients"], config["partitions"]) == (3, 3, 3)
    assert config["dp-clipping-norm"] == 0.0


def test_a_completed_run_returns_the_global_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op, _ = operator(tmp_path, monkeypatch, ["running"])
    result = write_result(tmp_path)
    event = {"run_id": 4242, "status": "finished:completed", "details": ""}
    got = op.execute_complete(context(), event)
    assert got["weights"] == result["weights"]
    assert got["metrics"]["federated_run_id"] == "4242" and "dp_epsilon" not in got["metrics"]


def test_a_model_from_another_app_or_place_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, _ = operator(tmp_path, monkeypatch, ["running"])
    event = {"run_id": 4242, "status": "finished:completed"}
    write_result(tmp_path, app="0" * 64)
    with pytest.raises(TrainingRejectedError, match="app with sha256"):
        op.execute_complete(context(), event)
    write_result(tmp_path, key="elsewhere")
    with pytest.raises(ArtifactIntegrityError):
        op.execute_complete(context(), event)


def test_failure_and_timeout_fail_the_task_and_a_timed_out_run_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, state = operator(tmp_path, monkeypatch, ["running"])
    with pytest.raises(TrainingError, match="ended finished:failed: a SuperNode left"):
        op.execute_complete(
            context(), {"run_id": 4242, "status": "finished:failed", "details": "a SuperNode left"}
        )
    assert calls(state) == []
    with pytest.raises(TrainingError, match="ended timeout"):
        op.execute_complete(context(), {"run_id": 4242, "status": "timeout", "details": "still running"})
    assert calls(state)[0][:2] == ["stop", "4242"]


def test_without_deferral_it_polls_from_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op, state = operator(
        tmp_path, monkeypatch, ["pending", "running", "finished:completed"], deferrable=False
    )
    write_result(tmp_path)
    got = op.execute(context())
    assert got["metrics"]["federated_run_id"] == "4242"
    assert [c[0] for c in calls(state)] == ["run", "ls", "ls", "ls"]


def test_dp_epsilon_is_accounted_and_the_budget_refuses_before_submitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    pytest.importorskip("opacus")
    privacy = {"clipping_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5}
    op, state = operator(tmp_path / "a", monkeypatch, ["running"], privacy=privacy)
    with pytest.raises(TaskDeferred):
        op.execute(context())
    config = tomllib.loads((state / "run.toml").read_text())
    epsilon = config["dp-epsilon"]
    assert epsilon > 0 and config["dp-noise-multiplier"] == 1.0
    write_result(tmp_path / "a")  # the model's metrics carry the epsilon accounted again on resume
    assert op.execute_complete(context(), {"run_id": 4242, "status": "finished:completed"})["metrics"][
        "dp_epsilon"
    ] == pytest.approx(epsilon)
    op, state = operator(
        tmp_path / "b", monkeypatch, ["running"], privacy={**privacy, "epsilon": epsilon / 2}
    )
    with pytest.raises(TrainingRejectedError, match="above the budget"):
        op.execute(context())
    assert calls(state) == []


@pytest.mark.parametrize(
    ("job", "words"),
    [
        ({"task": "multiclass"}, "on a binary task; this job is mlp (multiclass)"),
        ({"task": "regression"}, "on a binary task; this job is mlp (regression)"),
        ({"model": "xgboost"}, "trains the built-in `mlp`; this job's model is xgboost"),
    ],
)
def test_a_job_the_federated_app_cannot_train_is_refused_before_submitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: dict[str, Any], words: str
) -> None:
    op, state = operator(tmp_path, monkeypatch, ["running"], job=job)
    with pytest.raises(TrainingRejectedError, match=re.escape(words)):
        op.execute(context())
    assert calls(state) == []  # nothing reached the SuperLink


def test_a_job_that_is_not_what_prepare_wrote_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, state = operator(tmp_path, monkeypatch, ["running"])
    Path(op.job["uri"]).write_text(Path(op.job["uri"]).read_text().replace('"binary"', '"regression"'))
    with pytest.raises(ArtifactIntegrityError):
        op.execute(context())
    assert calls(state) == []


def test_on_kill_stops_the_submitted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op, state = operator(tmp_path, monkeypatch, ["running"])
    op.on_kill()  # nothing submitted yet: nothing to stop
    assert calls(state) == []
    op.run_id = 4242
    op.on_kill()
    assert calls(state)[0][:3] == ["stop", "4242", "mlops"]
