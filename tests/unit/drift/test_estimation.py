"""Performance estimation without labels (CBPE, DLE), the drift event's summary and the retrain rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift.estimation import (
    MetricEstimate,
    PerformanceEstimate,
    estimate_performance,
    estimate_window,
    event_summary,
    retrain_decision,
)
from airflow_mlops.drift.scoring import PREDICTION_COLUMN, SCORE_COLUMN, proba_column
from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.metrics import compute_metrics
from airflow_mlops.training.calibration import fit_calibration, fit_error_model

IDENTITY = {
    "format_version": 1,
    "kind": "cbpe",
    "task": "binary",
    "classes": ["1"],
    "rows": 100,
    "calibrators": [{"method": "identity"}],
}


def _binary(n: int, shift: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the true probability and an overconfident score of it."""
    x = rng.normal(shift, 1, n)
    p = 1 / (1 + np.exp(-(2 * x - 1)))
    return (rng.random(n) < p).astype(np.int64), 1 / (1 + np.exp(-(4 * x - 2)))


def test_binary_expected_counts_by_hand() -> None:
    score = np.array([0.9, 0.8, 0.3, 0.1])
    est = estimate_performance(IDENTITY, score, task="binary", threshold=0.5, samples=50)
    tp, fp, fn = 0.9 + 0.8, 0.1 + 0.2, 0.3 + 0.1
    tn = 4 - tp - fp - fn
    assert est.get("accuracy").estimate == pytest.approx((tp + tn) / 4)
    assert est.get("precision").estimate == pytest.approx(tp / (tp + fp))
    assert est.get("recall").estimate == pytest.approx(tp / (tp + fn))
    assert est.get("f1").estimate == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # The expected ROC curve: pairs (i positive, j negative) weighted p_i (1 - p_j), i scored above j.
    p = score
    num = sum(p[i] * (1 - p[j]) for i in range(4) for j in range(4) if score[i] > score[j])
    num += sum(0.5 * p[i] * (1 - p[i]) for i in range(4))  # a row against itself is a tie
    assert est.get("roc_auc").estimate == pytest.approx(num / (p.sum() * (1 - p).sum()))
    assert est.method == "cbpe" and est.rows == 4 and est.samples == 50


def test_binary_estimate_tracks_the_realised_metric_under_covariate_shift() -> None:
    rng = np.random.default_rng(0)
    y_val, s_val = _binary(3000, 0.0, rng)
    cal = fit_calibration("binary", y_val, s_val, ["1"])
    errors, covered = [], 0
    for shift in (-0.8, -0.3, 0.3, 0.8):
        y, s = _binary(4000, shift, rng)
        est = estimate_performance(cal, s, task="binary", threshold=0.5, y=y, seed=1)
        realised = compute_metrics("binary", y, s, threshold=0.5, names=["accuracy", "roc_auc"])
        for name in ("accuracy", "roc_auc"):
            m = est.get(name)
            assert m.realised == pytest.approx(realised[name])
            assert m.low <= m.estimate <= m.high
            errors.append(abs(m.estimate - m.realised))
            covered += m.low - 0.01 <= m.realised <= m.high + 0.01
    assert np.mean(errors) < 0.015
    assert covered >= 6  # of 8


def test_multiclass_estimate_tracks_the_realised_metric() -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(0, 1, (3, 4))

    def window(n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(shift, 1, (n, 3))
        logits = x @ w
        true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.minimum((rng.random((n, 1)) > np.cumsum(true, axis=1)).sum(axis=1), 3)
        sharp = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)
        return y, sharp

    y_val, p_val = window(4000, 0.0)
    classes = ["a", "b", "c", "d"]
    cal = fit_calibration("multiclass", y_val, p_val, classes)
    y, proba = window(5000, 0.7)
    est = estimate_performance(cal, proba, task="multiclass", classes=classes, y=y, seed=3)
    assert [m.metric for m in est.metrics] == ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr"]
    for m in est.metrics:
        assert m.realised is not None and abs(m.estimate - m.realised) < 0.03, m
        assert m.high - m.low < 0.06


def test_dle_estimates_mae_and_rmse_with_an_interval() -> None:
    rng = np.random.default_rng(4)

    def window(n: int, shift: float) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        x = rng.normal(shift, 1, n)
        y = 3 * x + rng.normal(0, 0.3 + 0.7 * np.abs(x), n)
        return y, 3 * x, pd.DataFrame({"x": x})

    y_val, pred_val, frame_val = window(3000, 0.0)
    cal = fit_error_model(y_val, pred_val, frame_val, ["x"])
    y, pred, frame = window(3000, 1.2)  # away from the centre: larger errors
    est = estimate_performance(cal, pred, task="regression", frame=frame, y=y)
    assert est.method == "dle" and est.samples == 0
    mae, rmse = est.get("mae"), est.get("rmse")
    assert mae.realised is not None and rmse.realised is not None
    assert mae.estimate > float(np.mean(np.abs(y_val - pred_val))) * 1.3  # it sees the rise
    assert abs(mae.estimate - mae.realised) / mae.realised < 0.15
    assert abs(rmse.estimate - rmse.realised) / rmse.realised < 0.2
    assert mae.low < mae.estimate < mae.high


def test_estimate_window_reads_the_stored_columns_and_the_labels() -> None:
    rng = np.random.default_rng(5)
    y, s = _binary(500, 0.0, rng)
    current = pd.DataFrame(
        {"f": rng.normal(size=500), SCORE_COLUMN: s, PREDICTION_COLUMN: (s >= 0.5).astype("int8"), "label": y}
    )
    kwargs = dict(
        features=["f"],
        target="label",
        task="binary",
        classes=["0", "1"],
        threshold=0.5,
        positive_label=1,
        champion_metrics={"roc_auc": 0.9},
        samples=20,
    )
    labelled = estimate_window(current, IDENTITY, **kwargs)
    assert labelled.get("roc_auc").realised is not None and labelled.get("roc_auc").reference == 0.9
    unlabelled = estimate_window(current.drop(columns="label"), IDENTITY, **kwargs)
    assert unlabelled.get("roc_auc").realised is None
    assert unlabelled.get("roc_auc").estimate == labelled.get("roc_auc").estimate


def test_multiclass_window_reads_probability_columns_by_class() -> None:
    rng = np.random.default_rng(6)
    proba = rng.dirichlet([1, 1, 1], 300)
    classes = ["x", "y", "z"]
    y = np.array([rng.choice(3, p=row) for row in proba])
    cal = fit_calibration("multiclass", y, proba, classes)
    current = pd.DataFrame({proba_column(c): proba[:, j] for j, c in enumerate(classes)})
    est = estimate_window(
        current, cal, features=[], target="label", task="multiclass", classes=classes,
        threshold=None, positive_label=None, champion_metrics=None, samples=20,
    )  # fmt: skip
    assert est.get("accuracy").estimate == pytest.approx(
        estimate_performance(cal, proba, task="multiclass", classes=classes, samples=20)
        .get("accuracy")
        .estimate
    )


@pytest.mark.parametrize(
    ("calibration", "kwargs", "message"),
    [
        (IDENTITY, {"task": "multiclass", "classes": ["a", "b", "c"]}, "is for a binary model"),
        ({**IDENTITY, "calibrators": [{"method": "pickle"}]}, {"task": "binary"}, "malformed"),
        (IDENTITY, {"task": "binary", "confidence": 1.5}, "confidence"),
    ],
)
def test_a_calibration_that_does_not_fit_is_refused(calibration, kwargs, message: str) -> None:
    with pytest.raises(DriftInputError, match=message):
        estimate_performance(
            calibration, np.array([[0.2, 0.3, 0.5]]) if "classes" in kwargs else np.array([0.5]), **kwargs
        )


def test_the_report_form_round_trips_through_json() -> None:
    est = estimate_performance(IDENTITY, np.linspace(0.05, 0.95, 50), task="binary", samples=20,
                               reference_metrics={"roc_auc": 0.8, "f1": float("nan")})  # fmt: skip
    back = PerformanceEstimate.from_dict(json.loads(json.dumps(est.to_dict(), allow_nan=False)))
    assert back == est or back.to_dict() == est.to_dict()
    assert back.get("roc_auc").reference == 0.8 and back.get("f1").reference is None
    with pytest.raises(DriftInputError, match="not estimated"):
        back.get("rmse")


def _estimate(
    estimate: float, realised: float | None = None, reference: float | None = 0.9
) -> PerformanceEstimate:
    m = MetricEstimate("roc_auc", estimate, estimate - 0.01, estimate + 0.01, realised, reference)
    return PerformanceEstimate("binary", "cbpe", 1000, 0.95, 200, (m,))


def test_event_summary_and_the_retrain_rule() -> None:
    dropped = event_summary(_estimate(0.85), metric="roc_auc", max_drop=0.02)
    assert dropped["drop"] == pytest.approx(0.05) and dropped["dropped"] and dropped["basis"] == "estimated"
    assert dropped["interval"] == [pytest.approx(0.84), pytest.approx(0.86)]
    json.dumps(dropped, allow_nan=False)
    held = event_summary(_estimate(0.89).to_dict(), metric="roc_auc", max_drop=0.02)
    assert not held["dropped"]
    assert retrain_decision(True, dropped, "drift_and_estimated_drop")[0] is True
    emit, why = retrain_decision(True, held, "drift_and_estimated_drop")
    assert emit is False and "no performance drop" in why and "0.0100" in why
    assert retrain_decision(True, held, "drift") == (True, "drift")
    assert retrain_decision(False, dropped, "drift_and_estimated_drop")[0] is False
    # With labels the realised value decides.
    realised = event_summary(_estimate(0.89, realised=0.80), metric="roc_auc", max_drop=0.02)
    assert realised["basis"] == "realised" and realised["dropped"]


def test_the_rule_does_not_guess_without_an_estimate_or_a_reference() -> None:
    missing = event_summary(None, metric="roc_auc", max_drop=0.02, unavailable="no calibration stored")
    with pytest.raises(DriftInputError, match="no calibration stored"):
        retrain_decision(True, missing, "drift_and_estimated_drop")
    no_reference = event_summary(_estimate(0.8, reference=None), metric="roc_auc", max_drop=0.02)
    with pytest.raises(DriftInputError, match="no recorded roc_auc"):
        retrain_decision(True, no_reference, "drift_and_estimated_drop")
    with pytest.raises(DriftInputError, match="retrain_on"):
        retrain_decision(True, no_reference, "sometimes")


def test_the_interval_widens_for_a_calibration_fitted_on_few_rows() -> None:
    score = np.random.default_rng(9).uniform(0.05, 0.95, 2000)
    few = estimate_performance({**IDENTITY, "rows": 500}, score, task="binary", samples=100)
    many = estimate_performance({**IDENTITY, "rows": 10**9}, score, task="binary", samples=100)
    for name in ("accuracy", "f1"):
        a, b = few.get(name), many.get(name)
        assert a.estimate == b.estimate
        assert (a.high - a.low) == pytest.approx((b.high - b.low) * np.sqrt(1 + 2000 / 500), rel=0.01)


def test_the_drift_report_carries_the_estimate_through_json_text_and_html() -> None:
    from dataclasses import replace

    from airflow_mlops.drift.html import render_html
    from airflow_mlops.drift.report import DriftReport
    from tests.unit.drift.builders import full_report

    est = _estimate(0.85, realised=0.84).to_dict()
    report = replace(full_report(), estimated_performance=est)
    back = DriftReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back.estimated_performance == est
    assert (
        DriftReport.from_dict({**report.to_dict(), "estimated_performance": None}).estimated_performance
        is None
    )
    assert "estimated performance (cbpe, 1000 rows)" in report.summary()
    assert "roc_auc 0.8500 [0.8400, 0.8600] realised 0.8400" in report.summary()
    page = render_html(report)
    assert 'id="estimated"' in page and "CBPE" in page and "200 label draws" in page
    assert "realised on the window" in page
    assert "No estimate in this report" in render_html(full_report())
