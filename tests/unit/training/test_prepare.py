"""training/prepare.py: the task settled, the split, and the trainer config by model kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError
from airflow_mlops.training.prepare import split_for_training, trainer_config


def frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": np.arange(n) % 2})


def test_the_split_infers_the_task_keeps_every_row_and_holds_out_the_fraction() -> None:
    split = split_for_training(frame(), target="y", holdout_fraction=0.25, seed=1)
    assert split.task == "binary" and split.inferred is True
    assert split.features == ["a", "b"]
    assert len(split.train) + len(split.holdout) == 200 and len(split.holdout) == 50
    assert split.holdout["y"].mean() == pytest.approx(0.5)  # stratified by class
    again = split_for_training(frame(), target="y", holdout_fraction=0.25, seed=1)
    assert again.holdout.equals(split.holdout)


def test_a_spec_task_and_features_are_kept_and_a_missing_target_is_refused() -> None:
    df = frame().assign(y=np.linspace(0, 1, 200))
    split = split_for_training(df, target="y", features=["b"], task="regression")
    assert (split.task, split.inferred, split.features) == ("regression", False, ["b"])
    with pytest.raises(DataError, match="target column 'z' is not in the data"):
        split_for_training(df, target="z")


def config(model: str) -> dict:
    return trainer_config(
        model=model,
        target="y",
        features=["a"],
        positive_label=1,
        task="binary",
        hyperparameters={"epochs": 2},
        seed=3,
        device="cpu",
        threshold={"rule": "best_f1"},
        validation_fraction=0.2,
        early_stopping_patience=4,
        precision="bf16",
        privacy={"epsilon": 3.0},
    )


def test_the_config_carries_network_and_builtin_settings_only_where_they_apply() -> None:
    mlp = config("mlp")
    assert mlp["precision"] == "bf16" and mlp["privacy"] == {"epsilon": 3.0}
    assert mlp["validation_fraction"] == 0.2 and mlp["early_stopping_patience"] == 4
    assert mlp["params"] == {"epochs": 2} and mlp["threshold"] == {"rule": "best_f1"}
    estimator = config("xgboost")
    assert "precision" not in estimator and "privacy" not in estimator
    assert estimator["validation_fraction"] == 0.2
    own = config("mypkg.train:fit")
    assert not {"precision", "privacy", "validation_fraction", "early_stopping_patience"} & set(own)
    assert own["task"] == "binary" and own["seed"] == 3
