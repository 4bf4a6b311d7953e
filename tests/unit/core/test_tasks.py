"""The task of a target column (airflow_mlops.tasks).

Tasks are inferred from scikit-learn's bundled datasets and from hand-made columns.
"""

from __future__ import annotations

import decimal

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from airflow_mlops.exceptions import DataError
from airflow_mlops.tasks import (
    MAX_CLASSES,
    MAX_INFERRED_CLASSES,
    class_indices,
    class_labels,
    encode_target,
    infer_task,
    regression_target,
    resolve_task,
    sort_classes,
)


@pytest.mark.parametrize(
    ("loader", "task"),
    [
        (datasets.load_breast_cancer, "binary"),
        (datasets.load_wine, "multiclass"),
        (datasets.load_iris, "multiclass"),
        (datasets.load_digits, "multiclass"),
        (datasets.load_diabetes, "regression"),
    ],
)
def test_the_bundled_datasets_infer_their_task(loader, task) -> None:
    target = pd.Series(loader().target)

    assert infer_task(target) == task
    assert resolve_task(None, target) == task
    if task != "regression":
        # The classes are the distinct values, as label texts, sorted by value.
        assert class_labels(target) == [str(v) for v in sorted(np.unique(target))]
        # The same labels written as text (a CSV) or as floats are the same task and classes.
        assert infer_task(target.astype(str)) == task
        assert class_labels(target.astype(float)) == class_labels(target)


def test_one_and_the_text_one_and_one_point_zero_are_one_class() -> None:
    labels = pd.Series([1, "1", 1.0, " 1 ", 2, "2.0"], dtype=object)

    assert infer_task(labels) == "binary"
    assert class_labels(labels) == ["1", "2"]
    assert class_indices(labels, ["1", "2"]).tolist() == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize(
    "labels",
    [
        pd.Series([True, False, True]),
        pd.Series([True, False], dtype="boolean"),
        pd.Series(["True", "false", "TRUE"]),
        pd.Series([True, 0, "true"], dtype=object),
    ],
)
def test_booleans_are_a_binary_target_of_classes_0_and_1(labels) -> None:
    assert infer_task(labels) == "binary"
    assert class_labels(labels) == ["0", "1"]
    mask = encode_target("binary", labels, positive_label=True)
    assert mask.tolist() == [str(v).lower() in ("true", "1") for v in labels]


def test_text_labels_are_classes_sorted_as_text_and_numbers_by_value() -> None:
    animals = pd.Series(["cat", "dog", "bird", "dog"])
    assert infer_task(animals) == "multiclass"
    assert class_labels(animals) == ["bird", "cat", "dog"]
    assert class_indices(animals, ["bird", "cat", "dog"]).tolist() == [1, 2, 0, 2]

    assert sort_classes(["10", "2", "b", "a", "-1", "1.5"]) == ["-1", "1.5", "2", "10", "a", "b"]
    assert class_labels(pd.Series([10, 2, 1])) == ["1", "2", "10"]  # not "10" before "2"


def test_a_float_target_with_decimals_is_a_regression() -> None:
    values = np.random.default_rng(0).uniform(0, 10, 200).round(3)
    assert infer_task(pd.Series(values)) == "regression"
    assert regression_target(pd.Series(values)).tolist() == values.tolist()


def test_the_number_of_integer_values_decides_classes_or_regression() -> None:
    many = pd.Series(np.arange(MAX_INFERRED_CLASSES + 5).repeat(2))  # 25 integer values
    few = pd.Series(np.arange(MAX_INFERRED_CLASSES).repeat(2))

    assert infer_task(many) == "regression"
    assert infer_task(few) == "multiclass"
    # Declared, the same 25 integers are classes.
    assert resolve_task("multiclass", many) == "multiclass"
    assert len(class_labels(many)) == MAX_INFERRED_CLASSES + 5


def test_numbers_held_as_objects_are_inferred_as_numbers() -> None:
    # A parquet decimal column reads as Python Decimals (object dtype): a price is a regression
    # target, not a class per distinct price.
    prices = pd.Series([decimal.Decimal(f"{i}.{i % 7}5") for i in range(60)])
    assert infer_task(prices) == "regression"
    assert infer_task(pd.Series([0.5, 1.25, 2.0], dtype=object)) == "regression"
    assert infer_task(pd.Series([decimal.Decimal("1"), decimal.Decimal("2")])) == "binary"
    # Text stays text: "1" and 1 in one column are still one class.
    assert infer_task(pd.Series(["1", 1, 2], dtype=object)) == "binary"


def test_category_dtype_targets_count_the_present_values_only() -> None:
    labels = pd.Series(pd.Categorical(["lo", "hi", "lo", "mid"], categories=["lo", "mid", "hi", "unused"]))
    assert infer_task(labels) == "multiclass"
    assert class_labels(labels) == ["hi", "lo", "mid"]
    assert class_indices(labels, ["hi", "lo", "mid"]).tolist() == [1, 0, 1, 2]
    two = pd.Series(pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"]))
    assert infer_task(two) == "binary"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([3.0, 3.0, 3.0], "single value"),
        (["x", "x"], "single value"),
        ([1.0, np.nan, 2.0], "1 missing value(s) of 3"),
        (["a", None, "b", None], "2 missing value(s) of 4"),
        ([1.0, np.inf, 2.0], "infinite"),
        ([], "empty"),
    ],
)
def test_a_target_no_task_can_be_inferred_from_is_refused(values, words) -> None:
    series = pd.Series(values, dtype=float if values and isinstance(values[0], float) else object)
    with pytest.raises(DataError, match="target column 'label'") as info:
        infer_task(series, column="label")
    assert words in str(info.value)


def test_a_declared_task_is_checked_against_the_target() -> None:
    with pytest.raises(DataError, match="non-numeric"):
        resolve_task("regression", pd.Series(["a", "b", "c"]))
    with pytest.raises(DataError, match="is constant"):
        resolve_task("regression", pd.Series([2.5, 2.5]))
    with pytest.raises(DataError, match="boolean"):
        resolve_task("regression", pd.Series([True, False]))
    with pytest.raises(DataError, match="single class"):
        resolve_task("multiclass", pd.Series(["a", "a"]))
    with pytest.raises(DataError, match=f"more than the {MAX_CLASSES} classes"):
        resolve_task("multiclass", pd.Series(np.arange(MAX_CLASSES + 1)))
    with pytest.raises(DataError, match="unknown task 'ordinal'"):
        resolve_task("ordinal", pd.Series([1, 2]))
    # Numbers written as text are a regression target once declared.
    assert regression_target(pd.Series(["1.5", "2", "-3e2"])).tolist() == [1.5, 2.0, -300.0]


def test_an_unknown_class_at_encode_time_is_named() -> None:
    classes = ["bird", "cat", "dog"]
    with pytest.raises(DataError) as info:
        encode_target("multiclass", pd.Series(["cat", "fish", "dog"]), classes=classes, where="the holdout")
    message = str(info.value)
    assert "'fish'" in message and "the holdout" in message and "'bird'" in message
    with pytest.raises(DataError, match="need the model's classes"):
        encode_target("multiclass", pd.Series(["cat"]))


def test_encode_target_gives_what_the_metrics_read() -> None:
    binary = encode_target("binary", pd.Series(["yes", "no", "yes"]), positive_label="yes")
    assert binary.dtype == bool and binary.tolist() == [True, False, True]
    multi = encode_target("multiclass", pd.Series([2, "0", 1.0]), classes=["0", "1", "2"])
    assert multi.dtype == np.int64 and multi.tolist() == [2, 0, 1]
    values = encode_target("regression", pd.Series([1, 2.5]))
    assert values.dtype == np.float64 and values.tolist() == [1.0, 2.5]
    with pytest.raises(DataError, match="unknown task"):
        encode_target("ranking", pd.Series([1, 2]))
