"""The one metric vocabulary (airflow_mlops.metrics).

Every metric is checked against scikit-learn called directly on random data of its task.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

from airflow_mlops.exceptions import DataError
from airflow_mlops.metrics import (
    LOWER_IS_BETTER,
    MAX_CURVE_POINTS,
    METRIC_NAMES,
    METRICS,
    PRIMARY_METRIC,
    TASK_METRICS,
    compute_metrics,
    foreign_metrics,
    metric,
    predicted_labels,
    roc_points,
    score_curves,
    tasks_of,
)
from airflow_mlops.tasks import TASKS
from tests.unit.core.curve_scores import _scores


def _binary_data(n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    score = np.clip(0.35 * y + rng.random(n) * 0.7, 0, 1)
    return y, score


def _multiclass_data(n: int = 400, k: int = 4, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _regression_data(n: int = 300, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    return y, y + rng.normal(0, 4, n)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_binary_metrics_equal_scikit_learns(threshold) -> None:
    y, score = _binary_data()
    predicted = score >= threshold

    got = compute_metrics("binary", y, score, threshold=threshold)

    expected = {
        "roc_auc": skm.roc_auc_score(y, score),
        "pr_auc": skm.average_precision_score(y, score),
        "f1": skm.f1_score(y, predicted),
        "precision": skm.precision_score(y, predicted),
        "recall": skm.recall_score(y, predicted),
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "log_loss": skm.log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[False, True]),
    }
    assert list(got) == list(TASK_METRICS["binary"])
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_score_equal_to_the_threshold_is_positive() -> None:
    got = compute_metrics("binary", [True, False], [0.4, 0.39], threshold=0.4, names=["recall", "precision"])
    assert got == {"recall": 1.0, "precision": 1.0}


def test_multiclass_metrics_equal_scikit_learns() -> None:
    y, proba = _multiclass_data()
    predicted = proba.argmax(axis=1)
    labels = list(range(proba.shape[1]))

    got = compute_metrics("multiclass", y, proba)

    expected = {
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "log_loss": skm.log_loss(y, proba, labels=labels),
        "f1_macro": skm.f1_score(y, predicted, average="macro"),
        "f1_weighted": skm.f1_score(y, predicted, average="weighted"),
        "roc_auc_ovr": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
    }
    assert list(got) == list(TASK_METRICS["multiclass"])
    assert got == pytest.approx(expected, rel=1e-9)


def test_multiclass_rows_without_one_class_average_over_the_present_ones() -> None:
    y, proba = _multiclass_data(k=4)
    keep = y != 2  # class 2 is absent from these rows but still a column of the model
    y, proba = y[keep], proba[keep]
    predicted = proba.argmax(axis=1)
    present = [0, 1, 3]

    got = compute_metrics("multiclass", y, proba)

    assert got["f1_macro"] == pytest.approx(
        skm.f1_score(y, predicted, average="macro", labels=present, zero_division=0.0)
    )
    assert got["roc_auc_ovr"] == pytest.approx(
        np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in present])
    )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2, 3]))
    assert all(math.isfinite(v) for v in got.values())


def test_regression_metrics_equal_scikit_learns() -> None:
    y, pred = _regression_data()

    got = compute_metrics("regression", y, pred)

    expected = {
        "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
        "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }
    assert list(got) == list(TASK_METRICS["regression"])
    assert got == pytest.approx(expected, rel=1e-9)


def test_metrics_are_nan_where_undefined() -> None:
    only_positive = compute_metrics("binary", [True, True, True], [0.2, 0.9, 0.6])
    assert math.isnan(only_positive["roc_auc"]) and math.isnan(only_positive["balanced_accuracy"])
    only_negative = compute_metrics("binary", [False, False], [0.2, 0.9])
    assert math.isnan(only_negative["pr_auc"]) and math.isnan(only_negative["recall"])
    assert only_negative["accuracy"] == 0.5  # defined: one row right

    one_class = compute_metrics("multiclass", [1, 1], [[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]])
    assert math.isnan(one_class["roc_auc_ovr"])
    assert one_class["accuracy"] == 0.5

    constant = compute_metrics("regression", [4.0, 4.0, 4.0], [3.0, 4.0, 5.0])
    assert math.isnan(constant["r2"])
    assert constant["mae"] == pytest.approx(2 / 3)
    assert math.isnan(compute_metrics("regression", [4.0], [3.0])["r2"])

    for task, out in (("binary", []), ("multiclass", np.zeros((0, 3))), ("regression", [])):
        empty = compute_metrics(task, [], out)
        assert list(empty) == list(TASK_METRICS[task]) and all(math.isnan(v) for v in empty.values())


@pytest.mark.parametrize(
    ("task", "y", "output", "words"),
    [
        ("binary", [True, False, True], [0.2, 0.9], "3 target value(s) but 2 prediction(s)"),
        ("regression", [1.0], [1.0, 2.0], "1 target value(s) but 2 prediction(s)"),
        ("multiclass", [0, 1], [[0.5, 0.5]], "2 target value(s) but 1 prediction(s)"),
        ("binary", [True, False], [[0.2, 0.8], [0.6, 0.4]], "one score per row"),
        ("multiclass", [0, 1], [0.2, 0.8], "one probability per class"),
        ("multiclass", [0, 3], [[0.2, 0.8], [0.6, 0.4]], "outside the model's 2 classes"),
        ("regression", [1.0, 2.0], [[1.0], [2.0]], "one value per row"),
        ("binary", [True, False], [np.nan, 0.3], "NaN or infinite"),
        ("regression", [1.0, 2.0], [np.inf, 0.3], "NaN or infinite"),
        ("regression", [1.0, 2.0], [1.0, 2.0], "roc_auc do not apply to a regression"),
    ],
)
def test_outputs_that_do_not_fit_the_task_are_refused(task, y, output, words) -> None:
    names = ["roc_auc"] if "roc_auc do not apply" in words else None
    with pytest.raises(DataError) as info:
        compute_metrics(task, y, output, names=names)
    assert words in str(info.value)


def test_names_select_metrics_and_unknown_names_are_listed() -> None:
    y, score = _binary_data()
    assert list(compute_metrics("binary", y, score, names=["f1", "roc_auc"])) == ["f1", "roc_auc"]
    with pytest.raises(KeyError, match="known: roc_auc"):
        metric("auc")


def test_the_table_is_consistent_with_itself() -> None:
    for name in METRIC_NAMES:
        m = METRICS[name]
        assert m.tasks and m.tasks <= set(TASKS)
        assert all(name in TASK_METRICS[t] for t in m.tasks)
        assert (name in LOWER_IS_BETTER) is (not m.higher_is_better)
        assert m.low < m.high
    for task in TASKS:
        assert PRIMARY_METRIC[task] in TASK_METRICS[task]
        assert tasks_of(TASK_METRICS[task]) == {task} or len(TASK_METRICS[task]) == 0
        assert foreign_metrics(task, TASK_METRICS[task]) == []
    assert tasks_of(["accuracy"]) == {"binary", "multiclass"}
    assert tasks_of(["accuracy", "rmse"]) == set()
    assert foreign_metrics("regression", ["rmse", "f1", "roc_auc_ovr"]) == ["f1", "roc_auc_ovr"]


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_drop_is_positive_exactly_when_the_metric_got_worse(name) -> None:
    m = metric(name)
    before, after = 0.4, 0.6
    # One of the two moves is worse; drop says how much, with the sign of "worse".
    for a, b in ((before, after), (after, before)):
        assert (m.drop(a, b) > 0) is m.worse(b, a)
        assert abs(m.drop(a, b)) == pytest.approx(abs(a - b))
    assert m.drop(0.5, 0.5) == 0
    assert m.worse(0.5, 0.5) is False


def test_the_direction_of_a_metric_follows_what_better_predictions_do() -> None:
    """A model closer to the truth scores better on every metric of its task (by direction)."""
    rng = np.random.default_rng(5)
    cases = {
        "binary": (rng.random(300) < 0.4, None),
        "multiclass": (rng.integers(0, 3, 300), None),
        "regression": (rng.normal(10, 3, 300), None),
    }
    for task, (y, _) in cases.items():
        if task == "binary":
            good, bad = 0.2 + 0.6 * y + rng.random(300) * 0.1, rng.random(300)
        elif task == "multiclass":
            good = np.eye(3)[y] * 0.8 + 0.1 / 3 + rng.random((300, 3)) * 0.01
            bad = rng.dirichlet(np.ones(3), 300)
        else:
            good, bad = y + rng.normal(0, 0.5, 300), y + rng.normal(0, 5, 300)
        good_m, bad_m = compute_metrics(task, y, good), compute_metrics(task, y, bad)
        for name in TASK_METRICS[task]:
            assert metric(name).worse(bad_m[name], good_m[name]), (task, name, good_m[name], bad_m[name])


def test_predicted_labels_follow_the_threshold_and_the_most_probable_class() -> None:
    assert predicted_labels("binary", [0.2, 0.5, 0.7], threshold=0.5).tolist() == [False, True, True]
    assert predicted_labels("multiclass", [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]).tolist() == [1, 0]
    with pytest.raises(DataError):
        predicted_labels("regression", [1.0])


# --- curves --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rounding", [None, 2])
def test_roc_points_match_sklearn_and_the_auc_agrees(rounding) -> None:
    y, score = _scores(rounding=rounding)
    fpr, tpr, thresholds = roc_points(y, score)
    ref_fpr, ref_tpr, ref_thr = roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)
    np.testing.assert_allclose(thresholds[1:], ref_thr[1:])
    curves = score_curves(y, score, threshold=0.5)
    assert curves["roc"]["points"] == len(ref_fpr)
    assert abs(curves["roc"]["auc"] - roc_auc_score(y, score)) < 1e-6
    assert abs(curves["pr"]["average_precision"] - average_precision_score(y, score)) < 1e-6


def test_curves_are_downsampled_monotone_with_their_endpoints() -> None:
    y, score = _scores(n=5000)
    curves = score_curves(y, score, threshold=0.4)
    roc, pr = curves["roc"], curves["pr"]
    assert roc["points"] > MAX_CURVE_POINTS  # it had to be downsampled
    for xs, ys in ((roc["fpr"], roc["tpr"]), (pr["recall"], pr["precision"])):
        assert 2 <= len(xs) == len(ys) <= MAX_CURVE_POINTS
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(pr["recall"]) >= 0) and pr["recall"][0] == 0.0 and pr["recall"][-1] == 1.0
    assert pr["precision"][-1] == pytest.approx(y.mean())
    # The kept points lie on sklearn's curve.
    ref_fpr, ref_tpr, _ = roc_curve(y, score, drop_intermediate=False)
    pairs = set(zip(np.round(ref_fpr, 12), np.round(ref_tpr, 12), strict=True))
    assert all((round(a, 12), round(b, 12)) in pairs for a, b in zip(roc["fpr"], roc["tpr"], strict=True))


def test_confusion_and_histograms_agree_with_an_independent_count() -> None:
    y, score = _scores(n=1200, seed=3)
    threshold = 0.37
    curves = score_curves(y, score, threshold=threshold)
    tn, fp, fn, tp = confusion_matrix(y, (score >= threshold).astype(int)).ravel()
    assert curves["confusion"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    hist = curves["histogram"]
    assert sum(hist["positives"]) == int(y.sum()) and sum(hist["negatives"]) == int((1 - y).sum())
    assert hist["positives"] == np.histogram(score[y == 1], bins=hist["edges"])[0].tolist()


def test_single_class_has_no_curves_and_bad_scores_are_refused() -> None:
    curves = score_curves(np.ones(10, dtype=int), np.linspace(0, 1, 10), threshold=0.5)
    assert curves["roc"] is None and curves["pr"] is None and curves["confusion"]["tp"] == 5
    with pytest.raises(DataError, match="both classes"):
        roc_points(np.zeros(4), np.arange(4) / 4)
    with pytest.raises(DataError, match="NaN or infinite"):
        score_curves([0, 1], [0.2, float("nan")], threshold=0.5)
    with pytest.raises(DataError, match="one length"):
        score_curves([0, 1, 1], [0.2, 0.3], threshold=0.5)


def test_class_curves_match_sklearn_and_fold_rare_classes() -> None:
    from airflow_mlops.metrics import MAX_MATRIX_CLASSES, OTHER_CLASSES, class_curves

    rng = np.random.default_rng(4)
    k, n = 30, 6000
    y = np.minimum(rng.geometric(0.12, n) - 1, k - 1)  # a few frequent classes, many rare ones
    proba = rng.random((n, k)) + 3.0 * np.eye(k)[y] * (rng.random(n) < 0.7)[:, None]
    proba /= proba.sum(axis=1, keepdims=True)
    predicted = np.argmax(proba, axis=1)
    curves = class_curves(y, proba, classes=[f"c{i}" for i in range(k)])
    assert curves["classes"] == k and curves["rows"] == n
    labels = curves["labels"]
    assert len(labels) == MAX_MATRIX_CLASSES and labels[-1] == OTHER_CLASSES
    assert curves["folded"] == k - (MAX_MATRIX_CLASSES - 1)
    matrix = np.asarray(curves["matrix"])
    assert matrix.sum() == n
    full = confusion_matrix(y, predicted, labels=range(k))
    shown = [int(label[1:]) for label in labels[:-1]]
    np.testing.assert_array_equal(matrix[:-1, :-1], full[np.ix_(shown, shown)])  # the shown block is exact
    support = np.bincount(y, minlength=k)
    assert (
        sorted(support[shown].tolist(), reverse=True) == sorted(support.tolist(), reverse=True)[: len(shown)]
    )
    c0 = next(c for c in curves["per_class"] if c["class"] == "c0")
    assert c0["recall"] == pytest.approx(full[0, 0] / full[0].sum())
    assert c0["precision"] == pytest.approx(full[0, 0] / full[:, 0].sum())
    assert curves["accuracy"] == pytest.approx(np.mean(predicted == y))
    small = class_curves([0, 1, 2, 2], np.eye(3)[[0, 2, 2, 1]])
    assert small["labels"] == ["0", "1", "2"] and small["folded"] == 0
    with pytest.raises(DataError, match="outside the model's 3 classes"):
        class_curves([0, 3], np.eye(3)[[0, 1]])


HALF_BINS = 20  # a constant residual falls in the middle bin of the default 40


def test_residual_curves_are_bounded_keep_the_extremes_and_count_every_row() -> None:
    from airflow_mlops.metrics import MAX_SCATTER_POINTS, residual_curves

    rng = np.random.default_rng(2)
    y = rng.normal(100.0, 20.0, 5000)
    pred = y + rng.normal(0.0, 5.0, 5000)
    pred[123] = y[123] - 90.0  # the worst residual must be shown
    curves = residual_curves(y, pred)
    points = curves["points"]
    assert len(points["predicted"]) <= MAX_SCATTER_POINTS
    assert max(points["residual"]) == pytest.approx(90.0)
    assert sum(curves["histogram"]["counts"]) == 5000
    assert curves["summary"]["mean"] == pytest.approx(np.mean(y - pred))
    assert curves["summary"]["max_abs"] == pytest.approx(90.0)
    assert (
        residual_curves([1.0, 2.0], [1.0, 2.0])["histogram"]["counts"][HALF_BINS] == 2
    )  # constant residuals
    with pytest.raises(DataError, match="NaN or infinite"):
        residual_curves([1.0, 2.0], [1.0, float("nan")])
