"""The training rows: the target encoded for its task, the validation split (stratified for a
classification, at random for a regression) and the rows the training metric is measured on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError
from airflow_mlops.training import rows
from airflow_mlops.training.rows import (
    METRIC_SAMPLE_ROWS,
    Outcome,
    Target,
    binary_target,
    encode_target,
    metric_sample,
    split_rows,
    stratified_split,
)


def cfg(task: str | None = None, positive_label: object = 1) -> dict:
    return {"task": task, "positive_label": positive_label}


# --- encode_target --------------------------------------------------------------------------------


def test_a_binary_target_is_float_zero_one_with_the_positive_class_last_in_the_output_order() -> None:
    labels = pd.Series(["ok", "fraud", "ok", "ok", "fraud"])

    target = encode_target(labels, cfg(positive_label="fraud"), "label")

    assert target.task == "binary"
    assert target.y.dtype == np.float32
    assert target.y.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert target.classes == ["fraud", "ok"]  # sorted
    assert target.class_order == ["ok", "fraud"]  # the model's one output is the positive class


def test_positive_label_zero_encodes_zero_as_one() -> None:
    target = encode_target(pd.Series([0, 1, 1, 0, 1]), cfg(positive_label=0), "y")

    assert target.y.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert target.classes == ["0", "1"]
    assert target.class_order == ["1", "0"]


def test_a_positive_label_matches_its_text_form() -> None:
    target = encode_target(pd.Series([1, 0, 1]), cfg(positive_label="1"), "y")
    assert target.y.tolist() == [1.0, 0.0, 1.0]
    assert target.class_order == ["0", "1"]


def test_a_binary_target_with_a_non_default_index_names_its_negative_class() -> None:
    labels = pd.Series(["yes", "no", "yes"], index=[10, 3, 7])
    target = encode_target(labels, cfg(positive_label="yes"), "y")
    assert target.class_order == ["no", "yes"]
    assert target.y.tolist() == [1.0, 0.0, 1.0]


def test_a_multiclass_target_is_class_indices_with_numbers_sorted_by_value() -> None:
    labels = pd.Series([10, 2, 3, 2, 10, 3])

    target = encode_target(labels, cfg("multiclass"), "y")

    assert target.task == "multiclass"
    assert target.classes == ["2", "3", "10"]  # 2 before 10: by value, not as text
    assert target.class_order == target.classes
    assert target.y.dtype == np.int64
    assert target.y.tolist() == [2, 0, 1, 0, 2, 1]


def test_text_with_three_classes_is_inferred_as_multiclass() -> None:
    target = encode_target(pd.Series(["cat", "dog", "bird", "cat"]), cfg(), "y")
    assert (target.task, target.classes) == ("multiclass", ["bird", "cat", "dog"])
    assert target.y.tolist() == [1, 2, 0, 1]


def test_multiclass_on_two_classes_is_refused_as_a_binary_task() -> None:
    with pytest.raises(DataError, match="'y' has 2 classes: that is a binary task, not multiclass"):
        encode_target(pd.Series(["a", "b", "a"]), cfg("multiclass"), "y")


def test_a_regression_target_is_float64_without_classes() -> None:
    target = encode_target(pd.Series([1.5, 2.0, -3.25]), cfg(), "price")

    assert target.task == "regression"
    assert target.y.dtype == np.float64
    assert target.y.tolist() == [1.5, 2.0, -3.25]
    assert (target.classes, target.class_order) == ([], None)


@pytest.mark.parametrize(
    ("labels", "config", "message"),
    [
        (pd.Series([1, None, 0]), cfg(), "missing value"),
        (pd.Series([1, 1, 1]), cfg(), "single value"),
        (pd.Series([0, 1, 0]), cfg(positive_label=7), "positive_label 7 does not occur"),
        (pd.Series(["a", "b", "c"]), cfg("regression"), "non-numeric value"),
    ],
    ids=["missing", "one-class", "absent-positive", "text-regression"],
)
def test_unlearnable_targets_are_refused_naming_the_column(
    labels: pd.Series, config: dict, message: str
) -> None:
    with pytest.raises(DataError) as info:
        encode_target(labels, config, "label")
    assert message in str(info.value)
    assert "'label'" in str(info.value)


def test_a_target_is_frozen_and_an_outcome_defaults_to_no_history_and_no_scaling() -> None:
    target = Target("binary", np.zeros(2, dtype=np.float32), ["0", "1"], ["0", "1"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.task = "regression"  # type: ignore[misc]
    outcome = Outcome(None, None, np.zeros(0), np.zeros(0), {}, {}, np.arange(0))  # type: ignore[arg-type]
    assert (outcome.history, outcome.target_scaling) == (None, None)


# --- binary_target --------------------------------------------------------------------------------


def test_binary_target_is_float32_one_for_the_positive_label() -> None:
    y = binary_target(pd.Series(["b", "a", "b"]), "a", "label")
    assert y.dtype == np.float32
    assert y.tolist() == [0.0, 1.0, 0.0]


def test_binary_target_refuses_more_than_two_classes() -> None:
    with pytest.raises(DataError, match="3 classes"):
        binary_target(pd.Series(["a", "b", "c"]), "a", "label")


# --- split_rows and stratified_split --------------------------------------------------------------


def assert_partition(train_idx: np.ndarray, val_idx: np.ndarray, n: int) -> None:
    """Sorted, disjoint, and together every row once."""
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(val_idx) > 0)
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(n))


def test_a_regression_split_holds_out_the_fraction_at_random() -> None:
    y = np.linspace(0.0, 1.0, 40)

    train_idx, val_idx = split_rows(y, "regression", 0.25, np.random.default_rng(0))

    assert_partition(train_idx, val_idx, 40)
    assert len(val_idx) == 10
    assert not np.array_equal(val_idx, np.arange(30, 40))  # not simply the tail
    again = split_rows(y, "regression", 0.25, np.random.default_rng(0))
    assert np.array_equal(again[1], val_idx)  # the seed decides
    other = split_rows(y, "regression", 0.25, np.random.default_rng(1))
    assert not np.array_equal(other[1], val_idx)


@pytest.mark.parametrize(
    ("n", "fraction", "val_rows"),
    [
        (10, 0.0, 0),  # no validation: everything trains
        (2, 0.01, 1),  # a tiny fraction still holds out one row
        (2, 0.8, 1),  # a large one still leaves one training row
        (1, 0.5, 0),  # a single row trains
        (7, 0.5, 4),  # round(3.5) == 4 (banker's rounding to even)
    ],
)
def test_a_regression_split_keeps_one_row_on_each_side_when_it_can(
    n: int, fraction: float, val_rows: int
) -> None:
    train_idx, val_idx = split_rows(
        np.arange(n, dtype=float), "regression", fraction, np.random.default_rng(3)
    )
    assert_partition(train_idx, val_idx, n)
    assert len(val_idx) == val_rows


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_a_classification_split_is_the_stratified_one(task: str) -> None:
    y = np.array([0, 1, 2] * 10 if task == "multiclass" else [0, 1] * 15)
    split = split_rows(y, task, 0.2, np.random.default_rng(5))
    expected = stratified_split(y, 0.2, np.random.default_rng(5))
    assert np.array_equal(split[0], expected[0]) and np.array_equal(split[1], expected[1])


def test_a_stratified_split_takes_the_fraction_of_each_class() -> None:
    y = np.array([0] * 90 + [1] * 10, dtype=np.float32)
    np.random.default_rng(0).shuffle(y)

    train_idx, val_idx = stratified_split(y, 0.2, np.random.default_rng(4))

    assert_partition(train_idx, val_idx, 100)
    assert (int((y[val_idx] == 0).sum()), int((y[val_idx] == 1).sum())) == (18, 2)
    assert (int((y[train_idx] == 0).sum()), int((y[train_idx] == 1).sum())) == (72, 8)


def test_a_stratified_split_keeps_a_lone_row_and_a_training_row_of_every_class() -> None:
    y = np.array([0] * 20 + [1] * 2 + [2])  # class 2 has one row, class 1 two

    train_idx, val_idx = stratified_split(y, 0.5, np.random.default_rng(1))

    assert_partition(train_idx, val_idx, len(y))
    assert 22 in train_idx  # the class of one row stays in training
    assert set(y[train_idx]) == {0, 1, 2}
    assert int((y[val_idx] == 1).sum()) == 1  # 2 rows: one each side
    assert int((y[val_idx] == 0).sum()) == 10


def test_a_stratified_split_with_fraction_zero_trains_on_everything() -> None:
    train_idx, val_idx = stratified_split(np.array([1, 0, 1]), 0.0, np.random.default_rng(0))
    assert train_idx.tolist() == [0, 1, 2]
    assert val_idx.size == 0


# --- metric_sample --------------------------------------------------------------------------------


def test_the_metric_sample_is_every_row_up_to_the_limit() -> None:
    assert np.array_equal(metric_sample(5, 1), np.arange(5))
    assert np.array_equal(metric_sample(METRIC_SAMPLE_ROWS, 1), np.arange(METRIC_SAMPLE_ROWS))
    assert metric_sample(0, 1).size == 0


def test_above_the_limit_the_metric_sample_is_a_seeded_sample_of_distinct_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rows, "METRIC_SAMPLE_ROWS", 50)

    sample = metric_sample(200, 7)

    assert len(sample) == 50
    assert np.all(np.diff(sample) > 0)  # sorted and distinct
    assert sample.min() >= 0 and sample.max() < 200
    assert np.array_equal(metric_sample(200, 7), sample)
    assert not np.array_equal(metric_sample(200, 8), sample)
