"""Great Expectations validation: inferred expectations, reports, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.generate import COLUMNS, generate_fraud_data
from airflow_mlops.data.validation import (
    MAX_PARTIAL_UNEXPECTED,
    ExpectationResult,
    ValidationReport,
    gx_class_name,
    infer_expectations,
    validate_dataframe,
)
from airflow_mlops.exceptions import DataError, DataValidationError
from airflow_mlops.spec.models import SUPPORTED_EXPECTATIONS


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_fraud_data(5000, seed=21)


@pytest.fixture(scope="module")
def inferred(reference) -> list[dict[str, dict]]:
    return infer_expectations(reference, columns=list(COLUMNS))


def test_every_supported_expectation_maps_to_a_gx_class():
    import great_expectations as gx

    missing = [n for n in SUPPORTED_EXPECTATIONS if not hasattr(gx.expectations, gx_class_name(n))]
    assert missing == []


def test_infer_expectations(reference, inferred):
    by_column: dict[str, dict[str, dict]] = {}
    for item in inferred:
        ((name, kwargs),) = item.items()
        by_column.setdefault(kwargs["column"], {})[name] = kwargs
    assert set(by_column) == set(COLUMNS)
    assert all("expect_column_to_exist" in e for e in by_column.values())
    assert all("expect_column_values_to_not_be_null" in e for e in by_column.values())
    amount = by_column["amount"]["expect_column_values_to_be_between"]
    assert amount["min_value"] == 0  # non-negative reference: the lower bound stays at 0
    # amount is heavy-tailed: widened by 25 % of its range on a log1p scale.
    log_lo, log_hi = np.log1p(reference["amount"].min()), np.log1p(reference["amount"].max())
    assert amount["max_value"] == pytest.approx(np.expm1(log_hi + 0.25 * (log_hi - log_lo)))
    risk = by_column["merchant_risk"]["expect_column_values_to_be_between"]
    spread = reference["merchant_risk"].max() - reference["merchant_risk"].min()
    assert risk["max_value"] == pytest.approx(reference["merchant_risk"].max() + 0.25 * spread)
    hour = by_column["hour"]["expect_column_values_to_be_between"]
    assert (hour["min_value"], hour["max_value"]) == (0, 29) and isinstance(hour["max_value"], int)
    assert by_column["is_fraud"]["expect_column_values_to_be_in_set"]["value_set"] == [0, 1]
    assert by_column["country"]["expect_column_values_to_be_in_set"]["value_set"] == sorted(
        reference["country"].unique()
    )
    json.dumps(inferred)  # plain data, ready for a spec or XCom


def test_infer_nulls_negative_ranges_and_missing_columns():
    ref = pd.DataFrame({"x": [-10.0, 0.0, 10.0, None], "flag": [True, False, True, True]})
    got = infer_expectations(ref, columns=["x", "flag"])
    assert {"expect_column_values_to_not_be_null": {"column": "x"}} not in got
    assert {
        "expect_column_values_to_be_between": {"column": "x", "min_value": -15.0, "max_value": 15.0}
    } in got
    assert {"expect_column_values_to_be_in_set": {"column": "flag", "value_set": [False, True]}} in got
    with pytest.raises(DataError, match=r"\['nope'\] not in the reference"):
        infer_expectations(ref, columns=["x", "nope"])


def test_inferred_expectations_pass_on_the_reference_and_fresh_data(reference, inferred):
    report = validate_dataframe(reference, inferred)
    assert report.success, report.summary()
    assert report.row_count == len(reference)
    assert len(report.results) == len(inferred)
    report.raise_if_failed()
    assert validate_dataframe(generate_fraud_data(2000, seed=22), inferred).success


def test_corrupted_batch_fails_with_observed_values(reference, inferred):
    batch = generate_fraud_data(2000, seed=23)
    batch.loc[3, "amount"] = -5.0
    batch.loc[[4, 5], "country"] = "XX"
    batch.loc[10:39, "merchant_risk"] = np.nan  # 30 nulls: partial list is trimmed to 20
    report = validate_dataframe(batch, inferred)
    assert not report.success
    failed = {(r.expectation, r.kwargs["column"]): r for r in report.results if not r.success}
    assert set(failed) == {
        ("expect_column_values_to_be_between", "amount"),
        ("expect_column_values_to_be_in_set", "country"),
        ("expect_column_values_to_not_be_null", "merchant_risk"),
    }
    amount = failed["expect_column_values_to_be_between", "amount"]
    assert amount.unexpected_count == 1 and amount.partial_unexpected_list == (-5.0,)
    assert failed["expect_column_values_to_be_in_set", "country"].partial_unexpected_list == ("XX", "XX")
    nulls = failed["expect_column_values_to_not_be_null", "merchant_risk"]
    assert nulls.unexpected_count == 30 and len(nulls.partial_unexpected_list) == MAX_PARTIAL_UNEXPECTED
    summary = report.summary()
    assert f"{len(inferred) - 3} of {len(inferred)} expectation(s) met on 2000 row(s)" in summary
    assert "[-5.0]" in summary and '"XX"' in summary and "30 unexpected" in summary
    with pytest.raises(DataValidationError, match=r"(?s)data validation failed.*amount"):
        report.raise_if_failed()
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["failed_expectations"] == 3 and payload["results"][0]["success"] is True


def test_results_keep_input_order_and_duplicates():
    df = pd.DataFrame({"a": [1, 2, 3]})
    items = [
        {"expect_table_row_count_to_be_between": {"min_value": 1, "max_value": 2}},
        {"expect_column_values_to_be_between": {"column": "a", "min_value": 0, "max_value": 5}},
        {"expect_column_values_to_be_between": {"column": "a", "min_value": 0, "max_value": 5}},
        {"expect_column_mean_to_be_between": {"column": "a", "min_value": 1.5, "max_value": 2.5}},
    ]
    report = validate_dataframe(df, items)
    assert [r.expectation for r in report.results] == [next(iter(i)) for i in items]
    assert [r.success for r in report.results] == [False, True, True, True]
    assert report.results[0].observed_value == 3 and report.results[3].observed_value == 2.0


def test_misspelt_column_is_a_clear_failure():
    df = pd.DataFrame({"amount": [1.0, 2.0]})
    report = validate_dataframe(
        df,
        [
            {"expect_column_values_to_be_between": {"column": "amonut", "min_value": 0}},
            {"expect_column_to_exist": {"column": "amonut"}},
        ],
    )
    assert [r.success for r in report.results] == [False, False]
    assert report.results[0].error is not None and "['amonut'] not in the data" in report.results[0].error
    assert report.results[1].observed_value == ["amount"]
    with pytest.raises(DataValidationError, match=r"amonut.*not in the data; its columns are \['amount'\]"):
        report.raise_if_failed()


def test_gx_evaluation_error_becomes_a_short_failed_result():
    df = pd.DataFrame({"country": ["US", "DE"] * 500})
    (result,) = validate_dataframe(
        df, [{"expect_column_mean_to_be_between": {"column": "country", "min_value": 0}}]
    ).results
    assert not result.success and result.error and len(result.error) <= 300


@pytest.mark.parametrize(
    ("items", "match"),
    [
        (
            [{"expect_column_values_to_be_between": {"column": "a", "minimum": 0}}],
            r"#1 expect_column_values_to_be_between: invalid arguments.*minimum",
        ),
        ([{"expect_column_values_to_be_between": {"column": "a", "min_value": "low"}}], "min_value"),
        (
            [{"expect_column_values_to_be_odd": {"column": "a"}}],
            "unknown expectation 'expect_column_values_to_be_odd'",
        ),
        (
            [
                {
                    "expect_column_to_exist": {"column": "a"},
                    "expect_column_values_to_be_unique": {"column": "a"},
                }
            ],
            "exactly one key",
        ),
        ([{"expect_column_to_exist": ["a"]}], "must be a mapping"),
        ([{"expect_column_to_exist": {"column": "a", "meta": {}}}], "reserved"),
    ],
)
def test_bad_expectations_raise_data_error(items, match):
    with pytest.raises(DataError, match=match):
        validate_dataframe(pd.DataFrame({"a": [1]}), items)


def test_empty_expectation_list_passes():
    report = validate_dataframe(pd.DataFrame({"a": [1]}), [])
    assert report.success and report.results == () and "0 of 0" in report.summary()


def test_report_to_dict_converts_numpy_types():
    result = ExpectationResult(
        expectation="expect_column_max_to_be_between",
        kwargs={"column": "a", "max_value": np.float64(1.5)},
        success=False,
        observed_value=np.int64(7),
        partial_unexpected_list=(np.int32(1), float("nan")),
    )
    report = ValidationReport(success=False, results=(result,), row_count=np.int64(3))  # type: ignore[arg-type]
    payload = report.to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert payload["results"][0]["observed_value"] == 7 and payload["row_count"] == 3
    assert "observed 7" in report.summary()
