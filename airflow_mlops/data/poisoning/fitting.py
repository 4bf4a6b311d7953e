"""The screen's gradient-boosting models and how they are fitted: out of fold on the batch, or
cross-fitted on the reference (classifiers for ``label_issues``, regressors for its regression
form)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.data.poisoning.features import Encoder

# Model fits on fewer rows than this use one thread.
SMALL_FIT_ROWS = 20_000


def _hgb(encoder: Encoder, seed: int, *, regression: bool = False) -> Any:
    """The screen's gradient-boosting model: a classifier, or a regressor for a regression target."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return model(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=1.0,
        categorical_features=encoder.categorical_mask if any(encoder.categorical_mask) else None,
        early_stopping=False,
        random_state=seed,
    )


def _fit_threads(rows: int, max_fit_rows: int) -> int | None:
    # Small fits run faster on one thread (and do not spin on a busy machine).
    return 1 if min(rows, max_fit_rows) < SMALL_FIT_ROWS else None


def _predict_into(out: np.ndarray, rows: Any, model: Any, x: np.ndarray, weight: float = 1.0) -> None:
    """Add ``weight`` x the model's probabilities to ``out[rows]`` (in the columns of its classes:
    a fold's model may not have seen every class)."""
    import numpy as np

    cols = model.classes_.astype(np.int64)
    out[np.ix_(np.arange(len(out))[rows], cols)] += weight * model.predict_proba(x)


def oof_proba(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    encoder: Encoder,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities: each fold predicted by a model fitted on (a sample of) the rest.

    With ``groups``, the folds are stratified over each group's first row and every row goes to
    its group's fold (so no copy is judged by a model that was trained on its twin)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    proba = np.zeros((len(x), k))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if groups is None:
        splits = list(splitter.split(x, y))
    else:
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        fold_of_group = np.empty(len(first), dtype=np.int64)
        for f, (_, test) in enumerate(splitter.split(first[:, None], y[first])):
            fold_of_group[test] = f
        fold = fold_of_group[inverse.ravel()]
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(folds)]
    with threadpool_limits(limits=_fit_threads(len(x), max_fit_rows), user_api="openmp"):
        for train, test in splits:
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed).fit(x[train], y[train])
            _predict_into(proba, test, model, x[test])
    return proba


def crossfit_proba(
    rx: np.ndarray,
    ry: np.ndarray,
    k: int,
    encoder: Encoder,
    bx: np.ndarray,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``folds`` models cross-fitted on the reference ``rx``, ``ry``: the reference's out-of-fold
    probabilities, and the batch ``bx``'s average probabilities over all the models."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    ref_proba = np.zeros((len(rx), k))
    batch_proba = np.zeros((len(bx), k))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=_fit_threads(len(rx), max_fit_rows), user_api="openmp"):
        for train, test in splitter.split(rx, ry):
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed).fit(rx[train], ry[train])
            _predict_into(ref_proba, test, model, rx[test])
            _predict_into(batch_proba, slice(None), model, bx, 1.0 / folds)
    return ref_proba, batch_proba


def oof_predict(
    x: np.ndarray,
    y: np.ndarray,
    encoder: Encoder,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
    groups: np.ndarray,
) -> np.ndarray:
    """Out-of-fold regression predictions; every copy of a row (``groups``) in one fold."""
    import numpy as np
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    out = np.zeros(len(x))
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros((n_groups, 1)))):
        fold_of_group[test] = f
    fold = fold_of_group[inverse.ravel()]
    with threadpool_limits(limits=_fit_threads(len(x), max_fit_rows), user_api="openmp"):
        for f in range(folds):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            out[test] = _hgb(encoder, seed, regression=True).fit(x[train], y[train]).predict(x[test])
    return out


def crossfit_predict(
    rx: np.ndarray,
    ry: np.ndarray,
    encoder: Encoder,
    bx: np.ndarray,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``folds`` regressors cross-fitted on the reference: its out-of-fold predictions, and the
    batch's average prediction over all of them."""
    import numpy as np
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    ref_pred = np.zeros(len(rx))
    batch_pred = np.zeros(len(bx))
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=_fit_threads(len(rx), max_fit_rows), user_api="openmp"):
        for train, test in splitter.split(rx):
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed, regression=True).fit(rx[train], ry[train])
            ref_pred[test] = model.predict(rx[test])
            if len(bx):
                batch_pred += model.predict(bx) / folds
    return ref_pred, batch_pred
