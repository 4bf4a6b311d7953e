"""Performance drift for :func:`~airflow_mlops.drift.detect.detect_drift`: a champion metric on the
labelled live window against its recorded value, and the labels check when the labels cannot be
measured."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.drift.report import PerformanceCheck, QualityCheck
from airflow_mlops.exceptions import DataError, DriftInputError

#: Used when ``expected_metrics`` is given without ``max_metric_drop``: the task's primary metric
#: (:data:`airflow_mlops.metrics.PRIMARY_METRIC`) may fall by 0.05. A regression has none: its
#: metrics are in the target's units, so name the metric and its allowance.
DEFAULT_MAX_METRIC_DROPS: Mapping[str, Mapping[str, float]] = {
    "binary": {"roc_auc": 0.05},
    "multiclass": {"f1_macro": 0.05},
}
DEFAULT_MAX_METRIC_DROP: Mapping[str, float] = DEFAULT_MAX_METRIC_DROPS["binary"]


def performance_checks(
    current: pd.DataFrame,
    target: str | None,
    scores: np.ndarray | None,
    expected: Mapping[str, float],
    max_drop: Mapping[str, float] | None,
    positive_label: Any,
    threshold: float,
    task: str,
    classes: Sequence[str] | None,
) -> tuple[list[PerformanceCheck], QualityCheck | None]:
    from airflow_mlops.metrics import METRICS, compute_metrics

    if target is None or target not in current.columns:
        raise DriftInputError(
            f"expected_metrics needs the live window's labels, but target {target!r} is not a column of the "
            "current window; pass target=<label column> or leave expected_metrics out for unlabelled windows"
        )
    if scores is None:
        raise DriftInputError(
            "expected_metrics needs current_scores (the champion's output on the live window)"
        )
    if len(scores) != len(current):
        raise DriftInputError(
            f"current_scores has {len(scores)} values but the current window has {len(current)} rows"
        )
    if max_drop is None:
        if task not in DEFAULT_MAX_METRIC_DROPS:
            raise DriftInputError(
                f"a {task} model has no default performance check (its metrics are in the target's units): "
                "name the metric and how far it may worsen, e.g. max_metric_drop={'rmse': 5.0} "
                "(monitoring.performance: {rmse: {max_drop: 5.0}})"
            )
        drops = dict(DEFAULT_MAX_METRIC_DROPS[task])
    else:
        drops = dict(max_drop)
    problems = [f"{m!r} is not a metric (known: {', '.join(METRICS)})" for m in drops if m not in METRICS]
    problems += [
        f"{m!r} does not apply to a {task} model (its metrics: "
        f"{', '.join(n for n, x in METRICS.items() if task in x.tasks)})"
        for m in drops
        if m in METRICS and task not in METRICS[m].tasks
    ]
    problems += [
        f"the champion has no recorded {m!r} in expected_metrics"
        for m in drops
        if m in METRICS and m not in expected
    ]
    problems += [
        f"max_metric_drop[{m!r}]={v!r} must be a number >= 0"
        for m, v in drops.items()
        if isinstance(v, bool) or not (isinstance(v, int | float) and v >= 0)
    ]
    if problems:
        raise DriftInputError("cannot check performance drift:\n  " + "\n  ".join(problems))
    labelled = current[target].notna().to_numpy()
    if not labelled.any():
        raise DriftInputError(f"the target column {target!r} of the current window has no labels")
    n = int(labelled.sum())
    y_true, problem = _encode_labels(task, current[target][labelled], positive_label, classes, target)
    if y_true is None:
        # Labels the model cannot be judged on (a class it was never trained on, text for a
        # regression): nothing is measured, and the labels check fails (fail closed).
        checks = [
            PerformanceCheck(m, float(expected[m]), math.nan, float(v), False) for m, v in drops.items()
        ]
        return checks, QualityCheck(
            check="labels",
            column=target,
            reference=None,
            current=None,
            threshold=None,
            passed=False,
            message=f"the live window's labels cannot be compared with the champion's output: {problem}",
        )
    try:
        metrics = compute_metrics(task, y_true, scores[labelled], threshold=threshold, names=list(drops))
    except DataError as exc:
        raise DriftInputError(f"cannot check performance drift: {exc}") from exc
    checks, unmeasurable = [], []
    for m, allowed in drops.items():
        value, recorded = float(metrics[m]), float(expected[m])
        if math.isnan(value):
            unmeasurable.append(m)
            checks.append(PerformanceCheck(m, recorded, value, float(allowed), False))
            continue
        drop = METRICS[m].drop(recorded, value)
        checks.append(PerformanceCheck(m, recorded, value, float(allowed), drop > allowed + 1e-12))
    label_check = None
    if unmeasurable:
        why, measure = _why_unmeasurable(task, y_true, classes)
        label_check = QualityCheck(
            check="labels",
            column=target,
            reference=None,
            current=measure,
            threshold=None,
            passed=False,
            message=(
                f"{', '.join(unmeasurable)} cannot be measured on the live window: its {n} labelled rows {why}"
            ),
        )
    return checks, label_check


def _encode_labels(
    task: str, labels: pd.Series, positive_label: Any, classes: Sequence[str] | None, target: str
) -> tuple[np.ndarray | None, str]:
    """The labels as the metrics read them (:func:`airflow_mlops.tasks.encode_target`), or None
    and why they cannot be."""
    from airflow_mlops.labels import label_key
    from airflow_mlops.tasks import encode_target

    if task == "multiclass" and classes is None:
        raise DriftInputError(
            "performance drift of a multiclass model needs classes= (the model's classes, in the order "
            "of its probability columns)"
        )
    if task == "binary" and classes is not None:
        known = [str(c) for c in classes]
        positive = label_key(positive_label)
        if positive not in known:
            raise DriftInputError(
                f"positive_label {positive_label!r} is not one of the model's classes {known}"
            )
        keys = {label_key(v) for v in pd.unique(labels)}
        unknown = sorted(keys - set(known))
        if unknown:
            return None, (
                f"target column {target!r} holds label(s) {', '.join(repr(k) for k in unknown[:10])} that "
                f"the model was not trained on (its classes: {', '.join(repr(c) for c in known)})"
            )
        if positive not in keys:  # a window of negatives only: still measurable (accuracy, ...)
            return np.zeros(len(labels), dtype=bool), ""
    if task == "regression":
        values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
        if len(values) and np.isfinite(values).all() and float(np.ptp(values)) == 0.0:
            return values, ""  # a constant live target: rmse and mae are measurable, r2 is not
    try:
        y = encode_target(
            task,
            labels,
            positive_label=positive_label,
            classes=classes,
            column=target,
            where="the live window",
            require_both=False,
        )
    except DataError as exc:
        return None, str(exc)
    return y, ""


def _why_unmeasurable(task: str, y: np.ndarray, classes: Sequence[str] | None) -> tuple[str, float]:
    """Why a metric is NaN on these labels, and the number the labels check shows."""
    if task == "binary":
        share = float(np.mean(y))
        return f"are all one class (share positive {share:.2f})", share
    if task == "multiclass":
        present = np.unique(y)
        names = [str(classes[i]) if classes is not None else str(i) for i in present]
        return f"hold {len(present)} class(es) only ({', '.join(repr(c) for c in names)})", float(
            len(present)
        )
    return "have a constant target", float(np.ptp(y)) if len(y) else 0.0
