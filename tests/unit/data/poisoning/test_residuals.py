"""``label_issues`` of a regression target (``airflow_mlops/data/poisoning/residuals.py``): the
residual model, fitted on the batch or the reference, and the rows its residuals flag."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.poisoning import screen_data
from airflow_mlops.data.poisoning.features import Encoder
from airflow_mlops.data.poisoning.residuals import (
    UNCALIBRATED_RESIDUAL_CUT,
    ResidualModel,
    _level_center_scale,
    _robust_center_scale,
)
from airflow_mlops.data.poisoning.stats import MAD_TO_Z, MIN_CALIBRATION_ROWS

FOLDS = 3


def _linear(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return x, 3 * x[:, 0] - x[:, 1] + rng.normal(0, 0.3, n)


def _encoder(x: np.ndarray) -> Encoder:
    return Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])


def _fit(x: np.ndarray, y: np.ndarray, **kwargs) -> ResidualModel:
    return ResidualModel.fit(
        x,
        y,
        np.isfinite(y),
        _encoder(x),
        np.arange(len(x)),
        folds=FOLDS,
        max_fit_rows=10_000,
        seed=0,
        **kwargs,
    )


# ---- _robust_center_scale ----------------------------------------------------------------------


def test_the_center_and_scale_are_the_median_and_the_mad() -> None:
    r = np.random.default_rng(0).normal(2.0, 3.0, 4000)
    center, scale = _robust_center_scale(np.append(r, [1e9, np.nan, np.inf]))
    assert center == pytest.approx(2.0, abs=0.2) and scale == pytest.approx(3.0, rel=0.06)
    assert _robust_center_scale(np.array([1.0, 2.0, 4.0])) == (2.0, pytest.approx(1.0 / MAD_TO_Z))


def test_a_zero_mad_falls_back_to_the_mean_deviation_then_a_tiny_positive_scale() -> None:
    center, scale = _robust_center_scale(np.array([0.0, 0.0, 0.0, 0.0, 5.0]))
    assert (center, scale) == (0.0, pytest.approx(1.0))  # mean |deviation| = 5 / 5
    center, scale = _robust_center_scale(np.full(4, 3.0))
    assert center == 3.0 and 0 < scale <= 1e-11
    assert _robust_center_scale(np.array([np.nan, np.inf])) == (0.0, 1.0)


# ---- ResidualModel.issues ----------------------------------------------------------------------


def _model(residual: np.ndarray, ref_residual: np.ndarray | None) -> ResidualModel:
    basis = ref_residual if ref_residual is not None else residual
    center, scale = _robust_center_scale(basis)
    prediction = np.where(np.isfinite(residual), 0.0, np.nan)
    source = "batch" if ref_residual is None else "reference"
    return ResidualModel("ran", prediction, residual, center, scale, source, ref_residual=ref_residual)


def test_calibrated_issues_flag_wild_targets_and_spare_clean_ones() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 500)
    clean = rng.normal(0, 1, 300)
    mask, detail, score, cut = _model(clean, ref).issues()
    assert mask.sum() <= 2 and detail["discoveries"] == mask.sum()
    wild = clean.copy()
    rows = rng.choice(300, size=12, replace=False)
    wild[rows] = rng.choice([-1, 1], 12) * rng.uniform(8, 15, 12)
    wild[[0, 1]] = np.nan  # no finite target: never a suspect, no cut
    mask, detail, score, cut = _model(wild, ref).issues()
    assert set(rows) - {0, 1} <= set(np.flatnonzero(mask))
    assert len(set(np.flatnonzero(mask)) - set(rows)) <= 2
    assert not mask[[0, 1]].any() and np.isnan(cut[[0, 1]]).all()
    lab = np.isfinite(wild)
    np.testing.assert_array_equal(mask[lab], score[lab] > cut[lab])  # the cut sits below the lowest discovery
    assert detail["model_source"] == "reference" and detail["threshold"].startswith("calibrated")
    assert detail["reference_flag_rate"] <= 0.01
    json.dumps(detail, allow_nan=False)


def test_uncalibrated_issues_use_the_fixed_cut() -> None:
    residual = np.array([0.0, 1.0, -1.0, 2.0, -2.0, 30.0, -30.0, np.nan, 0.5, -0.5])
    model = _model(residual, None)
    mask, detail, score, cut = model.issues()
    assert np.flatnonzero(mask).tolist() == [5, 6]
    assert detail["cut"] == UNCALIBRATED_RESIDUAL_CUT and detail["threshold"].startswith("fixed")
    np.testing.assert_allclose(score[:2], np.abs(residual[:2] - model.center) / model.scale)
    assert np.isnan(cut[7]) and cut[0] == UNCALIBRATED_RESIDUAL_CUT
    json.dumps(detail, allow_nan=False)


def test_a_calibrated_model_without_discoveries_keeps_the_fixed_cut() -> None:
    mask, detail, _, cut = _model(np.zeros(50), np.random.default_rng(2).normal(0, 1, 100)).issues()
    assert not mask.any() and detail["discoveries"] == 0
    assert detail["cut"] == UNCALIBRATED_RESIDUAL_CUT and (cut == UNCALIBRATED_RESIDUAL_CUT).all()
    json.dumps(detail, allow_nan=False)


def test_a_reference_never_makes_the_screen_blinder_than_none() -> None:
    # 40 reference rows give rank p-values of at least 1 / 41: Benjamini-Hochberg cannot find 5
    # wild rows among 1,000; the fixed cut, which the reference's residuals do not cross, does.
    rng = np.random.default_rng(3)
    residual = rng.normal(0, 1, 1000)
    residual[:5] = [6.0, -6.5, 7.0, -8.0, 9.0]
    with_ref, detail, _, _ = _model(residual, rng.normal(0, 1, 40)).issues()
    without, _, _, _ = _model(residual, None).issues()
    assert detail["discoveries"] == 0 and detail["cut"] == UNCALIBRATED_RESIDUAL_CUT
    assert with_ref[:5].all() and (with_ref == without).all()


def test_a_reference_with_heavy_tails_raises_the_cut_to_its_clean_quantile() -> None:
    rng = np.random.default_rng(4)
    ref = rng.standard_t(1.5, 2000)  # far more than 0.5 % of its rows beyond the fixed cut
    mask, detail, _, _ = _model(rng.standard_t(1.5, 2000), ref).issues()
    assert detail["fixed_cut_checked_on_reference"] > UNCALIBRATED_RESIDUAL_CUT
    assert detail["reference_flag_rate"] <= 0.01 and mask.mean() <= 0.01


# ---- the residuals' centre and scale by target level ------------------------------------------


def test_the_scale_follows_the_target_level() -> None:
    rng = np.random.default_rng(5)
    level = rng.uniform(1, 10, 6000)
    residual = rng.normal(0, 0.1 * level)  # the noise grows with the level
    center, below, above = _level_center_scale(level, residual, np.array([2.0, 8.0, np.nan]))
    assert 0.1 < above[0] < 0.3 and 0.65 < above[1] < 0.95 and below[1] == pytest.approx(above[1], rel=0.15)
    assert np.abs(center).max() < 0.1 and np.isfinite(above[2])


def test_a_skewed_noise_gets_a_wider_scale_on_its_long_side() -> None:
    rng = np.random.default_rng(6)
    residual = np.exp(0.5 * rng.normal(size=6000)) - 1  # multiplicative noise: a long upper tail
    _, below, above = _level_center_scale(np.zeros(6000), residual, np.zeros(1))
    assert above[0] > 1.3 * below[0]


def test_few_rows_get_one_scale_for_every_level() -> None:
    rng = np.random.default_rng(7)
    level, residual = rng.uniform(0, 1, 300), rng.normal(0, 1, 300)
    center, below, above = _level_center_scale(level, residual, np.array([0.1, 0.9]))
    assert center[0] == center[1] and above[0] == above[1] and below[0] == below[1]


# ---- ResidualModel.fit -------------------------------------------------------------------------


def _quarantined(df: pd.DataFrame, reference: pd.DataFrame | None = None) -> int:
    """The rows ``label_issues`` quarantines of a regression target ``y`` on ``f0`` to ``f4``."""
    result = screen_data(
        df,
        target="y",
        features=[f"f{i}" for i in range(5)],
        checks=["label_issues"],
        max_suspect_fraction=1.0,
        reference=reference,
        task="regression",
    )
    return len(result.quarantined)


def _five(seed: int, n: int) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    return rng, pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])


def test_a_clean_target_whose_noise_grows_with_its_level_keeps_its_rows() -> None:
    # A lognormal target (prices, claims, durations): one residual scale for every level flagged
    # 5.7 % of these clean rows without a reference.
    rng, df = _five(0, 4000)
    x = df.to_numpy()
    df["y"] = np.exp(1.0 + 0.8 * x[:, 0] + 0.4 * x[:, 1] + 0.5 * rng.normal(size=len(df)))
    ref, batch = df.iloc[:1000].reset_index(drop=True), df.iloc[1000:].reset_index(drop=True)
    for given in (None, ref):
        assert _quarantined(batch, given) <= 0.01 * len(batch)


@pytest.mark.parametrize("rows", [150, 300, 1000])
def test_the_ends_of_a_clean_linear_trend_keep_their_rows(rows: int) -> None:
    # Trees predict a constant beyond the targets they split on: without the linear start every
    # row at either end of a strong trend kept a residual of the trend's step, and the largest
    # and smallest clean targets were flagged (1.4 to 2.4 % of such batches).
    flagged = 0
    for seed in range(4):
        rng, df = _five(10 + seed, rows)
        x = df.to_numpy()
        df["y"] = 40 * x[:, 0] + 25 * x[:, 1] - 30 * x[:, 2] + rng.normal(0, 5, rows)
        flagged += _quarantined(df)
    assert flagged <= 0.002 * 4 * rows


def test_a_clean_target_with_heavy_tailed_noise_keeps_its_rows_without_a_reference() -> None:
    # Student's t noise with 3 degrees of freedom: 1.1 % of it lies beyond 5 robust standard
    # deviations, 0.8 % beyond the fixed cut of 5.5. A model that fits the trend leaves just that
    # noise (these four batches: 0.96 % flagged with a cut of 5, 0.73 % with 5.5).
    flagged = rows = 0
    for seed in range(20, 24):
        rng, df = _five(seed, 4000)
        x = df.to_numpy()
        df["y"] = 3 * x[:, 0] + np.exp(0.5 * x[:, 1]) + rng.standard_t(3, len(df))
        flagged, rows = flagged + _quarantined(df), rows + len(df)
    assert flagged <= 0.009 * rows


def test_a_fifth_of_swapped_targets_is_found_without_a_reference() -> None:
    # In-range swaps pull a squared-error model towards the mean and widen the residuals' MAD;
    # the absolute error and the second pass on the rows the first did not suspect do not.
    rng, df = _five(1, 3000)
    x = df.to_numpy()
    y = 3 * x[:, 0] - 2 * x[:, 1] + x[:, 2] + rng.normal(0, 0.5, len(x))
    swapped = rng.choice(len(x), size=600, replace=False)
    y[swapped] = rng.permutation(y)[: len(swapped)]
    truth = np.zeros(len(x), dtype=bool)
    truth[swapped] = True
    model = ResidualModel.fit(
        x,
        y,
        np.ones(len(x), dtype=bool),
        Encoder.fit(df, list(df.columns)),
        np.arange(len(x)),
        folds=5,
        max_fit_rows=10_000,
        seed=0,
    )
    mask, detail, _, _ = model.issues()
    # Found: 90 of the 600 with a squared-error model in one pass, 253 now (a swap moves a target
    # by about sqrt(2) target sds, often less than the cut).
    assert (mask & truth).sum() >= 0.35 * truth.sum() and (mask & ~truth).sum() <= 0.01 * (~truth).sum()
    assert detail["passes"] == 2


# ---- ResidualModel.fit -------------------------------------------------------------------------


def test_too_few_rows_skip_with_the_reason() -> None:
    x, y = _linear(3, 40)
    y[10:] = np.nan  # 10 rows with a finite target
    model = _fit(x, y)
    assert (
        model.status
        == "skipped: 10 rows with a finite target (10 distinct), need at least 20 (and folds=3 distinct)"
    )
    assert np.isnan(model.prediction).all() and np.isnan(model.residual).all()


def test_too_few_distinct_rows_skip() -> None:
    x, y = _linear(4, 30)
    groups = np.arange(30) % 2  # two groups of copies, three folds
    model = ResidualModel.fit(
        x, y, np.ones(30, dtype=bool), _encoder(x), groups, folds=FOLDS, max_fit_rows=100, seed=0
    )
    assert model.status.startswith("skipped: 30 rows with a finite target (2 distinct)")


def test_out_of_fold_on_the_batch_flags_a_wild_target() -> None:
    x, y = _linear(5, 150)
    y[3] += 15.0
    y[4] = np.nan
    model = _fit(x, y)
    assert model.status == "ran" and model.source == "batch" and model.ref_residual is None
    assert np.isnan(model.prediction[4]) and np.isfinite(np.delete(model.prediction, 4)).all()
    np.testing.assert_allclose(model.residual, y - model.prediction)
    assert model.scale < 0.5 * np.nanstd(y)  # the features explain most of the target
    mask, detail, _, _ = model.issues()
    # 150 rows, 100 per fold model: the linear start carries the trend to the edges of x, so the
    # clean rows' largest residuals are the noise's (trees alone left up to 5 clean rows there).
    assert mask[3] and mask.sum() <= 2
    assert detail["model_source"] == "batch"


def test_fitted_on_a_reference_the_batch_is_judged_by_its_models() -> None:
    rx, ry = _linear(6, 150)
    x, y = _linear(7, 80)
    y[5] -= 15.0
    model = _fit(x, y, reference_x=rx, reference_y=ry)
    assert model.status == "ran" and model.source == "reference" and model.note == ""
    assert model.ref_residual is not None and len(model.ref_residual) == 150
    assert (model.center, model.scale) == _robust_center_scale(model.ref_residual)
    mask, detail, _, _ = model.issues()
    assert mask[5] and mask.sum() <= 3
    assert detail["threshold"].startswith("calibrated")


def test_a_small_reference_falls_back_to_the_batch_and_says_so() -> None:
    rx, ry = _linear(8, MIN_CALIBRATION_ROWS - 1)
    x, y = _linear(9, 60)
    model = _fit(x, y, reference_x=rx, reference_y=ry)
    assert model.source == "batch" and model.ref_residual is None
    assert f"the reference has {MIN_CALIBRATION_ROWS - 1} rows with a finite target" in model.note
    _, detail, _, _ = model.issues()
    assert detail["note"] == model.note and detail["threshold"].startswith("fixed")
