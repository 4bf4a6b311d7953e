"""The target as the poisoning screen reads it (``airflow_mlops/data/poisoning/targets.py``): the
task, the label views, and the checks of the target and the reference before any screen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.poisoning.targets import (
    check_reference,
    class_counts,
    class_texts,
    label_view,
    representatives,
    require_binary_target,
    screen_task,
)
from airflow_mlops.exceptions import DataError


def _frame(labels: list) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(len(labels), dtype=float), "y": labels})


# ---- screen_task -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "positive_label", "task"),
    [
        ([0, 1, 1, 0], 1, "binary"),
        (["no", "yes"], None, "binary"),
        ([0, 1, 2, 1], None, "multiclass"),
        (["a", "b", "c"], "a", "multiclass"),
        (np.random.default_rng(0).normal(size=50).tolist(), None, "regression"),
        # one class cannot say what the task is: binary with a positive label, else multiclass
        ([1, 1, 1], 1, "binary"),
        ([1, 1.0, "1"], None, "multiclass"),
    ],
)
def test_the_task_is_inferred_from_the_labels(labels: list, positive_label, task: str) -> None:
    assert screen_task(None, _frame(labels), None, "y", positive_label) == task


def test_missing_and_infinite_targets_do_not_decide_the_task() -> None:
    y = np.random.default_rng(1).normal(size=30)
    y[:3] = [np.nan, np.inf, -np.inf]
    assert screen_task(None, _frame(y.tolist()), None, "y", None) == "regression"
    assert screen_task("regression", _frame(y.tolist()), None, "y", None) == "regression"
    assert screen_task(None, _frame([0.0, 1.0, np.nan, np.inf]), None, "y", None) == "binary"


def test_the_reference_labels_count_too() -> None:
    batch = _frame([1, 1, 1])
    assert screen_task(None, batch, _frame([0, 1, 2]), "y", 1) == "multiclass"
    assert screen_task(None, batch, _frame([0, 1]), "y", None) == "binary"
    assert screen_task(None, batch, pd.DataFrame({"x": [1.0]}), "y", None) == "multiclass"  # no target there


def test_a_declared_task_is_checked_against_the_labels() -> None:
    assert screen_task("binary", _frame([0, 1, 2]), None, "y", 1) == "binary"  # require_binary_target's job
    assert screen_task("multiclass", _frame([0, 1]), None, "y", None) == "multiclass"
    with pytest.raises(DataError, match="single class"):
        screen_task("multiclass", _frame(["a", "a"]), None, "y", None)
    with pytest.raises(DataError, match="non-numeric"):
        screen_task("regression", _frame(["a", "b", "c"]), None, "y", None)
    with pytest.raises(ValueError, match=r"task must be one of .*got 'ranking'"):
        screen_task("ranking", _frame([0, 1]), None, "y", None)


# ---- label_view, class_texts, representatives, class_counts ------------------------------------


def test_the_label_views_by_task() -> None:
    labels = pd.Series([1, 1.0, "1", 0, None, "cat"], dtype=object, index=list("abcdef"))
    multi = label_view(labels, "multiclass")
    assert multi.tolist()[:4] == ["1", "1", "1", "0"] and multi.iloc[5] == "cat" and pd.isna(multi.iloc[4])
    assert list(multi.index) == list("abcdef")
    assert label_view(labels, "binary") is labels  # as given
    numbers = label_view(pd.Series(["1.5", 2, None, "x"], index=[3, 4, 5, 6]), "regression")
    assert numbers.dtype == np.float64 and list(numbers.index) == [3, 4, 5, 6]
    assert numbers.iloc[:2].tolist() == [1.5, 2.0] and numbers.iloc[2:].isna().all()


def test_class_texts() -> None:
    view = label_view(pd.Series([2, 2.0, None, "b"], dtype=object), "multiclass")
    texts = class_texts(view, "multiclass")
    assert texts[0] == texts[1] == "2" and texts[3] == "b" and pd.isna(texts[2])
    binary = class_texts(pd.Series([0, 1, np.nan]), "binary")
    assert binary[:2].tolist() == ["0.0", "1.0"] and pd.isna(binary[2])
    assert class_texts(pd.Series([1.5, 2.5]), "regression").tolist() == [None, None]


def test_representatives_keep_the_first_spelling_batch_before_reference() -> None:
    batch = pd.Series(["1", 1, None, 2.0])
    reference = pd.DataFrame({"y": [1.0, 3, 2]})
    got = representatives(batch, reference, "y")
    assert got == {"1": "1", "2": 2.0, "3": 3}
    assert representatives(batch, pd.DataFrame({"x": [1]}), "y") == {"1": "1", "2": 2.0}
    assert representatives(batch, None, "y") == {"1": "1", "2": 2.0}


def test_class_counts_add_up_per_class_in_class_order() -> None:
    texts = np.array(["10", "2", "2", None, "a", "10", "2"], dtype=object)
    suspect = np.array([True, False, True, True, False, False, False])
    counts = class_counts(texts, suspect)
    assert list(counts) == ["2", "10", "a"]  # numbers by value, then text
    assert counts["2"] == {"rows": 3, "accepted": 2, "quarantined": 1}
    assert counts["10"] == {"rows": 2, "accepted": 1, "quarantined": 1}
    assert counts["a"] == {"rows": 1, "accepted": 1, "quarantined": 0}
    assert class_counts(np.array([None, None], dtype=object), np.zeros(2, dtype=bool)) == {}


# ---- require_binary_target ---------------------------------------------------------------------


def test_two_classes_however_written_are_a_binary_target() -> None:
    require_binary_target(_frame([0, 1, "1", 1.0, None]), _frame([True, False]), "y", 1)
    require_binary_target(_frame(["no", "yes"]), None, "y", "yes")
    require_binary_target(_frame([1, 1]), pd.DataFrame({"x": [0.0]}), "y", 1)  # the reference lacks y


def test_a_third_class_is_a_final_data_error_naming_where() -> None:
    with pytest.raises(
        DataError, match=r"target column 'y' has 3 classes \(0, 1, 2\): the batch holds 3"
    ) as info:
        require_binary_target(_frame([0, 1, 2]), None, "y", 1)
    assert "not a poisoning finding" in str(info.value) and "positive_label 1" in str(info.value)
    with pytest.raises(DataError, match=r"has 3 classes .*the batch and its reference hold 3"):
        require_binary_target(_frame([0, 1]), _frame([1, "maybe"]), "y", 1)


def test_a_long_list_of_classes_is_cut_at_ten() -> None:
    with pytest.raises(DataError, match=r"has 12 classes \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9 \.\.\.\)"):
        require_binary_target(_frame(list(range(12))), None, "y", 1)


# ---- check_reference ---------------------------------------------------------------------------


def test_a_matching_reference_passes() -> None:
    batch = pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"], "y": [0, 1]})
    check_reference(batch, batch.assign(a=[3, 4], extra=1), "y", ["a", "c"])  # int ~ float, extra columns


@pytest.mark.parametrize(
    ("reference", "match"),
    [
        (
            pd.DataFrame({"a": [1.0], "y": [0]}),
            r"reference data lacks column\(s\) \['c'\] that the batch has",
        ),
        (pd.DataFrame({"a": [1.0], "c": ["x"]}), r"lacks column\(s\) \['y'\]"),
        (
            pd.DataFrame({"a": ["1.0"], "c": ["x"], "y": [0]}),
            r"column type differs .*a: batch float64, reference object",
        ),
        (pd.DataFrame({"a": [1.0], "c": [1.0], "y": [0]}), r"c: batch object, reference float64"),
        (
            pd.DataFrame({"a": pd.Series([], dtype=float), "c": pd.Series([], dtype=object), "y": []}),
            "has no rows",
        ),
        (
            pd.DataFrame({"a": [np.nan, np.nan], "c": ["x", None], "y": [0, 1]}),
            r"\['a'\] are entirely null in the reference",
        ),
    ],
)
def test_a_reference_that_cannot_be_compared_is_refused(reference: pd.DataFrame, match: str) -> None:
    batch = pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"], "y": [0, 1]})
    with pytest.raises(DataError, match=match):
        check_reference(batch, reference, "y", ["a", "c"])
