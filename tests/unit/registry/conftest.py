"""Fixtures of the registry tests: a local MLflow registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Any:
    """A local MLflow (SQLite + local artifacts), also the default one of ``models:/`` URIs."""
    import shutil

    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the store's default artifact root (./mlruns) lands in tmp
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
