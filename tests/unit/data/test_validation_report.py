"""The HTML validation report: failed expectations with sample rows, profiles against the reference."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.generate import COLUMNS, generate_fraud_data
from airflow_mlops.data.validation import infer_expectations, validate_dataframe
from airflow_mlops.data.validation_report import (
    MAX_SAMPLE_ROWS,
    QUANTILES,
    profile_columns,
    render_validation_html,
    sample_rows,
)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_fraud_data(3000, seed=31)


@pytest.fixture(scope="module")
def corrupted() -> pd.DataFrame:
    batch = generate_fraud_data(1000, seed=32)
    batch.loc[[3, 700], "amount"] = [-5.0, -7.5]
    batch.loc[10:29, "merchant_risk"] = np.nan
    batch.loc[[4, 5], "country"] = "<script>alert(1)</script>"
    return batch


@pytest.fixture(scope="module")
def report(reference, corrupted):
    return validate_dataframe(corrupted, infer_expectations(reference, columns=list(COLUMNS)))


def _failed(report, expectation: str, column: str):
    return next(r for r in report.failed if r.expectation == expectation and r.kwargs["column"] == column)


def test_sample_rows_are_the_rows_that_break_the_expectation(report, corrupted):
    between = _failed(report, "expect_column_values_to_be_between", "amount")
    rows = sample_rows(between, corrupted)
    low = between.kwargs["min_value"]
    expected = corrupted.index[corrupted["amount"] < low].tolist()  # independent of GX
    assert rows is not None and rows.index.tolist() == expected == [3, 700]
    assert rows.columns[0] == "amount" and rows["amount"].tolist() == [-5.0, -7.5]
    pd.testing.assert_frame_equal(rows, corrupted.loc[expected, rows.columns.tolist()])

    nulls = sample_rows(_failed(report, "expect_column_values_to_not_be_null", "merchant_risk"), corrupted)
    first = corrupted.index[corrupted["merchant_risk"].isna()][:MAX_SAMPLE_ROWS].tolist()
    assert nulls is not None and nulls.index.tolist() == first and nulls["merchant_risk"].isna().all()


def test_no_sample_rows_for_table_or_aggregate_expectations(corrupted):
    report = validate_dataframe(
        corrupted,
        [
            {"expect_table_row_count_to_be_between": {"min_value": 5000}},
            {"expect_column_mean_to_be_between": {"column": "amount", "max_value": 1.0}},
            {"expect_column_values_to_be_between": {"column": "nope", "min_value": 0}},
        ],
    )
    assert len(report.failed) == 3
    assert [sample_rows(r, corrupted) for r in report.failed] == [None, None, None]


def test_profiles_compare_batch_and_reference(reference, corrupted):
    profiles = {p.name: p for p in profile_columns(corrupted, reference)}
    assert list(profiles) == list(corrupted.columns)
    risk = profiles["merchant_risk"]
    assert risk.kind == "numeric"
    for stats, frame in ((risk.batch, corrupted), (risk.reference, reference)):
        values = frame["merchant_risk"].dropna().to_numpy()
        assert stats.rows == len(frame) and stats.nulls == frame["merchant_risk"].isna().sum()
        assert stats.min == values.min() and stats.max == values.max()
        assert stats.mean == pytest.approx(values.mean()) and stats.std == pytest.approx(values.std(ddof=1))
        assert list(stats.quantiles.values()) == pytest.approx(np.quantile(values, QUANTILES))
    assert risk.batch.nulls == 20 and risk.reference.nulls == 0
    # the histogram: the reference's deciles, stretched to both sets' extremes; shares of each
    edges = np.array(risk.histogram["edges"])
    assert edges[0] == min(reference["merchant_risk"].min(), corrupted["merchant_risk"].min())
    for key, frame in (("reference", reference), ("current", corrupted)):
        values = frame["merchant_risk"].dropna().to_numpy()
        counts, _ = np.histogram(values, bins=edges)
        assert risk.histogram[key] == pytest.approx(list(counts / len(values)))
    assert risk.histogram["reference"] == pytest.approx([0.1] * 10, abs=0.01)  # deciles: flat

    country = profiles["country"]
    assert country.kind == "categorical"
    shares = corrupted["country"].value_counts(normalize=True)
    got = dict(zip(country.histogram["categories"], country.histogram["current"], strict=True))
    assert got == pytest.approx(shares.to_dict())
    assert (
        dict(zip(country.histogram["categories"], country.histogram["reference"], strict=True))[
            "<script>alert(1)</script>"
        ]
        == 0.0
    )
    assert profiles["is_fraud"].kind == "categorical"  # a 0/1 label is shown as classes


def test_a_column_only_one_side_has():
    batch = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    reference = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]})
    profiles = {p.name: p for p in profile_columns(batch, reference)}
    assert profiles["b"].batch is None and profiles["b"].reference.distinct == 2
    assert profiles["b"].histogram["current"] == [None, None]
    assert {p.name: p.reference for p in profile_columns(batch)}["a"] is None


def test_html_report_shows_failures_with_rows_and_profiles(report, reference, corrupted):
    page = render_validation_html(
        report,
        corrupted,
        reference=reference,
        source="s3://bucket/batch.parquet",
        reference_source="/data/reference.parquet",
        context={"run": "p__train/manual__1"},
    )
    assert page.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in page
    assert "FAILED" in page and f"{len(report.results) - 3} of {len(report.results)} expectation(s)" in page
    assert "s3://bucket/batch.parquet" in page and "/data/reference.parquet" in page
    failed = re.search(r'<section id="failed">(.*?)</section>', page, re.S)
    assert failed is not None
    blocks = failed.group(1).split('<div class="failure">')[1:]
    assert len(blocks) == 3
    amount = next(b for b in blocks if "column=&quot;amount&quot;" in b)
    # both offending rows, with their position and the offending cell marked
    assert re.search(r'<td class="num">3</td><td class="bad num">-5</td>', amount)
    assert re.search(r'<td class="num">700</td><td class="bad num">-7.5</td>', amount)
    # hostile data is shown as text, never parsed
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    profiles = re.search(r'<section id="profiles">(.*)</section>', page, re.S)
    assert profiles is not None
    assert profiles.group(1).count('<div class="profile">') == len(COLUMNS)
    assert profiles.group(1).count("<svg") == len(COLUMNS)
    assert "<th>reference</th><th>batch</th>" in profiles.group(1)


def test_passing_report_without_reference():
    batch = pd.DataFrame({"a": [1, 2, 3, 4]})
    report = validate_dataframe(batch, [{"expect_column_to_exist": {"column": "a"}}])
    page = render_validation_html(report, batch)
    assert "Passed" in page and "None: every expectation was met." in page
    assert "No reference data set" in page
