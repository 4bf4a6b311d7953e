"""The drift settings and schema: every bad setting listed at once, the settings' JSON-able form,
the features compared (every schema difference listed) and the kind of each column."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift.detect import detect_drift
from airflow_mlops.drift.settings import (
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    column_kind,
    column_kinds,
    feature_names,
    raise_schema,
    validate_settings,
)
from airflow_mlops.exceptions import DataError, DriftInputError


def arguments(**changes: Any) -> dict[str, Any]:
    """detect_drift's arguments as validate_settings sees them (its ``locals()``): the defaults."""
    args = {
        name: None if p.default is inspect.Parameter.empty else p.default
        for name, p in inspect.signature(detect_drift).parameters.items()
    }
    unknown = set(changes) - set(args)
    assert not unknown, unknown
    return {**args, **changes}


# --- validate_settings -----------------------------------------------------------------------


def test_the_defaults_are_valid_and_their_form_is_json() -> None:
    out = validate_settings(arguments())
    assert "reference" not in out and "current" not in out and "reference_scores" not in out
    assert out["numeric_tests"] == list(NUMERIC_TESTS) and out["categorical_tests"] == list(CATEGORICAL_TESTS)
    assert out["prediction_drift"] is False and out["positive_label"] == 1
    assert json.loads(json.dumps(out)) == out


def test_the_form_is_plain_strings_and_floats() -> None:
    out = validate_settings(
        arguments(
            features=("a", 3),
            categorical=np.array(["a"]),
            expected_metrics={"roc_auc": 1, 2: np.float32(0.5)},
            max_metric_drop={"roc_auc": 0},
            classes=(0, 1),
            positive_label=np.int64(1),
            reference_scores=np.zeros(3),
        )
    )
    assert out["features"] == ["a", "3"] and out["categorical"] == ["a"] and out["classes"] == ["0", "1"]
    assert out["expected_metrics"] == {"roc_auc": 1.0, "2": 0.5}
    assert all(type(v) is float for v in out["expected_metrics"].values())
    assert out["max_metric_drop"] == {"roc_auc": 0.0}
    assert out["positive_label"] == "1"  # a numpy scalar is not JSON: its text
    assert out["prediction_drift"] is True
    assert json.loads(json.dumps(out)) == out


def test_columns_given_as_a_pandas_index_or_an_array_are_stored_as_a_list() -> None:
    """``features=reference.columns.drop("y")``: the report's settings must still be JSON."""
    ref = pd.DataFrame({"a": [1.0], "b": [2.0], "y": [0]})
    out = validate_settings(
        arguments(features=ref.columns.drop("y"), categorical=np.array(["b"]), classes=np.array([0, 1]))
    )
    assert out["features"] == ["a", "b"] and out["categorical"] == ["b"] and out["classes"] == ["0", "1"]
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("label", ["yes", 1, 1.0, True])
def test_a_plain_positive_label_is_kept_as_it_is(label: Any) -> None:
    out = validate_settings(arguments(positive_label=label))
    assert out["positive_label"] == label and type(out["positive_label"]) is type(label)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"p_value": 0.0}, "p_value=0.0 must be a number in (0, 1)"),
        ({"p_value": 1.0}, "p_value=1.0 must be a number in (0, 1)"),
        ({"p_value": math.nan}, "p_value=nan"),
        ({"p_value": True}, "p_value=True"),
        ({"p_value": "0.05"}, "p_value='0.05'"),
        ({"mmd_p_value": -0.1}, "mmd_p_value=-0.1 must be a number in (0, 1)"),
        ({"drift_share": 0}, "drift_share=0 must be a number in (0, 1]"),
        ({"max_null_rate_increase": -0.01}, "max_null_rate_increase=-0.01 must be a number in [0, 1]"),
        ({"max_out_of_range_share": 1.5}, "max_out_of_range_share=1.5 must be a number in [0, 1]"),
        ({"max_new_category_share": None}, "max_new_category_share=None"),
        ({"psi_threshold": 0}, "psi_threshold=0 must be a number in (0, inf)"),
        ({"wasserstein_threshold": math.inf}, "wasserstein_threshold=inf"),
        ({"jensen_shannon_threshold": -1}, "jensen_shannon_threshold=-1"),
        ({"threshold": 1.01}, "threshold=1.01 must be a number in [0, 1]"),
        ({"correction": "holm"}, "correction='holm' must be one of bonferroni, bh, none"),
        ({"numeric_tests": "ks"}, "numeric_tests='ks': each test must be one of ks, wasserstein, psi"),
        ({"numeric_tests": ["chi2"]}, "numeric_tests=['chi2']"),
        ({"categorical_tests": ["ks"]}, "categorical_tests=['ks']: each test must be one of chi2"),
        ({"mmd_permutations": 0}, "mmd_permutations=0 must be an integer >= 1"),
        ({"mmd_permutations": 100.0}, "mmd_permutations=100.0 must be an integer"),
        ({"mmd_max_rows": 1}, "mmd_max_rows=1 must be an integer >= 2"),
        ({"min_rows": True}, "min_rows=True must be an integer >= 1"),
        ({"device": 0}, "device=0 must be 'auto', 'cpu' or 'cuda[:N]'"),
        ({"task": "ranking"}, "task='ranking' must be one of binary, multiclass, regression"),
        ({"out_of_range": "ignore"}, "out_of_range='ignore' must be one of alarm, drift, both"),
        ({"classes": "ab"}, "classes='ab' must list two or more distinct class labels"),
        ({"classes": ["a"]}, "classes=['a'] must list two or more"),
        ({"classes": [1, "1"]}, "must list two or more distinct class labels"),  # one label as text
    ],
)
def test_a_bad_setting_says_what_and_the_allowed_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DriftInputError) as err:
        validate_settings(arguments(**changes))
    assert message in str(err.value)
    assert isinstance(err.value, DataError)
    assert str(err.value).startswith("invalid drift settings:")


@pytest.mark.parametrize(
    "changes",
    [
        {"drift_share": 1.0},
        {"max_null_rate_increase": 0, "max_out_of_range_share": 1, "max_new_category_share": 0.0},
        {"threshold": 0.0},
        {"threshold": 1},
        {"psi_threshold": 1e6},
        {"numeric_tests": [], "categorical_tests": ("psi",)},
        {"mmd_max_rows": 2, "min_rows": 1, "mmd_permutations": 1, "multivariate": False},
        {"classes": ["a", "b", "c"]},
    ],
)
def test_the_edges_of_the_allowed_ranges_are_allowed(changes: dict[str, Any]) -> None:
    validate_settings(arguments(**changes))


def test_every_bad_setting_is_listed_at_once() -> None:
    with pytest.raises(DriftInputError) as err:
        validate_settings(arguments(p_value=2, correction="holm", min_rows=0, task="ranking"))
    lines = str(err.value).splitlines()
    assert len(lines) == 5  # the heading and one line per problem
    assert [line.split("=")[0].strip() for line in lines[1:]] == ["p_value", "correction", "min_rows", "task"]


@pytest.mark.parametrize(("permutations", "ok"), [(19, False), (20, True)])
def test_the_permutations_must_be_able_to_reach_the_mmd_level(permutations: int, ok: bool) -> None:
    """The smallest permutation p-value is 1 / (1 + permutations): 1/20 is not below 0.05."""
    args = arguments(mmd_permutations=permutations, mmd_p_value=0.05)
    if ok:
        validate_settings(args)
    else:
        with pytest.raises(DriftInputError, match=r"smallest possible 0\.050.*use at least 20 permutations"):
            validate_settings(args)
    validate_settings({**args, "multivariate": False})  # without MMD the count does not matter


def test_the_permutation_rule_waits_for_the_other_settings() -> None:
    """With another problem the permutations are not compared (mmd_p_value may be the bad one)."""
    with pytest.raises(DriftInputError) as err:
        validate_settings(arguments(mmd_p_value=2.0, mmd_permutations=1))
    assert "mmd_p_value=2.0" in str(err.value) and "permutations can never" not in str(err.value)


# --- feature_names ---------------------------------------------------------------------------


def frame(*columns: Any) -> pd.DataFrame:
    return pd.DataFrame({c: [1.0, 2.0] for c in columns})


def test_the_default_features_are_the_references_columns_but_the_target() -> None:
    names, problems = feature_names(frame("a", "y", "b"), frame("b", "a", "y"), None, "y")
    assert names == ["a", "b"] and problems == []
    # an unlabelled live window: the target may be absent from it
    assert feature_names(frame("a", "y"), frame("a"), None, "y") == (["a"], [])


def test_every_schema_difference_is_listed() -> None:
    names, problems = feature_names(frame("a", "b", "c"), frame("a", "d", "e"), None, None)
    assert names == ["a", "b", "c"]
    assert problems == [
        "columns missing from the current window: b, c",
        "columns in the current window that the reference does not have: d, e",
    ]


def test_explicit_features_ignore_other_columns_but_not_missing_ones() -> None:
    assert feature_names(frame("a", "b"), frame("a", "z"), ["a"], None) == (["a"], [])
    names, problems = feature_names(frame("a", "b", "y"), frame("a", "y"), ["a", "q", "b", "y"], "y")
    assert names == ["a", "q", "b", "y"]
    assert problems == [
        "the target 'y' is listed in features; a label is never a feature",
        "features missing from the reference: q",
        "columns missing from the current window: q, b",
    ]


def test_features_as_a_string_is_an_error_not_its_letters() -> None:
    with pytest.raises(DriftInputError, match="features must be a list of column names, got the string 'ab'"):
        feature_names(frame("a", "b"), frame("a", "b"), "ab", None)


def test_a_reference_of_the_target_only_has_nothing_to_compare() -> None:
    assert feature_names(frame("y"), frame("y"), None, "y") == ([], [
        "no features to compare (the reference has no columns besides the target)"
    ])  # fmt: skip
    assert feature_names(frame("y"), frame("y"), [], "y")[1] == [
        "no features to compare (the reference has no columns besides the target)"
    ]


def test_column_names_are_compared_as_text() -> None:
    ref = pd.DataFrame({0: [1.0], 1: [2.0]})
    cur = pd.DataFrame({"0": [1.0], 1: [2.0]})
    assert feature_names(ref, cur, None, None) == (["0", "1"], [])


# --- raise_schema ----------------------------------------------------------------------------


def test_raise_schema_is_silent_without_problems_and_lists_them_otherwise() -> None:
    raise_schema([])
    with pytest.raises(DriftInputError) as err:
        raise_schema(["first problem", "second problem"])
    text = str(err.value)
    assert text.splitlines()[:3] == [
        "the current window's schema differs from the reference:",
        "  - first problem",
        "  - second problem",
    ]
    assert "pass features=[...]" in text.splitlines()[-1]


# --- column_kind / column_kinds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pd.Series([1.5, np.nan]), "numeric"),
        (pd.Series([1, 2], dtype="int64"), "numeric"),
        (pd.Series([1, None], dtype="Int64"), "numeric"),
        (pd.Series([1, 2], dtype="uint8"), "numeric"),
        (pd.Series([1.0, 2.0], dtype="float32"), "numeric"),
        (pd.Series([True, False]), "categorical"),
        (pd.Series([True, None], dtype="boolean"), "categorical"),
        (pd.Series(["a", "b"]), "categorical"),
        (pd.Series(["a", None], dtype="string"), "categorical"),
        (pd.Series([1, 2]).astype("category"), "categorical"),  # numbers as categories
        (pd.Series([1, "a"], dtype=object), "categorical"),
        (pd.Series([1 + 2j]), "unsupported (complex128)"),
        (pd.Series(pd.to_datetime(["2025-01-01"])), "unsupported (datetime64[ns])"),
    ],
)
def test_column_kind(series: pd.Series, kind: str) -> None:
    assert column_kind(series) == kind


def test_column_kinds_by_dtype_and_forced_categories() -> None:
    ref = pd.DataFrame({"n": [1.0, 2.0], "code": [3, 4], "city": ["a", "b"]})
    kinds, problems = column_kinds(ref, ref.copy(), ["n", "code", "city"], ["code"])
    assert kinds == {"n": "numeric", "code": "categorical", "city": "categorical"} and problems == []


def test_column_kinds_lists_every_problem() -> None:
    ref = pd.DataFrame({"n": [1.0, 2.0], "when": pd.to_datetime(["2025-01-01"] * 2), "city": ["a", "b"]})
    cur = pd.DataFrame({"n": ["1", "2"], "when": pd.to_datetime(["2025-01-01"] * 2), "city": ["a", "b"]})
    kinds, problems = column_kinds(ref, cur, ["n", "when", "city"], ["city", "zip", "age"])
    assert kinds == {"city": "categorical"}
    assert problems[0] == "categorical names columns that are not features: age, zip"
    assert problems[1].startswith("column 'n' changed type: float64 (numeric) in the reference, ")
    assert problems[1].endswith("(categorical) in the current window")
    assert problems[2].startswith("column 'when' has dtype datetime64[ns], which drift cannot test")
    assert len(problems) == 3


def test_an_all_null_live_column_keeps_the_references_kind() -> None:
    """A column with no live value reads as object/float whatever it was: not a type change."""
    ref = pd.DataFrame({"n": [1.0, 2.0], "city": ["a", "b"]})
    cur = pd.DataFrame({"n": [None, None], "city": [np.nan, np.nan]}, dtype=object)
    cur["city"] = cur["city"].astype(float)
    kinds, problems = column_kinds(ref, cur, ["n", "city"], None)
    assert kinds == {"n": "numeric", "city": "categorical"} and problems == []


def test_missing_columns_are_left_to_feature_names() -> None:
    kinds, problems = column_kinds(frame("a", "b"), frame("a"), ["a", "b"], None)
    assert kinds == {"a": "numeric"} and problems == []
