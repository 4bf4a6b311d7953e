"""Estimator models in the trainer: XGBoost, LightGBM and scikit-learn classes by path.

Unknown parameters are named with the accepted ones, a regressor for a classification (or the
reverse) and a classifier without probabilities are refused with the fix, early stopping records
the best iteration and the saved model predicts with it, and inputs that break estimators (an
objective without probabilities, duplicate or non-text column names, an estimator's own class
order) are refused or handled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from airflow_mlops.exceptions import DataError, TrainingError
from airflow_mlops.training import trainer
from airflow_mlops.training.estimators import check_model_name, make_estimator, resolve_class
from airflow_mlops.training.flavors import CONFIG_FILE, load_predictor


def wine() -> pd.DataFrame:
    data = datasets.load_wine()
    df = pd.DataFrame(data.data, columns=[f"f{i}" for i in range(data.data.shape[1])])
    return df.assign(y=np.array(["cat", "dog", "bird"])[data.target])


def cancer() -> pd.DataFrame:
    data = datasets.load_breast_cancer()
    df = pd.DataFrame(data.data[:, :8], columns=[f"f{i}" for i in range(8)])
    return df.assign(y=data.target)


def diabetes() -> pd.DataFrame:
    data = datasets.load_diabetes()
    return pd.DataFrame(data.data, columns=data.feature_names).assign(y=data.target)


def train(df: pd.DataFrame, out: Path, **config: Any) -> dict[str, Any]:
    return trainer.train(df, {"target": "y", "device": "cpu", "seed": 1, **config}, out)


# --- building the estimator ----------------------------------------------------------------------


def test_an_unknown_parameter_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(TrainingError) as info:
        make_estimator("sklearn.ensemble.RandomForestClassifier", "binary", {"n_estimator": 5}, seed=0)
    message = str(info.value)
    assert "takes no parameter(s) n_estimator" in message
    assert "n_estimators" in message and "max_depth" in message  # the accepted ones


def test_params_and_the_seed_reach_the_estimator() -> None:
    estimator, kind = make_estimator(
        "sklearn.ensemble.RandomForestRegressor", "regression", {"n_estimators": 7}, seed=13
    )
    assert estimator.get_params()["n_estimators"] == 7 and estimator.get_params()["random_state"] == 13
    assert kind.library == "sklearn"
    fixed, _ = make_estimator(
        "sklearn.ensemble.RandomForestRegressor", "regression", {"random_state": 2}, seed=13
    )
    assert fixed.get_params()["random_state"] == 2  # the user's wins
    xgb, kind = make_estimator("xgboost", "multiclass", {"max_depth": 2}, seed=0)
    assert type(xgb).__name__ == "XGBClassifier" and kind.keeps_missing
    lgb, _ = make_estimator("lightgbm", "regression", {}, seed=0)
    assert type(lgb).__name__ == "LGBMRegressor"


@pytest.mark.parametrize(
    ("model", "task", "words"),
    [
        ("sklearn.ensemble.RandomForestRegressor", "binary", "is a regressor but the task is binary"),
        ("sklearn.linear_model.Ridge", "multiclass", "is a regressor but the task is multiclass"),
        (
            "sklearn.ensemble.RandomForestClassifier",
            "regression",
            "is a classifier but the task is regression",
        ),
        ("xgboost.XGBRegressor", "binary", "is a regressor"),
        ("lightgbm.LGBMClassifier", "regression", "is a classifier"),
    ],
)
def test_an_estimator_of_the_other_task_family_is_refused(model: str, task: str, words: str) -> None:
    with pytest.raises(TrainingError, match=words):
        resolve_class(model, task)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("sklearn.svm.LinearSVC", {}),
        ("sklearn.svm.SVC", {}),
        ("sklearn.linear_model.RidgeClassifier", {}),
        ("sklearn.linear_model.SGDClassifier", {"loss": "hinge"}),
    ],
)
def test_a_classifier_without_predict_proba_is_refused_with_the_calibration_hint(
    model: str, params: dict
) -> None:
    with pytest.raises(TrainingError, match="no predict_proba") as info:
        make_estimator(model, "multiclass", params, seed=0)
    assert "CalibratedClassifierCV" in str(info.value)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("sklearn.svm.SVC", {"probability": True}),
        ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"}),
        ("sklearn.calibration.CalibratedClassifierCV", {}),
    ],
)
def test_a_classifier_with_probabilities_under_its_params_trains(
    model: str, params: dict, tmp_path: Path
) -> None:
    """predict_proba of SVC and SGDClassifier exists only with these params: judged as configured."""
    metrics = train(wine(), tmp_path / "m", model=model, params=params)
    predictor = load_predictor(tmp_path / "m")
    assert predictor.classes == ["bird", "cat", "dog"]
    assert metrics["val_f1_macro"] is not None
    assert predictor.predict_scores(wine()).shape == (178, 3)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("os.system", "not an estimator class"),
        ("subprocess.Popen", "not an estimator class"),
        ("sklearn.ensemble.NoSuchForest", "has no 'NoSuchForest'"),
        ("no_such_package_xyz.Model", "cannot import no_such_package_xyz"),
        ("random forest", "is not mlp, cnn, xgboost, lightgbm"),
        ("pkg.module:fit", "is not mlp, cnn, xgboost, lightgbm"),
    ],
)
def test_a_model_path_that_is_not_an_estimator_class_is_refused_uncalled(
    model: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    calls: list[Any] = []
    monkeypatch.setattr(
        subprocess, "Popen", type("Recorder", (), {"__init__": lambda s, *a: calls.append(a)})
    )
    with pytest.raises(TrainingError, match=words):
        make_estimator(model, "binary", {"args": ["true"]}, seed=0)
    assert calls == []
    if model == "random forest":
        with pytest.raises(TrainingError):
            check_model_name(model)


def test_a_meta_estimator_that_needs_arguments_is_refused_with_its_error() -> None:
    with pytest.raises(TrainingError, match="cannot build VotingClassifier"):
        make_estimator("sklearn.ensemble.VotingClassifier", "multiclass", {}, seed=0)


# --- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["xgboost", "xgboost.XGBClassifier"])
def test_an_xgboost_objective_without_probabilities_is_refused(model: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="multi:softprob, not 'multi:softmax'"):
        train(wine(), tmp_path / "m", model=model, params={"objective": "multi:softmax", "n_estimators": 3})
    with pytest.raises(TrainingError, match="binary:logistic, not 'binary:hinge'"):
        train(cancer(), tmp_path / "m", model=model, params={"objective": "binary:hinge", "n_estimators": 3})
    assert not (tmp_path / "m").exists()


def test_a_lightgbm_binary_model_on_string_labels_trains_and_maps_them(tmp_path: Path) -> None:
    df = cancer().assign(y=lambda d: np.where(d["y"] == 0, "malignant", "benign"))
    train(df, tmp_path / "m", model="lightgbm", params={"n_estimators": 20}, positive_label="malignant")
    predictor = load_predictor(tmp_path / "m")
    assert predictor.classes == ["benign", "malignant"] and predictor.positive_label == "malignant"
    assert np.mean(predictor.predict(df) == df["y"].to_numpy()) > 0.9


def _noisy(seed: int = 0, n: int = 600) -> pd.DataFrame:
    """A weak signal in much noise: boosting soon overfits the training rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] + rng.normal(0, 2.0, n) > 0).astype(int)
    return pd.DataFrame(x, columns=list("abcde")).assign(y=y)


def _spy_model(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    captured: dict[str, Any] = {}
    real = trainer.save_model_dir

    def spy(directory: Path, model: Any, **kwargs: Any) -> Any:
        captured.update(model=model, **kwargs)
        return real(directory, model, **kwargs)

    monkeypatch.setattr(trainer, "save_model_dir", spy)
    return captured


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_early_stopping_records_the_best_iteration_and_the_saved_model_predicts_with_it(
    library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = _noisy()
    rounds = 300
    params = {"n_estimators": rounds, "learning_rate": 0.5, "max_depth": 6}
    if library == "lightgbm":
        params = {"n_estimators": rounds, "learning_rate": 0.5, "num_leaves": 63, "min_child_samples": 2}
    captured = _spy_model(monkeypatch)

    metrics = train(
        df, tmp_path / "m", model=library, params=params, early_stopping_patience=5, validation_fraction=0.3
    )

    best = metrics["best_iteration"]
    assert 0 <= best < rounds - 5  # stopped early
    config = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert config["training"]["best_iteration"] == best
    predictor = load_predictor(tmp_path / "m")
    x = captured["preprocessor"].transform(df)
    model = captured["model"]
    # The in-memory estimator predicts with its best iteration; so does the loaded one.
    np.testing.assert_allclose(predictor.predict_scores(df), model.predict_proba(x)[:, 1], rtol=1e-5)
    if library == "xgboost":
        assert config["iteration_range"] == [0, best + 1]
        full = model.get_booster().predict(__import__("xgboost").DMatrix(x), iteration_range=(0, 0))
        assert not np.allclose(predictor.predict_scores(df), full)  # not every round
    else:
        assert predictor.backend.booster.num_trees() == best  # only the rounds up to the best


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_early_stopping_without_validation_rows_is_refused(library: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="early stopping needs validation rows"):
        train(
            diabetes(),
            tmp_path / "m",
            model=library,
            params={"n_estimators": 5},
            early_stopping_patience=2,
            validation_fraction=0,
        )


@pytest.mark.parametrize(
    ("df", "task"), [(wine(), "multiclass"), (diabetes(), "regression")], ids=["multiclass", "regression"]
)
def test_no_validation_rows_are_fine_without_a_threshold(df: pd.DataFrame, task: str, tmp_path: Path) -> None:
    """Only a binary model chooses a threshold on validation rows: an inferred multiclass or
    regression task trains on every row."""
    metrics = train(df, tmp_path / "m", model="lightgbm", params={"n_estimators": 5}, validation_fraction=0)
    assert metrics["task"] == task and metrics["validation_rows"] == 0
    with pytest.raises(TrainingError, match="validation_fraction is 0"):
        train(cancer(), tmp_path / "b", model="lightgbm", params={"n_estimators": 5}, validation_fraction=0)


def test_an_estimator_class_of_your_own_is_refused_before_training(tmp_path: Path, userpkg: Any) -> None:
    """Its model could never be loaded (the skops types of scikit-learn, XGBoost and LightGBM only):
    refused before any fit, with the way out (a fit function returning a supported model)."""
    with pytest.raises(
        TrainingError, match=r"not a scikit-learn, XGBoost or LightGBM estimator.*fit function"
    ):
        train(wine(), tmp_path / "m", model="userpkg.estimators.ReversedClassifier")
    assert not (tmp_path / "m").exists()


def test_a_custom_type_inside_a_pipeline_is_refused_at_save_not_at_first_load(
    tmp_path: Path, userpkg: Any
) -> None:
    from sklearn.pipeline import make_pipeline
    from userpkg.estimators import ReversedClassifier  # type: ignore[import-not-found]

    from airflow_mlops.training.flavors import save_model_dir

    df = wine()
    model = make_pipeline(ReversedClassifier()).fit(df.drop(columns="y"), df["y"])
    out = tmp_path / "m"
    out.mkdir()
    with pytest.raises(TrainingError, match="cannot be stored safely"):
        save_model_dir(out, model, task="multiclass", target="y", features=list(df.columns[:-1]))
    assert not (out / "model.skops").exists()


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    df = diabetes()
    twice = pd.concat([df, df[["bmi"]]], axis=1)
    with pytest.raises(DataError, match="more than one column named 'bmi'"):
        train(twice, tmp_path / "m", model="sklearn.linear_model.Ridge")
    target_twice = pd.concat([df, df[["y"]]], axis=1)
    with pytest.raises(DataError, match="more than one column named 'y'"):
        train(target_twice, tmp_path / "m", model="sklearn.linear_model.Ridge")
    clash = df.rename(columns={"age": 1, "sex": "1"})  # one name once read as text
    with pytest.raises(DataError, match="more than one column named '1'"):
        train(clash, tmp_path / "m", model="sklearn.linear_model.Ridge")


def test_non_text_column_names_are_read_as_text(tmp_path: Path) -> None:
    data = datasets.load_diabetes()
    df = pd.DataFrame(data.data).assign(y=data.target)  # columns 0..9 (integers) and "y"

    train(df, tmp_path / "m", model="sklearn.linear_model.Ridge")

    predictor = load_predictor(tmp_path / "m")
    assert predictor.features == [str(i) for i in range(10)]
    text = df.rename(columns=str)
    assert np.isfinite(predictor.predict(text)).all()


def test_missing_values_reach_a_model_that_handles_them_and_are_imputed_for_others(tmp_path: Path) -> None:
    df = diabetes()
    df.loc[::4, "bmi"] = np.nan
    for model, kept in (("xgboost", True), ("sklearn.linear_model.Ridge", False)):
        train(df, tmp_path / model, model=model, params={})
        config = json.loads((tmp_path / model / CONFIG_FILE).read_text())
        assert (config["preprocessing"].get("missing") == "keep") is kept
        assert np.isfinite(load_predictor(tmp_path / model).predict(df)).all()


def test_a_class_with_one_row_stays_in_training(tmp_path: Path) -> None:
    df = wine()
    df.loc[0, "y"] = "emu"  # one row of its own class
    metrics = train(df, tmp_path / "m", model="lightgbm", params={"n_estimators": 5, "min_child_samples": 1})
    assert metrics["classes"] == 4
    assert load_predictor(tmp_path / "m").classes == ["bird", "cat", "dog", "emu"]


def test_infinite_features_are_refused_and_named(tmp_path: Path) -> None:
    df = diabetes()
    df.loc[7, "bmi"] = np.inf
    with pytest.raises(DataError, match="'bmi' holds 1 infinite value"):
        train(df, tmp_path / "m", model="xgboost", params={"n_estimators": 3})


def test_a_threshold_needs_a_positive_validation_row(tmp_path: Path) -> None:
    df = cancer()
    one_positive = pd.concat([df[df["y"] == 0].head(1), df[df["y"] == 1].head(60)])
    with pytest.raises(DataError, match=r"none of the \d+ is positive"):
        train(one_positive, tmp_path / "m", model="lightgbm", params={"n_estimators": 3}, positive_label=0)


@pytest.mark.parametrize(
    ("target", "classes", "positive"),
    [
        (lambda d: d["f0"] > d["f0"].median(), ["0", "1"], True),  # booleans
        (
            lambda d: pd.Categorical(
                np.where(d["f0"] > 15, "large", "small"), categories=["small", "large", "unused"]
            ),
            ["large", "small"],
            "large",
        ),
        (
            lambda d: pd.Categorical(
                np.select([d["f0"] < 12, d["f0"] < 15], ["low", "mid"], "high"),
                categories=["low", "mid", "high"],
            ),
            ["high", "low", "mid"],
            None,
        ),
    ],
    ids=["bool", "category-binary-unused", "category-multiclass"],
)
def test_bool_and_category_targets_train_and_predict_their_labels(
    target: Any, classes: list[str], positive: Any, tmp_path: Path
) -> None:
    df = cancer().assign(y=target)
    config: dict[str, Any] = {"model": "lightgbm", "params": {"n_estimators": 20}}
    if positive is not None:
        config["positive_label"] = positive

    train(df, tmp_path / "m", **config)

    predictor = load_predictor(tmp_path / "m")
    assert predictor.classes == classes
    predicted = predictor.predict(df)
    truth = np.array([str(int(v)) if isinstance(v, (bool, np.bool_)) else str(v) for v in df["y"]])
    assert set(predicted) <= set(classes)
    assert np.mean(predicted == truth) > 0.9  # f0 decides the target: the labels map right


def test_many_classes_keep_their_order_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """150 integer classes (declared: more than 20 integers infer a regression) sort 2 before 10,
    and each output column keeps its class."""
    rng = np.random.default_rng(4)
    n, k = 3000, 150
    y = np.arange(n) % k
    x = np.eye(k)[y] * 3 + rng.normal(0, 1, (n, k))  # column j points at class j
    df = pd.DataFrame(x, columns=[f"c{j}" for j in range(k)]).assign(y=y)
    captured = _spy_model(monkeypatch)

    metrics = train(
        df, tmp_path / "m", task="multiclass", model="sklearn.linear_model.LogisticRegression", params={}
    )

    assert metrics["classes"] == k
    predictor = load_predictor(tmp_path / "m")
    assert predictor.classes == [str(i) for i in range(k)]
    before = captured["model"].predict_proba(captured["preprocessor"].transform(df))
    np.testing.assert_allclose(predictor.predict_scores(df), before, rtol=1e-6)
    assert np.mean(predictor.predict(df).astype(int) == y) > 0.9
