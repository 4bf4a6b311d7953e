"""Holdout metrics (checked against scikit-learn) of registry.evaluation, into the gates.

``compute_metrics`` here is registry.evaluation's binary entry point (the rollout gate's): it
checks its inputs and delegates to :func:`airflow_mlops.metrics.compute_metrics`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from airflow_mlops.exceptions import DataError
from airflow_mlops.metrics import LOWER_IS_BETTER, TASK_METRICS
from airflow_mlops.registry.evaluation import (
    compute_metrics,
    evaluate_gates,
)

BINARY = TASK_METRICS["binary"]

# --- compute_metrics ----------------------------------------------------------------------------


def sklearn_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (score >= threshold).astype(int)
    return {
        "roc_auc": skm.roc_auc_score(y, score),
        "pr_auc": skm.average_precision_score(y, score),
        "f1": skm.f1_score(y, predicted, zero_division=0),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted, zero_division=0),
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "log_loss": skm.log_loss(y, score, labels=[0, 1]),
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1, 2])  # rounding the scores makes many ties
def test_metrics_match_sklearn(seed: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0.001, 0.999)
    if decimals is not None:
        score = np.clip(np.round(score, decimals), 0.001, 0.999)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    threshold = float(rng.choice([0.3, 0.5, 0.7]))

    ours = compute_metrics(y, score, threshold=threshold)

    expected = sklearn_metrics(y, score, threshold)
    assert list(ours) == list(BINARY)
    for name in BINARY:
        assert ours[name] == pytest.approx(expected[name], abs=1e-10), name
        assert isinstance(ours[name], float)


def test_all_tied_scores_give_auc_one_half() -> None:
    result = compute_metrics([0, 1, 0, 1, 1], [0.5] * 5)
    assert result["roc_auc"] == 0.5
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score([0, 1, 0, 1, 1], [0.5] * 5))


def test_perfect_and_inverted_rankings() -> None:
    assert compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 1.0
    assert compute_metrics([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 0.0


def test_boolean_labels_and_lists_are_accepted() -> None:
    as_bool = compute_metrics([True, False, True], [0.9, 0.2, 0.4])
    as_int = compute_metrics(np.array([1, 0, 1]), np.array([0.9, 0.2, 0.4]))
    assert as_bool == as_int


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_ranking_metrics_not_an_error(label: int) -> None:
    result = compute_metrics([label] * 4, [0.2, 0.4, 0.6, 0.8])
    assert math.isnan(result["roc_auc"])
    # Average precision needs positives only (scikit-learn's: 1.0 when every row is positive).
    if label == 0:
        assert math.isnan(result["pr_auc"])
    else:
        assert result["pr_auc"] == skm.average_precision_score([1] * 4, [0.2, 0.4, 0.6, 0.8]) == 1.0
    assert result["accuracy"] == 0.5
    assert math.isfinite(result["log_loss"])


def test_log_loss_clips_certain_mistakes() -> None:
    result = compute_metrics([1, 0], [0.0, 1.0])
    assert math.isfinite(result["log_loss"])
    assert result["log_loss"] > 30


def test_no_predicted_positives_give_zero_precision_and_f1() -> None:
    result = compute_metrics([1, 0, 0], [0.1, 0.2, 0.3])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("y", "score", "message"),
    [
        ([], [], "empty"),
        ([0, 1], [0.5], "2 labels but 1 scores"),
        ([0, 2], [0.1, 0.9], "labels must be 0/1"),
        (["no", "yes"], [0.1, 0.9], "labels must be 0/1"),
        ([0, 1], [0.1, float("nan")], "NaN or infinite"),
        ([0, 1], [0.1, 1.5], "probabilities in \\[0, 1\\]"),
    ],
)
def test_bad_inputs_raise_data_error(y: list, score: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        compute_metrics(y, score)


def test_end_to_end_metrics_into_gates() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.2).astype(int)
    score = np.clip(0.5 * y + 0.5 * rng.random(300), 0, 1)
    metrics = compute_metrics(y, score)
    higher = [name for name in BINARY if name not in LOWER_IS_BETTER]
    report = evaluate_gates(metrics, bounds={name: {"min": 0.0} for name in higher}, task="binary")
    assert report.passed
    assert len(report.gates) == len(higher) == len(BINARY) - 1
