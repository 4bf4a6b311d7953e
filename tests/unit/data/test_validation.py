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
    by_column: dict[str, list[tuple[str, dict]]] = {}
    for item in inferred:
        ((name, kwargs),) = item.items()
        by_column.setdefault(kwargs["column"], []).append((name, kwargs))
    assert set(by_column) == set(COLUMNS)
    assert all(e[0][0] == "expect_column_to_exist" for e in by_column.values())
    # No nulls in 5000 rows: a batch may hold 0.4 % (1000-row batch, 14 checks share 1 %).
    nulls = [k for c in COLUMNS for n, k in by_column[c] if n == "expect_column_values_to_not_be_null"]
    assert len(nulls) == len(COLUMNS) and {k["mostly"] for k in nulls} == {0.996}

    ranges = {c: [k for n, k in e if n == "expect_column_values_to_be_between"] for c, e in by_column.items()}
    # amount is heavy-tailed: its extremes widened by 2 / sqrt(5000) of the range on a log1p
    # scale, with a tolerance; and, a non-negative quantity, a floor at 0 without one.
    amount, floor = ranges["amount"]
    width = 2 / np.sqrt(5000)
    log_lo, log_hi = np.log1p(reference["amount"].min()), np.log1p(reference["amount"].max())
    assert amount["max_value"] == pytest.approx(np.expm1(log_hi + width * (log_hi - log_lo)))
    assert amount["min_value"] == pytest.approx(np.expm1(log_lo - width * (log_hi - log_lo)))
    assert amount["mostly"] == 0.996
    assert floor == {"column": "amount", "min_value": 0}
    # merchant_risk (0.0008 .. 0.89, not skewed, no zero): the lower bound is clipped at 0, no floor
    (risk,) = ranges["merchant_risk"]
    spread = reference["merchant_risk"].max() - reference["merchant_risk"].min()
    assert risk["max_value"] == pytest.approx(reference["merchant_risk"].max() + width * spread)
    assert risk["min_value"] == 0.0
    # whole numbers: whole-number bounds (0 .. 23 widened by 0.65, rounded outwards)
    hour, _ = ranges["hour"]
    assert (hour["min_value"], hour["max_value"]) == (0, 24) and isinstance(hour["max_value"], int)
    # closed sets (every value seen many times): no tolerance for a new value
    sets = {c: k for c, e in by_column.items() for n, k in e if n == "expect_column_values_to_be_in_set"}
    assert sets["is_fraud"] == {"column": "is_fraud", "value_set": [0, 1]}
    assert sets["country"] == {"column": "country", "value_set": sorted(reference["country"].unique())}
    json.dumps(inferred)  # plain data, ready for a spec or XCom


def test_infer_nulls_negative_ranges_and_missing_columns():
    x = [*np.linspace(-10.0, 10.0, 39), None]
    ref = pd.DataFrame({"x": x, "flag": [True, False] * 20})
    got = infer_expectations(ref, columns=["x", "flag"])
    # one null in 40 rows: a batch may hold a few (a third of the rows would be too many)
    (nulls,) = [
        i for i in got if "expect_column_values_to_not_be_null" in i and i[next(iter(i))]["column"] == "x"
    ]
    assert 0.5 < nulls["expect_column_values_to_not_be_null"]["mostly"] < 0.9
    # 39 values: the margin is at its cap, 25 % of the range; no floor, the column is signed
    (between,) = [
        i["expect_column_values_to_be_between"] for i in got if "expect_column_values_to_be_between" in i
    ]
    assert (between["min_value"], between["max_value"]) == (-15.0, 15.0) and between["mostly"] < 1
    assert {"expect_column_values_to_be_in_set": {"column": "flag", "value_set": [False, True]}} in got
    with pytest.raises(DataError, match=r"\['nope'\] not in the reference"):
        infer_expectations(ref, columns=["x", "nope"])


def test_a_tiny_reference_gets_no_ranges_or_value_sets(caplog):
    ref = pd.DataFrame({"x": [-10.0, 0.0, 10.0, None], "flag": [True, False, True, True]})
    with caplog.at_level("INFO", logger="airflow_mlops.data.validation"):
        got = infer_expectations(ref, columns=["x", "flag"])
    # 4 rows: too few for a range or a value set, and a null check would tolerate every row
    assert got == [
        {"expect_column_to_exist": {"column": "x"}},
        {"expect_column_to_exist": {"column": "flag"}},
    ]
    assert "Not inferring a range for x: 3 reference value(s), fewer than 30" in caplog.text
    assert "Not inferring a value set for flag: 4 reference value(s), fewer than 30" in caplog.text


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
