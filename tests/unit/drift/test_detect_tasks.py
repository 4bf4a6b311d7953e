"""detect_drift per task with real models, and the out-of-range decision.

Multiclass (wine, XGBoost), regression (diabetes, LightGBM) and binary (breast cancer, XGBoost)
champions score a clean held-out window and a drifted one; the reference is the rows the model
was trained on, as in the monitor.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift import DriftReport, detect_drift
from airflow_mlops.drift.html import render_html
from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.metrics import compute_metrics
from airflow_mlops.tasks import encode_target
from tests.unit.drift.task_models import TARGET, TaskModel, trained

FAST = {"mmd_permutations": 100, "device": "cpu", "min_rows": 1}


def run(model: TaskModel, current: pd.DataFrame, **kwargs: object) -> DriftReport:
    """The monitor's call: features of both windows, the champion's output on both."""
    predictor = model.predictor()
    features = model.features
    labelled = TARGET in current.columns
    return detect_drift(
        model.reference[features],
        current[[*features, TARGET]] if labelled else current[features],
        features=features,
        target=TARGET if labelled else None,
        reference_scores=predictor.predict_scores(model.reference),
        current_scores=predictor.predict_scores(current),
        task=predictor.task,
        classes=predictor.classes or None,
        **{**FAST, **kwargs},  # type: ignore[arg-type]
    )


def recorded(model: TaskModel, rows: pd.DataFrame, names: list[str]) -> dict[str, float]:
    """What the champion's evaluation would record: its metrics on held-out rows."""
    predictor = model.predictor()
    y = encode_target(model.task, rows[TARGET], positive_label=1, classes=predictor.classes or None)
    return compute_metrics(model.task, y, predictor.predict_scores(rows), names=names)


# --- multiclass -----------------------------------------------------------------------------


def test_multiclass_clean_window_does_not_drift() -> None:
    wine = trained("wine")
    # 115 reference rows: a clean 63-row window holds on average 1.7 % of a feature's values
    # beyond the reference's range, so with 13 features the 5 % default is often reached by
    # chance (docs/drift.md); a small reference needs a larger limit.
    report = run(wine, wine.holdout, max_out_of_range_share=0.1)
    assert not report.drifted and not report.quality_failed, report.summary()
    assert report.prediction is not None and report.prediction.task == "multiclass"
    assert [t.test for t in report.prediction.tests] == ["chi2", "jensen_shannon", "psi"]
    assert report.prediction.histogram["categories"] == ["0", "1", "2"]
    assert report.settings["task"] == "multiclass" and report.settings["classes"] == ["0", "1", "2"]


def test_multiclass_changed_class_mix_is_prediction_drift_on_the_class_shares() -> None:
    wine = trained("wine")
    holdout = wine.holdout
    # mostly class 0 now (the reference has a third of each)
    mix = pd.concat([holdout[holdout[TARGET] == 0]] * 2 + [holdout[holdout[TARGET] != 0].head(6)])
    report = run(wine, mix.reset_index(drop=True), max_out_of_range_share=0.1)
    prediction = report.prediction
    assert prediction is not None and prediction.drifted and report.drifted
    assert prediction.histogram["categories"] == ["0", "1", "2"]
    assert prediction.histogram["current"][0] > 0.8 > prediction.histogram["reference"][0]
    chi2 = next(t for t in prediction.tests if t.test == "chi2")
    assert chi2.drifted and chi2.adjusted_p_value is not None and chi2.adjusted_p_value < 1e-6
    assert any(
        r.startswith("prediction drift: the shares of the predicted classes changed") for r in report.reasons
    )


def test_multiclass_performance_uses_the_tasks_metrics_and_the_shared_label_rule() -> None:
    wine = trained("wine")
    window = wine.holdout.copy()
    expected = recorded(wine, window, ["f1_macro", "log_loss"])
    window[TARGET] = window[TARGET].astype(str)  # "0", "1", "2": the same classes
    allowed = {"f1_macro": 0.05, "log_loss": 0.2}
    ok = run(wine, window, expected_metrics=expected, max_metric_drop=allowed, max_out_of_range_share=0.1)
    assert [p.metric for p in ok.performance] == ["f1_macro", "log_loss"]
    for check in ok.performance:
        assert check.current == pytest.approx(expected[check.metric]) and not check.drifted
    # The labels rotate: the champion is now wrong on most rows; log_loss (lower is better) rises.
    wrong = window.copy()
    wrong[TARGET] = ((wine.holdout[TARGET] + 1) % 3).astype(str)
    bad = run(wine, wrong, expected_metrics=expected, max_metric_drop=allowed, max_out_of_range_share=0.1)
    f1, loss = bad.performance
    assert f1.drifted and f1.drop > 0.5 and loss.drifted and loss.current > loss.expected and loss.drop > 0
    assert bad.drifted and any(r.startswith("performance drift: log_loss") for r in bad.reasons)
    # default: the task's primary metric (f1_macro) may fall by 0.05
    default = run(wine, wrong, expected_metrics=expected, max_out_of_range_share=0.1)
    assert [(p.metric, p.max_drop, p.drifted) for p in default.performance] == [("f1_macro", 0.05, True)]


def test_multiclass_labels_the_model_never_saw_fail_the_labels_check() -> None:
    wine = trained("wine")
    window = wine.holdout.copy()
    window.loc[:4, TARGET] = 7
    report = run(
        wine, window, expected_metrics={"f1_macro": 0.9}, max_metric_drop={"f1_macro": 0.05},
        max_out_of_range_share=0.1,
    )  # fmt: skip
    (labels,) = report.failed_quality_checks
    assert labels.check == "labels" and "'7'" in labels.message and "not trained on" in labels.message
    assert report.quality_failed and math.isnan(report.performance[0].current)


def test_multiclass_settings_are_checked() -> None:
    wine = trained("wine")
    with pytest.raises(DriftInputError, match="does not apply to a multiclass model"):
        run(wine, wine.holdout, expected_metrics={"roc_auc": 0.9}, max_metric_drop={"roc_auc": 0.05})
    predictor = wine.predictor()
    with pytest.raises(DriftInputError, match=r"shape \(rows, 3\)"):
        detect_drift(
            wine.reference[wine.features], wine.holdout[wine.features], task="multiclass",
            classes=predictor.classes, current_scores=predictor.predict_scores(wine.holdout)[:, :2],
        )  # fmt: skip
    with pytest.raises(DriftInputError, match="task='ranking'"):
        detect_drift(wine.reference[wine.features], wine.holdout[wine.features], task="ranking")


# --- regression -----------------------------------------------------------------------------


def test_regression_clean_window_does_not_drift_and_shifted_features_do() -> None:
    diabetes = trained("diabetes")
    clean = run(diabetes, diabetes.holdout)
    assert not clean.drifted and not clean.quality_failed, clean.summary()
    assert clean.prediction is not None and clean.prediction.task == "regression"
    assert [t.test for t in clean.prediction.tests] == ["ks", "wasserstein", "psi"]
    shifted = diabetes.holdout.copy()
    shifted["bmi"] += 0.05  # about one standard deviation heavier
    shifted["s5"] += 0.04
    report = run(diabetes, shifted)
    assert report.drifted and not report.quality_failed
    assert report.prediction is not None and report.prediction.drifted
    assert {"bmi", "s5"} <= set(report.drifted_features)
    assert any(r.startswith("prediction drift: the predicted values changed") for r in report.reasons)


def test_regression_performance_in_the_metrics_direction() -> None:
    diabetes = trained("diabetes")
    window = diabetes.holdout.copy()
    expected = recorded(diabetes, window, ["rmse", "r2"])
    allowed = {"rmse": 5.0, "r2": 0.1}
    ok = run(diabetes, window, expected_metrics=expected, max_metric_drop=allowed)
    assert not any(p.drifted for p in ok.performance) and not ok.drifted
    worse = window.copy()
    worse[TARGET] = worse[TARGET] + 60.0  # the world moved: the same inputs, higher outcomes
    bad = run(diabetes, worse, expected_metrics=expected, max_metric_drop=allowed)
    rmse, r2 = bad.performance
    assert (
        rmse.drifted
        and rmse.current > rmse.expected + 5
        and rmse.drop == pytest.approx(rmse.current - rmse.expected)
    )
    assert r2.drifted and r2.drop == pytest.approx(r2.expected - r2.current)
    assert not bad.dataset_drift and bad.drifted  # the features did not move; the outcomes did
    with pytest.raises(DriftInputError, match="no default performance check"):
        run(diabetes, window, expected_metrics=expected)
    constant = window.copy()
    constant[TARGET] = 100.0
    flat = run(diabetes, constant, expected_metrics=expected, max_metric_drop={"r2": 0.1, "rmse": 500.0})
    r2, rmse = flat.performance
    assert math.isnan(r2.current) and rmse.current > 0 and not rmse.drifted  # rmse is still measured
    assert [q.check for q in flat.failed_quality_checks] == ["labels"]
    assert "r2 cannot be measured" in flat.failed_quality_checks[0].message
    assert "constant target" in flat.failed_quality_checks[0].message


# --- binary: the out-of-range decision and the label rule -----------------------------------

SCALED = ("mean radius", "mean perimeter", "mean area")


def covariate_shift() -> tuple[TaskModel, pd.DataFrame]:
    """Three features of the live window scaled by 1.5 (a unit change upstream, say)."""
    cancer = trained("breast_cancer")
    window = cancer.holdout.copy()
    for column in SCALED:
        window[column] = window[column] * 1.5
    return cancer, window


def test_breast_cancer_clean_window_does_not_drift() -> None:
    cancer = trained("breast_cancer")
    report = run(cancer, cancer.holdout, threshold=0.5)
    assert not report.drifted and not report.quality_failed, report.summary()


def test_a_covariate_shift_beyond_the_range_is_drift_by_default_not_an_alarm() -> None:
    cancer, window = covariate_shift()
    report = run(cancer, window)
    assert report.drifted and not report.quality_failed, report.summary()
    radius = report.feature("mean radius")
    low, high = cancer.reference["mean radius"].min(), cancer.reference["mean radius"].max()
    share = float(((window["mean radius"] < low) | (window["mean radius"] > high)).mean())
    assert share > 0.05
    assert radius.drifted and "out_of_range" in radius.rules and radius.out_of_range is not None
    assert radius.out_of_range.share == pytest.approx(share)
    assert (radius.out_of_range.low, radius.out_of_range.high) == (low, high)
    text = f"{share * 100:.3g} % of values beyond the reference's range [{low:g}, {high:g}]"
    assert text in radius.explain()
    assert any(r.startswith("out of range") and text in r for r in report.reasons)
    assert "mean radius" in report.out_of_range_features
    assert set(report.out_of_range_features) <= set(SCALED)
    # The check is recorded, failed, and counted as drift: not an alarm.
    check = next(q for q in report.quality if q.check == "out_of_range" and q.column == "mean radius")
    assert not check.passed and check.action == "drift" and not check.alarm
    assert report.failed_quality_checks == ()
    # A feature drifting by its tests only says so
    untouched = [f for f in report.features if f.name not in SCALED]
    assert all("out_of_range" not in f.rules for f in untouched)
    # the JSON and the HTML say which rule fired
    stored = json.loads(json.dumps(report.to_dict()))
    entry = next(f for f in stored["features"] if f["name"] == "mean radius")
    assert "out_of_range" in entry["rules"] and text in entry["explanation"]
    assert DriftReport.from_dict(stored) == report
    page = render_html(report)
    assert "beyond the reference&#x27;s range" in page and "DRIFT (not an alarm)" in page


def test_the_same_shift_is_an_alarm_with_alarm_and_both_with_both() -> None:
    cancer, window = covariate_shift()
    alarm = run(cancer, window, out_of_range="alarm")
    assert alarm.quality_failed
    failed = {(q.check, q.column) for q in alarm.failed_quality_checks}
    assert ("out_of_range", "mean radius") in failed
    assert all("out_of_range" not in f.rules for f in alarm.features)
    both = run(cancer, window, out_of_range="both")
    assert both.quality_failed and both.drifted
    assert "out_of_range" in both.feature("mean radius").rules
    assert ("out_of_range", "mean radius") in {(q.check, q.column) for q in both.failed_quality_checks}
    assert "FAILED (alarm and drift)" in render_html(both)


def test_out_of_range_alone_drifts_a_feature_whose_tests_do_not() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.uniform(0, 1, 5000), "y": rng.normal(size=5000)})
    current = pd.DataFrame({"x": rng.uniform(0, 1, 1000), "y": rng.normal(size=1000)})
    top = current["x"] > current["x"].quantile(0.94)
    current.loc[top, "x"] = 1.0005  # the top 6 % a hair above the maximum: no distance sees that
    report = detect_drift(reference, current, multivariate=False)
    x = report.feature("x")
    assert x.rules == ("out_of_range",) and x.drifted and report.drifted and not report.quality_failed
    assert x.out_of_range is not None and x.out_of_range.share == pytest.approx(0.06)
    assert "beyond the reference's range" in x.explain() and "tests" not in x.explain()
    assert report.drifted_features == ("x",)
    quiet = detect_drift(reference, current, multivariate=False, max_out_of_range_share=0.1)
    assert not quiet.drifted and quiet.feature("x").rules == ()


def test_string_labels_with_an_integer_positive_label_are_measured() -> None:
    """Labels stored as "1"/"0" with positive_label 1: the shared rule, not ``==``."""
    cancer = trained("breast_cancer")
    window = cancer.holdout.copy()
    expected = recorded(cancer, window, ["roc_auc", "f1"])
    window[TARGET] = window[TARGET].astype(str)
    assert not (window[TARGET] == 1).any()  # what the old ``==`` saw: no positive row at all
    for classes in (None, ["0", "1"]):
        report = detect_drift(
            cancer.reference[cancer.features], window[[*cancer.features, TARGET]], target=TARGET,
            current_scores=cancer.predictor().predict_scores(window), positive_label=1, classes=classes,
            expected_metrics=expected, max_metric_drop={"roc_auc": 0.02, "f1": 0.02}, **FAST,
        )  # fmt: skip
        roc_auc, f1 = report.performance
        assert roc_auc.current == pytest.approx(expected["roc_auc"]) and not math.isnan(roc_auc.current)
        assert f1.current == pytest.approx(expected["f1"])
        assert not roc_auc.drifted and not report.quality_failed, report.summary()


def test_a_window_of_negatives_only_is_measured_where_it_can_be() -> None:
    cancer = trained("breast_cancer")
    negatives = cancer.holdout[cancer.holdout[TARGET] == 0].reset_index(drop=True)
    scores = cancer.predictor().predict_scores(negatives)
    report = detect_drift(
        cancer.reference[cancer.features], negatives[[*cancer.features, TARGET]], target=TARGET,
        current_scores=scores, classes=["0", "1"], expected_metrics={"roc_auc": 0.99, "accuracy": 0.95},
        max_metric_drop={"roc_auc": 0.05, "accuracy": 0.5}, **FAST,
    )  # fmt: skip
    roc_auc, accuracy = report.performance
    assert math.isnan(roc_auc.current) and accuracy.current == pytest.approx(float(np.mean(scores < 0.5)))
    (labels,) = report.failed_quality_checks
    assert labels.check == "labels" and "all one class (share positive 0.00)" in labels.message
