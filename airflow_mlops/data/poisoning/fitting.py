"""The screen's models and how they are fitted: classifiers for ``label_issues`` out of fold on the
batch and the reference together (:func:`pooled_oof_proba`); regressors for its regression form
(:class:`LinearThenTrees`: a robust linear start, trees on what it leaves) out of fold on the
batch and the reference together (:func:`oof_predict`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.data.poisoning.features import Encoder

# Model fits on fewer rows than this use one thread.
SMALL_FIT_ROWS = 20_000
# The regressors' loss: the absolute error, whose fit is the conditional median. A poisoned
# target (a share of swapped or shifted targets) pulls a mean as far as it lies; a median
# hardly moves while the clean rows are the majority at a point, so the models learn the clean
# relation and the poisoned rows keep their large residuals.
REGRESSION_LOSS = "absolute_error"
# A regressor starts from a robust linear fit (on at most this many of its rows) and the trees
# learn what it leaves: trees alone predict a constant beyond the targets they split on, so
# on a target with a linear trend every row at either end of its range kept a residual of the
# trend's step, and the largest and smallest clean targets were flagged (1.4 to 2.4 % of clean
# linear batches of 150 to 1,000 rows).
LINEAR_FIT_ROWS = 5_000
# The linear start's numeric features: scaled by their 5 to 95 % range around the median and
# held within this many such ranges of it, so a far value in a heavy tail moves the start no
# further than a value at the edge of the bulk would.
LINEAR_CLIP = 2.0


def _hgb(encoder: Encoder, seed: int, *, regression: bool = False) -> Any:
    """The screen's gradient-boosting model: a classifier, or a regressor (loss
    :data:`REGRESSION_LOSS`) for a regression target."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if regression:
        return HistGradientBoostingRegressor(loss=REGRESSION_LOSS, **_hgb_settings(encoder, seed))
    return HistGradientBoostingClassifier(**_hgb_settings(encoder, seed))


def _hgb_settings(encoder: Encoder, seed: int) -> dict[str, Any]:
    return dict(
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


def _linear(encoder: Encoder, seed: int, rows: int = 200) -> Any:
    """The screen's second label model: a logistic regression on quantile-normalised features
    (missing values imputed with an indicator, categorical codes one-hot). Less confident than
    the trees where data are few, and wrong in other places: the two disagree on the rows a
    small or noisy fold misleads one of them about, and agree on a row whose label is wrong."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    scale = QuantileTransformer(
        n_quantiles=max(2, min(200, rows)), output_distribution="normal", random_state=seed
    )
    return make_pipeline(_linear_features(encoder, scale), LogisticRegression(C=1.0, max_iter=500))


def _clip(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.clip(x, -LINEAR_CLIP, LINEAR_CLIP)


class LinearThenTrees:
    """The screen's regressor: a Huber regression (robust to a minority of poisoned targets) on
    robust-scaled, clipped numeric features (:data:`LINEAR_CLIP`; missing values imputed with an
    indicator) and one-hot categories, fitted on at most :data:`LINEAR_FIT_ROWS` rows; then
    gradient-boosted trees (loss :data:`REGRESSION_LOSS`) on its residuals. The prediction is
    the sum: a linear trend carries on to the ends of the targets, the trees learn the rest."""

    def __init__(self, encoder: Encoder, seed: int) -> None:
        self.encoder, self.seed = encoder, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> LinearThenTrees:
        import warnings

        import numpy as np
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import HuberRegressor
        from sklearn.pipeline import FunctionTransformer, make_pipeline
        from sklearn.preprocessing import RobustScaler

        rows = np.arange(len(x))
        if len(x) > LINEAR_FIT_ROWS:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(x), LINEAR_FIT_ROWS, replace=False))
        # Huber's threshold is in the target's own units: fit a centred, scaled target.
        q25, self.center, q75 = (float(v) for v in np.quantile(y[rows], [0.25, 0.5, 0.75]))
        self.scale = (q75 - q25) / 1.349 or float(np.std(y[rows])) or 1.0
        scaled = make_pipeline(RobustScaler(quantile_range=(5.0, 95.0)), FunctionTransformer(_clip))
        self.linear = make_pipeline(_linear_features(self.encoder, scaled), HuberRegressor(max_iter=200))
        with warnings.catch_warnings():
            # a start that stops short of convergence is still a start: the trees fit the rest
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.linear.fit(x[rows], (y[rows] - self.center) / self.scale)
        self.trees = _hgb(self.encoder, self.seed, regression=True).fit(x, y - self._start(x))
        return self

    def _start(self, x: np.ndarray) -> np.ndarray:
        return self.center + self.scale * self.linear.predict(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._start(x) + self.trees.predict(x)


def _linear_features(encoder: Encoder, numeric_scale: Any) -> Any:
    """The linear models' features: numeric ones imputed with the median (and an indicator) then
    ``numeric_scale``, categorical codes one-hot (a missing one its own level)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    mask = list(encoder.categorical_mask)
    numeric = [i for i, c in enumerate(mask) if not c]
    categorical = [i for i, c in enumerate(mask) if c]
    parts: list[tuple[str, Any, list[int]]] = []
    if numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    numeric_scale,
                ),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            )
        )
    return ColumnTransformer(parts)


def pooled_oof_proba(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    encoder: Encoder,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
    groups: np.ndarray | None = None,
    reference_x: np.ndarray | None = None,
    reference_y: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold class probabilities of the batch and, when given, of the reference, from
    models fitted on both: fold ``f``'s models learn from the batch's other folds *and* the
    reference's other folds, and score the batch's and the reference's fold ``f``. No row is
    scored by a model that saw it, and a clean batch row and a reference row are scored alike
    (exchangeable): the reference's scores are what clean rows look like to these models.

    Each fold's probability is the average of the gradient-boosted trees and the logistic
    regression (:func:`_linear`). At most ``max_fit_rows`` rows train each fold's models (the
    batch's and the reference's rows in proportion); every row is scored. With ``groups`` every
    copy of a row falls in its group's fold."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    fold = _fold_of_rows(y, folds, seed, groups)
    proba = np.zeros((len(x), k))
    ref_proba = None
    ref_fold = None
    if reference_x is not None and reference_y is not None and len(reference_x):
        ref_proba = np.zeros((len(reference_x), k))
        ref_fold = _fold_of_rows(reference_y, folds, seed + 1, None)
    # The rows each fold's models learn from decide the threads (not the rows scored).
    rows = (len(x) + (0 if reference_x is None else len(reference_x))) * (folds - 1) // folds
    # A logistic regression that stops short of convergence still ranks rows (its
    # probabilities are averaged with the trees'): not worth a warning per fold.
    with (
        threadpool_limits(limits=_fit_threads(rows, max_fit_rows), user_api="openmp"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for f in range(folds):
            train_x, train_y = [x[fold != f]], [y[fold != f]]
            if ref_fold is not None:
                assert reference_x is not None and reference_y is not None
                train_x.append(reference_x[ref_fold != f])
                train_y.append(reference_y[ref_fold != f])
            tx, ty = np.concatenate(train_x), np.concatenate(train_y)
            if len(tx) > max_fit_rows:
                keep = np.sort(rng.choice(len(tx), size=max_fit_rows, replace=False))
                tx, ty = tx[keep], ty[keep]
            models = [_hgb(encoder, seed).fit(tx, ty), _linear(encoder, seed, len(tx)).fit(tx, ty)]
            test = np.flatnonzero(fold == f)
            ref_test = None if ref_fold is None else np.flatnonzero(ref_fold == f)
            for model in models:
                _predict_into(proba, test, model, x[test], 1.0 / len(models))
                if ref_test is not None:
                    _predict_into(ref_proba, ref_test, model, reference_x[ref_test], 1.0 / len(models))  # type: ignore[arg-type,index]
    return proba, ref_proba


def _fold_of_rows(y: np.ndarray, folds: int, seed: int, groups: np.ndarray | None) -> np.ndarray:
    """The fold of each row: stratified by label; with ``groups``, by each group's first row,
    every copy in its group's fold."""
    import warnings

    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if groups is None:
        first, inverse = np.arange(len(y)), np.arange(len(y))
    else:
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    fold_of_group = np.empty(len(first), dtype=np.int64)
    with warnings.catch_warnings():
        # A class with fewer rows than folds (the reference may hold a few of a rare class): its
        # rows go to some of the folds, which is all that can be done with them.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for f, (_, test) in enumerate(splitter.split(np.zeros((len(first), 1)), y[first])):
            fold_of_group[test] = f
    return fold_of_group[inverse.ravel()]


def oof_predict(
    x: np.ndarray,
    y: np.ndarray,
    encoder: Encoder,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
    groups: np.ndarray,
    reference_x: np.ndarray | None = None,
    reference_y: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold regression predictions of the batch and, when given, of the reference, from
    regressors fitted on both: fold ``f``'s regressor learns from the batch's other folds *and*
    the reference's other folds, and predicts the batch's and the reference's fold ``f`` (as
    :func:`pooled_oof_proba` does for the classifiers). No row is predicted by a model that saw
    it, and a clean batch row and a reference row are predicted alike. Every copy of a row
    (``groups``) falls in one fold; the batch rows in ``exclude`` (the first pass's suspects) are
    predicted but learnt from by no model. At most ``max_fit_rows`` rows train each fold's model."""
    import numpy as np
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    out = np.zeros(len(x))
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    if n_groups >= folds:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(splitter.split(np.zeros((n_groups, 1)))):
            fold_of_group[test] = f
    else:  # fewer distinct batch rows than folds (only with a reference): one fold each
        fold_of_group[:] = np.arange(n_groups)
    fold = fold_of_group[inverse.ravel()]
    learn = np.ones(len(x), dtype=bool) if exclude is None else ~exclude
    ref_out = ref_fold = None
    if reference_x is not None and reference_y is not None and len(reference_x):
        ref_out = np.zeros(len(reference_x))
        ref_fold = np.empty(len(reference_x), dtype=np.int64)
        for f, (_, test) in enumerate(
            KFold(n_splits=folds, shuffle=True, random_state=seed + 1).split(reference_x)
        ):
            ref_fold[test] = f
    rows = (len(x) + (0 if ref_out is None else len(ref_out))) * (folds - 1) // folds
    with threadpool_limits(limits=_fit_threads(rows, max_fit_rows), user_api="openmp"):
        for f in range(folds):
            train = np.flatnonzero((fold != f) & learn)
            tx, ty = x[train], y[train]
            if ref_fold is not None:
                assert reference_x is not None and reference_y is not None
                tx = np.concatenate([tx, reference_x[ref_fold != f]])
                ty = np.concatenate([ty, reference_y[ref_fold != f]])
            if len(tx) > max_fit_rows:
                keep = np.sort(rng.choice(len(tx), size=max_fit_rows, replace=False))
                tx, ty = tx[keep], ty[keep]
            model = LinearThenTrees(encoder, seed).fit(tx, ty)
            test = np.flatnonzero(fold == f)
            if len(test):
                out[test] = model.predict(x[test])
            if ref_fold is not None and ref_out is not None:
                ref_test = np.flatnonzero(ref_fold == f)
                ref_out[ref_test] = model.predict(reference_x[ref_test])  # type: ignore[index]
    return out, ref_out
