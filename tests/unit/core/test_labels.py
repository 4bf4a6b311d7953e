"""The one positive-label rule (``airflow_mlops/labels.py``), and that training and evaluation use it
(the screen's use of it: ``tests/unit/data/poisoning/test_dataset_checks.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError
from airflow_mlops.labels import label_key, positive_mask


@pytest.mark.parametrize(
    ("labels", "positive_label"),
    [
        ([0, 1, 1, 0], 1),  # int labels, int label
        ([0, 1, 1, 0], "1"),  # the spec quoted it
        (["0", "1", "1", "0"], 1),  # CSV read the labels as text
        ([0.0, 1.0, 1.0, 0.0], 1),  # a float column (e.g. after a NaN was dropped)
        (["0.0", "1.0", "1.0", "0.0"], "1"),
        ([False, True, True, False], True),  # bool labels
        ([False, True, True, False], 1),
        ([0, 1, 1, 0], True),
        (["False", "True", "True", "False"], True),  # CSV text of booleans
        (["no", "yes", "yes", "no"], "yes"),
        (np.array([0, 1, 1, 0], dtype=np.int8), np.int64(1)),
        (pd.Series([0, 1, 1, 0], dtype="Int64"), 1),  # pandas nullable integers
        (pd.Series(["0", "1", "1", "0"], dtype="category"), 1),
        ([0, "1", 1, "0"], 1),  # a mixed object column: both spellings of 1 are positive
    ],
)
def test_every_spelling_of_the_positive_label_matches(labels, positive_label) -> None:
    mask = positive_mask(labels, positive_label)
    assert mask.dtype == bool
    assert mask.tolist() == [False, True, True, False]


def test_text_labels_are_case_sensitive_and_not_numbers_by_accident() -> None:
    assert positive_mask(["Fraud", "ok", "Fraud"], "Fraud").tolist() == [True, False, True]
    with pytest.raises(DataError, match="positive_label 'fraud' does not occur"):
        positive_mask(["Fraud", "ok"], "fraud")
    assert label_key(" 1 ") == label_key(1) == label_key(1.0) == label_key(True) == "1"
    assert label_key(0.5) != label_key(0) and label_key("0.5") == label_key(0.5)


def test_a_positive_label_that_never_occurs_is_an_error_naming_the_values() -> None:
    with pytest.raises(
        DataError, match=r"positive_label 2 does not occur in target column 'is_fraud' \(its values: 0, 1\)"
    ):
        positive_mask(pd.Series([0, 1, 0]), 2, column="is_fraud")


def test_more_than_two_classes_is_an_error() -> None:
    with pytest.raises(DataError, match="target column 'y' has 3 classes"):
        positive_mask(pd.Series([0, 1, 2, 1]), 1, column="y")
    # Two spellings of one class are still one class.
    assert positive_mask(pd.Series([0, "1", 1, "0"], dtype=object), 1).sum() == 2


def test_missing_labels_and_a_single_class_are_errors() -> None:
    with pytest.raises(DataError, match="1 missing value"):
        positive_mask(pd.Series([0.0, 1.0, np.nan]), 1)
    with pytest.raises(DataError, match="single class only"):
        positive_mask(pd.Series([1, 1, 1]), 1)
    with pytest.raises(DataError, match=r"single class only \(0\); it needs both positive \(1\)"):
        positive_mask(pd.Series([0, 0]), 1)
    # One batch of the screen may lack a class; the label still has to be known.
    assert positive_mask(pd.Series([1, 1]), 1, require_both=False).tolist() == [True, True]
    assert positive_mask(pd.Series([], dtype=int), 1, require_both=False).tolist() == []
    with pytest.raises(DataError, match="does not occur"):
        positive_mask(pd.Series([0, 0]), 1, require_both=False)


def test_evaluation_matches_a_quoted_label_like_training_does() -> None:
    """Before: evaluation compared ``holdout[target] == positive_label`` only, so a quoted "1"
    against integer labels made every row negative (one class, gates blocked for the wrong reason)."""
    import airflow_mlops.registry.evaluation as evaluation
    from airflow_mlops.training.rows import binary_target

    labels = pd.Series([0, 1, 1, 0, 1])
    expected = [0.0, 1.0, 1.0, 0.0, 1.0]
    assert binary_target(labels, "1", "y").tolist() == expected

    class Predictor:  # a binary model whose positive class is 1
        task, positive_label, classes = "binary", 1, ["0", "1"]

    for quoted in ("1", 1, 1.0, " 1 "):
        y = evaluation.holdout_target(
            Predictor(), pd.DataFrame({"y": labels}), target="y", positive_label=quoted
        )
        assert y.astype(float).tolist() == expected


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b"1", "1"),  # bytes read as UTF-8 text
        (" TRUE ", "1"),
        ("False", "0"),
        (np.bool_(True), "1"),
        (np.int16(7), "7"),
        (np.float32(2.0), "2"),
        ("2.50", "2.5"),
        (2.5, "2.5"),
        ("nan", "nan"),  # non-finite text stays text: it is not a number class
        ("inf", "inf"),
        (float("inf"), "inf"),
        ("  spam ", "spam"),
        (None, "None"),
    ],
)
def test_label_key_reads_each_spelling_as_data(value, key) -> None:
    assert label_key(value) == key


def test_a_long_list_of_classes_is_shown_cut_short() -> None:
    with pytest.raises(DataError, match=r"has 12 classes \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9 \.\.\.\)"):
        positive_mask(pd.Series(range(12)), 1)


@pytest.mark.parametrize("positive_label", [None, float("nan")])
def test_an_unset_positive_label_is_an_error(positive_label) -> None:
    with pytest.raises(DataError, match=r"set data\.positive_label"):
        positive_mask(pd.Series([0, 1]), positive_label)


@pytest.mark.parametrize("labels", [np.array([[0, 1], [1, 0]]), [[0, 1], [1, 0]], np.int64(1)])
def test_a_target_that_is_not_one_column_is_a_clear_error(labels) -> None:
    with pytest.raises(DataError, match="target column 'y' must be 1-D, not of shape"):
        positive_mask(labels, 1, column="y")
