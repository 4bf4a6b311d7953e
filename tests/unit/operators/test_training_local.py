"""The local backend end to end (prepare -> fit subprocess -> package), and explicit credentials."""

from __future__ import annotations

import base64
import http.server
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import ArtifactIntegrityError, TrainingRejectedError
from airflow_mlops.operators.training import (
    ModelFitOperator,
    ModelPackageOperator,
    TrainingPrepareOperator,
    local_trainer_environment,
)
from tests.unit.training.conftest import FEATURES, _make_frame

PARAMS = {"epochs": 3, "lr": 0.01, "batch_size": 128, "hidden_units": [8], "dropout": 0.0}


def context() -> dict[str, Any]:
    return {"run_id": "manual__2026-01-02", "dag": SimpleNamespace(dag_id="p__train"), "ti": None}


@pytest.fixture
def accepted(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    root = str(tmp_path / "store")
    _make_frame(1200, 41).to_parquet(tmp_path / "accepted.parquet")
    ref = ArtifactStore(root).put_file(tmp_path / "accepted.parquet", "p/run/screen/accepted.parquet")
    return root, ref.to_dict()


def test_local_backend_end_to_end(
    tmp_path: Path, accepted: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = accepted
    common = {"pipeline": "p", "artifact_root": root}
    # Secrets of the worker process that the trainer must not inherit.
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-secret-not-for-the-trainer")
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING", "postgres://u:db-secret@h/db")
    dump = tmp_path / "trainer-env.json"
    spy = tmp_path / "python-spy"
    spy.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump(dict(os.environ), open({str(dump)!r}, 'w'))\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])\n"
    )
    spy.chmod(0o755)

    prepared = TrainingPrepareOperator(
        task_id="prepare",
        data=data,
        target="label",
        features=FEATURES,
        hyperparameters=PARAMS,
        seed=5,
        device="cpu",
        threshold={"rule": "min_recall", "value": 0.5},
        validation_fraction=0.2,
        **common,
    ).execute(context())
    fit = ModelFitOperator(task_id="fit", job=prepared["job"], python=str(spy), **common)
    result = fit.execute(context())

    assert prepared["train_rows"] + prepared["holdout_rows"] == 1200
    job = json.loads(Path(prepared["job"]["uri"]).read_text())
    assert job["config"]["params"] == PARAMS and job["inputs"]["train"] == prepared["train"]
    assert job["config"]["threshold"] == {"rule": "min_recall", "value": 0.5}
    assert job["config"]["validation_fraction"] == 0.2
    assert result["weights"]["uri"] == str(Path(root) / "p/manual__2026-01-02/train/weights")
    assert result["metrics"]["epochs_run"] == 3
    child_env = json.loads(dump.read_text())
    assert not [k for k in child_env if k.startswith(("MLFLOW", "AIRFLOW"))], sorted(child_env)
    assert "mlflow-secret" not in json.dumps(child_env) and "db-secret" not in json.dumps(child_env)

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact location is relative
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": f"sqlite:///{tmp_path}/m.db"})
    )
    package = ModelPackageOperator(
        task_id="package",
        fit_result=result,
        prepared=prepared,
        target="label",
        hyperparameters=PARAMS,
        mlflow_conn_id="mlflow_test",
        **common,
    )
    out = package.execute(context())

    assert set(out) == {"model", "holdout", "mlflow_run_id", "train_metrics"}
    assert out["holdout"] == prepared["holdout"]
    assert (Path(out["model"]["uri"]) / "MLmodel").is_file()
    assert out["train_metrics"]["epochs_run"] == 3 and "history" not in out["train_metrics"]
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/m.db").get_run(out["mlflow_run_id"])
    assert run.data.tags["mlops.training_backend"] == "local"
    assert run.data.metrics["train_epochs_run"] == 3.0
    # The threshold the trainer chose and stored is the run's param and the stage's output.
    weights_config = json.loads((Path(result["weights"]["uri"]) / "model_config.json").read_text())
    assert weights_config["threshold_choice"]["rule"] == "min_recall"
    assert weights_config["threshold_choice"]["validation"]["recall"] >= 0.5
    assert out["train_metrics"]["threshold"] == weights_config["threshold"]
    assert float(run.data.params["operating_threshold"]) == pytest.approx(weights_config["threshold"])

    # Weights from anywhere but this run's job output are refused.
    elsewhere = {**result, "weights": {**result["weights"], "uri": str(tmp_path / "evil")}}
    package.fit_result = elsewhere
    with pytest.raises(ArtifactIntegrityError, match="refusing a model from elsewhere"):
        package.execute(context())


def test_a_refused_job_fails_for_good(tmp_path: Path, accepted: tuple[str, dict[str, Any]]) -> None:
    root, data = accepted
    prepared = TrainingPrepareOperator(
        task_id="prepare",
        data=data,
        target="label",
        features=[*FEATURES, "no_such_column"],
        hyperparameters=PARAMS,
        device="cpu",
        pipeline="p",
        artifact_root=root,
    ).execute(context())
    fit = ModelFitOperator(task_id="fit", job=prepared["job"], pipeline="p", artifact_root=root)
    with pytest.raises(TrainingRejectedError, match="exited with status 2") as info:
        fit.execute(context())
    assert "no_such_column" in str(info.value)
    assert info.value.retryable is False


def test_the_trainer_environment_is_an_allow_list_plus_the_s3_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "u")
    monkeypatch.setenv("SIGNING_KEY", "k")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "worker-ambient")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_ART",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIACONN",
                "password": "conn-secret",
                "extra": {"endpoint_url": "http://s3:9000"},
            }
        ),
    )
    local = local_trainer_environment(None, s3=False)
    assert "PATH" in local and not {"MLFLOW_TRACKING_USERNAME", "SIGNING_KEY", "AWS_ACCESS_KEY_ID"} & set(
        local
    )
    ambient = local_trainer_environment(None, s3=True)
    assert ambient["AWS_ACCESS_KEY_ID"] == "worker-ambient"  # the worker's own AWS chain
    conn = local_trainer_environment("aws_art", s3=True)
    assert (conn["AWS_ACCESS_KEY_ID"], conn["AWS_SECRET_ACCESS_KEY"]) == ("AKIACONN", "conn-secret")
    assert conn["AWS_ENDPOINT_URL"] == "http://s3:9000"
    assert "MLFLOW_TRACKING_USERNAME" not in conn


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:  # MLflow's search_experiments
        _Recorder.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"experiments": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_mlflow_credentials_reach_the_server_but_not_the_environment(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.hooks.mlflow import MLflowHook

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_AUTH",
        json.dumps({"conn_type": "mlflow", "host": recorder, "login": "alice", "password": "pw-123"}),
    )
    _Recorder.seen = []
    before = dict(os.environ)

    MLflowHook("mlflow_auth").get_conn().search_experiments(max_results=1)

    assert _Recorder.seen and _Recorder.seen[-1] == "Basic " + base64.b64encode(b"alice:pw-123").decode()
    assert dict(os.environ) == before  # nothing written into the worker's environment
    from mlflow import MlflowClient

    other = recorder.replace("127.0.0.1", "localhost")  # another tracking URI: no credentials sent
    MlflowClient(tracking_uri=other).search_experiments(max_results=1)
    assert _Recorder.seen[-1] is None
