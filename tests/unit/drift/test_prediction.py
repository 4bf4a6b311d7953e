"""Prediction drift: the champion's output checked per task, the numeric tests on binary and
regression scores, the categorical tests on the shares of a multiclass model's predicted classes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from airflow_mlops.drift.prediction import class_names, class_share_drift, model_outputs, prediction_drift
from airflow_mlops.drift.univariate import feature_verdict
from airflow_mlops.exceptions import DriftInputError

THRESHOLDS = {"wasserstein": 0.1, "psi": 0.2, "jensen_shannon": 0.1}
NUMERIC = ("ks", "wasserstein", "psi")
CATEGORICAL = ("chi2", "jensen_shannon", "psi")

# --- model_outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_scores_are_one_float_per_row(task: str) -> None:
    out = model_outputs([[0.1], [0.7], [1]], "current_scores", task, None)
    assert out.dtype == np.float64 and out.shape == (3,) and out.tolist() == [0.1, 0.7, 1.0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["a", "b"], "current_scores must be a 1-D array of numbers"),
        ([[0.1, 0.2], [0.3]], "current_scores must be a 1-D array of numbers"),
        ([], "current_scores is empty; score the window first or leave current_scores out"),
        ([0.1, np.nan, np.inf, 0.3], "current_scores holds 2 NaN or infinite score(s)"),
    ],
)
def test_bad_scores_say_what_is_wrong(values: Any, message: str) -> None:
    with pytest.raises(DriftInputError) as err:
        model_outputs(values, "current_scores", "binary", None)
    assert message in str(err.value)


def test_multiclass_outputs_are_the_class_probabilities() -> None:
    proba = [[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]]
    out = model_outputs(proba, "reference_scores", "multiclass", ["a", "b", "c"])
    assert out.shape == (2, 3) and out.dtype == np.float64
    assert model_outputs(proba, "reference_scores", "multiclass", None).shape == (2, 3)


@pytest.mark.parametrize(
    ("values", "classes", "message"),
    [
        ([0.2, 0.8], None, "shape (rows, classes); got shape (2,)"),
        ([[1.0], [1.0]], None, "shape (rows, classes); got shape (2, 1)"),
        ([[0.2, 0.8], [0.5, 0.5]], ["a", "b", "c"], "shape (rows, 3); got shape (2, 2)"),
        (np.empty((0, 3)), ["a", "b", "c"], "reference_scores is empty"),
        ([[0.2, np.nan], [np.nan, 0.5]], None, "reference_scores holds 2 NaN or infinite probabilities"),
        ([["x", "y"]], None, "must be a (rows, classes) array of probabilities"),
    ],
)
def test_bad_multiclass_outputs_say_what_is_wrong(
    values: Any, classes: list[str] | None, message: str
) -> None:
    with pytest.raises(DriftInputError) as err:
        model_outputs(values, "reference_scores", "multiclass", classes)
    assert message in str(err.value)


def test_class_names_are_the_classes_as_text_or_the_column_numbers() -> None:
    proba = np.zeros((4, 3))
    assert class_names([0, 1, 2], proba) == ["0", "1", "2"]
    assert class_names(["setosa", "versicolor", "virginica"], proba) == ["setosa", "versicolor", "virginica"]
    assert class_names(None, proba) == ["0", "1", "2"]


# --- prediction_drift ------------------------------------------------------------------------


def test_binary_scores_that_moved_drift_by_every_numeric_test() -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.beta(2, 5, 1500), rng.beta(5, 2, 1200)
    result = prediction_drift(ref, cur, NUMERIC, 0.05, THRESHOLDS)
    assert [t.test for t in result.tests] == list(NUMERIC) and all(t.drifted for t in result.tests)
    assert result.drifted and (result.reference_rows, result.current_rows) == (1500, 1200)
    assert result.task == "binary" and result.subject == "the positive class's probability"
    ks, wasserstein, _ = result.tests
    expected = scipy_stats.ks_2samp(ref, cur, method="asymp")
    assert ks.statistic == pytest.approx(expected.statistic) and ks.adjusted_p_value == ks.p_value
    assert ks.threshold == 0.05 and wasserstein.threshold == 0.1
    assert wasserstein.statistic == pytest.approx(scipy_stats.wasserstein_distance(ref, cur) / ref.std())
    hist = result.histogram
    both = np.concatenate([ref, cur])  # the bins span both windows
    assert hist["edges"][0] == both.min() and hist["edges"][-1] == both.max()
    assert sum(hist["reference"]) == pytest.approx(1) and sum(hist["current"]) == pytest.approx(1)


def test_scores_drawn_alike_do_not_drift() -> None:
    rng = np.random.default_rng(8)
    result = prediction_drift(
        rng.normal(size=2000), rng.normal(size=1500), NUMERIC, 0.05, THRESHOLDS, "regression"
    )
    assert not result.drifted and not any(t.drifted for t in result.tests)
    assert result.task == "regression" and result.subject == "the predicted values"


def test_the_tests_asked_for_are_the_ones_run() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=500), rng.normal(0.5, 1, 500)
    only_ks = prediction_drift(ref, cur, ["ks"], 0.05, THRESHOLDS)
    assert [t.test for t in only_ks.tests] == ["ks"] and only_ks.drifted  # significance alone
    only_psi = prediction_drift(ref, cur, ["psi"], 0.05, {"psi": 100.0})
    assert [t.test for t in only_psi.tests] == ["psi"] and not only_psi.drifted


def test_constant_reference_scores_scale_the_wasserstein_distance_by_one() -> None:
    result = prediction_drift(np.full(100, 0.3), np.full(80, 0.5), ["wasserstein"], 0.05, THRESHOLDS)
    (wasserstein,) = result.tests
    assert wasserstein.statistic == pytest.approx(0.2) and wasserstein.drifted


# --- class_share_drift -----------------------------------------------------------------------


def one_hot(classes: list[int], k: int = 3) -> np.ndarray:
    proba = np.full((len(classes), k), 0.1)
    proba[np.arange(len(classes)), classes] = 0.8
    return proba


def test_the_predicted_classes_shares_are_compared_by_the_categorical_tests() -> None:
    ref = one_hot([0] * 50 + [1] * 30 + [2] * 20)
    cur = one_hot([0] * 10 + [1] * 10 + [2] * 60)
    result = class_share_drift(ref, cur, ["a", "b", "c"], CATEGORICAL, 0.05, THRESHOLDS)
    assert result.histogram == {
        "categories": ["a", "b", "c"],
        "reference": pytest.approx([0.5, 0.3, 0.2]),
        "current": pytest.approx([0.125, 0.125, 0.75]),
    }
    chi2, p, _, _ = scipy_stats.chi2_contingency([[50, 30, 20], [10, 10, 60]])
    assert [t.test for t in result.tests] == list(CATEGORICAL)
    first = result.tests[0]
    assert first.statistic == pytest.approx(chi2) and first.p_value == pytest.approx(p, abs=1e-9)
    assert first.adjusted_p_value == first.p_value and first.threshold == 0.05
    assert result.drifted and all(t.drifted for t in result.tests)
    assert (result.reference_rows, result.current_rows, result.task) == (100, 80, "multiclass")
    assert result.subject == "the shares of the predicted classes"


def test_the_same_class_mix_does_not_drift_and_an_unpredicted_class_counts_zero() -> None:
    ref = one_hot([0] * 60 + [1] * 40)  # class 2 is never predicted
    cur = one_hot([1] * 20 + [0] * 30)
    result = class_share_drift(ref, cur, ["a", "b", "c"], CATEGORICAL, 0.05, THRESHOLDS)
    assert result.histogram["reference"] == pytest.approx([0.6, 0.4, 0.0])
    assert result.histogram["current"] == pytest.approx([0.6, 0.4, 0.0])
    assert not result.drifted and result.tests[0].statistic == pytest.approx(0.0)


# --- a binary model's predicted classes ------------------------------------------------------


def scores_with_positive_share(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Scores whose distribution barely moves with the share: positives just above 0.5."""
    scores = rng.uniform(0.0, 0.45, n)
    positive = rng.random(n) < share
    scores[positive] = rng.uniform(0.5, 0.55, int(positive.sum()))
    return scores


def test_a_doubled_share_of_positive_predictions_drifts_by_the_class_shares() -> None:
    """2 % -> 4 % positive predictions at 10,000 rows: the score tests stay quiet (KS D is about
    0.02, the distances small), the chi-squared test of the predicted classes flags it."""
    rng = np.random.default_rng(11)
    ref, cur = scores_with_positive_share(rng, 10_000, 0.02), scores_with_positive_share(rng, 10_000, 0.04)
    result = prediction_drift(ref, cur, NUMERIC, 0.05, THRESHOLDS, categorical_tests=CATEGORICAL)
    assert not any(t.drifted for t in result.tests if t.p_value is None)  # small for the distances
    assert not feature_verdict(result.tests)  # the scores alone: no drift
    assert result.drifted and result.class_drifted and result.threshold == 0.5
    assert result.class_histogram["categories"] == ["negative", "positive"]
    positive_r, positive_c = int((ref >= 0.5).sum()), int((cur >= 0.5).sum())
    assert result.class_histogram["reference"] == pytest.approx([1 - positive_r / 1e4, positive_r / 1e4])
    chi2, jensen_shannon, psi_ = result.class_tests
    expected = scipy_stats.chi2_contingency([[1e4 - positive_r, positive_r], [1e4 - positive_c, positive_c]])
    assert chi2.statistic == pytest.approx(expected.statistic) and chi2.p_value == pytest.approx(
        expected.pvalue
    )
    # the scores' KS and the classes' chi-squared share the prediction family's level
    assert chi2.adjusted_p_value == pytest.approx(min(1.0, 2 * expected.pvalue))
    ks = result.tests[0]
    assert ks.adjusted_p_value == pytest.approx(min(1.0, 2 * ks.p_value))
    assert chi2.drifted and chi2.detail == "2 levels, dof 1"
    assert not jensen_shannon.drifted and not psi_.drifted  # what the distances alone would have said


def test_binary_classes_drawn_alike_do_not_drift_and_regression_has_no_classes() -> None:
    rng = np.random.default_rng(12)
    flagged = 0
    for _ in range(40):
        ref, cur = scores_with_positive_share(rng, 3000, 0.1), scores_with_positive_share(rng, 2000, 0.1)
        result = prediction_drift(ref, cur, NUMERIC, 0.05, THRESHOLDS, categorical_tests=CATEGORICAL)
        flagged += result.drifted
    assert flagged <= 2  # 40 unchanged windows at alpha 0.05 for the family: 2 expected at most
    regression = prediction_drift(
        rng.normal(size=300), rng.normal(size=300), NUMERIC, 0.05, THRESHOLDS, "regression",
        categorical_tests=CATEGORICAL,
    )  # fmt: skip
    assert regression.class_tests == () and regression.class_histogram == {} and regression.threshold is None


def test_the_predicted_classes_follow_the_operating_threshold() -> None:
    ref = np.array([0.1, 0.3, 0.6, 0.8] * 50)
    cur = np.array([0.1, 0.3, 0.6, 0.8] * 50)
    at_half = prediction_drift(ref, cur, ["ks"], 0.05, THRESHOLDS, categorical_tests=["chi2"])
    assert at_half.class_histogram["reference"] == [0.5, 0.5]
    high = prediction_drift(ref, cur, ["ks"], 0.05, THRESHOLDS, categorical_tests=["chi2"], threshold=0.7)
    assert high.class_histogram["current"] == [0.75, 0.25] and not high.drifted
    assert high.class_subject == "the shares of the predicted classes (positive: score >= 0.7)"
    # every row on one side: one level, no evidence either way (p = 1), not a crash
    one = prediction_drift(ref, cur, ["ks"], 0.05, THRESHOLDS, categorical_tests=["chi2"], threshold=0.9)
    (chi2,) = one.class_tests
    assert one.class_histogram["reference"] == [1.0, 0.0] and chi2.p_value == 1.0 and not one.drifted
