"""The drift univariate tests: the numeric matrix, the numeric and categorical tests per feature
(against scipy), the histograms the report draws, and a feature's verdict (significant and large)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from airflow_mlops.drift.report import TestResult
from airflow_mlops.drift.univariate import (
    PSI_BINS,
    feature_verdict,
    judge_test,
    numeric_histogram,
    numeric_matrix,
    run_categorical_tests,
    run_numeric_tests,
)
from airflow_mlops.exceptions import DriftInputError

THRESHOLDS = {"wasserstein": 0.1, "psi": 0.2, "jensen_shannon": 0.1}

# --- numeric_matrix --------------------------------------------------------------------------


def test_numeric_matrix_is_one_contiguous_float_row_per_feature() -> None:
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, 3.0],
            "i": [1, 2, 3],
            "n": pd.array([4, None, 6], dtype="Int64"),
            "u": np.array([7, 8, 9], dtype=np.uint8),
        }
    )
    out = numeric_matrix(frame, ["n", "f", "u"], "reference")
    assert out.shape == (3, 3) and out.dtype == np.float64 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[4, np.nan, 6], [1.5, np.nan, 3], [7, 8, 9]])
    assert numeric_matrix(frame, [], "reference").shape == (0, 3)


def test_numeric_matrix_never_lets_the_frame_be_written() -> None:
    """An all-float frame held as one block is read through a read-only view (no copy of its
    values); any other frame is copied. Either way the caller's frame cannot change."""
    frame = pd.DataFrame({"e": [0.5, 0.25], "f": [1.0, 2.0], "g": [3.0, np.nan]})
    view = numeric_matrix(frame, ["f", "g"], "current")
    assert np.shares_memory(view, frame["f"].to_numpy()) and view.flags.c_contiguous
    np.testing.assert_array_equal(view, [[1.0, 2.0], [3.0, np.nan]])
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 99.0
    assert frame["f"].tolist() == [1.0, 2.0]
    for names in (["g", "f"], ["e", "g"]):  # not the block's order, or not adjacent: a copy
        out = numeric_matrix(frame, names, "current")
        assert not np.shares_memory(out, frame["f"].to_numpy()) and out.flags.writeable
    mixed = pd.DataFrame({"f": [1.0, 2.0], "n": [1, 2]})  # another dtype: a copy
    out = numeric_matrix(mixed, ["f"], "current")
    out[0, 0] = 99.0
    assert mixed["f"].tolist() == [1.0, 2.0]


def test_a_frame_laid_out_row_by_row_is_transposed_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_mlops.drift import univariate

    monkeypatch.setattr(univariate, "_TRANSPOSE_ROWS", 3)  # several blocks and a short last one
    rows = np.arange(40.0).reshape(10, 4)
    rows[4, 2] = np.nan
    frame = pd.DataFrame(rows, columns=["a", "b", "c", "d"])  # one block, row by row
    out = numeric_matrix(frame, ["d", "b", "c"], "reference")
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, rows[:, [3, 1, 2]].T)
    out[0, 0] = -1.0
    assert frame["d"].iloc[0] == 3.0
    # several blocks (a column added later): column by column, the same values
    frame["e"] = 1.0
    np.testing.assert_array_equal(numeric_matrix(frame, ["d", "e"], "reference"), [rows[:, 3], np.ones(10)])


def test_infinite_values_are_found_in_a_view_and_beside_missing_values() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, np.inf], "b": [np.nan, 0.0, 1.0], "c": [-np.inf, 0.0, 0.0]})
    with pytest.raises(DriftInputError, match=r"column\(s\) a, c;"):
        numeric_matrix(frame, ["a", "b", "c"], "reference")
    assert numeric_matrix(frame, ["b"], "reference").shape == (1, 3)  # NaN alone is missing, fine


def test_infinite_values_are_an_error_naming_the_window_and_every_column() -> None:
    frame = pd.DataFrame({"a": [1.0, np.inf], "b": [0.0, 1.0], "c": [-np.inf, 2.0]})
    with pytest.raises(DriftInputError) as err:
        numeric_matrix(frame, ["a", "b", "c"], "current")
    assert str(err.value).startswith("infinite values in the current window's column(s) a, c;")
    assert "replace them with NaN" in str(err.value)


# --- numeric_histogram -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "ref", "cur", "expected"),
    [
        # distinct edges: counts become proportions of each window
        ([0, 1, 2, 3], [1, 2, 1], [0, 0, 4], ([0, 1, 2, 3], [0.25, 0.5, 0.25], [0, 0, 1])),
        # repeated deciles: the zero-width bins join the bin before them
        ([0, 1, 1, 1, 2], [1, 2, 3, 4], [4, 3, 2, 1], ([0, 1, 2], [0.6, 0.4], [0.9, 0.1])),
        # a zero-width first bin (the minimum is a decile) joins the second
        ([0, 0, 1, 2], [2, 3, 7], [1, 1, 8], ([0, 1, 2], [5 / 12, 7 / 12], [0.2, 0.8])),
        ([0, 0, 1, 1, 2], [1, 2, 3, 4], [0, 0, 0, 5], ([0, 1, 2], [0.6, 0.4], [0, 1])),
        # a constant column: one bin of zero width
        ([3, 3, 3], [5, 0], [2, 0], ([3, 3], [1.0], [1.0])),
        # empty windows stay zero instead of dividing by zero
        ([0, 1, 2], [0, 0], [0, 0], ([0, 1, 2], [0, 0], [0, 0])),
    ],
    ids=["distinct", "repeated", "zero-width-first", "zero-width-first-and-repeated", "constant", "empty"],
)
def test_numeric_histogram(edges: list[float], ref: list[float], cur: list[float], expected: tuple) -> None:
    out = numeric_histogram(np.array(edges, dtype=float), np.array(ref, float), np.array(cur, float))
    edges_out, ref_out, cur_out = expected
    assert out["edges"] == edges_out
    assert out["reference"] == pytest.approx(ref_out) and out["current"] == pytest.approx(cur_out)
    assert len(out["edges"]) == len(out["reference"]) + 1 == len(out["current"]) + 1
    assert all(type(v) is float for v in out["edges"] + out["reference"] + out["current"])


# --- run_numeric_tests -----------------------------------------------------------------------


def test_numeric_tests_equal_scipy_and_skip_a_column_without_live_values() -> None:
    rng = np.random.default_rng(1)
    ref = np.vstack([rng.normal(size=400), rng.exponential(2, 400), rng.normal(size=400)])
    cur = np.vstack([rng.normal(0.4, 1, 300), rng.exponential(2, 300), np.full(300, np.nan)])
    raw: dict[str, dict[str, tuple[float, float | None]]] = {}
    histograms: dict[str, dict[str, Any]] = {}
    result = run_numeric_tests(ref, cur, ["a", "b", "gone"], ["psi", "ks", "wasserstein"], raw, histograms)
    assert list(raw) == list(histograms) == ["a", "b"]  # "gone" has no live value
    assert result.n_current.tolist() == [300, 300, 0]
    for i, name in enumerate(["a", "b"]):
        assert list(raw[name]) == ["psi", "ks", "wasserstein"]  # the order asked for
        ks = scipy_stats.ks_2samp(ref[i], cur[i], method="asymp")
        assert raw[name]["ks"][0] == pytest.approx(ks.statistic, abs=1e-12)
        assert raw[name]["ks"][1] == pytest.approx(ks.pvalue, abs=1e-6)
        w, p = raw[name]["wasserstein"]
        assert p is None and w == pytest.approx(
            scipy_stats.wasserstein_distance(ref[i], cur[i]) / ref[i].std()
        )
        assert raw[name]["psi"][0] > 0 and raw[name]["psi"][1] is None
        assert len(histograms[name]["reference"]) <= PSI_BINS
        assert sum(histograms[name]["reference"]) == pytest.approx(1.0)
    assert raw["a"]["ks"][1] < 1e-4 < raw["b"]["ks"][1]  # the shifted feature, not the other one


def test_a_constant_reference_scales_the_wasserstein_distance_by_one() -> None:
    ref, cur = np.full((1, 50), 2.0), np.full((1, 40), 2.5)
    raw: dict[str, dict[str, tuple[float, float | None]]] = {}
    run_numeric_tests(ref, cur, ["x"], ["wasserstein"], raw, {})
    assert raw["x"]["wasserstein"] == (pytest.approx(0.5), None)


# --- run_categorical_tests -------------------------------------------------------------------


def categorical_run(
    ref: pd.DataFrame, cur: pd.DataFrame, max_new: float = 0.05, tests: tuple[str, ...] = ("chi2", "psi")
) -> tuple[list, dict, dict]:
    raw: dict[str, dict[str, tuple[float, float | None]]] = {}
    histograms: dict[str, dict[str, Any]] = {}
    checks = run_categorical_tests(ref, cur, list(ref.columns), tests, raw, histograms, max_new)
    return checks, raw, histograms


def test_categorical_tests_new_categories_and_histogram() -> None:
    ref = pd.DataFrame({"city": ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + [None]})
    cur = pd.DataFrame({"city": ["a"] * 2 + ["b"] * 2 + ["d"] * 4 + ["e"] * 2 + [None] * 3})
    (check,), raw, histograms = categorical_run(ref, cur, max_new=0.5, tests=("jensen_shannon", "chi2"))
    # the reference's categories by frequency, then the new ones in the live window's order
    hist = histograms["city"]
    assert hist["categories"] == ["a", "b", "c", "d", "e"]
    assert hist["reference"] == pytest.approx([0.5, 0.3, 0.2, 0, 0])  # nulls are not a category
    assert hist["current"] == pytest.approx([0.2, 0.2, 0, 0.4, 0.2])
    # 10 rows a window: every level's expected count is below 5, so the test is the most common
    # level against the rest, a small 2 x 2 table: Fisher's exact p-value
    table = np.array([[5, 5], [2, 8]])
    chi2, _, _, _ = scipy_stats.chi2_contingency(table)
    p = scipy_stats.fisher_exact(table).pvalue
    assert list(raw["city"]) == ["jensen_shannon", "chi2"]
    assert raw["city"]["chi2"] == (pytest.approx(chi2), pytest.approx(p, abs=1e-12))
    assert raw["city"]["jensen_shannon"][1] is None
    assert (check.check, check.column, check.reference, check.threshold) == (
        "new_categories",
        "city",
        3.0,
        0.5,
    )
    assert check.current == pytest.approx(0.6) and not check.passed
    assert (
        check.message == "60.0% of 'city' in categories the reference never had ('d', 'e') (more than 50.0%)"
    )


def test_no_new_category_passes_and_the_share_may_reach_the_limit() -> None:
    ref = pd.DataFrame({"c": ["x", "y"] * 10})
    (same,), _, _ = categorical_run(ref, ref.copy())
    assert (
        same.passed
        and same.current == 0.0
        and same.message == "0.0% of 'c' in categories the reference never had"
    )
    cur = pd.DataFrame({"c": ["x"] * 19 + ["z"]})  # exactly 5 % new
    (edge,), _, _ = categorical_run(ref, cur, max_new=0.05)
    assert edge.passed and edge.current == pytest.approx(0.05)


def test_many_new_categories_are_shown_ten_at_most() -> None:
    ref = pd.DataFrame({"c": ["x"] * 5})
    cur = pd.DataFrame({"c": [f"n{i:02d}" for i in range(12)]})
    (check,), _, histograms = categorical_run(ref, cur)
    shown = check.message.split("never had (")[1]
    assert shown.count("'n") == 10 and " ...)" in shown
    assert len(histograms["c"]["categories"]) == 13


def test_numpy_category_values_become_plain_labels() -> None:
    ref = pd.DataFrame({"flag": np.array([True, False, True]), "code": np.array([1, 2, 2], dtype=np.int32)})
    _, _, histograms = categorical_run(ref, ref.copy())
    assert histograms["flag"]["categories"] == [True, False]
    assert type(histograms["flag"]["categories"][0]) is bool
    assert histograms["code"]["categories"] == [2, 1] and type(histograms["code"]["categories"][0]) is int


def test_a_categorical_column_without_live_values_is_checked_but_not_tested() -> None:
    ref = pd.DataFrame({"c": ["x", "y"]})
    cur = pd.DataFrame({"c": [None, None]}, dtype=object)
    (check,), raw, histograms = categorical_run(ref, cur)
    assert check.passed and check.current == 0.0
    assert raw == {} and histograms == {}


# --- judge_test / feature_verdict ------------------------------------------------------------


@pytest.mark.parametrize(("adjusted", "drifted"), [(0.049, True), (0.05, False), (0.2, False)])
def test_a_p_value_test_drifts_on_its_adjusted_p_value_below_alpha(adjusted: float, drifted: bool) -> None:
    result = judge_test("ks", 0.3, 0.001, adjusted, 0.05, THRESHOLDS)
    assert result == TestResult("ks", 0.3, 0.001, adjusted, 0.05, drifted)


@pytest.mark.parametrize(("stat", "drifted"), [(0.19, False), (0.2, True), (0.5, True)])
def test_a_distance_drifts_when_it_reaches_its_threshold(stat: float, drifted: bool) -> None:
    result = judge_test("psi", stat, None, None, 0.05, THRESHOLDS)
    assert result == TestResult("psi", stat, None, None, 0.2, drifted)
    assert judge_test("jensen_shannon", stat, None, None, 0.05, THRESHOLDS).threshold == 0.1


def test_a_distance_without_a_threshold_is_an_error() -> None:
    with pytest.raises(KeyError):
        judge_test("psi", 0.3, None, None, 0.05, {"wasserstein": 0.1})


def p_test(drifted: bool) -> TestResult:
    return TestResult("ks", 0.1, 0.01, 0.01 if drifted else 0.5, 0.05, drifted)


def d_test(drifted: bool, name: str = "psi") -> TestResult:
    return TestResult(name, 0.3 if drifted else 0.01, None, None, 0.2, drifted)


@pytest.mark.parametrize(
    ("tests", "drifted"),
    [
        ((), False),  # nothing tested: no verdict of drift
        ((p_test(True),), True),  # p-value tests only: significance alone
        ((p_test(False),), False),
        ((d_test(True),), True),  # distances only: any distance
        ((d_test(False), d_test(True, "wasserstein")), True),
        ((d_test(False), d_test(False, "wasserstein")), False),
        ((p_test(True), d_test(False)), False),  # significant but small
        ((p_test(False), d_test(True)), False),  # large but not significant
        ((p_test(True), d_test(False), d_test(True, "wasserstein")), True),  # significant and large
    ],
)
def test_a_feature_drifts_when_its_change_is_significant_and_large(
    tests: tuple[TestResult, ...], drifted: bool
) -> None:
    assert feature_verdict(tests) is drifted
    assert feature_verdict(tests, "numeric") is drifted


def chi2_test(drifted: bool) -> TestResult:
    return TestResult("chi2", 68.0, 1e-16 if drifted else 0.3, 1e-15 if drifted else 1.0, 0.05, drifted)


@pytest.mark.parametrize(
    ("tests", "drifted"),
    [
        ((), False),
        ((chi2_test(True), d_test(False, "jensen_shannon"), d_test(False)), True),  # significant, small
        ((chi2_test(False), d_test(True, "jensen_shannon"), d_test(True)), False),  # large, not significant
        ((chi2_test(True),), True),
        ((chi2_test(False),), False),
        ((d_test(True, "jensen_shannon"),), True),  # distances only: any distance
        ((d_test(False, "jensen_shannon"), d_test(False)), False),
    ],
)
def test_a_categorical_feature_drifts_when_its_change_is_significant(
    tests: tuple[TestResult, ...], drifted: bool
) -> None:
    assert feature_verdict(tests, "categorical") is drifted


def test_a_rare_level_whose_share_doubles_is_flagged_by_chi2_not_by_the_distances() -> None:
    """2 % -> 4 % at 10,000 rows a window: the Jensen-Shannon distance (0.042) and PSI (0.014) stay
    far under their thresholds; chi-squared (p 1.6e-16) flags it, as scipy's does."""
    ref = pd.DataFrame({"pred": ["pos"] * 200 + ["neg"] * 9800})
    cur = pd.DataFrame({"pred": ["pos"] * 400 + ["neg"] * 9600})
    details: dict[tuple[str, str], str] = {}
    raw: dict[str, dict[str, tuple[float, float | None]]] = {}
    run_categorical_tests(ref, cur, ["pred"], ("chi2", "jensen_shannon", "psi"), raw, {}, 0.05, details)
    chi2, p, _, _ = scipy_stats.chi2_contingency([[200, 9800], [400, 9600]])
    assert raw["pred"]["chi2"] == (pytest.approx(chi2), pytest.approx(p, rel=1e-9))
    assert details == {("pred", "chi2"): "2 levels, dof 1"}
    alpha = 0.05 / 50  # Bonferroni over 50 features
    tests = tuple(
        judge_test(t, stat, p_, p_, alpha, THRESHOLDS, details.get(("pred", t), ""))
        for t, (stat, p_) in raw["pred"].items()
    )
    assert [t.drifted for t in tests] == [True, False, False]
    assert tests[0].detail == "2 levels, dof 1" and tests[1].detail == ""
    assert feature_verdict(tests, "categorical") and not feature_verdict(tests, "numeric")
