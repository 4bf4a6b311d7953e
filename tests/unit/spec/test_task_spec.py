"""The spec's `task`: declared or implied by the metrics, the threshold and the estimator, and
refused at the key that does not fit it -- as a user writes the YAML and reads the error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec.loader import load_spec_text
from tests.unit.spec import snippets

ROOT = Path(__file__).resolve().parents[3]
BASE = snippets.header("house_prices", "price", model_name="house-prices")
FIRST = BASE.count("\n") + 1  # the line the appended text starts on


def load(text: str):
    return snippets.load(text, BASE)


def issues(text: str) -> list:
    return snippets.issues(text, BASE)


def test_a_classification_metric_on_a_regression_is_refused_at_its_key_with_the_regression_metrics() -> None:
    (issue,) = issues(
        """\
task: regression
evaluation:
  metrics:
    rmse: {max: 40000}
    roc_auc: {min: 0.8}
"""
    )
    assert issue.path == "evaluation.metrics.roc_auc"
    assert (issue.line, issue.column) == (FIRST + 4, 5)
    assert "applies to binary tasks, but `task` is regression" in issue.message
    assert "regression metrics: rmse, mae, r2, mape" in issue.message


def test_every_foreign_metric_is_reported_where_it_is_named() -> None:
    found = issues(
        """\
task: regression
evaluation:
  metrics:
    f1_macro: {min: 0.5}
  compare_to_champion:
    accuracy: {max_regression: 0.02}
"""
    )
    assert sorted(i.path for i in found) == [
        "evaluation.compare_to_champion.accuracy",
        "evaluation.metrics.f1_macro",
    ]
    assert all("`task` is regression" in i.message for i in found)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_a_threshold_on_a_task_that_is_not_binary_is_refused(task: str) -> None:
    (issue,) = issues(f"task: {task}\nevaluation:\n  threshold: 0.3\n")
    assert (issue.path, issue.line) == ("evaluation.threshold", FIRST + 2)
    assert f"`task` is {task}; remove it" in issue.message


def test_a_positive_label_on_a_regression_is_refused() -> None:
    text = BASE.replace("  target: price\n", "  target: price\n  positive_label: 1\n") + "task: regression\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "spec.yaml", check_imports=False)
    (issue,) = info.value.issues
    assert issue.path == "data.positive_label" and issue.line == 6


def test_a_misspelled_estimator_gets_a_did_you_mean() -> None:
    (issue,) = issues("training:\n  model: sklearn.ensemble.RandomForestRegresor\n")
    assert "unknown estimator 'sklearn.ensemble.RandomForestRegresor'" in issue.message
    assert "did you mean 'sklearn.ensemble.RandomForestRegressor'" in issue.message
    assert issue.path.startswith("training")


def test_a_misspelled_estimator_is_located_at_training_model() -> None:
    (issue,) = issues("training:\n  model: sklearn.ensemble.RandomForestRegresor\n")
    assert (issue.path, issue.line) == ("training.model", FIRST + 1)


def test_an_unknown_estimator_parameter_is_refused_at_its_key_with_a_did_you_mean() -> None:
    found = issues(
        """\
training:
  model: sklearn.ensemble.RandomForestRegressor
  params:
    n_estimators: 300
    max_dept: 8
    colour: blue
"""
    )
    by_path = {i.path: i for i in found}
    assert set(by_path) == {"training.params.max_dept", "training.params.colour"}
    assert by_path["training.params.max_dept"].line == FIRST + 4
    assert "did you mean 'max_depth'?" in by_path["training.params.max_dept"].message
    # No close name: the accepted ones are listed.
    assert "it takes: bootstrap, ccp_alpha" in by_path["training.params.colour"].message


def test_known_params_of_an_estimator_load_and_reach_the_trainer() -> None:
    spec = load(
        "training:\n  model: sklearn.ensemble.HistGradientBoostingRegressor\n"
        "  params: {max_iter: 200, learning_rate: 0.05}\n"
    )
    assert spec.training.kind == "estimator"
    assert spec.training.hyperparameters() == {"max_iter": 200, "learning_rate": 0.05}
    assert spec.task_hint == "regression"  # a regressor implies the task


@pytest.mark.parametrize(
    ("task", "model", "words"),
    [
        ("multiclass", "sklearn.ensemble.RandomForestRegressor", "the regressor"),
        ("binary", "xgboost.XGBRegressor", "the regressor"),
        ("regression", "lightgbm.LGBMClassifier", "the classifier"),
        # Classes other modules import too are known by their own module's path.
        ("regression", "sklearn.svm.LinearSVC", "the classifier"),
        ("binary", "sklearn.isotonic.IsotonicRegression", "the regressor"),
    ],
)
def test_an_estimator_of_the_other_task_family_is_refused_at_training_model(
    task: str, model: str, words: str
) -> None:
    (issue,) = issues(f"task: {task}\ntraining:\n  model: {model}\n")
    assert (issue.path, issue.line) == ("training.model", FIRST + 2)
    assert words in issue.message and f"`task` is {task}" in issue.message


def test_a_transformer_is_not_a_model() -> None:
    (issue,) = issues("training:\n  model: sklearn.preprocessing.StandardScaler\n")
    assert "neither a classifier nor a regressor" in issue.message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("evaluation:\n  metrics:\n    rmse: {max: 3}\n", "regression"),
        ("evaluation:\n  metrics:\n    r2: {min: 0.5}\n", "regression"),
        ("evaluation:\n  metrics:\n    f1_macro: {min: 0.5}\n", "multiclass"),
        ("evaluation:\n  metrics:\n    roc_auc: {min: 0.7}\n", "binary"),
        ("evaluation:\n  metrics:\n    accuracy: {min: 0.7}\n", None),  # binary or multiclass
        ("evaluation:\n  metrics:\n    accuracy: {min: 0.7}\n    roc_auc_ovr: {min: 0.7}\n", "multiclass"),
        ("evaluation:\n  threshold: 0.4\n", "binary"),
        ("training:\n  model: sklearn.linear_model.LogisticRegression\n", None),
        (
            "training:\n  model: sklearn.linear_model.LogisticRegression\n"
            "evaluation:\n  metrics:\n    f1_weighted: {min: 0.5}\n",
            "multiclass",
        ),
        ("", None),
        ("task: multiclass\n", "multiclass"),
    ],
)
def test_the_task_is_implied_by_what_the_spec_names(text: str, hint: str | None) -> None:
    spec = load(text)
    assert spec.task_hint == hint
    assert spec.task == ("multiclass" if text.startswith("task:") else None)  # implied, not set


def test_metrics_of_different_tasks_without_a_task_are_refused() -> None:
    (issue,) = issues("evaluation:\n  metrics:\n    rmse: {max: 3}\n    roc_auc: {min: 0.5}\n")
    assert (issue.path, issue.line) == ("evaluation.metrics.roc_auc", FIRST + 3)
    assert "metric rmse does not" in issue.message and "set `task:`" in issue.message


def test_a_regressor_and_a_classification_metric_without_a_task_are_refused() -> None:
    found = issues(
        "training:\n  model: sklearn.ensemble.RandomForestRegressor\n"
        "evaluation:\n  metrics:\n    f1_macro: {min: 0.5}\n"
    )
    assert [i.path for i in found] == ["training.model"]
    assert "cannot serve one task" in found[0].message


@pytest.mark.parametrize(
    ("params", "path", "line_offset", "words"),
    [
        ("    epochs: many\n", "training.params.epochs", 3, "valid integer"),
        ("    epochs: 5\n    epoch: 3\n", "training.params.epoch", 4, "Extra inputs"),
        ("    hidden_units: []\n", "training.params.hidden_units", 3, "at least 1 item"),
        ("    dropout: 1.5\n", "training.params.dropout", 3, ""),
    ],
)
def test_mlp_params_are_still_checked_key_by_key(
    params: str, path: str, line_offset: int, words: str
) -> None:
    (issue,) = issues("training:\n  model: mlp\n  params:\n" + params)
    assert issue.path == path, issue.format()
    assert issue.line == FIRST + line_offset
    assert words in issue.message


def test_a_layer_of_zero_units_is_refused_by_the_spec() -> None:
    (issue,) = issues("training:\n  model: mlp\n  params:\n    hidden_units: [32, 0]\n")
    assert issue.path == "training.params.hidden_units[1]"


def test_your_own_fit_entrypoint_is_accepted_with_free_params() -> None:
    spec = load("training:\n  model: mypkg.models:fit\n  params: {whatever: [1, 2], lr: fast}\n")
    assert spec.training.kind == "fit"
    assert spec.training.hyperparameters() == {"whatever": [1, 2], "lr": "fast"}
    assert spec.task_hint is None


def test_short_names_take_the_boosters_params_unchecked() -> None:
    """xgboost/lightgbm take **kwargs (booster parameters): nothing to check them against."""
    spec = load("task: regression\ntraining:\n  model: xgboost\n  params: {eta: 0.1, max_depth: 4}\n")
    assert spec.training.kind == "estimator"
    assert spec.training.hyperparameters() == {"eta": 0.1, "max_depth": 4}


def test_spec_validate_reports_the_foreign_metric_with_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "house_prices.yaml"
    spec.write_text(BASE + "task: regression\nevaluation:\n  metrics:\n    roc_auc: {min: 0.8}\n")
    out = subprocess.run(
        [sys.executable, "-m", "airflow_mlops.cli", "spec", "validate", str(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode != 0
    assert f"house_prices.yaml:{FIRST + 3}:5: evaluation.metrics.roc_auc" in out.stdout + out.stderr
    assert "regression metrics: rmse, mae, r2, mape" in out.stdout + out.stderr
