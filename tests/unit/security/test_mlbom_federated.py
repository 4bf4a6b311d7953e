"""The ML-BOM of a federated model names its federation, rounds and the app's hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_mlops.artifacts import directory_manifest, sha256_directory
from airflow_mlops.registry.mlflow_registry import package_model, weights_dir
from airflow_mlops.security.mlbom import build_mlbom, validate_mlbom
from airflow_mlops.training.flavors import read_config
from airflow_mlops.training.trainer import train
from tests.unit.training.conftest import _make_frame


def bom_for(tmp_path: Path, training: dict[str, Any], train_metrics: dict[str, Any]) -> dict[str, Any]:
    config = {"target": "label", "model": "mlp", "params": {"epochs": 1, "hidden_units": [4]}, "seed": 0}
    train(_make_frame(300, 1), config, tmp_path / "w")
    model_dir = package_model(tmp_path / "w", tmp_path / "model")
    return build_mlbom(
        model_name="p",
        model_dir=model_dir,
        model_sha256=sha256_directory(model_dir)[0],
        files=[(rel, sha) for rel, sha, _ in directory_manifest(model_dir)],
        model_config=read_config(weights_dir(model_dir)),
        evaluation={"metrics": {}, "holdout_rows": 1, "gates": {"gates": []}},
        training=training,
        train_metrics=train_metrics,
        pipeline="p",
    )


def props(bom: dict[str, Any]) -> dict[str, str]:
    return {p["name"].split(":", 1)[1]: p["value"] for p in bom["components"][0]["properties"]}


def test_the_model_names_the_federation_rounds_and_app_hash(tmp_path: Path) -> None:
    training = {"backend": "federated", "model": "mlp", "federation": "flower connection fl (data: partitions)",
                "federated_rounds": 4, "federated_strategy": "fedavg"}  # fmt: skip
    bom = bom_for(tmp_path, training, {"federated_app_sha256": "ab" * 32, "dp_epsilon": 3.5})
    validate_mlbom(bom)
    got = props(bom)
    assert got["training_backend"] == "federated"
    assert got["federation"] == "flower connection fl (data: partitions)"
    assert (got["federated_rounds"], got["federated_strategy"]) == ("4", "fedavg")
    assert got["federated_app_sha256"] == "ab" * 32
    assert got["train:dp_epsilon"] == "3.5"


def test_other_backends_carry_no_federation(tmp_path: Path) -> None:
    got = props(bom_for(tmp_path, {"backend": "local", "model": "mlp"}, {}))
    assert not any(name.startswith("federat") for name in got)
