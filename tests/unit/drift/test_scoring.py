"""drift/scoring.py: the champion's stored output columns, the threshold, the reference sample."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift import scoring
from airflow_mlops.exceptions import DriftInputError


def predictor(task: str, out: Any, *, threshold: float | None = None, classes: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(
        task=task, threshold=threshold, classes=list(classes), predict_scores=lambda frame: np.asarray(out)
    )


def test_the_binary_threshold_is_the_models_own_else_the_fallback_and_none_for_other_tasks() -> None:
    assert scoring.binary_threshold(predictor("binary", [], threshold=0.3), 0.5) == 0.3
    assert scoring.binary_threshold(predictor("binary", []), 0.7) == 0.7
    assert scoring.binary_threshold(predictor("multiclass", [], threshold=0.3), 0.5) is None
    assert scoring.binary_threshold(predictor("regression", []), 0.5) is None


def test_binary_predictions_are_cut_at_the_threshold_inclusive() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    out = scoring.scored(predictor("binary", [0.2, 0.3, 0.9]), frame, 0.3)
    assert out[scoring.PREDICTION_COLUMN].tolist() == [0, 1, 1]
    assert out[scoring.SCORE_COLUMN].tolist() == [0.2, 0.3, 0.9]
    assert list(frame.columns) == ["x"]  # the input is not changed
    assert scoring.scored(predictor("binary", [0.4, 0.6]), frame.head(2), None)[
        scoring.PREDICTION_COLUMN
    ].tolist() == [0, 1]


def test_multiclass_stores_each_class_probability_and_the_most_probable_class() -> None:
    probs = [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]
    out = scoring.scored(
        predictor("multiclass", probs, classes=("a", "b", "c")), pd.DataFrame({"x": [1, 2]}), None
    )
    assert out[scoring.PREDICTION_COLUMN].tolist() == ["b", "a"]
    assert out[scoring.SCORE_COLUMN].tolist() == [0.7, 0.5]
    assert out[scoring.proba_column("c")].tolist() == [0.2, 0.3]
    back = scoring.champion_output(out, "multiclass", ["a", "b", "c"])
    assert back.shape == (2, 3) and back[0, 1] == 0.7
    with pytest.raises(DriftInputError, match="mlops_proba_d"):
        scoring.champion_output(out, "multiclass", ["a", "d"])


def test_regression_stores_the_value_twice_and_reads_it_back() -> None:
    out = scoring.scored(predictor("regression", [1.5, -2.0]), pd.DataFrame({"x": [1, 2]}), None)
    assert out[scoring.PREDICTION_COLUMN].tolist() == out[scoring.SCORE_COLUMN].tolist() == [1.5, -2.0]
    assert scoring.champion_output(out, "regression", None).tolist() == [1.5, -2.0]
    with pytest.raises(DriftInputError, match=r"rerun monitor\.score"):
        scoring.champion_output(pd.DataFrame({"x": [1]}), "binary", None)


def test_the_reference_is_sampled_reproducibly_to_max_rows_and_scored() -> None:
    reference = pd.DataFrame({"x": range(100)}, index=range(100, 200))
    model = SimpleNamespace(task="regression", predict_scores=lambda frame: frame["x"].to_numpy() * 2.0)
    a = scoring.sample_reference(reference, model, None, max_rows=10, seed=3)
    b = scoring.sample_reference(reference, model, None, max_rows=10, seed=3)
    assert len(a) == 10 and a.equals(b) and list(a.index) == list(range(10))
    assert (a[scoring.SCORE_COLUMN] == a["x"] * 2).all()
    assert len(scoring.sample_reference(reference, model, None, max_rows=500, seed=3)) == 100


def test_an_empty_window_is_an_error_not_no_drift() -> None:
    with pytest.raises(DriftInputError, match="has no rows"):
        scoring.check_window(pd.DataFrame({"x": []}), "live.parquet")
    scoring.check_window(pd.DataFrame({"x": [1]}), "live.parquet")


def test_the_training_data_ref_and_recorded_metrics_come_from_the_version() -> None:
    import json

    from airflow_mlops.registry.mlflow_registry import TAG_TRAINING_DATA

    ref = {"uri": "/s/train.parquet", "sha256": "ab", "size": 3, "media_type": "application/x-parquet"}
    mv = SimpleNamespace(version="4", tags={TAG_TRAINING_DATA: json.dumps(ref)}, run_id="r")
    assert scoring.training_data_ref(mv, "m").uri == "/s/train.parquet"
    with pytest.raises(DriftInputError, match="version 4 of m records no training data"):
        scoring.training_data_ref(SimpleNamespace(version="4", tags={}), "m")
    metrics = {"eval_roc_auc": 0.9, "train_loss": 0.1, "eval_f1": 1}
    client = SimpleNamespace(get_run=lambda run_id: SimpleNamespace(data=SimpleNamespace(metrics=metrics)))
    assert scoring.recorded_metrics(client, mv) == {"roc_auc": 0.9, "f1": 1.0}
    assert scoring.recorded_metrics(client, SimpleNamespace(run_id=None)) == {}


def test_detect_window_checks_performance_only_on_a_labelled_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_mlops.drift as drift

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(
        drift, "detect_drift", lambda ref, cur, **kw: seen.append({"columns": list(cur.columns), **kw})
    )
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1], scoring.SCORE_COLUMN: [0.1, 0.9]})
    args = dict(
        features=["x"], target="y", task="binary", classes=None, threshold=0.4,
        champion_metrics={"roc_auc": 0.9}, performance={"roc_auc": 0.05}, prediction_drift=True,
        positive_label=1, out_of_range="drift", settings={"alpha": 0.01},
    )  # fmt: skip
    scoring.detect_window(frame, frame, **args)
    scoring.detect_window(frame.drop(columns="y"), frame, **{**args, "prediction_drift": False})
    labelled, unlabelled = seen
    assert labelled["columns"] == ["x", "y"] and labelled["target"] == "y"
    assert labelled["expected_metrics"] == {"roc_auc": 0.9} and labelled["max_metric_drop"] == {
        "roc_auc": 0.05
    }
    assert labelled["threshold"] == 0.4 and labelled["alpha"] == 0.01
    assert unlabelled["columns"] == ["x"] and unlabelled["target"] is None
    assert unlabelled["expected_metrics"] is None and unlabelled["max_metric_drop"] is None
    assert unlabelled["reference_scores"] is None and unlabelled["current_scores"].tolist() == [0.1, 0.9]
