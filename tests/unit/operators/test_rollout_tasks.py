"""The rollout gate operator on multiclass and regression models, against a local MLflow: both the
candidate and the champion the monitor served are fetched verified and scanned and answer the
window; agreement per task decides (promotion, or the rollout ended)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.operators.rollout import RolloutGateOperator
from airflow_mlops.registry.mlflow_registry import champion_version, package_model, register_version
from airflow_mlops.training.trainer import train

MODEL = "rollout-tasks"


def context(run: str = "scheduled__2026-01-05") -> dict[str, Any]:
    return {"run_id": run, "dag": SimpleNamespace(dag_id="p__monitor"), "ti": None}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    n = 800
    df = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n)})
    df["tier"] = np.select([df.x1 < -0.5, df.x1 < 0.5], ["low", "mid"], "top")
    df["price"] = 200 + 40 * df.x1 + 10 * df.x2 + rng.normal(0, 2, n)
    return df


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[bytes, bytes]) -> Any:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": uri}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_SIGNING", json.dumps({"conn_type": "mlops_signing", "password": keys[0].decode()})
    )
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _version(client: Any, tmp: Path, key: bytes, data: pd.DataFrame, config: dict[str, Any], run: str) -> str:
    """Train, package, sign, attest its (passed) evaluation and register one version, as the train
    DAG does."""
    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.registry.mlflow_registry import EVALUATION_ATTESTATION, start_or_resume_run
    from airflow_mlops.registry.promotion import TAG_BLESSING, Blessing
    from airflow_mlops.security.attestation import (
        EVALUATION_PREDICATE,
        evaluation_predicate,
        sign_statement,
        statement,
    )
    from airflow_mlops.security.signing import sign_model

    work = tmp / run
    train(data, {"seed": 1, **config}, work / "weights")
    package_model(work / "weights", work / "model")
    sign_model(work / "model", work / "model.sig", key)
    digest = sha256_directory(work / "model")[0]
    blessing = Blessing(model_sha256=digest, passed=True, compared=False, champion_version=None, by=run)
    predicate = evaluation_predicate({"passed": True, "gates": {"gates": []}}, blessing.to_dict())
    attestation = work / EVALUATION_ATTESTATION
    attestation.write_text(
        json.dumps(sign_statement(statement(digest, EVALUATION_PREDICATE, predicate), key))
    )
    run_id = start_or_resume_run(client, experiment="p", pipeline="p", airflow_run=run, run_name=run)
    return register_version(
        client,
        model_name=MODEL,
        run_id=run_id,
        model_dir=work / "model",
        signature_path=work / "model.sig",
        airflow_run=run,
        tags={"mlops.pipeline": "p", "mlops.gates": "passed", TAG_BLESSING: blessing.to_tag()},
        attachments={EVALUATION_ATTESTATION: attestation},
    ).version


def _alias(client: Any, alias: str) -> str | None:
    found = champion_version(client, MODEL, alias)
    return None if found is None else str(found.version)


def _window(tmp: Path, rows: pd.DataFrame) -> dict[str, Any]:
    store = ArtifactStore(str(tmp / "store"))
    rows = rows.assign(mlops_score=0.5)  # what monitor.score adds; the gate rescores both models
    rows.to_parquet(tmp / "predictions.parquet")
    return store.put_file(
        tmp / "predictions.parquet", "p/scheduled__2026-01-05/monitor/predictions.parquet"
    ).to_dict()


def _gate(
    tmp: Path, predictions: dict[str, Any], champion: str, target: str, **kwargs: Any
) -> RolloutGateOperator:
    return RolloutGateOperator(
        task_id="rollout",
        predictions=predictions,
        champion_version=champion,
        model_name=MODEL,
        alias="champion",
        rollout_alias="canary",
        target=target,
        min_rows=100,
        pipeline="p",
        artifact_root=str(tmp / "store"),
        **kwargs,
    )


def _report(tmp: Path) -> dict[str, Any]:
    (path,) = (tmp / "store").rglob("rollout.json")
    return json.loads(path.read_text())


def test_a_multiclass_candidate_that_predicts_like_the_champion_is_promoted(
    tmp_path: Path, env: Any, keys: tuple[bytes, bytes], frame: pd.DataFrame
) -> None:
    data = frame[["x1", "x2", "tier"]]
    champion = _version(env, tmp_path, keys[0], data, {"target": "tier", "model": "lightgbm"}, "p__train/1")
    candidate = _version(
        env,
        tmp_path,
        keys[0],
        data,
        {"target": "tier", "model": "xgboost", "params": {"n_estimators": 20}},
        "p__train/2",
    )
    env.set_registered_model_alias(MODEL, "champion", champion)
    env.set_registered_model_alias(MODEL, "canary", candidate)
    window = _window(tmp_path, frame.sample(300, random_state=3)[["x1", "x2", "tier"]])

    out = _gate(
        tmp_path,
        window,
        champion,
        "tier",
        min_agreement=0.85,
        compare_to_champion={"f1_macro": {"max_regression": 0.1}},
    ).execute(context())

    report = _report(tmp_path)
    assert out["verdict"] == "passed" == report["verdict"], report["reasons"]
    assert report["task"] == "multiclass" and report["labelled"] and report["agreement"] >= 0.85
    assert (
        report["candidate_model"]["flavor"] == "xgboost" and report["champion_model"]["flavor"] == "lightgbm"
    )
    assert set(report["champion_summary"]["class_shares"]) == {"low", "mid", "top"}
    assert "candidate_threshold" not in report  # no thresholds outside binary
    assert _alias(env, "champion") == candidate
    assert _alias(env, "canary") is None


def test_a_regression_candidate_far_from_the_champion_ends_the_rollout(
    tmp_path: Path, env: Any, keys: tuple[bytes, bytes], frame: pd.DataFrame
) -> None:
    data = frame[["x1", "x2", "price"]]
    champion = _version(env, tmp_path, keys[0], data, {"target": "price", "model": "lightgbm"}, "p__train/1")
    shifted = data.assign(price=data["price"] * 1.5)  # a candidate that predicts 50 % more
    candidate = _version(
        env, tmp_path, keys[0], shifted, {"target": "price", "model": "lightgbm"}, "p__train/2"
    )
    env.set_registered_model_alias(MODEL, "champion", champion)
    env.set_registered_model_alias(MODEL, "canary", candidate)
    window = _window(tmp_path, frame.sample(300, random_state=4)[["x1", "x2"]])  # unlabelled

    with pytest.raises(GateFailedError, match=r"agreement 0\.0+ < 0\.9"):
        _gate(tmp_path, window, champion, "price", min_agreement=0.9, max_relative_error=0.2).execute(
            context()
        )

    report = _report(tmp_path)
    assert report["verdict"] == "failed" and report["task"] == "regression" and not report["labelled"]
    assert "within 0.2 (relative)" in report["agreement_rule"]
    assert report["candidate_summary"]["mean"] == pytest.approx(
        1.5 * report["champion_summary"]["mean"], rel=0.1
    )
    assert _alias(env, "champion") == champion
    assert _alias(env, "canary") is None  # ended


def test_a_candidate_of_another_task_ends_the_rollout(
    tmp_path: Path, env: Any, keys: tuple[bytes, bytes], frame: pd.DataFrame
) -> None:
    champion = _version(
        env,
        tmp_path,
        keys[0],
        frame[["x1", "x2", "price"]],
        {"target": "price", "model": "lightgbm"},
        "p__train/1",
    )
    candidate = _version(
        env,
        tmp_path,
        keys[0],
        frame[["x1", "x2", "tier"]],
        {"target": "tier", "model": "lightgbm"},
        "p__train/2",
    )
    env.set_registered_model_alias(MODEL, "champion", champion)
    env.set_registered_model_alias(MODEL, "canary", candidate)
    window = _window(tmp_path, frame.head(200)[["x1", "x2"]])
    with pytest.raises(
        GateFailedError, match=r"the champion is a regression model, the candidate multiclass"
    ):
        _gate(tmp_path, window, champion, "price").execute(context())
    assert _alias(env, "canary") is None
    assert _alias(env, "champion") == champion
