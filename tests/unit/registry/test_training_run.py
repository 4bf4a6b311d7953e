"""registry/training_run.py: the weights checked to be this run's, read, and logged to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import ArtifactIntegrityError
from airflow_mlops.registry import training_run


def test_weights_from_elsewhere_are_refused() -> None:
    training_run.check_weights_location("/s/p/r/train/weights/", "/s/p/r/train/weights")
    with pytest.raises(ArtifactIntegrityError, match="refusing a model from elsewhere"):
        training_run.check_weights_location("/s/p/other/train/weights", "/s/p/r/train/weights")


def weights(tmp_path: Path, config: dict[str, Any]) -> Path:
    (tmp_path / "metrics.json").write_text(
        json.dumps({"loss": 0.2, "epochs": 3, "history": [1, 2], "note": "x"})
    )
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    return tmp_path


def test_a_binary_models_threshold_joins_its_metrics_and_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_mlops.registry.mlflow_registry as registry
    import airflow_mlops.training.flavors as flavors

    config = {
        "task": "binary",
        "flavor": "xgboost",
        "threshold": 0.37,
        "framework": {"name": "xgboost", "version": "2.1"},
    }
    monkeypatch.setattr(flavors, "read_config", lambda d: config)
    trained = training_run.read_trained(weights(tmp_path, config))
    assert trained.metrics["threshold"] == 0.37 and trained.threshold == 0.37
    assert trained.facts == {"task": "binary", "flavor": "xgboost", "framework": "xgboost==2.1"}
    assert training_run.reported_metrics(trained) == {
        "loss": 0.2,
        "epochs": 3,
        "note": "x",
        "threshold": 0.37,
    }

    logged: dict[str, Any] = {}
    monkeypatch.setattr(registry, "log_run_data", lambda client, run_id, **kw: logged.update(kw))

    class Client:
        def log_dict(self, run_id: str, data: Any, path: str) -> None:
            logged["dict"] = (path, data)

    training_run.log_training_run(Client(), "r", trained, params={"model": "xgboost"}, tags={"t": "1"})
    assert logged["params"] == {"model": "xgboost", "operating_threshold": 0.37, **trained.facts}
    assert logged["metrics"] == {"train_loss": 0.2, "train_epochs": 3.0, "train_threshold": 0.37}
    assert logged["tags"] == {"t": "1"} and logged["dict"][0] == "training/metrics.json"


def test_a_regression_model_has_no_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_mlops.training.flavors as flavors

    config = {"task": "regression", "flavor": "sklearn"}
    monkeypatch.setattr(flavors, "read_config", lambda d: config)
    trained = training_run.read_trained(weights(tmp_path, config))
    assert trained.threshold is None and "threshold" not in trained.metrics
    assert trained.facts == {"task": "regression", "flavor": "sklearn"}
