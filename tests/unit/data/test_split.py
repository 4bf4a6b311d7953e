"""The train/holdout split (``airflow_mlops/data/split.py``): every row on exactly one side, each
class (or a regression target's decile) in both, the same split for the same seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.split import stratified_split
from airflow_mlops.exceptions import DataError


def _frame(labels: list, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(len(labels)), "x": rng.normal(size=len(labels)), "y": labels})


def test_every_row_lands_on_exactly_one_side_unchanged() -> None:
    df = _frame([0] * 70 + [1] * 30).set_index(pd.Index([f"r{i}" for i in range(100)]))
    train, holdout = stratified_split(df, target="y", holdout_fraction=0.2, seed=1)
    ids = np.concatenate([train["id"].to_numpy(), holdout["id"].to_numpy()])
    assert sorted(ids.tolist()) == list(range(100))  # no row lost, none on both sides
    assert list(train.index) == list(range(len(train))) and list(holdout.index) == list(range(len(holdout)))
    back = pd.concat([train, holdout]).set_index("id").sort_index()
    pd.testing.assert_frame_equal(back, df.set_index("id"))
    # Training rows keep the input's order.
    assert train["id"].is_monotonic_increasing and holdout["id"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("n0", "n1", "fraction"), [(70, 30, 0.2), (95, 5, 0.1), (500, 12, 0.25), (3, 2, 0.5), (20, 2, 0.9)]
)
def test_each_class_keeps_its_share_and_both_sides_keep_every_class(
    n0: int, n1: int, fraction: float
) -> None:
    df = _frame([0] * n0 + [1] * n1)
    train, holdout = stratified_split(df, target="y", holdout_fraction=fraction, seed=3)
    for cls, n in ((0, n0), (1, n1)):
        expected = min(max(1, round(n * fraction)), n - 1)
        assert (holdout["y"] == cls).sum() == expected
        assert (train["y"] == cls).sum() == n - expected >= 1


def test_a_class_of_two_rows_is_split_one_and_one_even_at_a_tiny_fraction() -> None:
    df = _frame([0] * 200 + ["rare"] * 2)
    train, holdout = stratified_split(df, target="y", holdout_fraction=0.01, seed=0)
    assert (train["y"] == "rare").sum() == 1 and (holdout["y"] == "rare").sum() == 1


def test_the_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    df = _frame([0] * 60 + [1] * 40)
    a = stratified_split(df, target="y", holdout_fraction=0.3, seed=11)
    b = stratified_split(df, target="y", holdout_fraction=0.3, seed=11)
    c = stratified_split(df, target="y", holdout_fraction=0.3, seed=12)
    pd.testing.assert_frame_equal(a[1], b[1])
    assert set(a[1]["id"]) != set(c[1]["id"])
    assert len(a[1]) == len(c[1])


def test_labels_written_differently_are_one_class() -> None:
    """1, 1.0 and "1" are one class (label_key): a class of three spellings is not three classes
    of one row each (which would be refused)."""
    df = _frame([0, 0, 0, 0, "0", 1, 1.0, "1", 1])
    train, holdout = stratified_split(df, target="y", holdout_fraction=0.25, seed=0)
    assert len(holdout) == round(5 * 0.25) + round(4 * 0.25) and len(train) == 7
    keys = {str(v).split(".")[0] for v in holdout["y"]}
    assert keys == {"0", "1"}


def test_a_regression_target_is_stratified_by_deciles() -> None:
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(size=200), "y": rng.lognormal(0, 1, 200)})
    train, holdout = stratified_split(df, target="y", holdout_fraction=0.2, seed=2, task="regression")
    assert len(train) + len(holdout) == 200 and len(holdout) == 40
    # Each decile gives 4 of its 20 rows: the holdout spans the whole range of the target.
    edges = np.quantile(df["y"], np.linspace(0, 1, 11))
    counts = np.histogram(holdout["y"], bins=edges)[0]
    assert counts.tolist() == [4] * 10
    assert set(train["y"]) | set(holdout["y"]) == set(df["y"])


def test_a_small_regression_uses_fewer_strata() -> None:
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    train, holdout = stratified_split(df, target="y", holdout_fraction=0.5, seed=0, task="regression")
    # 5 rows: 2 strata ({1, 2, 3} and {4, 5}); each gives round(half) of its rows, keeping one.
    assert len(holdout) == 3 and len(train) == 2
    for part in (train, holdout):
        assert part["y"].min() <= 3.0 < 4.0 <= part["y"].max()


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_a_holdout_fraction_outside_0_1_is_refused(fraction: float) -> None:
    with pytest.raises(DataError, match=f"holdout_fraction must be between 0 and 1, got {fraction}"):
        stratified_split(_frame([0, 1] * 5), target="y", holdout_fraction=fraction, seed=0)


def test_a_missing_target_names_the_columns() -> None:
    with pytest.raises(DataError, match=r"target column 'label' is not in the data \(columns: id, x, y\)"):
        stratified_split(_frame([0, 1] * 5), target="label", holdout_fraction=0.2, seed=0)


def test_a_class_of_one_row_is_refused_with_a_hint_when_no_task_is_declared() -> None:
    df = _frame([0] * 10 + [1] * 10 + [7])
    with pytest.raises(DataError, match=r"class '7' of 'y' has 1 row\(s\).*set `task: regression`"):
        stratified_split(df, target="y", holdout_fraction=0.2, seed=0)
    with pytest.raises(DataError, match=r"class '7' of 'y' has 1 row\(s\)") as info:
        stratified_split(df, target="y", holdout_fraction=0.2, seed=0, task="multiclass")
    assert "regression" not in str(info.value)


def test_a_regression_needs_four_rows_and_numbers() -> None:
    with pytest.raises(DataError, match=r"3 row\(s\) of 'y': a regression needs at least 4"):
        stratified_split(
            pd.DataFrame({"y": [1.0, 2.0, 3.0]}), target="y", holdout_fraction=0.5, seed=0, task="regression"
        )
    with pytest.raises(DataError, match="non-numeric"):
        stratified_split(
            pd.DataFrame({"y": [1.0, 2.0, "x", 4.0, 5.0]}),
            target="y",
            holdout_fraction=0.5,
            seed=0,
            task="regression",
        )
