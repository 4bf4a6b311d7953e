"""Multivariate drift: the MMD test over the numeric features, standardised with the reference,
on complete rows, subsampled; None (with a warning) where there is nothing to compare."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from airflow_mlops.drift.multivariate import multivariate_drift
from airflow_mlops.drift.report import MultivariateDrift
from airflow_mlops.drift.statistics import numeric_statistics

pytest.importorskip("torch")


def run(
    ref: np.ndarray,
    cur: np.ndarray,
    names: list[str] | None = None,
    *,
    permutations: int = 50,
    max_rows: int = 5000,
    alpha: float = 0.05,
    seed: int = 0,
) -> MultivariateDrift | None:
    names = names if names is not None else [f"f{i}" for i in range(len(ref))]
    stats = numeric_statistics(ref, cur)
    return multivariate_drift(ref, cur, names, stats, permutations, max_rows, alpha, "cpu", seed)


def correlated(n: int, corr: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return np.vstack([a, corr * a + np.sqrt(1 - corr**2) * rng.normal(size=n)])


def test_the_test_runs_on_the_reference_standardised_complete_rows() -> None:
    from airflow_mlops.drift.mmd import mmd_permutation_test

    rng = np.random.default_rng(3)
    ref = np.vstack([rng.normal(10, 4, 80), rng.exponential(2, 80), rng.normal(size=80)])
    cur = np.vstack([rng.normal(12, 4, 60), rng.exponential(2, 60), np.full(60, np.nan)])
    ref[0, :5] = np.nan  # incomplete rows are left out of both windows
    cur[1, -3:] = np.nan
    result = run(ref, cur, ["a", "b", "gone"], permutations=40, alpha=0.1, seed=7)
    assert result is not None
    assert result.features == ("a", "b")  # "gone" has no live value
    assert (result.reference_rows, result.current_rows) == (75, 57)
    # the same test by hand: the reference's mean and population std of each feature
    mean, std = np.nanmean(ref[:2], axis=1)[:, None], np.nanstd(ref[:2], axis=1)[:, None]
    x = ((ref[:2, 5:] - mean) / std).T
    y = ((cur[:2, :-3] - mean) / std).T
    expected = mmd_permutation_test(x, y, permutations=40, seed=7, device="cpu")
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-4, abs=1e-7)
    assert result.p_value == pytest.approx(expected.p_value)
    assert result.bandwidth == pytest.approx(expected.bandwidth, rel=1e-4)
    assert (result.test, result.threshold, result.permutations, result.device) == ("mmd", 0.1, 40, "cpu")
    assert result.drifted is (result.p_value < 0.1)


def test_a_correlation_shift_drifts_and_the_same_distribution_does_not() -> None:
    shifted = run(correlated(300, 0.0, 1), correlated(300, 0.9, 2), permutations=50)
    assert shifted is not None and shifted.drifted
    assert shifted.p_value == pytest.approx(1 / 51)  # no permutation reached the observed statistic
    same = run(correlated(300, 0.0, 1), correlated(300, 0.0, 2), permutations=50)
    assert same is not None and not same.drifted and same.p_value >= 0.05


def test_the_statistic_does_not_depend_on_the_features_units() -> None:
    ref, cur = correlated(150, 0.0, 4), correlated(120, 0.5, 5)
    scale, offset = np.array([[1000.0], [0.001]]), np.array([[-50.0], [7.0]])
    plain = run(ref, cur, seed=2)
    rescaled = run(ref * scale + offset, cur * scale + offset, seed=2)
    assert plain is not None and rescaled is not None
    assert rescaled.statistic == pytest.approx(plain.statistic, rel=1e-3, abs=1e-6)
    assert rescaled.p_value == plain.p_value


def test_a_constant_reference_feature_is_not_divided_by_zero() -> None:
    rng = np.random.default_rng(0)
    ref = np.vstack([np.full(50, 3.0), rng.normal(size=50)])
    cur = np.vstack([np.full(40, 4.0), rng.normal(size=40)])
    result = run(ref, cur, permutations=30)
    assert result is not None and np.isfinite(result.statistic) and np.isfinite(result.bandwidth)
    assert result.drifted  # the constant moved by one unit: every live row differs from every reference row


def test_windows_are_subsampled_to_max_rows_reproducibly() -> None:
    ref, cur = correlated(400, 0.0, 1), correlated(50, 0.0, 2)
    first = run(ref, cur, max_rows=100, seed=5)
    assert first is not None and (first.reference_rows, first.current_rows) == (100, 50)
    assert run(ref, cur, max_rows=100, seed=5) == first
    others = {run(ref, cur, max_rows=100, seed=s).statistic for s in range(6, 9)}  # type: ignore[union-attr]
    assert len(others | {first.statistic}) > 1  # the seed picks the rows


def test_no_feature_with_values_in_both_windows_gives_no_result() -> None:
    ref = np.vstack([np.full(20, np.nan), np.arange(20.0)])
    cur = np.vstack([np.arange(20.0), np.full(20, np.nan)])
    assert run(ref, cur) is None
    assert run(np.empty((0, 20)), np.empty((0, 20)), []) is None


def test_fewer_than_two_complete_rows_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    ref = correlated(30, 0.0, 1)
    cur = correlated(5, 0.0, 2)
    cur[0, 1:] = np.nan  # one complete live row left
    with caplog.at_level(logging.WARNING, logger="airflow_mlops.drift.multivariate"):
        assert run(ref, cur) is None
    assert "MMD skipped: fewer than 2 complete rows (30 reference, 1 current)" in caplog.text
