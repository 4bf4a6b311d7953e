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
    """The screen's models replaced by 1-nearest-neighbour ones, which repeat what they saw."""

    def model(encoder: Any, seed: int, *, regression: bool = False) -> Any:
        return KNeighborsRegressor(n_neighbors=1) if regression else KNeighborsClassifier(n_neighbors=1)

    monkeypatch.setattr(fitting, "_hgb", model)
    monkeypatch.setattr(fitting, "_linear", lambda encoder, seed, rows=0: KNeighborsClassifier(n_neighbors=1))


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


def test_pooled_probabilities_learn_the_signal_with_and_without_a_reference() -> None:
    x, y, encoder = _data(0, n=300)
    alone, none = fitting.pooled_oof_proba(x, y, 3, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0)
    assert none is None and alone.shape == (300, 3) and np.allclose(alone.sum(axis=1), 1)
    assert (alone.argmax(axis=1) == y).mean() > 0.7  # chance is 1/3
    proba, ref = fitting.pooled_oof_proba(
        x[:200], y[:200], 3, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0,
        reference_x=x[200:], reference_y=y[200:],
    )  # fmt: skip
    assert ref is not None and ref.shape == (100, 3) and np.allclose(ref.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y[:200]).mean() > 0.7 and (ref.argmax(axis=1) == y[200:]).mean() > 0.7
    again, _ = fitting.pooled_oof_proba(x, y, 3, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0)
    np.testing.assert_array_equal(alone, again)


def test_the_linear_model_reads_missing_values_and_categories() -> None:
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"a": rng.normal(size=200), "c": rng.choice(["x", "y", "z"], 200)})
    y = ((frame["c"] == "x") | (frame["a"] > 1)).to_numpy().astype(np.int64)
    frame.loc[::7, "a"] = np.nan
    encoder = Encoder.fit(frame, ["a", "c"])
    x = encoder.transform(frame)
    model = fitting._linear(encoder, 0, len(x)).fit(x, y)
    assert (model.predict(x) == y).mean() > 0.85
    assert fitting._linear(encoder, 0, 50)[0].transformers[0][1][-1].n_quantiles == 50


def test_no_row_is_scored_by_a_model_that_saw_it_or_its_copy(nearest) -> None:
    """A 1-NN model repeats a seen row's label: out of fold, a row is never its own neighbour;
    with groups, never its twin's either; a reference row neither."""
    x, y, groups = _twins(1)
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    split, _ = fitting.pooled_oof_proba(x, y, 2, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0)
    # The twin lands in another fold 2 times in 3 and then gives the label away (expected 5/6).
    assert (split.argmax(axis=1) == y).mean() > 0.72
    grouped, _ = fitting.pooled_oof_proba(
        x, y, 2, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=groups
    )
    assert 0.35 < (grouped.argmax(axis=1) == y).mean() < 0.65  # the random label is not learnable
    np.testing.assert_array_equal(grouped[0::2], grouped[1::2])
    # The batch's copies of the reference's rows: the reference teaches the batch's models (a
    # copy is given away unless its twin is in the same fold), its own rows are scored out of fold.
    rx, ry = x[0::2], y[0::2]
    batch, ref = fitting.pooled_oof_proba(
        rx, ry, 2, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, reference_x=rx.copy(), reference_y=ry
    )
    assert ref is not None
    assert (batch.argmax(axis=1) == ry).mean() > 0.55
    assert (ref.argmax(axis=1) == ry).mean() > 0.55  # the batch's copies teach the reference's too


def test_fits_on_more_rows_than_max_fit_rows_use_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []

    def recording(make: Any) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            model = make(*args, **kwargs)
            fit = model.fit

            def fit_and_count(x: np.ndarray, y: np.ndarray) -> Any:
                sizes.append(len(x))
                return fit(x, y)

            model.fit = fit_and_count
            return model

        return build

    monkeypatch.setattr(fitting, "_hgb", recording(fitting._hgb))
    monkeypatch.setattr(fitting, "_linear", recording(fitting._linear))
    x, y, encoder = _data(2, n=150)
    proba, ref = fitting.pooled_oof_proba(
        x[:100],
        y[:100],
        3,
        encoder,
        folds=FOLDS,
        max_fit_rows=60,
        seed=0,
        reference_x=x[100:],
        reference_y=y[100:],
    )
    assert sizes == [60] * (2 * FOLDS) and np.allclose(proba.sum(axis=1), 1) and ref is not None
    sizes.clear()
    fitting.oof_predict(x, x[:, 0], encoder, folds=FOLDS, max_fit_rows=60, seed=0, groups=np.arange(len(x)))
    assert sizes == [60] * FOLDS


def test_out_of_fold_regression_learns_the_signal_and_keeps_copies_in_one_fold(nearest) -> None:
    x, y, groups = _twins(5)
    target = y + np.random.default_rng(5).normal(0, 0.01, len(y))
    target[1::2] = target[0::2]
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    split, no_ref = fitting.oof_predict(
        x, target, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=np.arange(len(x))
    )
    assert no_ref is None
    assert np.mean(np.abs(split - target) < 0.05) > 0.72  # a twin in another fold gives it away
    grouped, _ = fitting.oof_predict(
        x, target, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=groups
    )
    assert np.mean(np.abs(grouped - target) < 0.05) < 0.65
    np.testing.assert_array_equal(grouped[0::2], grouped[1::2])


def test_the_regressor_carries_a_linear_trend_past_the_targets_it_saw() -> None:
    """Trees alone predict the edge of what they saw; the linear start carries the trend on, and
    a tenth of wild targets does not bend it (Huber)."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(400, 2))
    y = 10 * x[:, 0] + rng.normal(0, 0.1, 400)
    y[:40] += rng.choice([-1, 1], 40) * 60
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    model = fitting.LinearThenTrees(encoder, 0).fit(x, y)
    trees = fitting._hgb(encoder, 0, regression=True).fit(x, y)
    beyond = np.array([[1.5, 0.0], [-1.5, 0.0]])
    np.testing.assert_allclose(model.predict(beyond), [15.0, -15.0], atol=1.5)
    assert np.abs(trees.predict(beyond)).max() < 11
    inside = rng.uniform(-1, 1, size=(200, 2))
    assert np.median(np.abs(model.predict(inside) - 10 * inside[:, 0])) < 0.5


def test_the_linear_start_is_held_within_the_bulk_of_a_heavy_tailed_feature() -> None:
    """A far value of a heavy-tailed feature moves the linear start no further than a value a
    couple of the bulk's ranges out would: the clip, not the raw value, sets it."""
    rng = np.random.default_rng(8)
    x = np.column_stack([rng.normal(size=500), rng.normal(size=500)])
    y = 2 * x[:, 0] + rng.normal(0, 0.1, 500)
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    model = fitting.LinearThenTrees(encoder, 0).fit(x, y)
    far, farther = model._start(np.array([[1e3, 0.0]])), model._start(np.array([[1e6, 0.0]]))
    assert far == pytest.approx(farther) and abs(float(far[0])) < 30


def test_regression_fits_learn_a_linear_target() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    y = 3 * x[:, 0] - x[:, 1] + rng.normal(0, 0.1, 300)
    encoder = Encoder.fit(pd.DataFrame(x, columns=["a", "b"]), ["a", "b"])
    oof, _ = fitting.oof_predict(
        x, y, encoder, folds=FOLDS, max_fit_rows=10_000, seed=0, groups=np.arange(300)
    )
    assert np.corrcoef(oof, y)[0, 1] > 0.9
    # With a reference: learnt from both, each row of either predicted by a model that did not see it.
    batch_pred, ref_pred = fitting.oof_predict(
        x[200:],
        y[200:],
        encoder,
        folds=FOLDS,
        max_fit_rows=10_000,
        seed=0,
        groups=np.arange(100),
        reference_x=x[:200],
        reference_y=y[:200],
    )
    assert ref_pred is not None and ref_pred.shape == (200,) and batch_pred.shape == (100,)
    assert np.corrcoef(ref_pred, y[:200])[0, 1] > 0.9 and np.corrcoef(batch_pred, y[200:])[0, 1] > 0.9
    # The rows left out of the learning are still predicted; an empty batch is predicted by none.
    left_out, _ = fitting.oof_predict(
        x,
        y,
        encoder,
        folds=FOLDS,
        max_fit_rows=10_000,
        seed=0,
        groups=np.arange(300),
        exclude=np.arange(300) < 100,
    )
    assert np.isfinite(left_out).all() and np.corrcoef(left_out, y)[0, 1] > 0.9
    empty, ref_only = fitting.oof_predict(
        x[:0],
        y[:0],
        encoder,
        folds=FOLDS,
        max_fit_rows=10_000,
        seed=0,
        groups=np.arange(0),
        reference_x=x[:200],
        reference_y=y[:200],
    )
    assert empty.shape == (0,) and ref_only is not None and ref_only.shape == (200,)
