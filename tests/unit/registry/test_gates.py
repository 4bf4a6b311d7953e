"""The evaluation gates (airflow_mlops.registry.gates): bounds, the champion comparison, the report; fail closed."""

from __future__ import annotations

import json

import pytest

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.registry.gates import (
    NO_CHAMPION_REASON,
    GateReport,
    GateResult,
    evaluate_gates,
)
from airflow_mlops.spec.models import EvaluationConfig

# --- gates: bounds --------------------------------------------------------------------------------

GOOD = {"roc_auc": 0.91, "pr_auc": 0.6, "f1": 0.5, "log_loss": 0.3}


def test_bounds_pass_and_fail() -> None:
    report = evaluate_gates(
        GOOD, bounds={"roc_auc": {"min": 0.8, "max": None}, "f1": {"min": 0.55}, "log_loss": {"max": 0.5}}
    )
    by_name = {g.name: g for g in report.gates}
    assert list(by_name) == ["roc_auc.min", "f1.min", "log_loss.max"]
    assert by_name["roc_auc.min"].passed
    assert by_name["log_loss.max"].passed
    f1 = by_name["f1.min"]
    assert (f1.passed, f1.kind, f1.metric, f1.value, f1.threshold) == (False, "threshold", "f1", 0.5, 0.55)
    assert f1.reason == "f1 = 0.5 is below the minimum 0.55"
    assert not report.passed
    assert report.failed == (f1,)


def test_max_bound_fails_above() -> None:
    gate = evaluate_gates(GOOD, bounds={"log_loss": {"max": 0.25}}).gates[0]
    assert not gate.passed
    assert gate.reason == "log_loss = 0.3 is above the maximum 0.25"


def test_bound_equal_to_the_value_passes() -> None:
    assert evaluate_gates({"f1": 0.5}, bounds={"f1": {"min": 0.5, "max": 0.5}}).passed


def test_min_and_max_are_two_gates() -> None:
    report = evaluate_gates({"accuracy": 0.99}, bounds={"accuracy": {"min": 0.7, "max": 0.98}})
    assert [(g.name, g.passed) for g in report.gates] == [("accuracy.min", True), ("accuracy.max", False)]


@pytest.mark.parametrize(
    ("metrics", "why"),
    [
        ({}, "missing from the metrics"),
        ({"roc_auc": None}, "missing from the metrics"),
        ({"roc_auc": float("nan")}, "NaN"),
        ({"roc_auc": "high"}, "not a number"),
    ],
)
def test_unmeasurable_metric_fails_closed(metrics: dict, why: str) -> None:
    report = evaluate_gates(metrics, bounds={"roc_auc": {"min": 0.5}})
    gate = report.gates[0]
    assert not gate.passed
    assert gate.value is None
    assert "roc_auc could not be measured" in gate.reason
    assert why in gate.reason
    assert not report.passed


def test_no_gates_pass() -> None:
    report = evaluate_gates(GOOD)
    assert report.gates == ()
    assert report.passed
    report.raise_if_failed()
    assert report.summary() == "no evaluation gates configured: passed"


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"f1": {}}, "neither min nor max"),
        ({"f1": {"min": None, "max": None}}, "neither"),
        ({"f1": {"minimum": 0.5}}, "unknown key"),
    ],
)
def test_malformed_bounds_raise_instead_of_vanishing(bounds: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_gates(GOOD, bounds=bounds)


# --- gates: champion ------------------------------------------------------------------------------


def test_no_champion_yet_passes() -> None:
    report = evaluate_gates(GOOD, champion_metrics=None, comparisons={"roc_auc": {"max_regression": 0.0}})
    gate = report.gates[0]
    assert (gate.name, gate.kind, gate.passed, gate.reason) == (
        "roc_auc.vs_champion",
        "champion",
        True,
        NO_CHAMPION_REASON,
    )
    assert gate.reason == "no champion yet: first model"
    assert gate.threshold is None
    assert report.passed


def test_regression_within_allowance_passes() -> None:
    gate = evaluate_gates(
        {"roc_auc": 0.90},
        champion_metrics={"roc_auc": 0.92},
        comparisons={"roc_auc": {"max_regression": 0.03}},
    ).gates[0]
    assert gate.passed
    assert gate.threshold == pytest.approx(0.89)


def test_regression_beyond_allowance_fails() -> None:
    gate = evaluate_gates(
        {"roc_auc": 0.85},
        champion_metrics={"roc_auc": 0.92},
        comparisons={"roc_auc": {"max_regression": 0.03}},
    ).gates[0]
    assert not gate.passed
    assert gate.value == 0.85
    assert gate.threshold == pytest.approx(0.89)
    assert "roc_auc = 0.85 is 0.07 below the champion's 0.92" in gate.reason
    assert "allowed regression 0.03" in gate.reason
    assert "needs >= 0.89" in gate.reason


def test_improvement_passes_with_default_allowance_zero() -> None:
    report = evaluate_gates({"f1": 0.7}, champion_metrics={"f1": 0.6}, comparisons={"f1": {}})
    assert report.passed


def test_equal_to_champion_passes_with_zero_allowance() -> None:
    assert evaluate_gates(
        {"f1": 0.6}, champion_metrics={"f1": 0.6}, comparisons={"f1": {"max_regression": 0}}
    ).passed


def test_float_rounding_at_the_boundary_does_not_flip_the_decision() -> None:
    # 0.3 - 0.1 = 0.19999999999999998 in floating point: a regression of exactly the allowance.
    assert evaluate_gates(
        {"f1": 0.2}, champion_metrics={"f1": 0.3}, comparisons={"f1": {"max_regression": 0.1}}
    ).passed


def test_log_loss_regression_is_an_increase() -> None:
    worse = evaluate_gates(
        {"log_loss": 0.40},
        champion_metrics={"log_loss": 0.30},
        comparisons={"log_loss": {"max_regression": 0.05}},
    ).gates[0]
    better = evaluate_gates(
        {"log_loss": 0.20},
        champion_metrics={"log_loss": 0.30},
        comparisons={"log_loss": {"max_regression": 0.0}},
    ).gates[0]
    assert not worse.passed
    assert worse.threshold == pytest.approx(0.35)
    assert "log_loss = 0.4 is 0.1 above the champion's 0.3" in worse.reason
    assert "needs <= 0.35" in worse.reason
    assert better.passed


@pytest.mark.parametrize(
    ("candidate", "champion", "who"),
    [
        ({"roc_auc": 0.9}, {}, "champion's roc_auc could not be measured"),
        ({"roc_auc": 0.9}, {"roc_auc": float("nan")}, "champion's roc_auc could not be measured"),
        ({}, {"roc_auc": 0.9}, "candidate's roc_auc could not be measured"),
        ({"roc_auc": float("nan")}, {"roc_auc": 0.9}, "candidate's roc_auc could not be measured"),
    ],
)
def test_champion_comparison_that_cannot_be_made_fails(candidate: dict, champion: dict, who: str) -> None:
    gate = evaluate_gates(candidate, champion_metrics=champion, comparisons={"roc_auc": {}}).gates[0]
    assert not gate.passed
    assert who in gate.reason


@pytest.mark.parametrize(
    ("comparisons", "message"),
    [({"f1": {"max_regression": -0.1}}, "must be >= 0"), ({"f1": {"max_drop": 0.1}}, "unknown key")],
)
def test_malformed_comparisons_raise(comparisons: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_gates(GOOD, champion_metrics=GOOD, comparisons=comparisons)


# --- report ---------------------------------------------------------------------------------------


def failing_report() -> GateReport:
    return evaluate_gates(
        {"roc_auc": 0.72, "f1": 0.6, "pr_auc": float("nan")},
        bounds={"roc_auc": {"min": 0.8}, "f1": {"min": 0.5}, "pr_auc": {"min": 0.3}},
        champion_metrics={"f1": 0.7},
        comparisons={"f1": {"max_regression": 0.05}},
    )


def test_raise_if_failed_names_each_failing_gate_value_and_threshold() -> None:
    with pytest.raises(GateFailedError) as info:
        failing_report().raise_if_failed()
    message = str(info.value)
    assert message.startswith("3 of 4 evaluation gate(s) failed")
    assert "roc_auc.min: roc_auc = 0.72 is below the minimum 0.8" in message
    assert "pr_auc.min: pr_auc could not be measured: NaN" in message
    assert "required >= 0.3" in message
    assert "f1.vs_champion: f1 = 0.6 is 0.1 below the champion's 0.7" in message
    assert "needs >= 0.65" in message
    assert "f1.min" not in message  # passing gates are not blamed


def test_summary_lists_every_gate() -> None:
    lines = failing_report().summary().splitlines()
    assert lines[0] == "3 of 4 evaluation gate(s) failed"
    assert lines[1:] == [
        "  FAIL roc_auc.min: roc_auc = 0.72 is below the minimum 0.8",
        "  PASS f1.min: f1 = 0.6 >= 0.5",
        "  FAIL pr_auc.min: pr_auc could not be measured: NaN (e.g. the holdout set has a single class); required >= 0.3",
        "  FAIL f1.vs_champion: f1 = 0.6 is 0.1 below the champion's 0.7, more than the allowed regression 0.05 (needs >= 0.65)",
    ]


def test_passing_summary_and_no_exception() -> None:
    report = evaluate_gates(GOOD, bounds={"roc_auc": {"min": 0.8}})
    assert report.summary().splitlines()[0] == "all 1 evaluation gate(s) passed"
    report.raise_if_failed()


def test_to_dict_is_json_safe_and_round_trips() -> None:
    report = failing_report()
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["passed"] is False
    assert data["gates"][2] == {
        "name": "pr_auc.min",
        "kind": "threshold",
        "metric": "pr_auc",
        "value": None,
        "threshold": 0.3,
        "passed": False,
        "reason": "pr_auc could not be measured: NaN (e.g. the holdout set has a single class); required >= 0.3",
    }
    assert GateReport.from_dict(data) == report


def test_gate_results_are_frozen() -> None:
    gate = GateResult("f1.min", "threshold", "f1", 0.5, 0.4, True, "ok")
    with pytest.raises(AttributeError):
        gate.passed = False  # type: ignore[misc]


def test_close_values_are_printed_distinctly() -> None:
    gate = evaluate_gates({"roc_auc": 0.79999999}, bounds={"roc_auc": {"min": 0.8}}).gates[0]
    assert not gate.passed
    assert "0.79999999 is below the minimum 0.8" in gate.reason


def test_accepts_the_spec_models_dumped() -> None:
    spec = EvaluationConfig.model_validate(
        {"metrics": {"roc_auc": {"min": 0.8}}, "compare_to_champion": {"log_loss": {"max_regression": 0.01}}}
    )
    report = evaluate_gates(
        {"roc_auc": 0.85, "log_loss": 0.305},
        bounds={k: v.model_dump() for k, v in spec.metrics.items()},
        champion_metrics={"log_loss": 0.3},
        comparisons={k: v.model_dump() for k, v in spec.compare_to_champion.items()},
    )
    assert [(g.name, g.passed) for g in report.gates] == [
        ("roc_auc.min", True),
        ("log_loss.vs_champion", True),
    ]
