"""The example training DAG end to end through `airflow dags test`, against a real MLflow server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, MLflowServer

pytestmark = pytest.mark.integration


def airflow_env(tmp: Path, mlflow_url: str, keys: tuple[bytes, bytes], dags: Path) -> dict[str, str]:
    private, public = keys
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_MLOPS_ARTIFACT_ROOT=str(tmp / "artifacts"),
        AIRFLOW_CONN_MLFLOW_DEFAULT=json.dumps({"conn_type": "mlflow", "host": mlflow_url}),
        AIRFLOW_CONN_MLOPS_SIGNING=json.dumps(
            {
                "conn_type": "mlops_signing",
                "password": private.decode(),
                "extra": {"public_key": public.decode()},
            }
        ),
        GX_ANALYTICS_ENABLED="False",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    return env


def make_dags_folder(tmp: Path, data: Path, model_name: str) -> Path:
    dags = tmp / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_specs.py", dags / "mlops_specs.py")
    spec = (ROOT / "dags" / "specs" / "fraud_detector.yaml").read_text()
    spec = spec.replace("../data/fraud", str(data)).replace(
        "model_name: fraud-detector", f"model_name: {model_name}"
    )
    (dags / "specs" / "fraud_detector.yaml").write_text(spec)
    # The data lives outside the dags folder: allow it explicitly (a folder defaults file).
    (dags / "specs" / "mlops-defaults.yaml").write_text(
        f"apiVersion: mlops/v1\nkind: Defaults\nallowed_roots: [{data}]\ntags: [integration]\n"
    )
    return dags


def run(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return proc


def test_example_dag_trains_signs_registers_and_promotes(
    tmp_path: Path, fresh_mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], example_data: Path
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import TAG_GATES, champion_version, fetch_verified_version

    model_name = "fraud-detector-it"
    dags = make_dags_folder(tmp_path, example_data, model_name)
    env = airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags)
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = run([airflow, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    first = run([airflow, "dags", "test", "fraud_detector__train", "2026-01-02"], env, tmp_path / "run1.log")
    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]

    client = MlflowClient(tracking_uri=fresh_mlflow_server.url)
    versions = client.search_model_versions(f"name = '{model_name}'")
    assert [v.version for v in versions] == ["1"], (first.stdout + first.stderr)[-5000:]
    champion = champion_version(client, model_name, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.tags[TAG_GATES] == "passed"
    model_dir, _ = fetch_verified_version(client, model_name, "1", signing_keys[1], tmp_path / "check")
    assert (model_dir / "MLmodel").exists()
    run_data = client.get_run(champion.run_id).data
    assert run_data.metrics["eval_roc_auc"] >= 0.8
    assert run_data.tags["mlops.data_sha256"]

    # Every input row is accounted for: accepted + quarantined == rows in.
    summaries = list((tmp_path / "artifacts").rglob("screen_summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["rows_accepted"] + summary["rows_quarantined"] == summary["rows_in"]
    assert summary["rows_quarantined"] > 0  # the generator injects a little poison

    # The signed attestations and the ML-BOM are stored with the version; the CLI verifies and
    # prints the ML-BOM, which is valid CycloneDX 1.6 and names the datasets by sha256.
    from airflow_mlops.security.mlbom import validate_mlbom

    public = tmp_path / "public.pem"
    public.write_bytes(signing_keys[1])
    listed = {f.path for f in client.list_artifacts(champion.run_id, "attestations")}
    assert listed == {
        f"attestations/{n}" for n in ("evaluation.intoto.json", "mlbom.cdx.json", "mlbom.intoto.json")
    }
    cli = [str(Path(sys.executable).parent / "airflow-mlops"), "model", "bom", model_name, "1"]
    bom_run = run(
        [*cli, "--tracking-uri", fresh_mlflow_server.url, "--public-key", str(public)],
        env,
        tmp_path / "bom.log",
    )
    assert bom_run.returncode == 0, bom_run.stderr[-3000:]
    bom = json.loads(bom_run.stdout[bom_run.stdout.index("{") :])
    validate_mlbom(bom)
    card = bom["components"][0]["modelCard"]
    assert {d["name"] for d in card["modelParameters"]["datasets"]} == {"training data", "holdout"}
    assert any(m["type"] == "roc_auc" for m in card["quantitativeAnalysis"]["performanceMetrics"])
    assert bom["components"][0]["hashes"][0]["content"] == champion.tags["mlops.model_sha256"]

    # The private key never reaches the task logs, the artifacts (reports, attestations, ML-BOM),
    # Airflow's database (XCom, rendered templates, task instances) or MLflow's store.
    secret_line = signing_keys[0].decode().splitlines()[1]
    assert secret_line not in first.stdout + first.stderr
    for path in (tmp_path / "artifacts").rglob("*.json"):
        assert secret_line not in path.read_text()
    for path in [*(tmp_path / "airflow").rglob("*"), *fresh_mlflow_server.root.rglob("*")]:
        if path.is_file():
            assert secret_line.encode() not in path.read_bytes(), path

    # A second run trains a challenger, scores the verified champion on the same holdout and
    # promotes only if it does not regress.
    second = run([airflow, "dags", "test", "fraud_detector__train", "2026-01-03"], env, tmp_path / "run2.log")
    assert second.returncode == 0, (second.stdout + second.stderr)[-5000:]
    evaluations = sorted((tmp_path / "artifacts").rglob("evaluation.json"))
    assert len(evaluations) == 2
    second_eval = json.loads(max(evaluations, key=lambda p: p.stat().st_mtime).read_text())
    assert second_eval["champion_version"] == "1"
    assert second_eval["champion_metrics"]["roc_auc"] > 0.5
    assert champion_version(client, model_name, "champion").version == "2"
