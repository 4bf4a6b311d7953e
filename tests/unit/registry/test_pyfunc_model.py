"""The MLflow "models from code" wrapper (airflow_mlops.registry.pyfunc_model), called directly.

The wrapper rebuilds the model from its weights and answers, per task, what its docstring promises:
a binary model's positive-class probabilities, a multiclass model's probability table (class labels
as text, on the input's index), a regression's values; or labels on request. Registering every
flavor and loading it back through ``models:/<name>@champion`` is in ``test_mlflow_registry.py``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.registry.pyfunc_model import OUTPUTS, AirflowMLOpsModel
from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.trainer import train

FEATURES = ["usage", "tenure", "region"]
TARGETS = {"binary": "churned", "multiclass": "plan", "regression": "spend"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 300
    df = pd.DataFrame(
        {
            "usage": rng.normal(0, 1, n),
            "tenure": rng.normal(0, 1, n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    df["churned"] = np.where(df.usage + rng.normal(0, 0.5, n) > 0, "yes", "no")
    df["plan"] = np.select([df.usage < -0.5, df.usage < 0.5], [1, 2], 3)  # integer classes
    df["spend"] = 50 + 10 * df.usage - 5 * df.tenure + rng.normal(0, 1, n)
    return df


@pytest.fixture(scope="module")
def weights(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small LightGBM model of each task, trained by the project's trainer."""
    out = {}
    for task, target in TARGETS.items():
        config: dict[str, Any] = {
            "target": target,
            "model": "lightgbm",
            "params": {"n_estimators": 6},
            "task": task,
            "seed": 3,
        }
        if task == "binary":
            config["positive_label"] = "yes"
        out[task] = tmp_path_factory.mktemp(task) / "weights"
        train(frame[[*FEATURES, target]], config, out[task])
    return out


def _loaded(weights_dir: Path) -> AirflowMLOpsModel:
    """The wrapper as MLflow loads it: ``load_context`` with the model's ``weights`` artifact."""
    model = AirflowMLOpsModel()
    model.load_context(SimpleNamespace(artifacts={"weights": str(weights_dir)}))
    return model


@pytest.fixture(scope="module")
def rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Input rows on an index of their own (not 0..n-1), without the targets."""
    return frame.sample(20, random_state=4)[FEATURES]


def test_the_outputs_are_probabilities_or_labels() -> None:
    assert OUTPUTS == ("probabilities", "labels")


def test_a_binary_model_answers_the_positive_class_probability(
    weights: dict[str, Path], rows: pd.DataFrame
) -> None:
    predictor = load_predictor(weights["binary"])
    got = _loaded(weights["binary"]).predict(None, rows)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (len(rows),)
    assert ((got >= 0) & (got <= 1)).all()
    np.testing.assert_allclose(got, predictor.predict_scores(rows))
    # the probability of "yes" rises with usage, as the data was made
    low, high = rows.assign(usage=-3.0), rows.assign(usage=3.0)
    model = _loaded(weights["binary"])
    assert (model.predict(None, high) > model.predict(None, low)).all()


def test_a_multiclass_model_answers_a_probability_table_on_the_inputs_index(
    weights: dict[str, Path], rows: pd.DataFrame
) -> None:
    predictor = load_predictor(weights["multiclass"])
    got = _loaded(weights["multiclass"]).predict(None, rows)
    assert isinstance(got, pd.DataFrame)
    assert list(got.columns) == ["1", "2", "3"] == predictor.classes  # the labels as text, in order
    assert list(got.index) == list(rows.index)
    np.testing.assert_allclose(got.to_numpy(), predictor.predict_scores(rows))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    # idxmax is the predicted class, as the labels output says
    labels = _loaded(weights["multiclass"]).predict(None, rows, params={"output": "labels"})
    np.testing.assert_array_equal(got.idxmax(axis=1).to_numpy(), np.asarray(labels))


def test_a_regression_answers_values(
    weights: dict[str, Path], rows: pd.DataFrame, frame: pd.DataFrame
) -> None:
    predictor = load_predictor(weights["regression"])
    got = _loaded(weights["regression"]).predict(None, rows)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (len(rows),)
    np.testing.assert_allclose(got, predictor.predict_scores(rows))
    assert got.min() >= frame.spend.min() - 1 and got.max() <= frame.spend.max() + 1  # the target's scale
    labels = _loaded(weights["regression"]).predict(None, rows, params={"output": "labels"})
    np.testing.assert_allclose(np.asarray(labels, dtype=float), got)  # a regression's labels are its values


@pytest.mark.parametrize("task", list(TARGETS))
def test_labels_on_request_are_the_predictors(
    task: str, weights: dict[str, Path], rows: pd.DataFrame
) -> None:
    predictor = load_predictor(weights[task])
    labels = _loaded(weights[task]).predict(None, rows, params={"output": "labels"})
    np.testing.assert_array_equal(np.asarray(labels), predictor.predict(rows))
    if task != "regression":
        assert set(np.asarray(labels)) <= set(predictor.classes)


def test_a_binary_models_labels_follow_its_threshold(weights: dict[str, Path], rows: pd.DataFrame) -> None:
    model = _loaded(weights["binary"])
    scores = model.predict(None, rows)
    labels = np.asarray(model.predict(None, rows, params={"output": "labels"}))
    threshold = load_predictor(weights["binary"]).config["threshold"]
    np.testing.assert_array_equal(labels == "yes", scores >= threshold)


@pytest.mark.parametrize("params", [None, {}, {"output": None}, {"output": ""}, {"other": 1}])
def test_probabilities_are_the_default_output(
    weights: dict[str, Path], rows: pd.DataFrame, params: Any
) -> None:
    model = _loaded(weights["binary"])
    np.testing.assert_array_equal(model.predict(None, rows, params=params), model.predict(None, rows))
    np.testing.assert_array_equal(
        model.predict(None, rows, params=params),
        model.predict(None, rows, params={"output": "probabilities"}),
    )


@pytest.mark.parametrize("output", ["logits", "Labels", "label", 1])
def test_an_unknown_output_is_refused(weights: dict[str, Path], rows: pd.DataFrame, output: Any) -> None:
    with pytest.raises(ValueError, match=f"output must be one of probabilities, labels, got {output!r}"):
        _loaded(weights["binary"]).predict(None, rows, params={"output": output})


def test_rows_that_are_not_a_dataframe_are_read_as_one(weights: dict[str, Path], rows: pd.DataFrame) -> None:
    model = _loaded(weights["multiclass"])
    expected = model.predict(None, rows.reset_index(drop=True))
    as_records = model.predict(None, rows.to_dict(orient="records"))
    as_columns = model.predict(None, rows.to_dict(orient="list"))
    pd.testing.assert_frame_equal(as_records, expected)
    pd.testing.assert_frame_equal(as_columns, expected)


def test_the_weights_come_from_the_context_artifact(weights: dict[str, Path], rows: pd.DataFrame) -> None:
    binary, regression = _loaded(weights["binary"]), _loaded(weights["regression"])
    assert binary.predict(None, rows).max() <= 1 < regression.predict(None, rows).max()
    with pytest.raises(KeyError):
        AirflowMLOpsModel().load_context(SimpleNamespace(artifacts={}))


def test_a_missing_weights_directory_fails_to_load(tmp_path: Path) -> None:
    from airflow_mlops.exceptions import ArtifactError

    with pytest.raises(ArtifactError, match="is not a model trained by airflow-mlops"):
        AirflowMLOpsModel().load_context(SimpleNamespace(artifacts={"weights": str(tmp_path / "none")}))
