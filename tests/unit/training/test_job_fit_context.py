"""FitContext: the contract of a fit entrypoint of your own, for every task.

``ctx.y`` encodes the target for the task, ``ctx.save`` records which label each output column
is (from the model's ``classes_``, or the context's encoding), a binary fit chooses its
threshold, and a regression network may store its target scaling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from airflow_mlops.exceptions import DataError, TrainingRejectedError
from airflow_mlops.metrics import compute_metrics
from airflow_mlops.training.flavors import CONFIG_FILE, load_predictor
from airflow_mlops.training.job import FitContext, TrainingJob, _run_entrypoint


def frame(loader: Any, labels: Any = None, columns: int = 8) -> pd.DataFrame:
    data = loader()
    df = pd.DataFrame(data.data[:, :columns], columns=[f"f{i}" for i in range(columns)])
    return df.assign(y=data.target if labels is None else labels(data.target))


def cancer(labels: Any = None) -> pd.DataFrame:
    return frame(datasets.load_breast_cancer, labels)


def wine_animals() -> pd.DataFrame:
    return frame(datasets.load_wine, lambda t: np.array(["cat", "dog", "bird"])[t], columns=13)


def run(entrypoint: str, df: pd.DataFrame, out: Path, *, options: dict | None = None, **config: Any) -> dict:
    job = TrainingJob(
        store_root=str(out.parent),
        train=None,  # type: ignore[arg-type]  # _run_entrypoint reads the frame it is given
        model=f"userpkg.fits:{entrypoint}",
        config={"target": "y", "seed": 11, **config},
        output_key="model",
        options=options or {},
    )
    return _run_entrypoint(job, df, out)


def saved_config(out: Path) -> dict[str, Any]:
    return json.loads((out / CONFIG_FILE).read_text())


def test_a_pipeline_fitted_on_raw_string_labels_keeps_them(tmp_path: Path, userpkg: Any) -> None:
    df = wine_animals()

    run("pipeline_on_labels", df, tmp_path / "m")

    ctx = userpkg.fits.LAST["ctx"]
    assert ctx.task == "multiclass"
    assert ctx.classes == ["bird", "cat", "dog"]
    # ctx.y: indices into ctx.classes
    np.testing.assert_array_equal(
        ctx.y(df), pd.Series(df["y"]).map({"bird": 0, "cat": 1, "dog": 2}).to_numpy()
    )
    config = saved_config(tmp_path / "m")
    assert config["class_order"] == [str(c) for c in userpkg.fits.LAST["model"].classes_]
    assert config["input"] == "dataframe" and config["flavor"] == "sklearn"
    predictor = load_predictor(tmp_path / "m")
    assert np.mean(predictor.predict(df) == df["y"].to_numpy()) > 0.9


def test_a_model_fitted_on_ctx_y_gets_the_contexts_classes(tmp_path: Path, userpkg: Any) -> None:
    df = wine_animals()

    run("logistic_on_y", df, tmp_path / "m")

    assert list(userpkg.fits.LAST["model"].classes_) == [0, 1, 2]
    config = saved_config(tmp_path / "m")
    assert config["class_order"] == ["bird", "cat", "dog"]
    predictor = load_predictor(tmp_path / "m")
    assert np.mean(predictor.predict(df) == df["y"].to_numpy()) > 0.9


def test_binary_ctx_y_is_one_for_the_positive_label(tmp_path: Path, userpkg: Any) -> None:
    df = cancer(lambda t: np.where(t == 0, "malignant", "benign"))

    run("logistic_on_y", df, tmp_path / "m", positive_label="malignant")

    ctx = userpkg.fits.LAST["ctx"]
    y = ctx.y(df)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, (df["y"] == "malignant").to_numpy().astype(int))
    assert ctx.classes == ["benign", "malignant"]
    predictor = load_predictor(tmp_path / "m")
    auc = compute_metrics("binary", df["y"] == "malignant", predictor.predict_scores(df))["roc_auc"]
    assert auc > 0.9
    assert set(predictor.predict(df)) == {"benign", "malignant"}
    assert predictor.threshold == saved_config(tmp_path / "m")["threshold_choice"]["value"]


def test_a_zero_one_target_with_positive_label_zero_must_say_how_the_model_was_fitted(
    tmp_path: Path, userpkg: Any
) -> None:
    """classes_ [0, 1] fit both readings -- the target's own labels and ctx.y (1 = positive,
    here label 0) -- and they disagree: guessing would store a model with inverted scores."""
    df = cancer()  # 0 = malignant, the positive class here
    positive = df["y"] == 0

    with pytest.raises(TrainingRejectedError, match=r"class_order=\['1', '0'\] if it was fitted on ctx.y"):
        run("logistic_on_y", df, tmp_path / "refused", positive_label=0)

    run("logistic_on_y", df, tmp_path / "y", positive_label=0, options={"class_order": ["1", "0"]})
    scores = load_predictor(tmp_path / "y").predict_scores(df)
    assert compute_metrics("binary", positive, scores)["roc_auc"] > 0.9

    run("logistic_on_y", df, tmp_path / "wrong", positive_label=0, options={"class_order": ["0", "1"]})
    scores = load_predictor(tmp_path / "wrong").predict_scores(df)
    assert compute_metrics("binary", positive, scores)["roc_auc"] < 0.1  # what a wrong guess stores


def test_a_zero_one_target_with_positive_label_one_needs_no_class_order(tmp_path: Path, userpkg: Any) -> None:
    df = cancer()
    run("logistic_on_y", df, tmp_path / "m", positive_label=1)
    scores = load_predictor(tmp_path / "m").predict_scores(df)
    assert compute_metrics("binary", df["y"] == 1, scores)["roc_auc"] > 0.9


def test_class_order_must_be_an_order_of_the_classes(tmp_path: Path, userpkg: Any) -> None:
    with pytest.raises(TrainingRejectedError, match="is not an order of the target's classes"):
        run("logistic_on_y", wine_animals(), tmp_path / "m", options={"class_order": ["cat", "dog", "emu"]})


def test_classes_that_are_neither_the_labels_nor_the_encoding_are_refused(
    tmp_path: Path, userpkg: Any
) -> None:
    df = cancer()
    with pytest.raises(TrainingRejectedError, match="neither the target's classes"):
        run("relabelled", df, tmp_path / "m", threshold={"rule": "fixed", "value": 0.5})


def test_a_binary_fit_must_choose_its_threshold_unless_the_rule_is_fixed(
    tmp_path: Path, userpkg: Any
) -> None:
    df = cancer()
    with pytest.raises(TrainingRejectedError, match="chose no operating threshold") as info:
        run("no_threshold", df, tmp_path / "a")
    assert "ctx.choose_threshold" in str(info.value)
    with pytest.raises(TrainingRejectedError, match="min_precision"):
        run("no_threshold", df, tmp_path / "b", threshold={"rule": "min_precision", "value": 0.8})

    metrics = run("no_threshold", df, tmp_path / "c", threshold={"rule": "fixed", "value": 0.35})

    assert metrics["threshold"] == 0.35
    assert load_predictor(tmp_path / "c").threshold == 0.35


def test_choose_threshold_on_a_multiclass_task_is_refused(tmp_path: Path, userpkg: Any) -> None:
    with pytest.raises(TrainingRejectedError, match="binary tasks, not multiclass"):
        run("threshold_on_multiclass", wine_animals(), tmp_path / "m")
    ctx = FitContext(
        target="y",
        features=None,
        positive_label=None,
        seed=0,
        device="cpu",
        params={},
        options={},
        output_dir=tmp_path,
        task="regression",
    )
    with pytest.raises(TrainingRejectedError, match="not regression"):
        ctx.choose_threshold([1, 0], [0.9, 0.1])


def test_a_regression_network_stores_its_target_scaling(tmp_path: Path, userpkg: Any) -> None:
    df = frame(datasets.load_diabetes, columns=10)

    run("torch_module", df, tmp_path / "m", options={"steps": 150})

    last = userpkg.fits.LAST
    assert last["ctx"].task == "regression" and last["ctx"].classes == []
    np.testing.assert_array_equal(last["ctx"].y(df), df["y"].to_numpy(dtype=np.float64))
    config = saved_config(tmp_path / "m")
    assert config["target_scaling"] == pytest.approx(last["scaling"])
    predictor = load_predictor(tmp_path / "m")
    predictions = predictor.predict(df)
    # On the target's scale (the network learned a standardised one): unscaled outputs sit near 0.
    assert abs(predictions.mean() - df["y"].mean()) < 0.25 * df["y"].std()
    assert compute_metrics("regression", df["y"], predictions)["r2"] > 0.3


def test_the_declared_task_and_features_reach_the_context(tmp_path: Path, userpkg: Any) -> None:
    df = frame(datasets.load_iris, columns=4).assign(extra=1.0)

    run("pipeline_on_labels", df, tmp_path / "m", task="multiclass", features=["f0", "f1", "f2", "f3"])

    ctx = userpkg.fits.LAST["ctx"]
    assert ctx.task == "multiclass" and ctx.classes == ["0", "1", "2"]
    assert list(ctx.x(df).columns) == ["f0", "f1", "f2", "f3"]
    assert saved_config(tmp_path / "m")["features"] == ["f0", "f1", "f2", "f3"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0.5, "returned float"),
        ({"curve": [0.1, 0.2]}, "non-scalar metric(s) curve"),
        ({"x": float("nan")}, "x"),
    ],
)
def test_a_fit_returns_a_mapping_of_scalars(value: Any, words: str, tmp_path: Path, userpkg: Any) -> None:
    with pytest.raises(TrainingRejectedError, match="return") as info:
        run("returns", wine_animals(), tmp_path / "m", options={"value": value})
    assert words in str(info.value)


def test_a_multiclass_task_on_two_classes_is_refused_before_the_fit_runs(
    tmp_path: Path, userpkg: Any
) -> None:
    with pytest.raises(DataError, match="has 2 classes: that is a binary task, not multiclass"):
        run("records_its_call", cancer(), tmp_path / "m", task="multiclass")
    assert "called" not in userpkg.fits.LAST
