"""The duplicates check (``airflow_mlops/data/poisoning/duplicates.py``): which rows are copies,
which copies conflict, and which of them are held back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.poisoning.duplicates import (
    DUPLICATE_RESIDUAL_Z,
    DUPLICATE_TARGET_SHARE,
    NEAR_DUPLICATE_RESOLUTION,
    conflicting_duplicate_targets,
    conflicting_duplicates,
    duplicate_groups,
    target_scale,
)
from airflow_mlops.data.poisoning.features import Encoder
from airflow_mlops.data.poisoning.stats import MAD_TO_Z


def _groups(df: pd.DataFrame) -> np.ndarray:
    encoder = Encoder.fit(df, list(df.columns))
    return duplicate_groups(encoder.transform(df), encoder)


def _not_called() -> None:
    raise AssertionError("the label model must not be fitted when nothing conflicts")


# ---- duplicate_groups --------------------------------------------------------------------------


def test_distinct_random_rows_are_each_their_own_group() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    assert len(set(_groups(df))) == 300


def test_exact_and_near_copies_share_a_group_and_farther_ones_do_not() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(0, 10, 200), "c": rng.choice(["x", "y"], 200)})
    step = NEAR_DUPLICATE_RESOLUTION * df["a"].std(ddof=0)
    base = df.iloc[[0, 1, 2, 3]].copy()
    # Round to the grid first so a tiny nudge cannot cross a rounding boundary.
    base["a"] = np.round(base["a"] / step) * step
    copies = pd.concat(
        [
            base.iloc[[0]],  # exact
            base.iloc[[1]].assign(a=base["a"].iloc[1] + 0.1 * step),  # near: a tenth of a step
            base.iloc[[2]].assign(a=base["a"].iloc[2] + 3 * step),  # three steps away: not a copy
            base.iloc[[3]].assign(c="z"),  # another category: not a copy
        ]
    )
    both = pd.concat([base, copies], ignore_index=True)
    encoder = Encoder.fit(df, ["a", "c"])  # the statistics of the data the screen fits on
    g = duplicate_groups(encoder.transform(both), encoder)
    assert g[0] == g[4] and g[1] == g[5]
    assert g[2] != g[6] and g[3] != g[7]
    assert len(set(g[:4])) == 4


def test_missing_values_group_together_and_a_constant_column_compares_exactly() -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, np.nan, 1.0, 2.0], "k": [5.0, 5.0, 5.0, 5.0, 5.0]})
    g = _groups(df)
    assert g[1] == g[2] and g[0] == g[3] and len(set(g)) == 3
    # A column constant in the fitted data (std 0): no rounding, the values themselves are the key.
    encoder = Encoder.fit(pd.DataFrame({"k": [5.0, 5.0, 5.0]}), ["k"])
    g = duplicate_groups(encoder.transform(pd.DataFrame({"k": [5.0, 5.0, 5.0 + 1e-9, 6.0]})), encoder)
    assert g[0] == g[1] and len(set(g)) == 3


# ---- conflicting_duplicates (classes) ----------------------------------------------------------


def _label_model(proba: np.ndarray, y: np.ndarray, status: str = "ran") -> SimpleNamespace:
    return SimpleNamespace(status=status, proba=proba, y=y, source="reference")


def test_copies_that_agree_are_not_suspect_and_need_no_model() -> None:
    labels = np.array(["0", "0", "1", "1", "0"], dtype=object)
    group = np.array([0, 0, 1, 1, 2])
    mask, detail = conflicting_duplicates(labels, group, np.ones(5, dtype=bool), _not_called)
    assert not mask.any() and detail["conflicting_groups"] == 0
    assert detail["resolved_by"] == "nothing to resolve"


def test_only_the_copy_against_the_groups_most_plausible_label_is_suspect() -> None:
    # group 0: rows 0, 1, 2 labelled 0, 0, 1; the model finds class 0 likelier on average -> row 2.
    # group 1: rows 3, 4 labelled 0, 1; the model finds class 1 likelier -> row 3.
    # group 2: row 5 alone; row 6 unlabelled copy of row 3's group does not count.
    labels = np.array(["0", "0", "1", "0", "1", "1", None], dtype=object)
    y = np.array([0, 0, 1, 0, 1, 1, -1])
    group = np.array([0, 0, 0, 1, 1, 2, 1])
    proba = np.array(
        [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.2, 0.8], [0.5, 0.5], [np.nan, np.nan]]
    )
    labelled = np.array([True] * 6 + [False])
    mask, detail = conflicting_duplicates(labels, group, labelled, lambda: _label_model(proba, y))
    assert np.flatnonzero(mask).tolist() == [2, 3]
    assert detail["conflicting_groups"] == 2 and detail["model_source"] == "reference"
    assert detail["resolved_by"].startswith("label model")


def test_without_a_label_model_every_conflicting_copy_is_held_back() -> None:
    labels = np.array(["a", "b", "c", "c", "a", "b"], dtype=object)
    group = np.array([0, 0, 1, 1, 2, 3])
    lm = _label_model(np.zeros((6, 3)), np.zeros(6), status="skipped: too few rows")
    mask, detail = conflicting_duplicates(labels, group, np.ones(6, dtype=bool), lambda: lm)
    assert np.flatnonzero(mask).tolist() == [0, 1]
    assert detail["resolved_by"] == "every copy (label model skipped: too few rows)"


def test_an_unlabelled_copy_is_no_conflict() -> None:
    labels = np.array(["a", None, "a"], dtype=object)
    group = np.array([0, 0, 0])
    labelled = np.array([True, False, True])
    mask, detail = conflicting_duplicates(labels, group, labelled, _not_called)
    assert not mask.any() and detail["conflicting_groups"] == 0


# ---- target_scale ------------------------------------------------------------------------------


def test_target_scale_is_the_robust_standard_deviation() -> None:
    y = np.random.default_rng(2).normal(50, 4, 5000)
    assert target_scale(y) == pytest.approx(4, rel=0.05)
    # an outlier barely moves it; the standard deviation would jump
    assert target_scale(np.append(y, 1e6)) == pytest.approx(target_scale(y), rel=0.01)
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.inf, np.nan])
    assert target_scale(x) == pytest.approx(1.0 / MAD_TO_Z)  # median 3, MAD 1


def test_target_scale_falls_back_to_the_standard_deviation_and_to_zero() -> None:
    mostly = np.array([0.0] * 8 + [1.0, 3.0])  # MAD 0
    assert target_scale(mostly) == pytest.approx(mostly.std())
    assert target_scale(np.full(5, 7.0)) == 0.0
    assert target_scale(np.array([])) == 0.0
    assert target_scale(np.array([np.nan, np.inf])) == 0.0


# ---- conflicting_duplicate_targets (regression) ------------------------------------------------


def _residual_model(prediction: np.ndarray, scale: float, status: str = "ran") -> SimpleNamespace:
    return SimpleNamespace(status=status, prediction=prediction, scale=scale, source="batch")


def test_copies_within_the_tolerance_are_not_conflicts_and_need_no_model() -> None:
    # tolerance DUPLICATE_TARGET_SHARE x scale 10 = 0.5: copies 0.4 apart agree
    y = np.array([1.0, 1.4, 5.0, 9.0])
    group = np.array([0, 0, 1, 2])
    mask, detail = conflicting_duplicate_targets(y, group, np.ones(4, dtype=bool), 10.0, _not_called)
    assert not mask.any() and detail["conflicting_groups"] == 0
    assert detail["tolerance"] == pytest.approx(DUPLICATE_TARGET_SHARE * 10.0)


def test_the_copy_far_from_the_prediction_is_suspect_and_the_anchor_kept() -> None:
    y = np.array([10.0, 10.1, 30.0, 5.0, 50.0, 7.0])
    group = np.array([0, 0, 0, 1, 1, 2])
    prediction = np.array([10.5, 10.5, 10.5, 49.0, 49.0, 7.0])
    rm = _residual_model(prediction, scale=0.01)  # 6 x 0.01 < 0.05 x 10: the share decides
    mask, detail = conflicting_duplicate_targets(y, group, np.ones(6, dtype=bool), 10.0, lambda: rm)
    # group 0: 10.1 is nearest the prediction; 10.0 is within 0.5 of it, 30.0 is not.
    # group 1: 50.0 is nearest; 5.0 is far.
    assert np.flatnonzero(mask).tolist() == [2, 3]
    assert detail["conflicting_groups"] == 2 and detail["tolerance"] == pytest.approx(0.5)
    assert detail["resolved_by"].startswith("label model") and detail["model_source"] == "batch"


def test_noise_the_features_do_not_explain_widens_the_tolerance() -> None:
    """Repeated measurements differ by the model's residual noise: copies within
    DUPLICATE_RESIDUAL_Z x its scale of each other are not conflicts."""
    y = np.array([10.0, 12.0, 20.0, 40.0])
    group = np.array([0, 0, 1, 1])
    rm = _residual_model(np.array([11.0, 11.0, 21.0, 21.0]), scale=1.0)
    mask, detail = conflicting_duplicate_targets(y, group, np.ones(4, dtype=bool), 4.0, lambda: rm)
    assert detail["tolerance"] == pytest.approx(DUPLICATE_RESIDUAL_Z * 1.0)
    assert np.flatnonzero(mask).tolist() == [3]  # 2 apart agree; 20 apart do not


def test_without_a_residual_model_every_conflicting_copy_is_held_back_and_unlabelled_rows_never() -> None:
    y = np.array([1.0, 9.0, np.nan, 3.0, 3.0])
    group = np.array([0, 0, 0, 1, 1])
    labelled = np.isfinite(y)
    rm = _residual_model(np.full(5, np.nan), scale=0.0, status="skipped: too few rows")
    mask, detail = conflicting_duplicate_targets(y, group, labelled, 1.0, lambda: rm)
    assert np.flatnonzero(mask).tolist() == [0, 1]
    assert detail["resolved_by"] == "every copy (label model skipped: too few rows)"
    assert detail["tolerance"] == pytest.approx(DUPLICATE_TARGET_SHARE)
