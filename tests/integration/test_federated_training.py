"""`training.backend: federated` for real: a Flower SuperLink and three SuperNodes on 127.0.0.1
(processes of the Flower environment, no Ray) train the fraud example partitioned three ways.

- the example lifecycle DAG (``airflow dags test``) with ``local_nodes: 3``: its fit task starts
  the federation, trains through it and stops it, and the global model goes through scan,
  evaluation, signing and promotion like any other: it is the signed champion, and its ML-BOM
  names the federation, rounds and app hash;
- a SuperNode killed in the middle of a round: with ``min_clients: 2`` the run goes on with the
  two others and completes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.integration.conftest import ROOT, MLflowServer
from tests.integration.flower_federation import FLOWER_VENV, connection, running_federation
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (FLOWER_VENV / "bin" / "flwr").exists(), reason="no Flower environment: make flower-venv"
    ),
]

FEDERATED = """\
training:
  backend: federated
  model: mlp
  params: {epochs: 3, lr: 0.002, batch_size: 256, hidden_units: [64, 32]}
  federated:
    local_nodes: 3
    min_clients: 3
    rounds: 5
    round_timeout: 5m
    timeout: 30m
    poll_interval: 5s
"""


def federated_spec(dags: Path) -> None:
    path = dags / "specs" / "fraud_detector.yaml"
    text = path.read_text()
    start = text.index("training:\n")
    end = text.index("  holdout_fraction:", start)
    path.write_text(text[:start] + FEDERATED + text[end:])


def test_a_local_federation_trains_the_example_and_the_signed_global_model_is_promoted(
    tmp_path: Path, fresh_mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import TAG_GATES, champion_version, fetch_verified_version
    from airflow_mlops.training.federated.common import app_sha256

    flwr = FLOWER_VENV / "bin" / "flwr"

    model_name = "fraud-detector-federated"
    dags = make_dags_folder(tmp_path, example_data, model_name)
    federated_spec(dags)
    env = airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags)
    env["PYTHONPATH"] = str(ROOT)  # this checkout's package, wherever the environment installed it from
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = run([airflow, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    # local_nodes: the fit task starts the federation itself; the connection names the Flower CLI
    env["AIRFLOW_CONN_FLOWER_DEFAULT"] = json.dumps({"conn_type": "flower", "extra": {"cli": str(flwr)}})
    started = time.monotonic()
    proc = run([airflow, "dags", "test", "fraud_detector__train", "2026-01-02"], env, tmp_path / "run.log")
    seconds = time.monotonic() - started
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    print(f"federated lifecycle: {seconds:.0f}s")
    log = proc.stdout + proc.stderr
    assert "starting a local Flower federation: a SuperLink and 3 SuperNode(s) on 127.0.0.1" in log
    assert "local Flower federation stopped" in log

    client = MlflowClient(tracking_uri=fresh_mlflow_server.url)
    champion = champion_version(client, model_name, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.tags[TAG_GATES] == "passed"
    model_dir, _ = fetch_verified_version(client, model_name, "1", signing_keys[1], tmp_path / "check")
    config = json.loads(next(model_dir.rglob("model_config.json")).read_text())
    assert config["format"] == "safetensors" and config["training"]["federated"]["rounds"] == 5
    run_data = client.get_run(champion.run_id).data
    assert run_data.tags["mlops.training_backend"] == "federated"
    assert run_data.metrics["train_federated_clients"] == 3
    assert {f"train_round_{r}_train_loss" for r in range(1, 6)} <= set(run_data.metrics)

    public = tmp_path / "public.pem"
    public.write_bytes(signing_keys[1])
    cli = [str(Path(sys.executable).parent / "airflow-mlops"), "model", "bom", model_name, "1"]
    bom_run = run([*cli, "--tracking-uri", fresh_mlflow_server.url, "--public-key", str(public)], env,
                  tmp_path / "bom.log")  # fmt: skip
    assert bom_run.returncode == 0, bom_run.stderr[-3000:]
    bom = json.loads(bom_run.stdout[bom_run.stdout.index("{") :])
    props = {p["name"].split(":", 1)[1]: p["value"] for p in bom["components"][0]["properties"]}
    assert props["training_backend"] == "federated"
    assert props["federation"] == "local: 3 SuperNodes on the worker (data: partitions)"
    assert props["federated_rounds"] == "5"
    assert props["federated_app_sha256"] == app_sha256()


def prepared_job(tmp_path: Path, example_data: Path) -> tuple[str, dict[str, Any]]:
    """The fraud example's training job, as the prepare step writes it."""
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.operators.training import TrainingPrepareOperator

    root = str(tmp_path / "store")
    batch = sorted(example_data.glob("train/*/batch.parquet"))[0]
    data = ArtifactStore(root).put_file(batch, "fraud/r1/screen/accepted.parquet")
    prepare = TrainingPrepareOperator(
        task_id="prepare", pipeline="fraud", artifact_root=root, data=data.to_dict(), target="is_fraud",
        features=["amount", "merchant_risk", "hour", "country", "account_age_days", "n_tx_24h"],
        hyperparameters={"epochs": 2, "lr": 0.002, "batch_size": 256, "hidden_units": [32]},
        holdout_fraction=0.25, validation_fraction=0.2, threshold={"rule": "best_f1"},
    )  # fmt: skip
    return root, prepare.execute(context())["job"]


def context() -> dict[str, Any]:
    return {"run_id": "r1", "dag": SimpleNamespace(dag_id="fraud__train"), "ti": None}


def fit_killing_a_node(fit: Any, federation: Any, node: int) -> tuple[dict[str, Any], threading.Thread]:
    """Run ``fit`` in a thread and SIGKILL SuperNode ``node`` in the first training round, once
    it has received the global model; the fit's ``result`` or ``error`` lands in the dict."""
    outcome: dict[str, Any] = {}

    def fit_in_background() -> None:
        try:
            outcome["result"] = fit.execute(context())
        except Exception as exc:  # the test asserts on it
            outcome["error"] = exc

    worker = threading.Thread(target=fit_in_background, daemon=True)
    worker.start()
    deadline = time.monotonic() + 600
    while "Receiving: train message" not in federation.node_log(node).read_text(errors="replace"):
        assert time.monotonic() < deadline and worker.is_alive(), f"{outcome}\n{federation.diagnostics()}"
        time.sleep(0.5)
    federation.kill_node(node)
    return outcome, worker


def test_a_supernode_killed_mid_round_leaves_the_run_to_the_others(
    tmp_path: Path, example_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.operators.training_federated import ModelFitFederatedOperator

    root, job = prepared_job(tmp_path, example_data)
    with running_federation(tmp_path, 3) as federation:
        monkeypatch.setenv("AIRFLOW_CONN_FLOWER_DEFAULT", connection(federation.port))
        fit = ModelFitFederatedOperator(
            task_id="fit", pipeline="fraud", artifact_root=root, job=job, deferrable=False,
            federated={"data": "partitions", "partitions": 3, "min_clients": 2, "rounds": 3,
                       "round_timeout": 180.0, "timeout": 900.0, "poll_interval": 2.0},
        )  # fmt: skip
        outcome, worker = fit_killing_a_node(fit, federation, 2)
        killed_at = time.monotonic()
        worker.join(timeout=900)
        assert not worker.is_alive(), "the fit did not end within 15 minutes\n" + federation.diagnostics()
        print(f"after the kill the run took {time.monotonic() - killed_at:.0f}s more")
        assert "error" not in outcome, f"{outcome.get('error')}\n{federation.diagnostics()}"
        metrics = outcome["result"]["metrics"]
        assert metrics["federated_clients"] == 3  # three answered before the kill
        assert {f"round_{r}_train_loss" for r in (1, 2, 3)} <= set(metrics)
        # node 2 trained in no later round; the two others trained in all three
        assert federation.node_log(2).read_text(errors="replace").count("Receiving: train message") == 1
        for index in (0, 1):
            assert federation.node_log(index).read_text().count("Receiving: train message") == 3
        weights = Path(outcome["result"]["weights"]["uri"])
        assert (weights / "model.safetensors").exists()


def test_dp_on_client_updates_clips_on_the_nodes_and_accounts_epsilon(
    tmp_path: Path, example_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.operators.training_federated import ModelFitFederatedOperator
    from airflow_mlops.training.federated.privacy import client_level_epsilon

    pytest.importorskip("opacus")
    root, job = prepared_job(tmp_path, example_data)
    privacy = {"clipping_norm": 5.0, "noise_multiplier": 0.3, "delta": 1e-5}
    with running_federation(tmp_path, 3) as federation:
        monkeypatch.setenv("AIRFLOW_CONN_FLOWER_DEFAULT", connection(federation.port))
        fit = ModelFitFederatedOperator(
            task_id="fit", pipeline="fraud", artifact_root=root, job=job, deferrable=False,
            federated={"data": "partitions", "partitions": 3, "min_clients": 3, "rounds": 2, "privacy": privacy,
                       "round_timeout": 300.0, "timeout": 900.0, "poll_interval": 2.0},
        )  # fmt: skip
        result = fit.execute(context())
        for index in range(3):
            assert (
                federation.node_log(index).read_text().count("fixedclipping_mod: parameters are clipped") == 2
            )
    expected = client_level_epsilon(noise_multiplier=0.3, rounds=2, delta=1e-5)
    assert result["metrics"]["dp_epsilon"] == pytest.approx(expected)
    config = json.loads((Path(result["weights"]["uri"]) / "model_config.json").read_text())
    assert config["training"]["federated"]["dp_epsilon"] == pytest.approx(expected)
    assert config["training"]["federated"]["dp_noise_multiplier"] == 0.3


def test_with_too_few_supernodes_left_the_task_fails_clearly_and_the_run_is_stopped(
    tmp_path: Path, example_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """min_clients 3 and a SuperNode killed in round 1: Flower waits for a third node before the next
    round; the task's timeout ends the wait, stops the run on the SuperLink and fails the task."""
    from airflow_mlops.exceptions import TrainingError
    from airflow_mlops.operators.training_federated import ModelFitFederatedOperator
    from airflow_mlops.training.federated import flower_cli

    root, job = prepared_job(tmp_path, example_data)
    with running_federation(tmp_path, 3) as federation:
        monkeypatch.setenv("AIRFLOW_CONN_FLOWER_DEFAULT", connection(federation.port))
        fit = ModelFitFederatedOperator(
            task_id="fit", pipeline="fraud", artifact_root=root, job=job, deferrable=False,
            federated={"data": "partitions", "partitions": 3, "min_clients": 3, "rounds": 3,
                       "round_timeout": 120.0, "timeout": 240.0, "poll_interval": 2.0},
        )  # fmt: skip
        outcome, worker = fit_killing_a_node(fit, federation, 2)
        worker.join(timeout=600)
        assert not worker.is_alive(), federation.diagnostics()
        error = outcome.get("error")
        assert isinstance(error, TrainingError), f"{outcome}\n{federation.diagnostics()}"
        assert f"Flower run {fit.run_id} ended timeout" in str(error)
        link = fit.superlink
        states = []
        for _ in range(60):  # the stop reaches the ServerApp within a few heartbeats
            out = flower_cli.call(link, flower_cli.list_command(link, int(fit.run_id or 0)))
            states.append(flower_cli.parse_status(out, int(fit.run_id or 0))["status"])
            if states[-1] == flower_cli.STOPPED:
                break
            time.sleep(1)
        assert states[-1] == flower_cli.STOPPED, states
