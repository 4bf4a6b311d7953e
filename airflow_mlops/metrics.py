"""The one vocabulary of metrics: every metric the spec, gates, monitor, rollout, fairness,
robustness and reports know, defined once -- its tasks, direction, range and what it needs.

The table is plain data (the spec models and the JSON Schema read it without importing
scikit-learn); :func:`compute_metrics` computes them with scikit-learn, imported when called.

What each task's model output is (see :mod:`airflow_mlops.tasks` for the targets):

- ``binary``: the positive class's probability per row (1-D); the thresholded metrics predict
  positive where ``score >= threshold``;
- ``multiclass``: class probabilities, shape ``(rows, classes)``; the predicted class is the
  most probable one;
- ``regression``: the predicted value per row (1-D).

The curves the evaluation report plots are computed here too, from the same outputs
(:func:`model_curves`, by task): :func:`score_curves` (ROC and precision-recall curves, score
histograms and the confusion matrix of a binary model, all from one pass over the sorted scores:
:func:`threshold_counts`), :func:`class_curves` (a multiclass confusion matrix) and
:func:`residual_curves` (a regression's residuals). They are plain, JSON-safe data bounded in size;
drawing them is :mod:`airflow_mlops.reports`' business.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.exceptions import DataError
from airflow_mlops.tasks import TASKS

if TYPE_CHECKING:
    import numpy as np

Needs = Literal["scores", "labels", "values"]


@dataclass(frozen=True)
class Metric:
    """One metric: where it applies and how to read it."""

    name: str
    tasks: frozenset[str]
    higher_is_better: bool
    low: float
    high: float
    #: ``scores``: ranks probabilities (no threshold); ``labels``: compares predicted classes
    #: (binary: at the operating threshold); ``values``: compares regression predictions.
    needs: Needs
    description: str

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def worse(self, value: float, than: float) -> bool:
        return value < than if self.higher_is_better else value > than

    def drop(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before`` (positive: worse), whatever the direction."""
        return before - after if self.higher_is_better else after - before


_B, _M, _R = frozenset({"binary"}), frozenset({"multiclass"}), frozenset({"regression"})
_C = _B | _M
_INF = math.inf

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", _B, True, 0, 1, "scores", "area under the ROC curve (ranking of positives)"),
        Metric("pr_auc", _B, True, 0, 1, "scores", "average precision (area under the PR curve)"),
        Metric("f1", _B, True, 0, 1, "labels", "F1 of the positive class at the operating threshold"),
        Metric("precision", _B, True, 0, 1, "labels", "precision of the positive class at the threshold"),
        Metric("recall", _B, True, 0, 1, "labels", "recall of the positive class at the threshold"),
        Metric("accuracy", _C, True, 0, 1, "labels", "share of rows whose predicted class is right"),
        Metric("balanced_accuracy", _C, True, 0, 1, "labels", "mean recall over the classes"),
        Metric("log_loss", _C, False, 0, _INF, "scores", "cross-entropy of the predicted probabilities"),
        Metric("f1_macro", _M, True, 0, 1, "labels", "unweighted mean of the per-class F1"),
        Metric("f1_weighted", _M, True, 0, 1, "labels", "per-class F1 weighted by class support"),
        Metric("roc_auc_ovr", _M, True, 0, 1, "scores", "one-vs-rest ROC AUC, macro-averaged"),
        Metric("rmse", _R, False, 0, _INF, "values", "root mean squared error"),
        Metric("mae", _R, False, 0, _INF, "values", "mean absolute error"),
        Metric("r2", _R, True, -_INF, 1, "values", "coefficient of determination"),
        Metric("mape", _R, False, 0, _INF, "values", "mean absolute percentage error (a share: 0.1 is 10 %)"),
    )
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
#: Each task's metrics, in table order (the ones reports show).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    task: tuple(name for name, m in METRICS.items() if task in m.tasks) for task in TASKS
}
#: The headline metric of each task (the one a report leads with; the monitor's default).
PRIMARY_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
LOWER_IS_BETTER: frozenset[str] = frozenset(name for name, m in METRICS.items() if not m.higher_is_better)


def metric(name: str) -> Metric:
    """The metric called ``name``.

    :raises KeyError: an unknown name (the message lists the known ones).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}") from None


def tasks_of(names: Iterable[str]) -> set[str]:
    """The tasks every one of ``names`` applies to (empty: no task takes them all)."""
    allowed: set[str] = set(TASKS)
    for name in names:
        if name in METRICS:
            allowed &= METRICS[name].tasks
    return allowed


def foreign_metrics(task: str, names: Iterable[str]) -> list[str]:
    """The metrics of ``names`` that do not apply to ``task``."""
    return [n for n in names if n in METRICS and task not in METRICS[n].tasks]


def compute_metrics(
    task: str,
    y_true: Any,
    output: Any,
    *,
    threshold: float = 0.5,
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """The ``task``'s metrics (or just ``names``) of a model's ``output`` against ``y_true``.

    :param y_true: the target as :func:`airflow_mlops.tasks.encode_target` gives it.
    :param output: the model's output for the task (see the module docstring).
    :param threshold: binary only: a row is predicted positive where ``score >= threshold``.
    :returns: ``{name: value}``; NaN where a metric is undefined on these rows (ROC AUC of one
        class, R² of a constant target): a gate reading NaN cannot decide and blocks.
    :raises DataError: the arrays do not fit the task (lengths, shapes, non-finite scores).
    """
    import numpy as np

    wanted = list(TASK_METRICS[task] if names is None else names)
    foreign = foreign_metrics(task, wanted)
    if foreign:
        raise DataError(f"metric(s) {', '.join(foreign)} do not apply to a {task} task")
    y = np.asarray(y_true)
    out = np.asarray(output, dtype=np.float64)
    if len(y) != len(out):
        raise DataError(f"{len(y)} target value(s) but {len(out)} prediction(s)")
    if not np.isfinite(out).all():
        raise DataError("the model's output holds NaN or infinite values")
    if len(y) == 0:
        return {name: math.nan for name in wanted}
    if task == "binary":
        return _binary(y.astype(bool), out, threshold, wanted)
    if task == "multiclass":
        return _multiclass(y.astype(np.int64), out, wanted)
    return _regression(y.astype(np.float64), out, wanted)


def predicted_labels(task: str, output: Any, *, threshold: float = 0.5) -> np.ndarray:
    """Predicted classes: bool (binary, ``score >= threshold``), class indices (multiclass)."""
    import numpy as np

    out = np.asarray(output, dtype=np.float64)
    if task == "binary":
        return out >= threshold
    if task == "multiclass":
        return np.argmax(out, axis=1)
    raise DataError("a regression has values, not labels")


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float:
    """A scikit-learn metric, NaN where it is undefined (one class, a constant target)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(fn(*args, **kwargs))
        except ValueError:
            return math.nan
    return value


def _binary(y: np.ndarray, score: np.ndarray, threshold: float, names: list[str]) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as skm

    if score.ndim != 1:
        raise DataError(f"a binary model gives one score per row, got shape {score.shape}")
    predicted = score >= threshold
    both = bool(y.any()) and not bool(y.all())
    clipped = np.clip(score, 1e-15, 1 - 1e-15)
    compute = {
        "roc_auc": lambda: _safe(skm.roc_auc_score, y, score) if both else math.nan,
        "pr_auc": lambda: _safe(skm.average_precision_score, y, score) if y.any() else math.nan,
        "f1": lambda: _safe(skm.f1_score, y, predicted, zero_division=0.0),
        "precision": lambda: _safe(skm.precision_score, y, predicted, zero_division=0.0),
        "recall": lambda: _safe(skm.recall_score, y, predicted, zero_division=0.0) if y.any() else math.nan,
        "accuracy": lambda: float(np.mean(predicted == y)),
        "balanced_accuracy": lambda: _safe(skm.balanced_accuracy_score, y, predicted) if both else math.nan,
        "log_loss": lambda: float(-np.mean(np.where(y, np.log(clipped), np.log1p(-clipped)))),
    }
    return {name: compute[name]() for name in names}


def _multiclass(y: np.ndarray, proba: np.ndarray, names: list[str]) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as skm

    if proba.ndim != 2 or proba.shape[1] < 2:
        raise DataError(f"a multiclass model gives one probability per class, got shape {proba.shape}")
    k = proba.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise DataError(f"class indices outside the model's {k} classes")
    predicted = np.argmax(proba, axis=1)
    labels = np.arange(k)
    present = np.unique(y)
    # Probabilities renormalised (a model's softmax sums to 1 up to rounding; sklearn insists).
    normalised = np.clip(proba, 1e-15, None)
    normalised = normalised / normalised.sum(axis=1, keepdims=True)

    def ovr() -> float:
        if len(present) < 2:
            return math.nan
        if len(present) == k:
            return _safe(skm.roc_auc_score, y, normalised, multi_class="ovr", average="macro", labels=labels)
        # Classes absent from these rows have no ROC curve: average over the present ones.
        per_class = [_safe(skm.roc_auc_score, y == c, normalised[:, c]) for c in present]
        return float(np.mean(per_class))

    compute = {
        "accuracy": lambda: float(np.mean(predicted == y)),
        "balanced_accuracy": lambda: _safe(skm.balanced_accuracy_score, y, predicted),
        "log_loss": lambda: _safe(skm.log_loss, y, normalised, labels=labels),
        "f1_macro": lambda: _safe(
            skm.f1_score, y, predicted, average="macro", labels=present, zero_division=0.0
        ),
        "f1_weighted": lambda: _safe(
            skm.f1_score, y, predicted, average="weighted", labels=present, zero_division=0.0
        ),
        "roc_auc_ovr": ovr,
    }
    return {name: compute[name]() for name in names}


def _regression(y: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as skm

    if pred.ndim != 1:
        raise DataError(f"a regression model gives one value per row, got shape {pred.shape}")
    compute = {
        "rmse": lambda: float(np.sqrt(np.mean((y - pred) ** 2))),
        "mae": lambda: float(np.mean(np.abs(y - pred))),
        "r2": lambda: _safe(skm.r2_score, y, pred) if len(y) > 1 and np.ptp(y) > 0 else math.nan,
        "mape": lambda: _safe(skm.mean_absolute_percentage_error, y, pred),
    }
    return {name: compute[name]() for name in names}


def describe_metrics(metrics: Mapping[str, float]) -> str:
    """``roc_auc 0.912, f1 0.80`` -- for logs."""
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))


# --- curves (what the evaluation report plots) ---------------------------------------------------

#: A plotted curve keeps at most this many points (the first and last always among them).
MAX_CURVE_POINTS = 200
#: Bins of the score histograms (over [0, 1]) and of the residual histograms.
HISTOGRAM_BINS = 40
#: A multiclass confusion matrix shows at most this many rows and columns: with more classes,
#: the most frequent ones, and the rest folded into :data:`OTHER_CLASSES`.
MAX_MATRIX_CLASSES = 20
OTHER_CLASSES = "(other classes)"
#: A residual plot shows at most this many points (the largest residuals always among them).
MAX_SCATTER_POINTS = 500
_EXTREME_POINTS = 10


def _labels_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    y = np.asarray(y_true).astype(np.int64)
    score = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or y.shape != score.shape:
        raise DataError(f"labels and scores must be 1-D and of one length, got {y.shape} and {score.shape}")
    if not np.isfinite(score).all():
        raise DataError(f"{int((~np.isfinite(score)).sum())} score(s) are NaN or infinite")
    return y, score


def threshold_counts(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(true positives, false positives, threshold)`` at each distinct score, from high to low.

    Predicting positive where ``score >= threshold`` takes a whole run of tied scores at once, so
    there is one entry per distinct score. Every ROC and precision-recall point is a ratio of
    these counts (:func:`roc_points`, :func:`score_curves`).

    :raises DataError: mismatched inputs or non-finite scores.
    """
    import numpy as np

    y, score = _labels_scores(y_true, y_score)
    order = np.argsort(-score, kind="mergesort")
    sorted_score, sorted_y = score[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_score)), len(y) - 1]
    tps = np.cumsum(sorted_y)[last_of_run]
    fps = last_of_run + 1 - tps
    return tps, fps, sorted_score[last_of_run]


def roc_points(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full ROC curve: ``(fpr, tpr, thresholds)`` at every distinct score, from (0, 0) to (1, 1).

    The first point is (0, 0) with threshold ``inf``, as ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)`` returns it.

    :raises DataError: mismatched inputs, non-finite scores, or a single class (no curve).
    """
    import numpy as np

    y, score = _labels_scores(y_true, y_score)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise DataError("the ROC curve needs both classes in the holdout")
    tps, fps, thresholds = threshold_counts(y, score)
    fpr = np.r_[0.0, fps / (len(y) - n_pos)]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, thresholds]


def _downsample(xs: np.ndarray, ys: np.ndarray, max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` evenly spaced points of the curve, its first and last among them."""
    import numpy as np

    if len(xs) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(xs) - 1, max_points)).astype(np.int64))
        xs, ys = xs[keep], ys[keep]
    return [float(x) for x in xs], [float(v) for v in ys]


def score_curves(
    y_true: Any, y_score: Any, *, threshold: float, max_points: int = MAX_CURVE_POINTS
) -> dict[str, Any]:
    """What the report plots of a binary model's holdout scores (JSON-safe, bounded in size).

    ``roc`` (``fpr``, ``tpr`` and the ``auc`` of the full curve), ``pr`` (``recall``,
    ``precision`` and the ``average_precision`` of the full curve; the curve starts at recall 0,
    precision 1 as scikit-learn's does), each downsampled to at most ``max_points`` points (None
    with a single class); ``histogram`` (``edges`` over [0, 1] and the counts of ``positives``
    and ``negatives``); ``confusion`` (``tp``, ``fp``, ``fn``, ``tn`` predicting positive where
    ``score >= threshold``); ``threshold``; ``rows``.

    :raises DataError: mismatched inputs or non-finite scores.
    """
    import numpy as np

    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 (the curve's ends), got {max_points}")
    y, score = _labels_scores(y_true, y_score)
    positive = y == 1
    n_pos = int(positive.sum())
    roc: dict[str, Any] | None = None
    pr: dict[str, Any] | None = None
    if 0 < n_pos < len(y):
        tps, fps, _ = threshold_counts(y, score)
        fpr = np.r_[0.0, fps / (len(y) - n_pos)]
        tpr = np.r_[0.0, tps / n_pos]
        fpr_s, tpr_s = _downsample(fpr, tpr, max_points)
        roc = {
            "fpr": fpr_s,
            "tpr": tpr_s,
            "auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
            "points": len(fpr),
        }
        recall = np.r_[0.0, tps / n_pos]
        precision = np.r_[1.0, tps / (tps + fps)]
        recall_s, precision_s = _downsample(recall, precision, max_points)
        pr = {
            "recall": recall_s,
            "precision": precision_s,
            "average_precision": float(np.sum(np.diff(recall) * precision[1:])),
            "points": len(recall),
        }
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    clipped = np.clip(score, 0.0, 1.0)
    predicted = score >= threshold
    return {
        "task": "binary",
        "threshold": float(threshold),
        "rows": len(y),
        "roc": roc,
        "pr": pr,
        "histogram": {
            "edges": [float(e) for e in edges],
            "positives": [int(c) for c in np.histogram(clipped[positive], bins=edges)[0]],
            "negatives": [int(c) for c in np.histogram(clipped[~positive], bins=edges)[0]],
        },
        "confusion": {
            "tp": int(np.sum(predicted & positive)),
            "fp": int(np.sum(predicted & ~positive)),
            "fn": int(np.sum(~predicted & positive)),
            "tn": int(np.sum(~predicted & ~positive)),
        },
    }


def model_curves(
    task: str, y_true: Any, output: Any, *, threshold: float | None = None, classes: Any = None
) -> dict[str, Any]:
    """What the report plots of one model's holdout output, by task (JSON-safe, bounded in size).

    :param y_true: the target as :func:`airflow_mlops.tasks.encode_target` gives it.
    :param output: the model's output (see the module docstring).
    :param threshold: binary only: the operating threshold (default 0.5).
    :param classes: multiclass only: the label of each probability column.
    :raises DataError: mismatched inputs, non-finite outputs, an unknown task.
    """
    if task == "binary":
        return score_curves(y_true, output, threshold=0.5 if threshold is None else threshold)
    if task == "multiclass":
        return class_curves(y_true, output, classes=classes)
    if task == "regression":
        return residual_curves(y_true, output)
    raise DataError(f"unknown task {task!r}: no plots")


def class_curves(
    y_true: Any, proba: Any, *, classes: Any = None, max_classes: int = MAX_MATRIX_CLASSES
) -> dict[str, Any]:
    """The confusion matrix of a multiclass model's predicted (most probable) class, and each
    class's rows, recall and precision.

    ``matrix[i][j]`` counts the rows of actual class ``labels[i]`` predicted as ``labels[j]``.
    With more than ``max_classes`` classes the ``max_classes - 1`` most frequent ones (by rows)
    are shown and the rest folded into :data:`OTHER_CLASSES` (``folded`` says how many); the
    per-class figures cover the shown classes. Also ``rows``, ``classes`` (how many) and ``accuracy``.

    :raises DataError: mismatched inputs, non-finite probabilities, class indices out of range.
    """
    import numpy as np

    if max_classes < 2:
        raise ValueError(f"max_classes must be at least 2, got {max_classes}")
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 2 or len(y) != len(p):
        raise DataError(
            f"class indices must be 1-D and probabilities (rows, classes), got {y.shape} and {p.shape}"
        )
    if not np.isfinite(p).all():
        raise DataError(f"{int((~np.isfinite(p)).sum())} probability value(s) are NaN or infinite")
    k = p.shape[1]
    labels = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(labels) != k:
        raise DataError(f"{len(labels)} class labels for {k} probability columns")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise DataError(f"class indices outside the model's {k} classes")
    predicted = np.argmax(p, axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    support = np.bincount(y, minlength=k)
    predicted_rows = np.bincount(predicted, minlength=k)
    correct = np.bincount(y[y == predicted], minlength=k)
    if k <= max_classes:
        shown = list(range(k))
    else:
        by_rows = sorted(range(k), key=lambda c: (-int(support[c]), c))
        shown = sorted(by_rows[: max_classes - 1])
    folded = k - len(shown)
    position = np.full(k, len(shown), dtype=np.int64)
    position[shown] = np.arange(len(shown))
    size = len(shown) + (1 if folded else 0)
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (position[y], position[predicted]), 1)
    per_class = [
        {
            "class": labels[c],
            "rows": int(support[c]),
            "predicted": int(predicted_rows[c]),
            "recall": float(correct[c] / support[c]) if support[c] else None,
            "precision": float(correct[c] / predicted_rows[c]) if predicted_rows[c] else None,
        }
        for c in shown
    ]
    return {
        "task": "multiclass",
        "rows": len(y),
        "classes": k,
        "labels": [labels[c] for c in shown] + ([OTHER_CLASSES] if folded else []),
        "folded": folded,
        "matrix": matrix.tolist(),
        "per_class": per_class,
        "accuracy": float(np.mean(predicted == y)) if len(y) else None,
    }


def residual_curves(
    y_true: Any, y_pred: Any, *, max_points: int = MAX_SCATTER_POINTS, bins: int = HISTOGRAM_BINS
) -> dict[str, Any]:
    """A regression model's residuals (actual minus predicted): against the predicted value
    (``points``: at most ``max_points``, evenly spread over the predicted range, the largest
    residuals always among them) and as a histogram of every row (``histogram``: ``edges``,
    ``counts``); ``summary``: mean (the bias), standard deviation, largest absolute residual.

    :raises DataError: mismatched inputs or non-finite values.
    """
    import numpy as np

    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    y = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or y.shape != pred.shape:
        raise DataError(
            f"targets and predictions must be 1-D and of one length, got {y.shape} and {pred.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(pred).all()):
        raise DataError("the targets or predictions hold NaN or infinite values")
    residual = y - pred
    n = len(y)
    if n > max_points:
        extremes = min(_EXTREME_POINTS, max_points // 2)
        order = np.argsort(pred, kind="mergesort")
        spread = order[np.unique(np.round(np.linspace(0, n - 1, max_points - extremes)).astype(np.int64))]
        largest = np.argsort(-np.abs(residual), kind="mergesort")[:extremes]
        keep = np.unique(np.r_[spread, largest])
    else:
        keep = np.arange(n)
    if n:
        low, high = float(residual.min()), float(residual.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, bins + 1)
        counts = np.histogram(residual, bins=edges)[0]
    else:
        edges, counts = np.linspace(-0.5, 0.5, bins + 1), np.zeros(bins, dtype=np.int64)
    return {
        "task": "regression",
        "rows": n,
        "points": {
            "predicted": [float(v) for v in pred[keep]],
            "residual": [float(v) for v in residual[keep]],
        },
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "summary": {
            "mean": float(residual.mean()) if n else None,
            "std": float(residual.std()) if n else None,
            "max_abs": float(np.abs(residual).max()) if n else None,
        },
    }
