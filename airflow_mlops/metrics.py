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
