"""A local MLflow store (SQLite + local artifacts) holding what the pipeline registers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.ui.models_registry import MODEL, add_metrics_and_mlbom, register


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Any:
    import shutil

    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the store's default artifact root (./mlruns) lands in tmp
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def registry(client: Any, tmp_path: Path, keys: tuple[bytes, bytes]) -> dict[str, Any]:
    """Two versions of MODEL (v1 champion with metrics and an ML-BOM, v2 unaliased)."""
    v1 = register(client, tmp_path, keys[0], model=MODEL, tag="ui/run-1")
    metrics = {"roc_auc": 0.9132, "recall": 0.7051}
    bom = add_metrics_and_mlbom(client, tmp_path, MODEL, v1, metrics)
    v2 = register(client, tmp_path, keys[0], model=MODEL, tag="ui/run-2")
    client.set_registered_model_alias(MODEL, "champion", v1)
    return {"v1": v1, "v2": v2, "metrics": metrics, "bom": bom}
