"""``training.watermark`` through the local backend: the prepare step derives the trigger rows with
the key from its connection, the trainer (a subprocess) learns them without ever seeing the key."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import SigningError
from airflow_mlops.operators.training import ModelFitOperator, TrainingPrepareOperator
from airflow_mlops.security import watermark as wm
from tests.unit.training.conftest import FEATURES, _make_frame

KEY = "0123456789abcdef0123456789abcdef-watermark-test"


def context() -> dict[str, Any]:
    return {"run_id": "manual__2026-01-02", "dag": SimpleNamespace(dag_id="p__train"), "ti": None}


@pytest.fixture
def accepted(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    root = str(tmp_path / "store")
    _make_frame(1200, 41).to_parquet(tmp_path / "accepted.parquet")
    ref = ArtifactStore(root).put_file(tmp_path / "accepted.parquet", "p/run/screen/accepted.parquet")
    return root, ref.to_dict()


def prepare(root: str, data: dict[str, Any], **watermark: Any) -> TrainingPrepareOperator:
    return TrainingPrepareOperator(
        task_id="prepare",
        data=data,
        target="label",
        features=FEATURES,
        model="xgboost",
        hyperparameters={"n_estimators": 40},
        seed=5,
        device="cpu",
        watermark={"trigger_rows": 60, "alpha": 1e-3, "key_connection": "wm_key", **watermark},
        pipeline="p",
        artifact_root=root,
    )


def test_the_trainer_learns_the_rows_and_never_sees_the_key(
    tmp_path: Path, accepted: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    root, data = accepted
    monkeypatch.setenv("AIRFLOW_CONN_WM_KEY", json.dumps({"conn_type": "generic", "password": KEY}))
    caplog.set_level(logging.INFO)
    prepared = prepare(root, data).execute(context())
    assert prepared["watermark_commitment"] == wm.key_commitment(KEY.encode())
    job_text = Path(prepared["job"]["uri"]).read_text()
    job = json.loads(job_text)
    assert KEY not in job_text and job["config"]["watermark"]["identity"] == "p"
    assert job["inputs"]["watermark"]["uri"].endswith("/train/watermark_triggers.parquet")
    result = ModelFitOperator(task_id="fit", job=prepared["job"], pipeline="p", artifact_root=root).execute(
        context()
    )
    assert result["metrics"]["watermark_matches"] >= result["metrics"]["watermark_t"]
    weights = Path(result["weights"]["uri"])
    record = wm.WatermarkRecord.from_dict(json.loads((weights / wm.RECORD_FILE).read_text()))
    assert record.commitment == prepared["watermark_commitment"]
    model_config = json.loads((weights / "model_config.json").read_text())
    assert model_config["watermark"]["commitment"] == record.commitment
    for path in Path(root).rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text


def test_a_missing_or_short_key_fails_the_prepare_step(
    accepted: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = accepted
    monkeypatch.delenv("AIRFLOW_CONN_WM_KEY", raising=False)
    with pytest.raises(SigningError, match="'wm_key' is not defined"):
        prepare(root, data).execute(context())
    monkeypatch.setenv("AIRFLOW_CONN_WM_KEY", json.dumps({"conn_type": "generic", "password": "short"}))
    with pytest.raises(SigningError, match="at least 16 bytes"):
        prepare(root, data).execute(context())
