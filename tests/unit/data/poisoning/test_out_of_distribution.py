"""The out-of-distribution check (``airflow_mlops/data/poisoning/out_of_distribution.py``): the
isolation forest, calibrated on the reference or cut on the batch's own scores, and the extreme
values (robust z-scores, infinities, negatives in a log-compressed column)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.poisoning.features import Encoder
from airflow_mlops.data.poisoning.out_of_distribution import MIN_OOD_CLASS_ROWS, out_of_distribution
from airflow_mlops.data.poisoning.targets import class_texts, label_view

FEATURES = ["a", "b", "amount"]
THRESHOLD = 8.0


def _frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(0, 1, n),
            "b": rng.normal(5, 2, n),
            "amount": rng.lognormal(3, 1, n),  # >= 0, heavy right tail: log-compressed
            "y": rng.integers(0, 2, n),
        }
    )


def _ood(
    df: pd.DataFrame, reference: pd.DataFrame | None, *, features: list[str] = FEATURES, task: str = "binary"
) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray]:
    fit_frame = reference if reference is not None else df
    encoder = Encoder.fit(fit_frame, features)
    return out_of_distribution(
        df,
        encoder.transform(df),
        fit_frame,
        encoder,
        "y",
        features,
        THRESHOLD,
        0,
        class_of=lambda labels: class_texts(label_view(labels, task), task),
        fitted_on="batch" if reference is None else "reference",
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(0, 600)


def test_a_clean_batch_is_spared_against_the_reference(reference) -> None:
    batch = _frame(1, 400)
    mask, detail, score, cut = _ood(batch, reference)
    assert mask.sum() <= 4, detail  # 1 %
    assert detail["fitted_on"] == "reference" and detail["extreme_value_suspects"] == 0
    assert len(score) == len(cut) == len(batch)
    json.dumps(detail, allow_nan=False)


def test_far_rows_are_flagged_against_the_reference(reference) -> None:
    batch = _frame(2, 400)
    far = [3, 50, 222]
    batch.loc[far, "a"] = [9.0, -9.0, 7.0]
    batch.loc[far, "b"] = [25.0, -15.0, 20.0]
    mask, detail, score, cut = _ood(batch, reference)
    assert set(far) <= set(np.flatnonzero(mask))
    assert mask.sum() <= len(far) + 4
    # The forest's own suspects are exactly the rows above their cut.
    assert detail["forest_suspects"] == int((score > cut).sum())
    assert score[far].min() > np.median(score)


def test_per_class_cuts_need_enough_calibration_rows(reference) -> None:
    batch = _frame(3, 200)
    _, detail, _, _ = _ood(batch, reference)
    assert set(detail["class_cuts"]) == {"0", "1"}  # ~150 calibration rows each
    # class 2: 8 reference rows, so fewer than MIN_OOD_CLASS_ROWS in the calibration half however it falls
    rare = reference.assign(y=np.where(np.arange(len(reference)) < MIN_OOD_CLASS_ROWS - 2, 2, 0))
    batch2 = batch.assign(y=np.where(np.arange(len(batch)) < 10, 2, 0))
    _, detail, _, _ = _ood(batch2, rare)
    # class 2 is judged against all the calibration rows
    assert (
        "2" not in detail["class_cuts"]
        and "0" in detail["class_cuts"]
        and "(all classes)" in detail["class_cuts"]
    )


def test_a_regression_target_has_one_cut_for_all_rows(reference) -> None:
    batch = _frame(4, 200).assign(y=lambda f: f["a"] * 2.5)
    _, detail, _, cut = _ood(batch, reference.assign(y=lambda f: f["a"] * 2.5), task="regression")
    assert list(detail["class_cuts"]) == ["(all classes)"]
    assert len(set(cut.tolist())) == 1


def test_extreme_values_must_pass_the_z_score_and_leave_the_reference_range(reference) -> None:
    batch = _frame(5, 300)
    lo, hi = reference["b"].min(), reference["b"].max()
    batch.loc[7, "b"] = hi + 0.2 * (hi - lo)  # beyond the range, but by less than half its width
    batch.loc[8, "b"] = hi + 2.0 * (hi - lo)  # far beyond it
    batch.loc[9, "a"] = np.inf
    batch.loc[10, "amount"] = -5.0  # negative in a column the reference has only values >= 0 of
    batch.loc[11, "amount"] = np.nan  # missing is not extreme
    mask, detail, _, _ = _ood(batch, reference)
    assert mask[[8, 9, 10]].all()
    assert not mask[11]
    assert set(detail["extreme_value_columns"]) == {"a", "b", "amount"}
    flagged_extreme = detail["extreme_value_suspects"]
    assert flagged_extreme == 3, detail  # row 7 is not extreme (the forest may still score it)


def test_a_value_just_past_the_edge_of_the_reference_is_not_extreme(reference) -> None:
    """A sparse count (mostly -1..1, sometimes -12..12: MAD 1, range 24): the reference's maximum
    plus 2 has a robust z-score of ~9.4 > 8 but lies within EXTREME_RANGE_MARGIN x the range of
    it; without a reference the batch's own range (less 1 % at each end) counts the same way."""
    rng = np.random.default_rng(10)

    def strokes(n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.8, rng.integers(-1, 2, n), rng.integers(-12, 13, n)).astype(float)

    ref = reference.assign(count=strokes(len(reference)))
    batch = _frame(11, 300).assign(count=lambda f: strokes(len(f)))
    top = ref["count"].max()
    batch.loc[3, "count"] = top + 2
    batch.loc[4, "count"] = top + 40  # beyond the range by more than half its width
    features = [*FEATURES, "count"]
    _, detail, _, _ = _ood(batch, ref, features=features)
    assert detail["extreme_value_columns"] == ["count"] and detail["extreme_value_suspects"] == 1
    _, detail, _, _ = _ood(batch, None, features=features)
    assert detail["extreme_value_columns"] == ["count"] and detail["extreme_value_suspects"] == 1


def test_a_value_far_outside_a_bounded_column_is_extreme_whatever_its_z_score(reference) -> None:
    """A uniform [0, 1] column: its MAD is a quarter of the range, so 2.5 has a robust z-score of
    ~5.4 < 8; beyond the range by FAR_RANGE_MARGIN x its width it is extreme all the same, with a
    reference and without one (the batch's range less 1 % at each end). A clean batch has none."""
    rng = np.random.default_rng(12)
    ref = reference.assign(share=rng.uniform(size=len(reference)))
    batch = _frame(13, 400).assign(share=rng.uniform(size=400))
    features = [*FEATURES, "share"]
    _, detail, _, _ = _ood(batch, ref, features=features)
    assert "share" not in detail["extreme_value_columns"]
    batch.loc[[5, 6], "share"] = [2.5, -1.5]  # 1.5 widths outside [0, 1]
    batch.loc[7, "share"] = 1.8  # 0.8 of a width outside, z ~3.8: neither rule
    middle = ref["share"].median()
    assert 0.6745 * (2.5 - middle) / (ref["share"] - middle).abs().median() < THRESHOLD  # z alone: no
    for given in (ref, None):
        mask, detail, _, _ = _ood(batch, given, features=features)
        assert mask[[5, 6]].all(), detail
        assert "share" in detail["extreme_value_columns"]
    _, detail, _, _ = _ood(batch.drop(index=[5, 6]), ref, features=features)
    assert "share" not in detail["extreme_value_columns"]  # 1.8 is not extreme


def test_a_column_with_zero_mad_counts_only_infinities(reference) -> None:
    ref = reference.assign(flag=np.where(np.arange(len(reference)) % 10 == 0, 1.0, 0.0))
    batch = _frame(6, 200).assign(flag=0.0)
    batch.loc[[0, 1], "flag"] = [1.0, 50.0]  # any finite value: MAD 0, no z-score
    batch.loc[2, "flag"] = np.inf
    features = [*FEATURES, "flag"]
    _, detail, _, _ = _ood(batch, ref, features=features)
    assert detail["extreme_value_columns"] == ["flag"] and detail["extreme_value_suspects"] == 1


def test_without_a_reference_the_batch_cuts_its_own_scores() -> None:
    batch = _frame(7, 500)
    mask, detail, score, cut = _ood(batch, None)
    assert detail["fitted_on"] == "batch" and detail["threshold"].startswith("per class: the 0.995 quantile")
    assert mask.sum() <= 5
    # The cut sits above the 0.995 quantile of the fitted scores: at most 0.5 % of them exceed it.
    assert (score > detail["cut"]).mean() <= 0.005
    far = batch.copy()
    far.loc[[4, 40], ["a", "b"]] = [[12.0, 40.0], [-12.0, -30.0]]
    mask, detail, score, cut = _ood(far, None)
    assert mask[[4, 40]].all() and mask.sum() <= 2 + 5
    assert set(detail["class_cuts"]) == {"0", "1"}
    np.testing.assert_array_equal(mask, (score > cut) | mask)  # the forest's flags are above the cut


def test_without_a_reference_the_z_score_alone_flags_a_far_value() -> None:
    batch = _frame(8, 300)
    batch.loc[12, "b"] = 5 + 2 * 30  # ~30 standard deviations
    mask, detail, _, _ = _ood(batch, None)
    assert mask[12] and "b" in detail["extreme_value_columns"]


def test_the_same_seed_gives_the_same_result(reference) -> None:
    batch = _frame(9, 200)
    first, second = _ood(batch, reference), _ood(batch, reference)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[2], second[2])
