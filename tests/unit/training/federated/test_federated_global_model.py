"""The server's side: run settings, class weight, labels, and the global model in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.training.federated import global_model, local
from airflow_mlops.training.federated.flower_cli import run_config_values
from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.job import TrainingJob
from airflow_mlops.training.networks import Preprocessor
from airflow_mlops.training.prepare import trainer_config

FEATURES = ["amount", "age", "hour", "merchant"]


def run_config(**over: Any) -> dict[str, Any]:
    job = {"uri": "/s/p/r/train/job.json", "sha256": "a" * 64, "size": 10}
    values = run_config_values(
        job=job, result_key="p/r/train/federated_result.json", settings={}, app_sha256="b"
    )
    return {**values, **over}


def test_run_settings_read_the_run_config() -> None:
    settings = global_model.RunSettings.from_run_config(run_config(rounds=4, **{"dp-clipping-norm": 1.0}))
    assert (settings.rounds, settings.strategy, settings.min_clients, settings.app_sha256) == (
        4,
        "fedavg",
        2,
        "b",
    )
    assert settings.private


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"strategy": "fedsgd"}, "strategy"),
        ({"data": "cloud"}, "data"),
        ({"rounds": 0}, "rounds"),
        ({"result-key": ""}, "result-key"),
        ({"rounds": "many"}, "malformed"),
    ],
)
def test_a_bad_run_config_is_refused(over: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingRejectedError, match=message):
        global_model.RunSettings.from_run_config(run_config(**over))


def test_missing_keys_are_refused() -> None:
    values = run_config()
    del values["rounds"]
    with pytest.raises(TrainingRejectedError, match="rounds"):
        global_model.RunSettings.from_run_config(values)


def test_pos_weight_and_negative_label_pool_the_clients() -> None:
    summaries = [
        {"train_rows": 100, "train_positives": 10, "negative_labels": ["0"]},
        {"train_rows": 300, "train_positives": 30, "negative_labels": ["0"]},
    ]
    assert global_model.pos_weight(summaries, "balanced") == pytest.approx(9.0)
    assert global_model.pos_weight(summaries, "none") == 1.0
    assert global_model.negative_label(summaries) == "0"
    with pytest.raises(TrainingRejectedError, match="both classes"):
        global_model.pos_weight([{"train_rows": 5, "train_positives": 0}], "balanced")
    with pytest.raises(TrainingRejectedError, match="exactly one"):
        global_model.negative_label([{"negative_labels": ["0"]}, {"negative_labels": ["no"]}])


def test_only_a_binary_mlp_trains_federated(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    ref = store.put_file(tmp_path / "t.csv", "t.csv")
    job = TrainingJob(
        store_root=store.root, train=ref, model="cnn", config={"target": "label"}, output_key="w"
    )
    with pytest.raises(TrainingRejectedError):
        global_model.trainer_config(job)


def test_the_global_model_is_stored_as_an_ordinary_model(tmp_path: Path, make_frame: Any) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    table = make_frame(200, 1)
    table.to_parquet(tmp_path / "train.parquet")
    ref = store.put_file(tmp_path / "train.parquet", "p/r/train/train.parquet")
    config = trainer_config(
        model="mlp", target="label", features=FEATURES, positive_label=1, task=None,
        hyperparameters={"hidden_units": [8]}, seed=5, device="cpu", threshold={"rule": "best_f1"},
        validation_fraction=0.2, early_stopping_patience=None, precision="auto", privacy=None,
    )  # fmt: skip
    job = TrainingJob(
        store_root=store.root, train=ref, model="mlp", config=config, output_key="p/r/train/weights"
    )
    pre = Preprocessor.fit(table, FEATURES)
    model = local.build_model({**config, "model": "mlp"}, pre.output_dim)
    settings = global_model.RunSettings.from_run_config(
        run_config(**{"dp-clipping-norm": 1.0, "dp-epsilon": 2.5})
    )
    threshold = {"rule": "best_f1", "value": 0.4, "validation": None}
    result = global_model.save_global_model(
        job, settings, model, pre, negative="0", threshold=threshold,
        metrics={"federated_rounds": 3, "val_loss": 0.5, "bad": float("nan")},
    )  # fmt: skip
    assert result["weights"]["uri"] == store.uri_for("p/r/train/weights")
    assert result["metrics"] == {"federated_rounds": 3, "val_loss": 0.5}
    stored = json.loads(Path(store.uri_for(settings.result_key)).read_text())
    assert stored == result
    weights = Path(store.uri_for("p/r/train/weights"))
    assert (weights / "model.safetensors").exists()
    config_json = json.loads((weights / "model_config.json").read_text())
    assert config_json["threshold"] == 0.4
    assert config_json["training"]["federated"]["dp_epsilon"] == 2.5
    predictor = load_predictor(weights)
    assert predictor.predict_proba(table.head(5)).shape[0] == 5
