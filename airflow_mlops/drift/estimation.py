"""Performance estimation without labels: the champion's metrics on an unlabelled window, with
confidence intervals, from the calibration stored with it at training time
(:mod:`airflow_mlops.training.calibration`).

**Classification: confidence-based performance estimation (CBPE)**, as NannyML does it. The
champion's scores are mapped to calibrated probabilities; the predicted class stays the model's
own (binary: ``score >= threshold``; multiclass: the most probable class). The expected confusion
matrix follows: for a binary model ``TP = sum(p * predicted)``, ``FP = sum((1 - p) * predicted)``,
``FN = sum(p * (1 - predicted))``, ``TN`` the rest (multiclass: per class, one-vs-rest), and from it
the expected accuracy, precision, recall, F1, balanced accuracy (macro F1 for multiclass). ROC AUC
is the area under the ROC curve whose true- and false-positive rates are weighted by the
calibrated probabilities (one-vs-rest, macro-averaged for multiclass). The interval: labels are
drawn ``samples`` times from the calibrated probabilities, the metric is computed on each draw, and
the central ``confidence`` share of the draws is the spread of the realised metric if the
calibration holds on this window. The calibration was fitted on a finite number of validation
rows, so it is itself uncertain by about the metric's spread at that many rows: the half-widths
are scaled by ``sqrt(1 + window rows / validation rows)`` (:func:`_widen`) to cover both.

**Regression: direct loss estimation (DLE)**: the stored error model predicts each row's absolute
and squared error; MAE is their mean of the first, RMSE the root of the mean of the second. The
interval is analytic (normal approximation: the predicted per-row variance of the absolute error,
and of the squared error for normal errors), widened as for CBPE; the error model's own bias
where the window left the validation rows' region is not in it.

What it cannot see: a change of ``P(label | features)`` itself (concept drift) leaves the scores
and so the estimate unchanged: only labels show it (the ``performance`` checks). The estimate is
as good as the calibration on the regions the window moved to.

:func:`estimate_window` reads a scored window (the monitor's stored columns);
:func:`event_summary` and :func:`retrain_decision` are what the drift event carries and how
``monitoring.estimation.retrain_on`` decides. No Airflow; numpy (and pandas for the window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.training.calibration import ESTIMABLE_METRICS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

RETRAIN_ON = ("drift", "drift_and_estimated_drop")
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SAMPLES = 200
_CHUNK_CELLS = 4_000_000  # draws x rows (x classes) held at once


@dataclass(frozen=True)
class MetricEstimate:
    """One metric of the window: the estimate, its interval, and (when known) the realised value
    and the champion's recorded one."""

    metric: str
    estimate: float
    low: float
    high: float
    realised: float | None = None
    reference: float | None = None

    @property
    def drop(self) -> float | None:
        """How much worse the estimate is than the reference (positive: worse), or None."""
        from airflow_mlops.metrics import METRICS

        if self.reference is None or not math.isfinite(self.estimate):
            return None
        return METRICS[self.metric].drop(self.reference, self.estimate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "estimate": _finite(self.estimate),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "realised": _finite(self.realised),
            "reference": _finite(self.reference),
            "drop": _finite(self.drop),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricEstimate:
        def num(key: str) -> float:
            value = d.get(key)
            return math.nan if value is None else float(value)

        def opt(key: str) -> float | None:
            value = d.get(key)
            return None if value is None else float(value)

        return cls(
            str(d["metric"]), num("estimate"), num("low"), num("high"), opt("realised"), opt("reference")
        )


@dataclass(frozen=True)
class PerformanceEstimate:
    """The estimated metrics of one window (see the module docstring for the methods)."""

    task: str
    method: str  # "cbpe" or "dle"
    rows: int
    confidence: float
    samples: int  # label draws of the CBPE interval; 0 for DLE (analytic)
    metrics: tuple[MetricEstimate, ...] = field(default_factory=tuple)

    def get(self, name: str) -> MetricEstimate:
        for m in self.metrics:
            if m.metric == name:
                return m
        raise DriftInputError(
            f"metric {name!r} is not estimated for a {self.task} model; the estimated metrics are "
            f"{', '.join(m.metric for m in self.metrics)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "method": self.method,
            "rows": self.rows,
            "confidence": self.confidence,
            "samples": self.samples,
            "metrics": [m.to_dict() for m in self.metrics],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerformanceEstimate:
        return cls(
            task=str(d["task"]),
            method=str(d["method"]),
            rows=int(d["rows"]),
            confidence=float(d["confidence"]),
            samples=int(d["samples"]),
            metrics=tuple(MetricEstimate.from_dict(m) for m in d.get("metrics", ())),
        )

    def summary(self) -> str:
        """One line per metric, for task logs."""
        lines = [f"Estimated performance ({self.method}, {self.rows} rows, {self.confidence:.0%} interval):"]
        for m in self.metrics:
            realised = "" if m.realised is None else f"; realised {m.realised:.4f}"
            reference = "" if m.reference is None else f"; recorded {m.reference:.4f}"
            lines.append(f"  {m.metric} {m.estimate:.4f} [{m.low:.4f}, {m.high:.4f}]{realised}{reference}")
        return "\n".join(lines)


# --- estimation ----------------------------------------------------------------------------------


def estimate_performance(
    calibration: Mapping[str, Any],
    output: Any,
    *,
    task: str,
    classes: Sequence[str] | None = None,
    threshold: float | None = None,
    frame: pd.DataFrame | None = None,
    y: Any = None,
    reference_metrics: Mapping[str, float] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> PerformanceEstimate:
    """Estimate the model's metrics on one window from its output and stored ``calibration``.

    :param output: the model's output on the window (binary: positive-class scores; multiclass:
        ``(rows, len(classes))`` probabilities; regression: predicted values).
    :param classes: the label of each output column (multiclass; binary: ignored).
    :param threshold: binary: the operating threshold (default 0.5).
    :param frame: regression: the window's feature columns (the error model reads them).
    :param y: the window's labels encoded for the task (:func:`airflow_mlops.tasks.encode_target`),
        when it has them: the realised metrics are reported beside the estimates.
    :param reference_metrics: the champion's recorded metrics (its evaluation), for the drop.
    :raises DriftInputError: the calibration does not fit the task or the output.
    """
    import numpy as np

    from airflow_mlops.exceptions import ArtifactError
    from airflow_mlops.training.calibration import check_calibration

    try:
        calibration = check_calibration(calibration)
    except ArtifactError as exc:
        raise DriftInputError(str(exc)) from exc
    if calibration["task"] != task:
        raise DriftInputError(f"the stored calibration is for a {calibration['task']} model, not {task}")
    if not 0 < confidence < 1 or samples < 10:
        raise DriftInputError(
            f"confidence must lie in (0, 1) and samples be >= 10, got {confidence}, {samples}"
        )
    out = np.asarray(output, dtype=np.float64)
    if len(out) == 0:
        raise DriftInputError("the window has no rows: nothing to estimate")
    if not np.isfinite(out).all():
        raise DriftInputError("the champion's output on the window holds NaN or infinite values")
    if task == "regression":
        if frame is None:
            raise DriftInputError("direct loss estimation of a regression needs the window's feature columns")
        values = _dle(calibration, out, frame, confidence)
        method, drawn = "dle", 0
    elif task == "binary":
        values = _cbpe_binary(
            calibration, out, 0.5 if threshold is None else float(threshold), confidence, samples, seed
        )
        method, drawn = "cbpe", samples
    else:
        values = _cbpe_multiclass(calibration, out, classes, confidence, samples, seed)
        method, drawn = "cbpe", samples
    values = _widen(values, len(out), int(calibration.get("rows") or 0), task)
    realised = _realised(task, y, out, threshold) if y is not None else {}
    recorded = dict(reference_metrics or {})
    metrics = tuple(
        MetricEstimate(
            metric=name,
            estimate=est,
            low=low,
            high=high,
            realised=realised.get(name),
            reference=_opt(recorded.get(name)),
        )
        for name, (est, low, high) in values.items()
    )
    return PerformanceEstimate(task, method, len(out), confidence, drawn, metrics)


def estimate_window(
    current: pd.DataFrame,
    calibration: Mapping[str, Any],
    *,
    features: Sequence[str],
    target: str,
    task: str,
    classes: Sequence[str] | None,
    threshold: float | None,
    positive_label: Any,
    champion_metrics: Mapping[str, float] | None,
    confidence: float = DEFAULT_CONFIDENCE,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> PerformanceEstimate:
    """:func:`estimate_performance` on a window scored by the monitor (its stored output
    columns, :func:`airflow_mlops.drift.scoring.champion_output`); the realised metrics on its
    labelled rows when it has the ``target`` column."""
    from airflow_mlops.drift.performance import _encode_labels
    from airflow_mlops.drift.scoring import champion_output

    output = champion_output(current, task, classes)
    y = None
    if target in current.columns and current[target].notna().all():
        y, _problem = _encode_labels(task, current[target], positive_label, classes, target)
    return estimate_performance(
        calibration,
        output,
        task=task,
        classes=classes,
        threshold=threshold,
        frame=current[[c for c in features if c in current.columns]] if task == "regression" else None,
        y=y,
        reference_metrics=champion_metrics,
        confidence=confidence,
        samples=samples,
        seed=seed,
    )


def estimate_for_event(
    current: pd.DataFrame,
    calibration: Mapping[str, Any] | None,
    *,
    settings: Mapping[str, Any],
    champion: str,
    **window: Any,
) -> tuple[PerformanceEstimate | None, dict[str, Any]]:
    """:func:`estimate_window` and its :func:`event_summary` of ``settings["metric"]`` (default:
    the task's primary metric), as the monitor's detect task needs them: the estimate (None when
    there is none) and the summary, which says why not (``available: false``) instead of failing:
    a window without an estimate is still tested for drift and reported.

    :param settings: ``monitoring.estimation`` (``metric``, ``max_drop``, ``confidence``, ``samples``).
    :param champion: the champion's name and version, for the reason.
    :param window: the keyword arguments of :func:`estimate_window` but ``confidence``, ``samples``.
    """
    from airflow_mlops.metrics import PRIMARY_METRIC

    metric = settings.get("metric") or PRIMARY_METRIC[window["task"]]
    max_drop = settings.get("max_drop")
    if not calibration:
        why = f"{champion} has no stored calibration (trained without a validation split, or before calibration was stored)"
        return None, event_summary(None, metric=metric, max_drop=max_drop, unavailable=why)
    try:
        estimate = estimate_window(
            current,
            calibration,
            confidence=float(settings.get("confidence", DEFAULT_CONFIDENCE)),
            samples=int(settings.get("samples", DEFAULT_SAMPLES)),
            **window,
        )
    except DriftInputError as exc:
        return None, event_summary(None, metric=metric, max_drop=max_drop, unavailable=str(exc))
    try:
        return estimate, event_summary(estimate, metric=metric, max_drop=max_drop)
    except DriftInputError as exc:  # monitoring.estimation.metric is not one of this task's
        return estimate, event_summary(None, metric=metric, max_drop=max_drop, unavailable=str(exc))


def _widen(
    values: dict[str, tuple[float, float, float]], rows: int, calibration_rows: int, task: str
) -> dict[str, tuple[float, float, float]]:
    """Widen each interval for the calibration's own error.

    The sampled (or analytic) interval is the spread of the window's labels *given* calibrated
    probabilities. The calibration itself was fitted on ``calibration_rows`` validation rows, so
    it is right only up to about the metric's sampling spread at that many rows: a bias that
    size cannot be seen there. That spread scales as ``1 / sqrt(rows)``, so both together are the
    window's spread times ``sqrt(1 + rows / calibration_rows)``: the interval's half-widths are
    scaled by it (and clipped to the metric's range).
    """
    from airflow_mlops.metrics import METRICS

    if calibration_rows <= 0:
        return values
    factor = math.sqrt(1.0 + rows / calibration_rows)
    out = {}
    for name, (est, low, high) in values.items():
        lo, hi = METRICS[name].low, METRICS[name].high
        below, above = max(est - low, 0.0), max(high - est, 0.0)
        out[name] = (est, max(est - factor * below, lo), min(est + factor * above, hi))
    return out


def _realised(task: str, y: Any, out: np.ndarray, threshold: float | None) -> dict[str, float]:
    from airflow_mlops.metrics import compute_metrics

    values = compute_metrics(
        task, y, out, threshold=0.5 if threshold is None else float(threshold), names=ESTIMABLE_METRICS[task]
    )
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    import numpy as np

    finite = draws[np.isfinite(draws)]
    if len(finite) == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _ratio(num: Any, den: Any) -> Any:
    import numpy as np

    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num + den), where=den > 0)


def _average_ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    import numpy as np

    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def _weighted_auc(score: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC with each row a positive of weight ``p`` and a negative of weight ``1 - p`` (ties
    count a half): the area under the expected ROC curve."""
    import numpy as np

    uniq, inverse = np.unique(score, return_inverse=True)
    pos = np.bincount(inverse, weights=p, minlength=len(uniq))
    neg = np.bincount(inverse, weights=1 - p, minlength=len(uniq))
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return math.nan
    below = np.cumsum(neg) - neg  # negatives with a lower score
    return float(np.sum(pos * (below + 0.5 * neg)) / (total_pos * total_neg))


def _sampled_auc(ranks: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``hits`` (draws x rows, booleans) with the rows' score ``ranks``."""
    import numpy as np

    n = hits.shape[1]
    npos = hits.sum(axis=1).astype(np.float64)
    rank_sum = hits.astype(np.float64) @ ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - npos * (npos + 1) / 2) / (npos * (n - npos))
    return np.where((npos > 0) & (npos < n), auc, np.nan)


def _cbpe_binary(
    calibration: Mapping[str, Any],
    score: np.ndarray,
    threshold: float,
    confidence: float,
    samples: int,
    seed: int,
) -> dict[str, tuple[float, float, float]]:
    import numpy as np

    from airflow_mlops.training.calibration import apply_calibration

    if score.ndim != 1:
        raise DriftInputError(f"a binary model gives one score per row, got shape {score.shape}")
    p = apply_calibration(calibration, score)
    predicted = (score >= threshold).astype(np.float64)
    n = len(p)

    def from_counts(tp: Any, fp: Any, fn: Any, tn: Any) -> dict[str, Any]:
        return {
            "accuracy": (tp + tn) / n,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "balanced_accuracy": (_ratio(tp, tp + fn) + _ratio(tn, tn + fp)) / 2,
        }

    expected = from_counts(p @ predicted, (1 - p) @ predicted, p @ (1 - predicted), (1 - p) @ (1 - predicted))
    expected["roc_auc"] = _weighted_auc(score, p)
    rng = np.random.default_rng(seed)
    ranks = _average_ranks(score)
    drawn: dict[str, list[np.ndarray]] = {k: [] for k in expected}
    step = max(1, _CHUNK_CELLS // n)
    positives_predicted = predicted.sum()
    for start in range(0, samples, step):
        hits = rng.random((min(step, samples - start), n)) < p
        tp = hits.astype(np.float64) @ predicted
        pos = hits.sum(axis=1)
        fp, fn = positives_predicted - tp, pos - tp
        for name, values in from_counts(tp, fp, fn, n - tp - fp - fn).items():
            drawn[name].append(np.asarray(values, dtype=np.float64))
        drawn["roc_auc"].append(_sampled_auc(ranks, hits))
    order = ("roc_auc", "accuracy", "precision", "recall", "f1", "balanced_accuracy")
    return {k: (float(expected[k]), *_interval(np.concatenate(drawn[k]), confidence)) for k in order}


def _cbpe_multiclass(
    calibration: Mapping[str, Any],
    proba: np.ndarray,
    classes: Sequence[str] | None,
    confidence: float,
    samples: int,
    seed: int,
) -> dict[str, tuple[float, float, float]]:
    import numpy as np

    from airflow_mlops.training.calibration import apply_calibration

    if classes is None:
        raise DriftInputError("estimating a multiclass model needs its classes (the order of its columns)")
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise DriftInputError(f"output of shape {proba.shape} does not fit the classes {list(classes)[:10]}")
    p = apply_calibration(calibration, proba, classes=[str(c) for c in classes])
    n, k = p.shape
    predicted = np.argmax(proba, axis=1)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), predicted] = 1.0

    def from_confusion(conf: np.ndarray) -> dict[str, Any]:
        """``conf[..., predicted, true]`` counts (leading axes: draws)."""
        tp = np.diagonal(conf, axis1=-2, axis2=-1)
        predicted_k = conf.sum(axis=-1)
        true_k = conf.sum(axis=-2)
        recall = _ratio(tp, true_k)
        f1 = _ratio(2 * tp, predicted_k + true_k)
        present = (predicted_k + true_k) > 0
        with np.errstate(invalid="ignore"):
            return {
                "accuracy": tp.sum(axis=-1) / n,
                "balanced_accuracy": np.sum(recall * (true_k > 0), axis=-1) / np.sum(true_k > 0, axis=-1),
                "f1_macro": np.sum(f1 * present, axis=-1) / np.sum(present, axis=-1),
            }

    expected = from_confusion(onehot.T @ p)
    aucs = [_weighted_auc(proba[:, j], p[:, j]) for j in range(k)]
    expected["roc_auc_ovr"] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else math.nan
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(p, axis=1)
    cumulative[:, -1] = 1.0
    ranks = [_average_ranks(proba[:, j]) for j in range(k)]
    drawn: dict[str, list[np.ndarray]] = {name: [] for name in expected}
    step = max(1, _CHUNK_CELLS // (n * k))
    for start in range(0, samples, step):
        b = min(step, samples - start)
        u = rng.random((b, n, 1))
        true = (u > cumulative[None]).sum(axis=2)  # draws x rows: class indices
        cells = (np.arange(b)[:, None] * k * k + predicted[None] * k + true).ravel()
        conf = np.bincount(cells, minlength=b * k * k).reshape(b, k, k).astype(np.float64)
        for name, values in from_confusion(conf).items():
            drawn[name].append(np.asarray(values, dtype=np.float64))
        with np.errstate(all="ignore"):
            per_class = np.column_stack([_sampled_auc(ranks[j], true == j) for j in range(k)])
            drawn["roc_auc_ovr"].append(
                np.nanmean(np.where(np.isfinite(per_class), per_class, np.nan), axis=1)
            )
    order = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr")
    return {
        name: (float(expected[name]), *_interval(np.concatenate(drawn[name]), confidence)) for name in order
    }


def _dle(
    calibration: Mapping[str, Any], prediction: np.ndarray, frame: pd.DataFrame, confidence: float
) -> dict[str, tuple[float, float, float]]:
    import numpy as np

    from airflow_mlops.exceptions import ArtifactError
    from airflow_mlops.training.calibration import predict_errors

    try:
        errors = predict_errors(calibration, prediction, frame)
    except ArtifactError as exc:
        raise DriftInputError(str(exc)) from exc
    n = len(prediction)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    absolute, squared = errors["abs"], np.maximum(errors["squared"], errors["abs"] ** 2)
    mae = float(absolute.mean())
    mae_se = float(np.sqrt(np.sum(np.maximum(squared - absolute**2, 0.0)))) / n
    mse = float(squared.mean())
    rmse = math.sqrt(mse)
    # Var(e^2) = 2 sigma^4 for a normal error of variance sigma^2; delta method for the root.
    mse_se = float(np.sqrt(np.sum(2 * squared**2))) / n
    rmse_se = mse_se / (2 * rmse) if rmse > 0 else 0.0
    return {
        "mae": (mae, max(mae - z * mae_se, 0.0), mae + z * mae_se),
        "rmse": (rmse, max(rmse - z * rmse_se, 0.0), rmse + z * rmse_se),
    }


# --- what the drift event carries, and the retrain rule -------------------------------------------


def event_summary(
    estimate: PerformanceEstimate | Mapping[str, Any] | None,
    *,
    metric: str,
    max_drop: float | None,
    unavailable: str = "",
) -> dict[str, Any]:
    """The drift event's ``estimated_performance``: the metric, the champion's recorded value
    (``reference``), the estimate and its ``interval``, the realised value when the window has
    labels, the ``drop`` (of the realised value when there is one: ``basis``), ``max_drop`` and
    whether the drop exceeds it (``dropped``). Without an estimate: ``available: false`` and why.
    """
    from airflow_mlops.metrics import METRICS

    if estimate is None:
        return {
            "available": False,
            "metric": metric,
            "max_drop": max_drop,
            "reason": unavailable or "no estimate",
        }
    if isinstance(estimate, Mapping):
        estimate = PerformanceEstimate.from_dict(estimate)
    m = estimate.get(metric)
    basis = "realised" if m.realised is not None else "estimated"
    value = m.realised if m.realised is not None else m.estimate
    drop = (
        METRICS[metric].drop(m.reference, value)
        if m.reference is not None and value is not None and math.isfinite(value)
        else None
    )
    return {
        "available": True,
        "metric": metric,
        "method": estimate.method,
        "rows": estimate.rows,
        "reference": _finite(m.reference),
        "estimate": _finite(m.estimate),
        "interval": [_finite(m.low), _finite(m.high)],
        "confidence": estimate.confidence,
        "realised": _finite(m.realised),
        "basis": basis,
        "drop": _finite(drop),
        "max_drop": max_drop,
        "dropped": bool(drop is not None and max_drop is not None and drop > max_drop + 1e-12),
    }


def retrain_decision(drifted: bool, summary: Mapping[str, Any] | None, retrain_on: str) -> tuple[bool, str]:
    """Whether the drift event is emitted, and why (a sentence for the log and the skip reason).

    ``retrain_on="drift"``: on drift. ``"drift_and_estimated_drop"``: on drift when the metric
    also dropped by more than ``max_drop`` (the realised drop when the window has labels).

    :raises DriftInputError: the rule needs an estimate (or a reference value) that is missing:
        it cannot decide, and it does not guess either way.
    """
    if retrain_on not in RETRAIN_ON:
        raise DriftInputError(f"retrain_on must be one of {', '.join(RETRAIN_ON)}, got {retrain_on!r}")
    if not drifted:
        return False, "no drift in this window"
    if retrain_on == "drift":
        return True, "drift"
    if summary is None or not summary.get("available"):
        why = (summary or {}).get("reason") or "no performance estimate was made"
        raise DriftInputError(
            f"monitoring.estimation.retrain_on is drift_and_estimated_drop, but this window has no "
            f"performance estimate ({why}): retrain the champion with this release (its calibration is "
            "stored at training time, with a validation split) or set retrain_on: drift"
        )
    if summary.get("drop") is None or summary.get("max_drop") is None:
        raise DriftInputError(
            f"monitoring.estimation.retrain_on is drift_and_estimated_drop, but the drop of "
            f"{summary.get('metric')} cannot be measured: the champion has no recorded "
            f"{summary.get('metric')} (its evaluation) or no max_drop is set"
        )
    words = (
        f"{summary['basis']} {summary['metric']} {summary['estimate'] if summary['basis'] == 'estimated' else summary['realised']:.4f} "
        f"against the recorded {summary['reference']:.4f}: drop {summary['drop']:.4f} "
        f"{'>' if summary['dropped'] else '<='} max_drop {summary['max_drop']:g}"
    )
    if summary["dropped"]:
        return True, f"drift and a performance drop ({words})"
    return False, f"drift, but no performance drop beyond max_drop ({words}): no retraining"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _opt(value: Any) -> float | None:
    try:
        return _finite(value)
    except (TypeError, ValueError):
        return None
