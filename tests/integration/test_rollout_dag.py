"""A canary rollout end to end through `airflow dags test`, against a real MLflow server: the first
model becomes champion directly, the next one gets the canary alias (the champion stays), and the
monitor's rollout gate on a labelled live window promotes it, removing the canary alias."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import MLflowServer
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder, run

pytestmark = pytest.mark.integration

CANARY = (
    "  rollout:\n"
    "    strategy: canary\n"
    "    traffic: 0.2\n"
    "    gate: {min_rows: 200, min_agreement: 0.8, compare_to_champion: {roc_auc: {max_regression: 0.1}}}\n"
)


def test_canary_then_the_monitors_gate_promotes_it(
    tmp_path: Path, fresh_mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version
    from airflow_mlops.registry.promotion import audit_history, traffic_tag

    model = "fraud-detector-canary"
    dags = make_dags_folder(tmp_path, example_data, model)
    spec_path = dags / "specs" / "fraud_detector.yaml"
    spec = spec_path.read_text()
    assert "  connection: mlflow_default\n" in spec
    spec_path.write_text(
        spec.replace("  connection: mlflow_default\n", "  connection: mlflow_default\n" + CANARY, 1)
    )
    env = airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags)
    airflow = str(Path(sys.executable).parent / "airflow")
    assert run([airflow, "db", "migrate"], env, tmp_path / "migrate.log").returncode == 0

    first = run([airflow, "dags", "test", "fraud_detector__train", "2026-01-02"], env, tmp_path / "run1.log")
    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
    client = MlflowClient(tracking_uri=fresh_mlflow_server.url)
    assert champion_version(client, model, "champion").version == "1"  # nothing to shadow: direct
    assert champion_version(client, model, "canary") is None

    second = run([airflow, "dags", "test", "fraud_detector__train", "2026-01-03"], env, tmp_path / "run2.log")
    assert second.returncode == 0, (second.stdout + second.stderr)[-5000:]
    assert champion_version(client, model, "champion").version == "1"  # the champion stays
    assert champion_version(client, model, "canary").version == "2"
    assert client.get_registered_model(model).tags[traffic_tag("canary")] == "0.2"

    # A labelled live window for the monitor (a clean day's batch).
    live = example_data / "live" / "2026-01-04"
    live.mkdir(parents=True, exist_ok=True)
    shutil.copy(example_data / "train" / "2026-01-04" / "batch.parquet", live / "batch.parquet")
    monitor = run(
        [airflow, "dags", "test", "fraud_detector__monitor", "2026-01-04"], env, tmp_path / "mon.log"
    )
    assert monitor.returncode == 0, (monitor.stdout + monitor.stderr)[-5000:]
    reports = list((tmp_path / "artifacts").rglob("rollout.json"))
    assert len(reports) == 1
    verdict = json.loads(reports[0].read_text())
    assert verdict["verdict"] == "passed", verdict
    assert (verdict["candidate_version"], verdict["champion_version"]) == ("2", "1")
    assert verdict["rows"] >= 200 and verdict["agreement"] >= 0.8 and verdict["labelled"]

    assert champion_version(client, model, "champion").version == "2"
    assert champion_version(client, model, "canary") is None
    assert traffic_tag("canary") not in (client.get_registered_model(model).tags or {})
    v2 = client.get_model_version(model, "2").tags
    assert v2["mlops.champion.previous"] == "1"
    assert json.loads(v2["mlops.blessing.champion"])["evidence"] == "rollout"
    actions = [(e["action"], e.get("alias"), e["version"]) for e in audit_history(client, model)]
    assert actions == [
        ("promoted", "champion", "1"),
        ("promoted", "canary", "2"),
        ("promoted", "champion", "2"),
        ("alias_removed", "canary", "2"),
    ], actions
    assert all(e["by"].startswith("airflow:fraud_detector__") for e in audit_history(client, model))
    registered = json.loads(client.get_model_version(model, "1").tags["mlops.audit.registered"])
    assert (
        registered["by"].startswith("airflow:fraud_detector__train/")
        and "gates passed" in registered["reason"]
    )
