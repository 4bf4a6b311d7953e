"""Fairness across slices of the holdout: the largest metric gap between slices, as a gate.

Any task: each slice is scored with the metrics of the model's task (:mod:`airflow_mlops.metrics`:
``roc_auc`` of a binary model, ``f1_macro`` of a multiclass one, ``rmse`` of a regression). A
gate on a metric of another task fails with the reason.

A slice column is either categorical (one slice per value) or numeric with bin edges (one slice
per range, values below the first edge and at or above the last edge are slices of their own).
Missing values are a slice of their own in both. Each (slice column, metric) pair is one gate:
the gap is the best minus the worst value among the *usable* slices, held against ``max_gap``.

A slice is usable for a metric when it has at least ``min_slice_rows`` rows and, for a binary
model's metrics that need positive rows (:data:`NEEDS_POSITIVES`), at least
``min_slice_positives`` of them. Slices that are not usable are reported (with the reason) but
not gated. The gap is direction-free (best minus worst, whichever way the metric reads); the
details name the best and the worst slice by the metric's direction.

Fail closed: a slice column the holdout lacks or cannot slice, fewer than two usable slices, or a
metric that cannot be measured on a usable slice fails the gate with a reason that says which.

Pure functions, no Airflow; numpy and pandas are imported inside them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError
from airflow_mlops.metrics import METRICS, TASK_METRICS
from airflow_mlops.registry.gates import (
    TOLERANCE,
    GateResult,
    allowances,
    fmt,
    fmt_pair,
    metric_mismatch,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Binary metrics that say nothing on a slice with (almost) no positive rows.
NEEDS_POSITIVES = frozenset({"recall", "precision", "f1", "roc_auc", "pr_auc"})
# A plain slice column with more distinct values than this needs bins instead.
MAX_SLICE_VALUES = 50
MISSING_SLICE = "<missing>"


@dataclass(frozen=True)
class FairnessResult:
    """The fairness gates and their JSON-safe details (per slice column: every slice's rows,
    positives, metrics and why it is not gated, if it is not; per metric: the gap)."""

    gates: tuple[GateResult, ...]
    details: dict[str, Any]


def slice_masks(column: pd.Series, bins: Sequence[float] | None = None) -> list[tuple[str, np.ndarray]]:
    """``(label, boolean mask)`` of each slice of ``column``, in a stable order.

    Without ``bins``: one slice per distinct value (labelled by its string form, sorted), plus
    :data:`MISSING_SLICE` when values are missing. With ``bins`` (strictly increasing edges
    ``e0 < ... < ek``): ``< e0``, ``[e0, e1)``, ..., ``>= ek`` (every range, even an empty one),
    plus :data:`MISSING_SLICE` when values are missing.

    :raises DataError: bins on a column that is not numeric, bins that are not strictly
        increasing, or a plain column with more than :data:`MAX_SLICE_VALUES` distinct values.
    """
    import numpy as np
    import pandas as pd

    name = str(column.name)
    missing = column.isna().to_numpy()
    slices: list[tuple[str, np.ndarray]] = []
    if bins is None:
        present = column[~missing].astype(object).map(str)
        values = sorted(set(present))
        if len(values) > MAX_SLICE_VALUES:
            raise DataError(
                f"column {name!r} has {len(values)} distinct values (limit {MAX_SLICE_VALUES} slices); "
                "slice a numeric column with bins: {column: ..., bins: [...]}"
            )
        labels = np.full(len(column), None, dtype=object)
        labels[~missing] = present.to_numpy()
        slices = [(value, labels == value) for value in values]
    else:
        edges = [float(e) for e in bins]
        if (
            not edges
            or any(not math.isfinite(e) for e in edges)
            or any(a >= b for a, b in itertools.pairwise(edges))
        ):
            raise DataError(f"bins of {name!r} must be finite, strictly increasing edges, got {list(bins)}")
        if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype):
            raise DataError(f"column {name!r} has dtype {column.dtype}, not numbers: it cannot be binned")
        numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        index = np.searchsorted(np.asarray(edges), np.where(missing, 0.0, numbers), side="right")
        labels_by_index = [
            f"< {fmt(edges[0])}",
            *(f"[{fmt(a)}, {fmt(b)})" for a, b in itertools.pairwise(edges)),
            f">= {fmt(edges[-1])}",
        ]
        slices = [(label, (index == i) & ~missing) for i, label in enumerate(labels_by_index)]
    if missing.any():
        slices.append((MISSING_SLICE, missing.copy()))
    return slices


def evaluate_fairness(
    holdout: pd.DataFrame,
    y_true: Any,
    y_score: Any,
    *,
    slices: Sequence[str | Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float]],
    threshold: float | None = None,
    min_slice_rows: int = 100,
    min_slice_positives: int = 10,
    task: str = "binary",
) -> FairnessResult:
    """Metric gaps between the slices of the holdout, one gate per (slice column, metric).

    :param holdout: the held-out rows (their slice columns are read; nothing is scored here).
    :param y_true: the target of the rows, in the holdout's order, as
        :func:`airflow_mlops.tasks.encode_target` gives it (binary: the positive-class mask or
        0/1 labels; multiclass: class indices; regression: the values).
    :param y_score: the candidate's output for the rows, in the same order (binary: positive-class
        probabilities; multiclass: ``(rows, classes)`` probabilities; regression: predictions).
    :param slices: column names (one slice per value) or ``{"column": name, "bins": [edges]}``.
    :param metrics: ``{metric: {"max_gap": x}}``, metrics of the task (:mod:`airflow_mlops.metrics`).
    :param threshold: binary only: the operating threshold the candidate is scored at (default 0.5).
    :param min_slice_positives: binary only (see the module docstring).
    :param task: ``binary``, ``multiclass`` or ``regression``.
    :raises ValueError: a malformed slice or metric entry (it must not silently vanish).
    """
    import numpy as np

    if task not in TASK_METRICS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASK_METRICS)}")
    y = _target(task, y_true)
    score = np.asarray(y_score, dtype=np.float64)
    if len(y) != len(holdout) or len(score) != len(holdout):
        raise DataError(f"{len(holdout)} holdout rows but {len(y)} labels and {len(score)} scores")
    gaps = allowances(metrics, key="max_gap", gate="fairness")
    inapplicable = {m: why for m in gaps if (why := metric_mismatch(task, m)) is not None}
    scoring = _Scoring(
        task, 0.5 if threshold is None else float(threshold), min_slice_rows, min_slice_positives
    )
    gates: list[GateResult] = []
    columns: list[dict[str, Any]] = []
    for entry in slices:
        column, bins = _slice_entry(entry)
        detail: dict[str, Any] = {"column": column, "bins": bins, "slices": [], "gaps": {}, "error": None}
        columns.append(detail)
        try:
            if column not in holdout.columns:
                raise DataError(f"the holdout has no column {column!r}")
            masks = slice_masks(holdout[column], bins)
        except DataError as exc:
            detail["error"] = str(exc)
            for metric, max_gap in gaps.items():
                reason = inapplicable.get(metric) or f"cannot slice by {column!r}: {exc}"
                gates.append(_gate(column, metric, None, max_gap, False, reason))
            continue
        for label, mask in masks:
            detail["slices"].append(_slice_detail(label, y[mask], score[mask], gaps, scoring))
        for metric, max_gap in gaps.items():
            if metric in inapplicable:
                gates.append(_gate(column, metric, None, max_gap, False, inapplicable[metric]))
                detail["gaps"][metric] = {"max_gap": max_gap, "gap": None, "error": inapplicable[metric]}
                continue
            gate, gap_detail = _gap_gate(column, metric, max_gap, detail["slices"])
            gates.append(gate)
            detail["gaps"][metric] = gap_detail
    details = {
        "task": task,
        "threshold": scoring.threshold if task == "binary" else None,
        "min_slice_rows": int(min_slice_rows),
        "min_slice_positives": int(min_slice_positives) if task == "binary" else None,
        "columns": columns,
    }
    return FairnessResult(gates=tuple(gates), details=details)


def _slice_entry(entry: str | Mapping[str, Any]) -> tuple[str, list[float] | None]:
    if isinstance(entry, str):
        return entry, None
    unknown = sorted(set(entry) - {"column", "bins"})
    if unknown or "column" not in entry:
        raise ValueError(f"a slice is a column name or {{column: ..., bins: [...]}}, got {dict(entry)}")
    bins = entry.get("bins")
    return str(entry["column"]), None if bins is None else [float(b) for b in bins]


@dataclass(frozen=True)
class _Scoring:
    task: str
    threshold: float
    min_rows: int
    min_positives: int


def _target(task: str, y_true: Any) -> np.ndarray:
    import numpy as np

    y = np.asarray(y_true)
    if task == "binary":
        return y.astype(bool)
    if task == "multiclass":
        return y.astype(np.int64)
    return y.astype(np.float64)


def _slice_detail(
    label: str, y: np.ndarray, score: np.ndarray, gaps: Mapping[str, float], scoring: _Scoring
) -> dict[str, Any]:
    import numpy as np

    from airflow_mlops.metrics import compute_metrics

    task, rows = scoring.task, len(y)
    measured = compute_metrics(task, y, score, threshold=scoring.threshold) if rows else {}
    positives = int(y.sum()) if task == "binary" else None
    excluded: dict[str, str] = {}
    for metric in gaps:
        if metric_mismatch(task, metric) is not None:
            continue  # the gate fails with the reason; nothing to exclude
        if rows < scoring.min_rows:
            excluded[metric] = f"{rows} rows, fewer than min_slice_rows {scoring.min_rows}"
        elif positives is not None and metric in NEEDS_POSITIVES and positives < scoring.min_positives:
            excluded[metric] = (
                f"{positives} positive rows, fewer than min_slice_positives {scoring.min_positives}"
            )
    detail: dict[str, Any] = {"slice": label, "rows": rows}
    if task == "binary":
        detail["positives"] = positives
    elif task == "multiclass":
        detail["classes"] = len(np.unique(y))
    detail["metrics"] = {m: _json_number(v) for m, v in measured.items()}
    detail["excluded"] = excluded
    return detail


def _gap_gate(
    column: str, metric: str, max_gap: float, slices: list[dict[str, Any]]
) -> tuple[GateResult, dict[str, Any]]:
    usable = [s for s in slices if metric not in s["excluded"]]
    unmeasured = [s["slice"] for s in usable if s["metrics"].get(metric) is None]
    detail: dict[str, Any] = {"max_gap": max_gap, "usable_slices": [s["slice"] for s in usable]}
    if unmeasured:
        reason = (
            f"{metric} could not be measured on usable slice(s) {', '.join(unmeasured)} of {column!r} "
            "(e.g. a single class)"
        )
        return _gate(column, metric, None, max_gap, False, reason), {**detail, "gap": None}
    if len(usable) < 2:
        reason = (
            f"{len(usable)} usable slice(s) of {column!r} for {metric}, at least 2 are needed to measure "
            f"a gap ({len(slices)} slice(s), the others too small: see min_slice_rows / min_slice_positives)"
        )
        return _gate(column, metric, None, max_gap, False, reason), {**detail, "gap": None}
    highest = max(usable, key=lambda s: s["metrics"][metric])
    lowest = min(usable, key=lambda s: s["metrics"][metric])
    high, low = highest["metrics"][metric], lowest["metrics"][metric]
    best, worst = (highest, lowest) if METRICS[metric].higher_is_better else (lowest, highest)
    gap = high - low
    passed = gap <= max_gap + TOLERANCE
    gap_s, bound_s = fmt_pair(gap, max_gap)
    reason = (
        f"{metric} gap by {column} = {gap_s} (highest {highest['slice']}: {fmt(high)}, lowest "
        f"{lowest['slice']}: {fmt(low)}, {len(usable)} usable slices) "
        + ("<= " if passed else "is above the allowed gap ")
        + bound_s
    )
    gate = _gate(column, metric, gap, max_gap, passed, reason)
    return gate, {
        **detail,
        "gap": gap,
        "highest": highest["slice"],
        "lowest": lowest["slice"],
        "best": best["slice"],
        "worst": worst["slice"],
    }


def _gate(
    column: str, metric: str, value: float | None, max_gap: float, passed: bool, reason: str
) -> GateResult:
    return GateResult(f"{metric}.gap_by_{column}", "fairness", metric, value, max_gap, passed, reason)


def _json_number(value: float) -> float | None:
    """NaN (an undefined metric) as None, so the details stay strict JSON."""
    return None if value is None or math.isnan(value) else float(value)
