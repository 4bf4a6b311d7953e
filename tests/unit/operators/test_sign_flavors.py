"""The sign stage on a model of another flavor than torch: its ML-BOM and its signed evaluation
attestation say the task, flavor, format, library and classes of the model signed."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.operators.model import ModelSignOperator
from airflow_mlops.registry.mlflow_registry import package_model
from airflow_mlops.security.attestation import CYCLONEDX_PREDICATE, EVALUATION_PREDICATE, verify_envelope
from airflow_mlops.security.mlbom import validate_mlbom
from airflow_mlops.training.trainer import train


def context() -> dict[str, Any]:
    return {
        "run_id": "manual__2026-01-02",
        "dag": SimpleNamespace(dag_id="p__train"),
        "ti": None,
        "dag_run": SimpleNamespace(run_type="manual"),
    }


def test_the_sign_stage_attests_an_xgboost_multiclass_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.security.signing import generate_key_pair

    rng = np.random.default_rng(4)
    df = pd.DataFrame({"x1": rng.normal(0, 1, 300), "x2": rng.normal(0, 1, 300)})
    df["grade"] = np.select([df.x1 < -0.4, df.x1 < 0.4], ["A", "B"], "C")
    train(df, {"target": "grade", "model": "xgboost", "params": {"n_estimators": 5}}, tmp_path / "w")
    package_model(tmp_path / "w", tmp_path / "model")
    store = ArtifactStore(str(tmp_path / "store"))
    model_ref = store.put_directory(tmp_path / "model", "p/manual__2026-01-02/train/model")
    evaluation = {
        "passed": True,
        "task": "multiclass",
        "metrics": {"f1_macro": 0.91},
        "holdout_rows": 60,
        "gates": {"gates": [{"name": "f1_macro.min", "passed": True, "value": 0.91, "threshold": 0.8}]},
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    eval_ref = store.put_file(tmp_path / "evaluation.json", "p/manual__2026-01-02/evaluate/evaluation.json")
    private, public = generate_key_pair()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_SIGNING", json.dumps({"conn_type": "mlops_signing", "password": private.decode()})
    )
    out = ModelSignOperator(
        task_id="sign",
        model=model_ref.to_dict(),
        evaluation=eval_ref.to_dict(),
        blessing={"model_sha256": model_ref.sha256, "passed": True},
        model_name="grades",
        pipeline="p",
        artifact_root=str(tmp_path / "store"),
    ).execute(context())

    bom = json.loads(Path(out["mlbom"]["uri"]).read_text())
    validate_mlbom(bom)
    props = {p["name"]: p["value"] for p in bom["components"][0]["properties"]}
    assert props["airflow-mlops:flavor"] == "xgboost" and props["airflow-mlops:format"] == "ubjson"
    assert props["airflow-mlops:framework"] == "xgboost"
    assert props["airflow-mlops:framework_version"] == version("xgboost")
    assert props["airflow-mlops:task"] == "multiclass" and props["airflow-mlops:classes"] == "3"
    assert bom["components"][0]["modelCard"]["modelParameters"]["task"] == "multiclass-classification"

    attested = verify_envelope(
        json.loads(Path(out["attestation"]["uri"]).read_text()),
        public,
        model_sha256=model_ref.sha256,
        predicate_type=EVALUATION_PREDICATE,
    )
    assert attested.predicate["task"] == "multiclass"
    assert attested.predicate["model"]["flavor"] == "xgboost"
    assert attested.predicate["model"]["classes"] == ["A", "B", "C"]
    # Why the run trained (a person started it) is signed, and the ML-BOM says it too.
    assert attested.predicate["retrain_reason"]["kind"] == "manual"
    assert props["airflow-mlops:retrain:kind"] == "manual"
    workflow = bom["formulation"][0]["workflows"][0]
    assert workflow["uid"] == "p__train/manual__2026-01-02" and workflow["trigger"]["type"] == "manual"
    signed_bom = verify_envelope(
        json.loads(Path(out["mlbom_attestation"]["uri"]).read_text()),
        public,
        model_sha256=model_ref.sha256,
        predicate_type=CYCLONEDX_PREDICATE,
    )
    assert signed_bom.predicate == bom
