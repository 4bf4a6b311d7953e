"""The screen's gradient-boosting fits (``airflow_mlops/data/poisoning/fitting.py``): out of fold
on the batch or cross-fitted on the reference, and that no row is ever judged by a model that saw
it (or its copy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from airflow_mlops.data.poisoning import fitting
from airflow_mlops.data.poisoning.features import Encoder

FOLDS = 3


def _data(seed: int, n: int = 240) -> tuple[np.ndarray, np.ndarray, Encoder]:
    """Two informative features and a class that follows them (0/1/2 by the sum's tercile)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    s = x.sum(axis=1)
    y = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3])).astype(np.int64)
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    return x, y, encoder


def _twins(seed: int, n: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row twice, with a random label (the same for both copies): only a model that saw a
    row's twin can predict it."""
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.normal(size=(n, 2)), 2, axis=0)
    y = np.repeat(rng.integers(0, 2, n), 2)
    return x, y, np.repeat(np.arange(n), 2)


@pytest.fixture
def nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen's model replaced by a 1-nearest-neighbour one, which repeats what it saw."""

    def model(encoder: Any, seed: int, *, regression: bool = False) -> Any:
        return KNeighborsRegressor(n_neighbors=1) if regression else KNeighborsClassifier(n_neighbors=1)

    monkeypatch.setattr(fitting, "_hgb", model)


def test_the_model_is_a_classifier_or_a_regressor_with_the_categorical_columns() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    numeric = Encoder.fit(pd.DataFrame({"a": [1.0, 2.0]}), ["a"])
    assert isinstance(fitting._hgb(numeric, 0), HistGradientBoostingClassifier)
    model = fitting._hgb(numeric, 7, regression=True)
    assert isinstance(model, HistGradientBoostingRegressor)
    assert model.random_state == 7 and model.categorical_features is None and model.early_stopping is False
    mixed = Encoder.fit(pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"]}), ["a", "c"])
    assert fitting._hgb(mixed, 0).categorical_features == [False, True]


def test_small_fits_run_on_one_thread() -> None:
    assert fitting._fit_threads(100, 10**6) == 1
    assert fitting._fit_threads(10**6, 100) == 1  # the fit is on a sample of max_fit_rows
    assert fitting._fit_threads(fitting.SMALL_FIT_ROWS, fitting.SMALL_FIT_ROWS) is None


def test_a_fold_model_missing_a_class_writes_into_that_class_columns() -> None:
    model = KNeighborsClassifier(n_neighbors=1).fit(np.array([[0.0], [1.0]]), np.array([0, 2]))
    out = np.zeros((3, 3))
    fitting._predict_into(out, np.array([0, 2]), model, np.array([[0.1], [0.9]]), weight=0.5)
    assert out.tolist() == [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]


def test_out_of_fold_probabilities_learn_the_signal() -> None:
    x, y, encoder = _data(0)
    proba = fitting.oof_proba(x, y, 3, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0)
    assert proba.shape == (len(x), 3) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y).mean() > 0.7  # chance is 1/3
    again = fitting.oof_proba(x, y, 3, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0)
    np.testing.assert_array_equal(proba, again)


def test_out_of_fold_never_predicts_a_row_with_a_model_that_saw_it(nearest) -> None:
    """A 1-NN model repeats a seen row's label: out of fold, a row is never its own neighbour; with
    groups, never its twin's either."""
    x, y, groups = _twins(1)
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    split = fitting.oof_proba(x, y, 2, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0)
    # The twin lands in another fold 2 times in 3 and then gives the label away (expected 5/6).
    assert (split.argmax(axis=1) == y).mean() > 0.72
    grouped = fitting.oof_proba(x, y, 2, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=groups)
    assert 0.35 < (grouped.argmax(axis=1) == y).mean() < 0.65  # the random label is not learnable
    # Each copy pair was predicted by one model: both copies get the same probabilities.
    np.testing.assert_array_equal(grouped[0::2], grouped[1::2])


def test_fits_on_more_rows_than_max_fit_rows_use_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real = fitting._hgb

    def recording(encoder: Any, seed: int, *, regression: bool = False) -> Any:
        model = real(encoder, seed, regression=regression)
        fit = model.fit

        def fit_and_count(x: np.ndarray, y: np.ndarray) -> Any:
            sizes.append(len(x))
            return fit(x, y)

        model.fit = fit_and_count
        return model

    monkeypatch.setattr(fitting, "_hgb", recording)
    x, y, encoder = _data(2, n=150)
    proba = fitting.oof_proba(x, y, 3, encoder, folds=FOLDS, max_fit_rows=60, seed=0)
    assert sizes == [60] * FOLDS and np.allclose(proba.sum(axis=1), 1)
    sizes.clear()
    fitting.oof_predict(x, x[:, 0], encoder, folds=FOLDS, max_fit_rows=60, seed=0, groups=np.arange(len(x)))
    assert sizes == [60] * FOLDS


def test_cross_fitting_on_the_reference(nearest) -> None:
    """Each reference row is scored by the one model that did not see it; a batch row by the
    average of all of them (so a batch copy of a reference row is seen by folds - 1 of them)."""
    x, y, _ = _twins(3)
    rx, ry = x[0::2], y[0::2]  # one copy of each: random labels nothing can predict out of fold
    encoder = Encoder.fit(pd.DataFrame(rx, columns=["a", "b"]), ["a", "b"])
    ref_proba, batch_proba = fitting.crossfit_proba(
        rx, ry, 2, encoder, rx, folds=FOLDS, max_fit_rows=10_000, seed=0
    )
    assert ref_proba.shape == batch_proba.shape == (len(rx), 2)
    assert np.allclose(ref_proba.sum(axis=1), 1) and np.allclose(batch_proba.sum(axis=1), 1)
    assert 0.35 < (ref_proba.argmax(axis=1) == ry).mean() < 0.65
    own = batch_proba[np.arange(len(rx)), ry]
    assert np.all(own >= (FOLDS - 1) / FOLDS - 1e-9)


def test_cross_fitted_probabilities_on_new_rows_learn_the_signal() -> None:
    x, y, encoder = _data(4, n=300)
    ref_proba, batch_proba = fitting.crossfit_proba(
        x[:200], y[:200], 3, encoder, x[200:], folds=FOLDS, max_fit_rows=10_000, seed=0
    )
    assert (ref_proba.argmax(axis=1) == y[:200]).mean() > 0.7
    assert (batch_proba.argmax(axis=1) == y[200:]).mean() > 0.7


def test_out_of_fold_regression_learns_the_signal_and_keeps_copies_in_one_fold(nearest) -> None:
    x, y, groups = _twins(5)
    target = y + np.random.default_rng(5).normal(0, 0.01, len(y))
    target[1::2] = target[0::2]
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    split = fitting.oof_predict(
        x, target, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=np.arange(len(x))
    )
    assert np.mean(np.abs(split - target) < 0.05) > 0.72  # a twin in another fold gives it away
    grouped = fitting.oof_predict(x, target, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=groups)
    assert np.mean(np.abs(grouped - target) < 0.05) < 0.65
    np.testing.assert_array_equal(grouped[0::2], grouped[1::2])


def test_regression_fits_learn_a_linear_target() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    y = 3 * x[:, 0] - x[:, 1] + rng.normal(0, 0.1, 300)
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    oof = fitting.oof_predict(x, y, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=np.arange(300))
    assert np.corrcoef(oof, y)[0, 1] > 0.9
    ref_pred, batch_pred = fitting.crossfit_predict(
        x[:200], y[:200], encoder, x[200:], folds=FOLDS, max_fit_rows=10_000, seed=0
    )
    assert ref_pred.shape == (200,) and batch_pred.shape == (100,)
    assert np.corrcoef(ref_pred, y[:200])[0, 1] > 0.9 and np.corrcoef(batch_pred, y[200:])[0, 1] > 0.9
    _, empty = fitting.crossfit_predict(
        x[:200], y[:200], encoder, x[:0], folds=FOLDS, max_fit_rows=10_000, seed=0
    )
    assert empty.shape == (0,)
