"""The drift report model: each class's verdicts and texts, reading reports written before a field
existed, the lossless JSON round trip, and the summary for task logs."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest

from airflow_mlops.drift.report import (
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    OutOfRange,
    PerformanceCheck,
    PredictionDrift,
    QualityCheck,
    TestResult,
    percent,
)
from tests.unit.drift.builders import (
    binary_prediction_with_shares,
    categorical,
    full_report,
    make_report,
    numeric,
)


@pytest.mark.parametrize(
    ("share", "text"), [(0.25, "25 %"), (0.075, "7.5 %"), (0.0, "0 %"), (1 / 3, "33.3 %"), (1.0, "100 %")]
)
def test_percent(share: float, text: str) -> None:
    assert percent(share) == text


# --- TestResult ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "text"),
    [
        (
            TestResult("ks", 0.0312, 0.0004, 0.0021, 0.05, True),
            "ks stat=0.0312 p=0.0004 (adj 0.0021) < 0.0500 DRIFT",
        ),
        (TestResult("chi2", 3.5, 0.2, 1.0, 0.05, False), "chi2 stat=3.5000 p=0.2000 (adj 1.0000) >= 0.0500"),
        (TestResult("ks", 0.1, 0.01, None, 0.05, True), "ks stat=0.1000 p=0.0100 < 0.0500 DRIFT"),
        (TestResult("psi", 0.3, None, None, 0.2, True), "psi 0.3000 >= 0.2000 DRIFT"),
        (TestResult("wasserstein", 0.0, None, None, 0.1, False), "wasserstein 0.0000 < 0.1000"),
        (TestResult("psi", 123456.0, None, None, 0.2, True), "psi 1.23e+05 >= 0.2000 DRIFT"),
        (TestResult("ks", math.nan, math.nan, None, 0.05, False), "ks stat=nan p=nan >= 0.0500"),
        (
            TestResult("chi2", 80.0, 1e-12, 5e-12, 0.05, True),
            "chi2 stat=80.0000 p=1e-12 (adj 5e-12) < 0.0500 DRIFT",
        ),
        (
            TestResult("chi2", 3.5, 0.2, 1.0, 0.05, False, "12 levels, 4 rare pooled, dof 8"),
            "chi2 stat=3.5000 p=0.2000 (adj 1.0000) >= 0.0500 [12 levels, 4 rare pooled, dof 8]",
        ),
    ],
)
def test_a_test_result_in_one_line(result: TestResult, text: str) -> None:
    assert result.format() == text


def test_a_test_result_reads_back_and_is_not_collected_as_a_test() -> None:
    result = TestResult("psi", 0.3, None, None, 0.2, True)
    assert TestResult.from_dict(result.to_dict()) == result
    assert TestResult.from_dict(
        {"test": "ks", "statistic": "0.5", "threshold": 1, "drifted": 1}
    ) == TestResult("ks", 0.5, None, None, 1.0, True)
    assert TestResult.__test__ is False
    pooled = TestResult("chi2", 9.1, 0.003, 0.006, 0.05, True, "2 levels, Fisher's exact p")
    assert TestResult.from_dict(json.loads(json.dumps(pooled.to_dict()))) == pooled
    assert TestResult.from_dict({**pooled.to_dict(), "detail": None}).detail == ""  # written before it


# --- OutOfRange ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "p_value", "exceeded"),
    [
        (0.05, 0.0, False),  # at the limit is not above it
        (0.05 + 1e-13, 0.0, False),  # nor is rounding
        (0.06, 0.0, True),
        (0.06, 0.01, False),  # above the limit, but as likely as alpha for a window like the reference
        (0.06, 0.0099, True),
    ],
)
def test_out_of_range_needs_a_share_above_the_limit_and_improbable(
    share: float, p_value: float, exceeded: bool
) -> None:
    assert OutOfRange(share, 0.0, 1.0, 0.05, p_value=p_value, alpha=0.01).exceeded is exceeded


def test_out_of_range_describe_and_round_trip() -> None:
    beyond = OutOfRange(share=0.25, low=6.98, high=28.11, threshold=0.05, p_value=1e-5, alpha=0.01)
    assert beyond.describe() == "25 % of values beyond the reference's range [6.98, 28.11]"
    assert OutOfRange.from_dict(json.loads(json.dumps(beyond.to_dict()))) == beyond


def test_old_reports_without_a_p_value_read_as_before() -> None:
    old = OutOfRange.from_dict({"share": 0.2, "low": 0.0, "high": 1.0, "threshold": 0.05})
    assert old.exceeded
    assert not OutOfRange(share=0.2, low=0, high=1, threshold=0.05, p_value=0.3, alpha=0.01).exceeded


# --- FeatureDrift ----------------------------------------------------------------------------

KS = TestResult("ks", 0.31, 1e-9, 4e-9, 0.05, True)
PSI = TestResult("psi", 0.05, None, None, 0.2, False)
BEYOND = OutOfRange(share=0.1, low=0.0, high=2.0, threshold=0.05)


@pytest.mark.parametrize(
    ("rules", "explanation"),
    [
        ((), ""),
        (("tests",), "tests: " + KS.format()),  # only the tests that fired
        (("out_of_range",), "10 % of values beyond the reference's range [0, 2]"),
        (
            ("tests", "out_of_range"),
            f"tests: {KS.format()}; 10 % of values beyond the reference's range [0, 2]",
        ),
    ],
)
def test_a_feature_explains_each_rule_that_fired(rules: tuple[str, ...], explanation: str) -> None:
    feature = FeatureDrift("x", "numeric", (KS, PSI), bool(rules), rules=rules, out_of_range=BEYOND)
    assert feature.explain() == explanation
    assert feature.to_dict()["explanation"] == explanation


def test_a_feature_finds_its_tests_by_name() -> None:
    feature = FeatureDrift("x", "numeric", (KS, PSI), False)
    assert feature.test("psi") is PSI and feature.test("chi2") is None


def test_a_feature_round_trips_with_a_plain_histogram() -> None:
    feature = FeatureDrift(
        "x", "numeric", (KS, PSI), True, {"edges": (0.0, 1.0), 3: [(0.5,)]}, ("tests", "out_of_range"), BEYOND
    )
    stored = json.loads(json.dumps(feature.to_dict()))
    assert stored["histogram"] == {"edges": [0.0, 1.0], "3": [[0.5]]}  # what JSON gives back anyway
    back = FeatureDrift.from_dict(stored)
    assert back.rules == ("tests", "out_of_range") and back.out_of_range == BEYOND and back.tests == (KS, PSI)
    assert FeatureDrift.from_dict(back.to_dict()) == back


@pytest.mark.parametrize(("drifted", "rules"), [(True, ("tests",)), (False, ())])
def test_features_written_before_the_rules_read_as_drifted_by_their_tests(
    drifted: bool, rules: tuple[str, ...]
) -> None:
    old = {"name": "x", "kind": "numeric", "tests": [KS.to_dict()], "drifted": drifted}
    feature = FeatureDrift.from_dict(old)
    assert feature.rules == rules and feature.histogram == {} and feature.out_of_range is None


# --- the other parts -------------------------------------------------------------------------


def test_multivariate_drift_round_trip_and_reports_without_a_bandwidth() -> None:
    mv = MultivariateDrift("mmd", 0.0123, 0.002, 0.05, 200, 500, 400, ("a", "b"), "cuda:0", True, 1.3)
    d = mv.to_dict()
    assert d["features"] == ["a", "b"] and MultivariateDrift.from_dict(json.loads(json.dumps(d))) == mv
    del d["bandwidth"]
    assert math.isnan(MultivariateDrift.from_dict(d).bandwidth)


@pytest.mark.parametrize(
    ("passed", "action", "alarm"),
    [
        (True, "alarm", False),
        (False, "alarm", True),
        (False, "both", True),
        (False, "drift", False),  # counted as drift of its column only
        (True, "drift", False),
    ],
)
def test_a_quality_check_is_an_alarm_when_it_failed_and_its_failure_is_one(
    passed: bool, action: str, alarm: bool
) -> None:
    check = QualityCheck("out_of_range", "x", "[0, 1]", 0.2, 0.05, passed, "m", action)
    assert check.alarm is alarm
    assert QualityCheck.from_dict(check.to_dict()) == check


def test_quality_checks_written_before_the_action_are_alarms() -> None:
    old = {"check": "row_count", "reference": 10.0, "current": 3.0, "passed": False, "message": "3 rows"}
    check = QualityCheck.from_dict(old)
    assert check.action == "alarm" and check.alarm and check.column is None and check.threshold is None


@pytest.mark.parametrize(
    ("task", "subject"),
    [
        ("binary", "the positive class's probability"),
        ("multiclass", "the shares of the predicted classes"),
        ("regression", "the predicted values"),
        ("ranking", "the champion's scores"),  # a task of another version
    ],
)
def test_prediction_drift_says_what_it_compared(task: str, subject: str) -> None:
    assert PredictionDrift((), {}, False, task=task).subject == subject


def test_prediction_drift_round_trip_and_old_reports() -> None:
    prediction = full_report().prediction
    assert prediction is not None
    assert PredictionDrift.from_dict(json.loads(json.dumps(prediction.to_dict()))) == prediction
    old = PredictionDrift.from_dict({"tests": [KS.to_dict()], "drifted": True})
    assert (old.reference_rows, old.current_rows, old.task, old.histogram) == (0, 0, "binary", {})
    assert (old.class_tests, old.class_histogram, old.threshold, old.class_subject) == ((), {}, None, "")


def test_a_binary_prediction_drift_carries_its_predicted_classes_shares() -> None:
    prediction = binary_prediction_with_shares()
    assert prediction.class_subject == "the shares of the predicted classes (positive: score >= 0.5)"
    assert PredictionDrift.from_dict(json.loads(json.dumps(prediction.to_dict()))) == prediction
    report = full_report(prediction=prediction)
    assert DriftReport.from_dict(json.loads(json.dumps(report.to_dict()))).prediction == prediction
    lines = report.summary().splitlines()
    start = lines.index("  prediction: DRIFT")  # the verdict, then each part
    assert lines[start + 1] == (
        "    the positive class's probability: ks stat=0.0200 p=0.3000 (adj 0.6000) >= 0.0500"
    )
    assert lines[start + 2] == (
        "    the shares of the predicted classes (positive: score >= 0.5): DRIFT chi2 stat=68.0000 "
        "p=1.6e-16 (adj 3.2e-16) < 0.0500 [2 levels, dof 1] DRIFT; jensen_shannon 0.0420 < 0.1000"
    )
    assert PredictionDrift.from_dict({"tests": [], "drifted": False}).class_drifted is False  # old reports


@pytest.mark.parametrize(
    ("metric", "expected", "current", "drop"),
    [
        ("roc_auc", 0.9, 0.8, 0.1),  # higher is better: a fall is worse
        ("r2", 0.5, 0.7, -0.2),
        ("rmse", 2.0, 3.0, 1.0),  # lower is better: a rise is worse
        ("log_loss", 0.4, 0.3, -0.1),
        ("new_metric", 0.9, 0.8, 0.1),  # unknown to this version: read as higher is better
    ],
)
def test_a_performance_drop_is_in_the_metrics_direction(
    metric: str, expected: float, current: float, drop: float
) -> None:
    check = PerformanceCheck(metric, expected, current, 0.05, False)
    assert check.drop == pytest.approx(drop)
    assert PerformanceCheck.from_dict(check.to_dict()) == check


# --- DriftReport -----------------------------------------------------------------------------


def test_the_reports_derived_views() -> None:
    beyond = FeatureDrift("range", "numeric", (), True, rules=("out_of_range",), out_of_range=BEYOND)
    quality = (
        QualityCheck("null_rate", "a", 0.0, 0.5, 0.05, False, "nulls"),
        QualityCheck("out_of_range", "range", "[0, 2]", 0.1, 0.05, False, "beyond", "drift"),
        QualityCheck("row_count", None, 10.0, 10.0, 1.0, True, "rows"),
    )
    report = make_report((numeric("a", drifted=True), numeric("b"), beyond), quality=quality)
    assert report.drifted_features == ("a", "range")
    assert report.out_of_range_features == ("range",)
    assert report.failed_quality_checks == (quality[0],)  # the drift-only failure is no alarm
    assert report.feature("b").name == "b"
    with pytest.raises(
        KeyError, match=r"feature 'c' is not in this drift report; features: \['a', 'b', 'range'\]"
    ):
        report.feature("c")


def test_the_json_round_trip_is_lossless_nan_included() -> None:
    nan_test = TestResult("ks", math.nan, math.nan, None, 0.05, False)
    report = full_report(settings={"p_value": 0.05, "features": ("a", "b"), "nested": {1: (2.0,)}})
    report = replace(report, features=(*report.features, FeatureDrift("n", "numeric", (nan_test,), False)))
    stored = json.loads(json.dumps(report.to_dict()))
    assert stored["drifted_features"] == list(report.drifted_features)
    assert stored["settings"] == {"p_value": 0.05, "features": ["a", "b"], "nested": {"1": [2.0]}}
    back = DriftReport.from_dict(stored)
    assert math.isnan(back.feature("n").tests[0].statistic)
    assert json.dumps(back.to_dict()) == json.dumps(report.to_dict())  # NaN != NaN: compare the texts
    assert back.summary() == report.summary()


def test_the_derived_drifted_features_are_not_read_back() -> None:
    stored = make_report((numeric("a", drifted=True), numeric("b"))).to_dict()
    stored["drifted_features"] = ["b"]
    assert DriftReport.from_dict(stored).drifted_features == ("a",)


def test_a_minimal_stored_report_reads_with_defaults() -> None:
    report = DriftReport.from_dict(
        {
            "drifted": False,
            "quality_failed": False,
            "reference_rows": 10,
            "current_rows": 5,
            "created_at": "t",
        }
    )
    assert report.features == report.quality == report.performance == report.reasons == ()
    assert report.multivariate is None and report.prediction is None and report.settings == {}
    assert (report.dataset_drift, report.drift_share) == (False, 0.0)


def test_the_summary_has_the_verdicts_and_a_line_per_part() -> None:
    report = full_report()
    lines = report.summary().splitlines()
    assert lines[0] == (
        "Drift report: DRIFT; data-quality alarm (1000 reference rows, 500 current rows, 2025-01-05T00:00:00+00:00)"
    )
    assert lines[1 : 1 + len(report.reasons)] == [f"  reason: {r}" for r in report.reasons]
    assert "  features: 2 of 4 drifted (share 0.50)" in lines
    age = next(line for line in lines if " age " in line)
    assert age.startswith(
        "    DRIFT age    [numeric] ks stat=0.3100 p=1e-09 (adj 4e-09) < 0.0500 DRIFT; psi "
    )
    assert any(line.startswith("    ok    plan   [categorical] chi2 ") for line in lines)
    assert (
        "  multivariate: DRIFT mmd stat=0.0123 p=0.0020 alpha=0.0500 (200 permutations, 500+500 rows, 2 features, cpu)"
        in lines
    )
    assert (
        "  prediction (the positive class's probability): DRIFT ks stat=0.2000 p=0.0001 < 0.0500 DRIFT"
        in lines
    )
    assert "  performance: DRIFT roc_auc expected 0.9000 current 0.8000 (max drop 0.0500)" in lines
    assert "  performance: ok log_loss expected 0.3000 current 0.3100 (max drop 0.0500)" in lines
    assert "  quality: 2 of 3 checks passed" in lines
    assert lines[-1].startswith("    FAIL new_categories city: unseen category")


def test_the_summary_of_rules_beyond_range_and_drift_only_checks() -> None:
    feature = FeatureDrift("x", "numeric", (PSI,), True, rules=("out_of_range",), out_of_range=BEYOND)
    quality = (
        QualityCheck("out_of_range", "x", "[0, 2]", 0.1, 0.05, False, "10 % beyond", "drift"),
        QualityCheck("row_count", None, 10.0, 0.0, 1.0, False, "0 rows"),
    )
    lines = make_report((feature, categorical("c", ["u", "v"])), quality=quality).summary().splitlines()
    x = next(line for line in lines if " x " in line)
    assert x.endswith("; 10 % of values beyond the reference's range [0, 2] (rules: out_of_range)")
    assert lines[-2:] == ["    FAIL row_count <table>: 0 rows", "    DRIFT out_of_range x: 10 % beyond"]
    assert "  quality: 0 of 2 checks passed" in lines


def test_the_summary_of_an_empty_report() -> None:
    lines = make_report(()).summary().splitlines()
    assert lines[0].startswith("Drift report: no drift; data quality ok (1000 reference rows")
    assert lines[1:] == ["  quality: 0 of 0 checks passed"]


def test_report_parts_round_trip_through_the_reports_dict() -> None:
    """Each part is read by its own from_dict: a report's dict is its parts' dicts."""
    report = full_report()
    d: dict[str, Any] = report.to_dict()
    assert d["features"] == [f.to_dict() for f in report.features]
    assert d["quality"] == [q.to_dict() for q in report.quality]
    assert d["performance"] == [p.to_dict() for p in report.performance]
    assert d["multivariate"] == report.multivariate.to_dict()  # type: ignore[union-attr]
    assert DriftReport.from_dict(d) == report
