"""The drift data-quality checks: row count, null rates and value types, and the share of live
values beyond the reference's range with the chance of that many for a window like the reference."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift.quality import (
    beyond_range_p_value,
    null_and_type_checks,
    range_checks,
    range_shares,
    row_count_check,
)
from airflow_mlops.drift.report import OutOfRange
from airflow_mlops.drift.statistics import numeric_statistics

# --- row_count_check -------------------------------------------------------------------------


@pytest.mark.parametrize(("n_cur", "passed"), [(99, False), (100, True), (101, True)])
def test_row_count_check_needs_at_least_min_rows(n_cur: int, passed: bool) -> None:
    check = row_count_check(1000, n_cur, 100)
    assert check.passed is passed and check.alarm is not passed
    assert (check.check, check.column, check.reference, check.current, check.threshold) == (
        "row_count",
        None,
        1000.0,
        float(n_cur),
        100.0,
    )
    assert check.message == f"{n_cur} rows in the current window (at least 100 needed; reference has 1000)"


# --- null_and_type_checks --------------------------------------------------------------------


def test_null_rate_and_type_checks_per_feature_in_order() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "c": ["a", "b", "a", None]})
    cur = pd.DataFrame({"x": [1.0, np.nan, np.nan, 4.0], "c": ["a", None, None, None]})
    checks = null_and_type_checks(ref, cur, ["x", "c"], {"x": "numeric", "c": "categorical"}, 0.3, {})
    assert [(q.check, q.column) for q in checks] == [
        ("null_rate", "x"),
        ("type", "x"),
        ("null_rate", "c"),
        ("type", "c"),
    ]
    x_null, x_type, c_null, c_type = checks
    assert (x_null.reference, x_null.current, x_null.threshold) == (0.25, 0.5, 0.3)
    assert x_null.passed and x_null.message == "null rate of 'x' rose 25.0% -> 50.0%"
    assert (c_null.reference, c_null.current) == (0.25, 0.75) and not c_null.passed
    assert c_null.message.endswith("(+50.0 points > 30.0 allowed)")
    assert x_type.passed and x_type.reference == x_type.current == "float64" and x_type.threshold is None
    assert c_type.passed and c_type.current == "string"


def test_a_null_rate_that_falls_or_rises_by_exactly_the_allowance_passes() -> None:
    ref = pd.DataFrame({"c": ["a", None, None, None, "b", "a", "a", "b", "a", "b"]})  # 30 % null
    cur = pd.DataFrame({"c": ["a", None, None, None, None, "a", "a", "b", "a", "b"]})  # 40 % null
    (null, _) = null_and_type_checks(ref, cur, ["c"], {"c": "categorical"}, 0.1, {})
    assert null.passed and null.current - null.reference == pytest.approx(0.1)
    (fewer, _) = null_and_type_checks(cur, ref, ["c"], {"c": "categorical"}, 0.0, {})
    assert fewer.passed and fewer.message == "null rate of 'c' is 40.0% -> 30.0%"


def test_known_null_rates_are_used_instead_of_counting_again() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    (null, _) = null_and_type_checks(frame, frame, ["x"], {"x": "numeric"}, 0.05, {"x": (0.0, 0.5)})
    assert (null.reference, null.current) == (0.0, 0.5) and not null.passed


def test_categorical_values_of_another_type_fail_the_type_check() -> None:
    ref = pd.DataFrame({"c": ["a", "b"]}, dtype=object)
    cur = pd.DataFrame({"c": [1, 2]}, dtype=object)
    (_, check) = null_and_type_checks(ref, cur, ["c"], {"c": "categorical"}, 0.05, {})
    assert not check.passed and (check.reference, check.current) == ("string", "integer")
    assert check.message == "values of 'c' are integer, the reference's are string"


def test_an_all_null_live_column_has_no_type_to_compare() -> None:
    ref = pd.DataFrame({"c": ["a", "b"]})
    cur = pd.DataFrame({"c": [None, None]}, dtype=object)
    null, check = null_and_type_checks(ref, cur, ["c"], {"c": "categorical"}, 0.05, {})
    assert check.passed and check.current == "empty"
    assert not null.passed and null.current == 1.0  # the nulls are reported, once


# --- beyond_range_p_value --------------------------------------------------------------------


def enumerated(beyond: int, n: int, m: int) -> Fraction:
    """P(K >= beyond) by listing every place of the reference's values among the sorted n + m."""
    hits = total = 0
    for ref in itertools.combinations(range(n + m), n):
        outside = ref[0] + (n + m - 1 - ref[-1])  # live values before the first and after the last
        hits += outside >= beyond
        total += 1
    return Fraction(hits, total)


@pytest.mark.parametrize(("n", "m"), [(2, 1), (2, 5), (3, 3), (5, 4), (4, 8)])
def test_the_p_value_is_the_exact_chance_for_exchangeable_values(n: int, m: int) -> None:
    for beyond in range(1, m + 1):
        assert beyond_range_p_value(beyond, n, m) == pytest.approx(float(enumerated(beyond, n, m)), abs=1e-12)


@pytest.mark.parametrize(
    ("beyond", "n", "m", "expected"),
    [
        (0, 50, 20, 1.0),  # nothing beyond the range: nothing to explain
        (-1, 50, 20, 1.0),
        (3, 1, 20, 1.0),  # one reference value has no range
        (3, 0, 20, 1.0),
        (21, 50, 20, 0.0),  # more beyond than there are values
    ],
)
def test_the_p_value_at_its_edges(beyond: int, n: int, m: int, expected: float) -> None:
    assert beyond_range_p_value(beyond, n, m) == expected


def test_the_p_value_falls_with_the_count_and_rises_with_a_smaller_reference() -> None:
    values = [beyond_range_p_value(k, 40, 30) for k in range(1, 31)]
    assert all(a >= b >= 0 for a, b in itertools.pairwise(values)) and values[0] <= 1
    # strictly while it is above rounding (1 - the sum of the smaller counts' chances: ~1e-16 at best)
    assert all(a > b for a, b in itertools.pairwise(values) if b > 1e-10)
    # the same count beyond the range is more likely when the reference is small
    assert (
        beyond_range_p_value(3, 10, 30) > beyond_range_p_value(3, 100, 30) > beyond_range_p_value(3, 1000, 30)
    )


def test_the_p_value_is_finite_for_large_windows() -> None:
    p = beyond_range_p_value(40, 200_000, 100_000)
    assert math.isfinite(p) and 0.0 <= p < 1e-6
    assert beyond_range_p_value(1, 200_000, 100_000) == pytest.approx(
        1 - (200_000 * 199_999) / (300_000 * 299_999)
    )


@pytest.mark.parametrize(("n", "m"), [(30, 20), (71, 36), (200, 100)])
def test_the_p_value_bounds_the_chance_for_a_window_like_the_reference(n: int, m: int) -> None:
    rng = np.random.default_rng(n * m)
    counts = []
    for _ in range(4000):
        ref, cur = rng.standard_exponential(n), rng.standard_exponential(m)  # skewed, like amounts
        counts.append(int(np.count_nonzero((cur < ref.min()) | (cur > ref.max()))))
    counts_arr = np.asarray(counts)
    for k in range(1, 8):
        observed = float(np.mean(counts_arr >= k))
        assert (
            observed <= beyond_range_p_value(k, n, m) + 3 * np.sqrt(observed * (1 - observed) / 4000) + 1e-3
        )
    # and it is not vacuous: half the window beyond the range is improbable
    assert beyond_range_p_value(m // 2, n, m) < 0.01


# --- range_shares ----------------------------------------------------------------------------


def test_range_shares_count_the_non_null_live_values_beyond_the_reference() -> None:
    ref = np.array([[0.0, 1.0, 2.0, 3.0, np.nan], [5.0, 5.0, 6.0, 7.0, 8.0]])
    cur = np.array([[-1.0, 0.0, 3.0, 4.0, np.nan], [5.0, 6.0, 7.0, 8.0, 8.0]])
    stats = numeric_statistics(ref, cur)
    shares = range_shares(["x", "y"], stats, 0.05, 0.01)
    x, y = shares["x"], shares["y"]
    assert x.share == 0.5 and (x.low, x.high) == (0.0, 3.0)  # 2 of its 4 non-null values
    assert (x.threshold, x.alpha) == (0.05, 0.01) and x.p_value == beyond_range_p_value(2, 4, 4)
    assert y.share == 0.0 and (y.low, y.high) == (5.0, 8.0) and y.p_value == 1.0
    assert list(shares) == ["x", "y"]


def test_range_shares_of_an_all_null_live_column_is_zero() -> None:
    stats = SimpleNamespace(
        n_current=[0], n_reference=[10], out_of_range=[0], reference_min=[1.0], reference_max=[2.0]
    )
    (share,) = range_shares(["x"], stats, 0.05, 0.05).values()
    assert share.share == 0.0 and share.p_value == 1.0 and not share.exceeded


# --- range_checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "consequence"),
    [
        ("drift", "counted as drift of the feature, not an alarm"),
        ("alarm", "a data-quality alarm"),
        ("both", "drift of the feature and a data-quality alarm"),
    ],
)
def test_a_share_beyond_the_range_fails_with_its_consequence(action: str, consequence: str) -> None:
    ranges = {"x": OutOfRange(share=0.25, low=1.0, high=2.5, threshold=0.05, p_value=1e-4, alpha=0.01)}
    (check,) = range_checks(ranges, action)
    assert not check.passed and check.action == action and check.alarm is (action != "drift")
    assert (check.check, check.column, check.reference, check.current, check.threshold) == (
        "out_of_range",
        "x",
        "[1, 2.5]",
        0.25,
        0.05,
    )
    assert check.message == (
        f"25 % of 'x' beyond the reference's range [1, 2.5] (more than 5 %, p=0.0001 < 0.01: {consequence})"
    )


def test_a_share_above_the_limit_but_likely_for_the_reference_passes_and_says_why() -> None:
    ranges = {
        "likely": OutOfRange(share=0.25, low=0.0, high=1.0, threshold=0.05, p_value=0.3, alpha=0.01),
        "within": OutOfRange(share=0.05, low=0.0, high=1.0, threshold=0.05, p_value=1e-9, alpha=0.01),
    }
    likely, within = range_checks(ranges, "alarm")
    assert likely.passed and not likely.alarm
    assert likely.message.endswith("(p=0.3: as many beyond it as a sample like the reference puts there)")
    assert within.passed and within.message == "5 % of 'within' beyond the reference's range [0, 1]"


def test_a_reference_without_values_shows_no_range() -> None:
    ranges = {"x": OutOfRange(share=0.0, low=math.nan, high=math.nan, threshold=0.05, p_value=1.0)}
    (check,) = range_checks(ranges, "drift")
    assert check.passed and check.reference is None
