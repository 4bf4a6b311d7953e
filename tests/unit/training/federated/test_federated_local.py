"""A client's side: its rows (partition or own table), its split, local epochs and scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import ArtifactIntegrityError, TrainingRejectedError
from airflow_mlops.training.federated import local
from airflow_mlops.training.job import TrainingJob, write_job
from airflow_mlops.training.networks import Preprocessor
from airflow_mlops.training.prepare import trainer_config

FEATURES = ["amount", "age", "hour", "merchant"]


def make_job(tmp_path: Path, table: pd.DataFrame) -> tuple[TrainingJob, Any]:
    store = ArtifactStore(str(tmp_path / "store"))
    table.to_parquet(tmp_path / "train.parquet")
    ref = store.put_file(tmp_path / "train.parquet", "p/r/train/train.parquet")
    config = trainer_config(
        model="mlp", target="label", features=FEATURES, positive_label=1, task=None,
        hyperparameters={"epochs": 3, "batch_size": 64, "hidden_units": [16]}, seed=5, device="cpu",
        threshold={"rule": "best_f1"}, validation_fraction=0.2, early_stopping_patience=None,
        precision="auto", privacy=None,
    )  # fmt: skip
    job = TrainingJob(
        store_root=store.root, train=ref, model="mlp", config=config, output_key="p/r/train/weights"
    )
    return job, write_job(store, "p/r/train/job.json", job)


def test_read_job_checks_its_sha256(tmp_path: Path, make_frame: Any) -> None:
    job, ref = make_job(tmp_path, make_frame(300, 1))
    assert local.read_job(ref.uri, ref.sha256, ref.size).output_key == job.output_key
    with pytest.raises(ArtifactIntegrityError):
        local.read_job(ref.uri, "0" * 64, ref.size)


def test_partitions_split_the_table_and_node_reads_its_own(tmp_path: Path, make_frame: Any) -> None:
    table = make_frame(300, 2)
    job, _ = make_job(tmp_path, table)
    parts = [
        local.client_table(job, {"partition-id": i, "num-partitions": 3}, "partitions", 3) for i in range(3)
    ]
    assert sum(len(t) for t, _ in parts) == 300
    assert [salt for _, salt in parts] == [1, 2, 3]
    assert (
        pd.concat([t for t, _ in parts])["amount"].sort_values().tolist()
        == table["amount"].sort_values().tolist()
    )
    with pytest.raises(TrainingRejectedError, match="num-partitions=2"):
        local.client_table(job, {"partition-id": 0, "num-partitions": 2}, "partitions", 3)
    with pytest.raises(TrainingRejectedError, match="partition-id"):
        local.client_table(job, {}, "partitions")
    own = tmp_path / "own.parquet"
    table.iloc[:40].to_parquet(own)
    assert len(local.client_table(job, {"data-path": str(own)}, "node")[0]) == 40
    with pytest.raises(TrainingRejectedError, match="data-path"):
        local.client_table(job, {}, "node")


def test_split_keeps_a_seeded_validation_share(make_frame: Any) -> None:
    table = make_frame(200, 3)
    config = {"target": "label", "positive_label": 1, "validation_fraction": 0.25, "seed": 1}
    rows = local.split_rows(table, config, salt=1)
    assert (len(rows.train), len(rows.validation)) == (150, 50)
    assert rows.y_train.sum() + rows.y_validation.sum() == table["label"].sum()
    again = local.split_rows(table, config, salt=1)
    assert rows.validation.index.equals(again.validation.index)
    assert not rows.validation.index.equals(local.split_rows(table, config, salt=2).validation.index)
    summary = local.label_summary(rows, table, config)
    assert summary["negative_labels"] == ["0"] and summary["positives"] == int(table["label"].sum())


@pytest.mark.parametrize("mu", [0.0, 1.0])
def test_local_epochs_lower_the_loss(make_frame: Any, mu: float) -> None:
    import torch

    table = make_frame(600, 4)
    config = {"target": "label", "positive_label": 1, "seed": 3, "validation_fraction": 0.2}
    rows = local.split_rows(table, config, salt=1)
    pre = Preprocessor.fit(rows.train, FEATURES)
    cfg = {
        "model": "mlp",
        "target": "label",
        "features": FEATURES,
        "seed": 3,
        "params": {"hidden_units": [16]},
    }
    model = local.build_model(cfg, pre.output_dim)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x, xv = pre.transform(rows.train), pre.transform(rows.validation)
    _, before = local.scores_and_loss(model, xv, rows.y_validation, pos_weight=1.0)
    params = {"epochs": 5, "lr": 0.01, "batch_size": 64}
    local.train_locally(model, x, rows.y_train, params, pos_weight=1.0, seed=1, proximal_mu=mu)
    scores, after = local.scores_and_loss(model, xv, rows.y_validation, pos_weight=1.0)
    assert after < before
    assert scores.shape == (len(rows.validation),) and ((scores >= 0) & (scores <= 1)).all()
    moved = sum(float((model.state_dict()[k] - start[k]).norm()) for k in start)
    assert moved > 0
    # the same seed gives the same start everywhere (every client builds the global model alike)
    again = local.build_model(cfg, pre.output_dim)
    assert all(torch.equal(again.state_dict()[k], start[k]) for k in start)


def test_fedprox_keeps_the_weights_nearer_the_global_ones(make_frame: Any) -> None:
    table = make_frame(400, 5)
    rows = local.split_rows(table, {"target": "label", "seed": 3}, salt=1)
    pre = Preprocessor.fit(rows.train, FEATURES)
    cfg = {
        "model": "mlp",
        "target": "label",
        "features": FEATURES,
        "seed": 3,
        "params": {"hidden_units": [16]},
    }
    distances = []
    for mu in (0.0, 10.0):
        model = local.build_model(cfg, pre.output_dim)
        start = [p.detach().clone() for p in model.parameters()]
        params = {"epochs": 5, "lr": 0.02, "batch_size": 32}
        local.train_locally(
            model, pre.transform(rows.train), rows.y_train, params, pos_weight=1.0, seed=1, proximal_mu=mu
        )
        distances.append(
            sum(float((p.detach() - s).norm()) for p, s in zip(model.parameters(), start, strict=True))
        )
    assert distances[1] < distances[0]


def test_no_training_rows_is_an_error() -> None:
    from airflow_mlops.exceptions import DataError

    model = local.build_model({"model": "mlp", "target": "y", "seed": 1, "params": {"hidden_units": [4]}}, 3)
    with pytest.raises(DataError):
        local.train_locally(model, np.zeros((0, 3), np.float32), np.zeros(0, np.float32), {"epochs": 1, "lr": 0.1,
                            "batch_size": 4}, pos_weight=1.0, seed=1)  # fmt: skip
