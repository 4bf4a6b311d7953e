"""Performance drift: a champion metric on the labelled live window against its recorded value, in
the metric's direction, and the labels check (fail closed) when the labels cannot be measured."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift.performance import (
    DEFAULT_MAX_METRIC_DROP,
    DEFAULT_MAX_METRIC_DROPS,
    performance_checks,
)
from airflow_mlops.drift.report import PerformanceCheck
from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.metrics import METRICS, PRIMARY_METRIC


def check(
    labels: list[Any],
    scores: Any,
    expected: dict[str, float],
    max_drop: dict[str, float] | None = None,
    *,
    task: str = "binary",
    classes: list[str] | None = None,
    positive_label: Any = 1,
    threshold: float = 0.5,
) -> tuple[list[PerformanceCheck], Any]:
    current = pd.DataFrame({"x": np.arange(len(labels)), "y": labels})
    return performance_checks(
        current,
        "y",
        None if scores is None else np.asarray(scores, dtype=np.float64),
        expected,
        max_drop,
        positive_label,
        threshold,
        task,
        classes,
    )


def test_the_default_allowance_is_the_tasks_primary_metric() -> None:
    assert DEFAULT_MAX_METRIC_DROPS["binary"] == DEFAULT_MAX_METRIC_DROP
    for task, drops in DEFAULT_MAX_METRIC_DROPS.items():
        assert dict(drops) == {PRIMARY_METRIC[task]: 0.05}
    assert "regression" not in DEFAULT_MAX_METRIC_DROPS  # its metrics are in the target's units


def test_binary_by_default_roc_auc_may_fall_by_0_05() -> None:
    labels = [0, 0, 1, 1, 0, 1]
    good = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]
    checks, labels_check = check(labels, good, {"roc_auc": 0.97})
    assert checks == [PerformanceCheck("roc_auc", 0.97, 1.0, 0.05, False)] and labels_check is None
    (inverted,), _ = check(labels, [1 - s for s in good], {"roc_auc": 0.97})
    assert inverted.current == 0.0 and inverted.drifted


@pytest.mark.parametrize(("allowed", "drifted"), [(0.1, False), (0.09, True)])
def test_a_metric_drifts_when_it_falls_by_more_than_its_allowance(allowed: float, drifted: bool) -> None:
    # predicted positive at 0.5: [1, 0, 0, 0] against [1, 1, 0, 0]: accuracy 0.75, a drop of 0.1
    (accuracy,), _ = check([1, 1, 0, 0], [0.9, 0.2, 0.1, 0.3], {"accuracy": 0.85}, {"accuracy": allowed})
    assert accuracy.current == pytest.approx(0.75) and accuracy.drifted is drifted
    assert accuracy.max_drop == allowed and accuracy.drop == pytest.approx(0.1)


def test_the_operating_threshold_decides_the_predicted_class() -> None:
    (low,), _ = check(
        [1, 1, 0, 0], [0.9, 0.2, 0.1, 0.3], {"accuracy": 0.85}, {"accuracy": 0.5}, threshold=0.05
    )
    assert low.current == 0.5  # every row predicted positive


@pytest.mark.parametrize(("allowed", "drifted"), [(0.6, False), (0.4, True)])
def test_lower_is_better_metrics_drift_when_they_rise(allowed: float, drifted: bool) -> None:
    # rmse of [1, 2, 3, 6] against [1, 2, 3, 4]: sqrt(4 / 4) = 1.0, recorded 0.5: worse by 0.5
    (rmse,), _ = check([1, 2, 3, 4], [1, 2, 3, 6], {"rmse": 0.5}, {"rmse": allowed}, task="regression")
    assert rmse.current == pytest.approx(1.0) and rmse.drop == pytest.approx(0.5) and rmse.drifted is drifted
    (better,), _ = check([1, 2, 3, 4], [1, 2, 3, 6], {"rmse": 2.0}, {"rmse": 0.0}, task="regression")
    assert not better.drifted and better.drop == pytest.approx(-1.0)


def test_only_labelled_rows_are_measured() -> None:
    labels = [0, None, 1, np.nan, 0, 1]
    scores = [0.1, 0.99, 0.9, 0.0, 0.2, 0.8]  # the unlabelled rows would spoil the AUC
    (roc_auc,), _ = check(labels, scores, {"roc_auc": 1.0})
    assert roc_auc.current == 1.0 and not roc_auc.drifted
    with pytest.raises(DriftInputError, match="the target column 'y' of the current window has no labels"):
        check([None, None], [0.1, 0.2], {"roc_auc": 1.0})


# --- bad input -------------------------------------------------------------------------------


def test_the_labels_scores_and_their_lengths_are_required() -> None:
    current = pd.DataFrame({"x": [1.0, 2.0]})
    args: tuple[Any, ...] = ({"roc_auc": 0.9}, None, 1, 0.5, "binary", None)
    for target in (None, "y"):
        with pytest.raises(DriftInputError, match=f"target {target!r} is not a column of the current window"):
            performance_checks(current, target, np.zeros(2), *args)
    with pytest.raises(DriftInputError, match="expected_metrics needs current_scores"):
        check([0, 1], None, {"roc_auc": 0.9})
    with pytest.raises(
        DriftInputError, match="current_scores has 3 values but the current window has 2 rows"
    ):
        check([0, 1], [0.1, 0.2, 0.3], {"roc_auc": 0.9})


def test_a_regression_must_name_its_metric_and_allowance() -> None:
    with pytest.raises(DriftInputError, match="a regression model has no default performance check"):
        check([1.0, 2.0], [1.0, 2.0], {"rmse": 1.0}, task="regression")


def test_every_problem_of_the_metric_settings_is_listed_at_once() -> None:
    drops = {"rooc": 0.1, "rmse": 0.1, "f1": -1.0, "accuracy": True, "roc_auc": 0.05}
    with pytest.raises(DriftInputError) as err:
        check([0, 1], [0.1, 0.9], {"roc_auc": 0.9}, drops)
    lines = str(err.value).splitlines()
    assert lines[0] == "cannot check performance drift:"
    problems = [line.strip() for line in lines[1:]]
    assert problems[0].startswith("'rooc' is not a metric (known: roc_auc, ")
    assert problems[1].startswith("'rmse' does not apply to a binary model (its metrics: roc_auc, ")
    assert problems[2:] == [
        "the champion has no recorded 'rmse' in expected_metrics",
        "the champion has no recorded 'f1' in expected_metrics",
        "the champion has no recorded 'accuracy' in expected_metrics",
        "max_metric_drop['f1']=-1.0 must be a number >= 0",
        "max_metric_drop['accuracy']=True must be a number >= 0",
    ]


def test_output_the_metrics_cannot_read_is_a_drift_input_error() -> None:
    with pytest.raises(
        DriftInputError, match="cannot check performance drift: a binary model gives one score"
    ):
        check([0, 1], [[0.1, 0.9], [0.8, 0.2]], {"roc_auc": 0.9})


# --- labels that cannot be measured: the labels check fails --------------------------------


def test_a_binary_window_of_one_class_fails_the_labels_check() -> None:
    checks, labels = check([1, 1, 1, 1], [0.9, 0.8, 0.4, 0.7], {"roc_auc": 0.9, "recall": 0.9}, {
        "roc_auc": 0.05, "recall": 0.5,
    })  # fmt: skip
    roc_auc, recall = checks
    assert math.isnan(roc_auc.current) and not roc_auc.drifted  # not measured is not drift ...
    assert recall.current == 0.75 and not recall.drifted  # ... and the other metric is still measured
    assert labels is not None and not labels.passed and labels.alarm  # ... but the labels check fails
    assert (labels.check, labels.column, labels.current) == ("labels", "y", 1.0)
    assert labels.message == (
        "roc_auc cannot be measured on the live window: its 4 labelled rows are all one class (share positive 1.00)"
    )


def test_a_binary_window_of_negatives_only_is_measured_with_the_models_classes() -> None:
    checks, labels = check(
        ["no", "no", "no"], [0.1, 0.6, 0.2], {"accuracy": 0.9, "roc_auc": 0.9}, {"accuracy": 0.5, "roc_auc": 0.1},
        classes=["no", "yes"], positive_label="yes",
    )  # fmt: skip
    accuracy, roc_auc = checks
    assert accuracy.current == pytest.approx(2 / 3) and math.isnan(roc_auc.current)
    assert labels is not None and labels.current == 0.0 and "share positive 0.00" in labels.message


def test_binary_labels_the_model_never_saw_fail_closed() -> None:
    checks, labels = check(
        ["no", "yes", "maybe", "unsure"], [0.1, 0.9, 0.5, 0.5], {"roc_auc": 0.9, "f1": 0.8},
        {"roc_auc": 0.05, "f1": 0.05}, classes=["no", "yes"], positive_label="yes",
    )  # fmt: skip
    assert [(c.metric, c.expected, c.max_drop, c.drifted) for c in checks] == [
        ("roc_auc", 0.9, 0.05, False),
        ("f1", 0.8, 0.05, False),
    ]
    assert all(math.isnan(c.current) for c in checks)
    assert labels is not None and not labels.passed and labels.reference is labels.current is None
    assert labels.message == (
        "the live window's labels cannot be compared with the champion's output: target column 'y' holds "
        "label(s) 'maybe', 'unsure' that the model was not trained on (its classes: 'no', 'yes')"
    )


def test_a_positive_label_outside_the_models_classes_is_an_error() -> None:
    with pytest.raises(
        DriftInputError, match=r"positive_label 'ja' is not one of the model's classes \['no', 'yes'\]"
    ):
        check(["no", "yes"], [0.1, 0.9], {"roc_auc": 0.9}, classes=["no", "yes"], positive_label="ja")


def test_multiclass_needs_the_models_classes() -> None:
    proba = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]
    with pytest.raises(DriftInputError, match="performance drift of a multiclass model needs classes="):
        check(["a", "b"], proba, {"f1_macro": 0.9}, task="multiclass")


def test_multiclass_metrics_on_the_classes_order() -> None:
    proba = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]]
    (f1,), labels = check(
        ["a", "b", "c", "a"], proba, {"f1_macro": 0.9}, task="multiclass", classes=["a", "b", "c"]
    )
    assert f1.current == 1.0 and not f1.drifted and labels is None
    # the same probabilities read with the classes in another order: every row is wrong
    (wrong,), _ = check(
        ["a", "b", "c", "a"], proba, {"f1_macro": 0.9}, task="multiclass", classes=["b", "c", "a"]
    )
    assert wrong.current == 0.0 and wrong.drifted


def test_a_multiclass_window_of_one_class_fails_the_labels_check() -> None:
    proba = [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3]]
    checks, labels = check(
        ["b", "b", "b"], proba, {"roc_auc_ovr": 0.9, "accuracy": 0.9}, {"roc_auc_ovr": 0.05, "accuracy": 0.5},
        task="multiclass", classes=["a", "b", "c"],
    )  # fmt: skip
    roc_auc, accuracy = checks
    assert math.isnan(roc_auc.current) and accuracy.current == 1.0
    assert labels is not None and labels.current == 1.0
    assert labels.message.endswith("its 3 labelled rows hold 1 class(es) only ('b')")


def test_regression_labels_that_are_not_numbers_fail_the_labels_check() -> None:
    checks, labels = check(
        ["1.5", "two", "3"], [1.0, 2.0, 3.0], {"mae": 0.5}, {"mae": 1.0}, task="regression"
    )
    assert math.isnan(checks[0].current) and not checks[0].drifted
    assert labels is not None and not labels.passed and "non-numeric value(s) such as 'two'" in labels.message


def test_a_constant_regression_target_measures_the_errors_but_not_r2() -> None:
    checks, labels = check(
        [5.0, 5.0, 5.0, 5.0], [4.0, 5.0, 6.0, 5.0], {"r2": 0.8, "mae": 0.2}, {"r2": 0.1, "mae": 1.0},
        task="regression",
    )  # fmt: skip
    r2, mae = checks
    assert math.isnan(r2.current) and mae.current == pytest.approx(0.5) and not mae.drifted
    assert labels is not None and labels.current == 0.0
    assert (
        labels.message
        == "r2 cannot be measured on the live window: its 4 labelled rows have a constant target"
    )


def test_every_metric_of_the_task_can_be_checked() -> None:
    """Each binary metric, recorded at its own value on these rows, passes with no allowance."""
    labels = [0, 1, 0, 1, 1, 0, 1, 0]
    scores = [0.2, 0.7, 0.4, 0.9, 0.3, 0.6, 0.8, 0.1]
    names = [m for m, metric in METRICS.items() if "binary" in metric.tasks]
    from airflow_mlops.metrics import compute_metrics

    recorded = compute_metrics("binary", np.array(labels, dtype=bool), np.array(scores), names=names)
    checks, labels_check = check(labels, scores, recorded, dict.fromkeys(names, 0.0))
    assert [c.metric for c in checks] == names and labels_check is None
    assert all(c.current == pytest.approx(recorded[c.metric]) and not c.drifted for c in checks)
