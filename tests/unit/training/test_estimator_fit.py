"""The estimators' fit: features encoded on the training rows (missing values kept for models
that handle them), classes checked before and after the fit, and what the fit returns to the
trainer (the task's outputs on the metric sample and the validation rows, metrics, the record)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError, TrainingError
from airflow_mlops.training import estimators, rows
from airflow_mlops.training.config import check_config
from airflow_mlops.training.estimator_fit import train_estimator
from airflow_mlops.training.rows import Outcome, Target, encode_target, split_rows

LOGISTIC = "sklearn.linear_model.LogisticRegression"


def frame(n: int, labels: str = "binary", seed: int = 0) -> pd.DataFrame:
    """Two numeric features (``b`` with a few NaNs) and a label ``a`` decides."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    b[::10] = np.nan
    if labels == "binary":
        label: Any = (a + 0.3 * rng.normal(size=n) > 0).astype(int)
    elif labels == "multiclass":
        label = np.where(a > 0.6, "high", np.where(a > -0.6, "mid", "low"))
    else:
        label = 50.0 + 3.0 * a + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "label": label})


def prepare(
    df: pd.DataFrame, model: str, **raw: Any
) -> tuple[dict[str, Any], Target, np.ndarray, np.ndarray]:
    """The checked config, the encoded target and the split, as ``trainer.train`` makes them."""
    cfg = check_config({"target": "label", "seed": 2, "model": model, "params": {}, **raw})
    data = encode_target(df["label"], cfg, "label")
    train_idx, val_idx = split_rows(data.y, data.task, cfg["validation_fraction"], np.random.default_rng(2))
    return cfg, data, train_idx, val_idx


def fit(
    df: pd.DataFrame, model: str = LOGISTIC, **raw: Any
) -> tuple[Outcome, Target, np.ndarray, np.ndarray]:
    cfg, data, train_idx, val_idx = prepare(df, model, **raw)
    outcome = train_estimator(cfg, data, df.iloc[train_idx], df.iloc[val_idx], train_idx, val_idx, ["a", "b"])
    return outcome, data, train_idx, val_idx


def test_a_binary_fit_returns_the_estimator_its_probabilities_and_its_record() -> None:
    df = frame(200)

    outcome, data, train_idx, val_idx = fit(df, params={"C": 0.5})

    model = outcome.model
    assert type(model).__name__ == "LogisticRegression" and model.C == 0.5
    assert model.classes_.tolist() == [0, 1]  # fitted on class indices
    x_train = outcome.preprocessor.transform(df.iloc[train_idx])
    x_val = outcome.preprocessor.transform(df.iloc[val_idx])
    assert np.array_equal(outcome.train_sample, np.arange(len(train_idx)))
    np.testing.assert_allclose(outcome.train_output, model.predict_proba(x_train)[:, 1])
    np.testing.assert_allclose(outcome.val_output, model.predict_proba(x_val)[:, 1])
    assert outcome.val_output.dtype == np.float64
    path = "sklearn.linear_model._logistic.LogisticRegression"
    assert outcome.metrics["estimator"] == path and outcome.metrics["fit_seconds"] >= 0
    assert outcome.training == {
        "estimator": path,
        "params": {"C": 0.5},
        "validation_fraction": 0.1,
        "early_stopping_patience": None,
    }
    assert (outcome.history, outcome.target_scaling) == (None, None)
    # The model learned: the label follows feature a.
    assert np.mean((outcome.val_output > 0.5) == data.y[val_idx].astype(bool)) > 0.8


def test_missing_values_are_imputed_unless_the_model_handles_them() -> None:
    df = frame(120)
    imputed, *_ = fit(df)
    kept, *_ = fit(df, model="sklearn.ensemble.HistGradientBoostingClassifier", params={"max_iter": 5})

    assert imputed.preprocessor.keep_missing is False
    assert kept.preprocessor.keep_missing is True
    assert np.isnan(kept.preprocessor.transform(df)[:, 1]).sum() == 12


def test_the_training_metric_is_measured_on_the_metric_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows, "METRIC_SAMPLE_ROWS", 30)
    df = frame(200)

    outcome, _, train_idx, _ = fit(df)

    assert len(outcome.train_sample) == 30 and outcome.train_output.shape == (30,)
    x_train = outcome.preprocessor.transform(df.iloc[train_idx])
    np.testing.assert_allclose(
        outcome.train_output, outcome.model.predict_proba(x_train[outcome.train_sample])[:, 1]
    )


def test_a_multiclass_fit_gives_a_probability_column_per_class() -> None:
    outcome, data, _, val_idx = fit(frame(200, "multiclass"))

    assert data.classes == ["high", "low", "mid"]
    assert outcome.val_output.shape == (len(val_idx), 3)
    np.testing.assert_allclose(outcome.val_output.sum(axis=1), 1.0)
    assert np.mean(outcome.val_output.argmax(axis=1) == data.y[val_idx]) > 0.7


def test_a_regression_fit_gives_predictions_in_the_targets_units() -> None:
    df = frame(200, "regression")

    outcome, data, _, val_idx = fit(df, model="sklearn.linear_model.LinearRegression")

    assert outcome.val_output.dtype == np.float64
    assert np.sqrt(np.mean((outcome.val_output - data.y[val_idx]) ** 2)) < 2.0  # noise sd 1, targets ~50


@pytest.mark.parametrize(
    ("labels", "model", "shape"),
    [
        ("binary", LOGISTIC, (0,)),
        ("multiclass", LOGISTIC, (0, 3)),
        ("regression", "sklearn.linear_model.LinearRegression", (0,)),
    ],
)
def test_without_validation_rows_the_validation_output_is_empty_of_the_tasks_shape(
    labels: str, model: str, shape: tuple
) -> None:
    outcome, *_ = fit(frame(60, labels), model=model, validation_fraction=0, threshold=0.5)
    assert outcome.val_output.shape == shape


def test_a_class_without_training_rows_is_refused_naming_it() -> None:
    df = frame(60, "multiclass")
    cfg, data, _, _ = prepare(df, LOGISTIC)
    low = data.classes.index("low")
    train_idx = np.flatnonzero(data.y != low)  # every "low" row went to validation
    val_idx = np.flatnonzero(data.y == low)

    with pytest.raises(
        DataError, match=r"class\(es\) 'low' of 'label' have no training rows.*lower validation_fraction"
    ):
        train_estimator(cfg, data, df.iloc[train_idx], df.iloc[val_idx], train_idx, val_idx, ["a", "b"])


def test_an_estimator_that_lists_other_classes_after_fitting_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = estimators.fit_estimator

    def shifted(estimator: Any, kind: Any, x_train: Any, y_train: Any, *args: Any, **kwargs: Any) -> Any:
        return real(estimator, kind, x_train, y_train + 1, *args, **kwargs)  # classes 1 and 2

    monkeypatch.setattr(estimators, "fit_estimator", shifted)

    with pytest.raises(
        TrainingError, match=r"lists its classes as \['1', '2'\] after fitting on class indices 0..1"
    ):
        fit(frame(80))


def test_what_the_fit_records_reaches_the_metrics_and_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    real = estimators.fit_estimator
    seen: dict[str, Any] = {}

    def recording(*args: Any, patience: int | None) -> Any:
        seen["patience"] = patience
        model, _ = real(*args, patience=None)
        return model, {"best_iteration": 3}

    monkeypatch.setattr(estimators, "fit_estimator", recording)

    outcome, *_ = fit(frame(80), early_stopping_patience=4)

    assert seen["patience"] == 4
    assert outcome.metrics["best_iteration"] == outcome.training["best_iteration"] == 3
