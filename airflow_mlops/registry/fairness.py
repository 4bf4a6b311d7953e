"""Fairness across slices of the holdout: the largest metric gap between slices, as a gate.

A slice column is either categorical (one slice per value) or numeric with bin edges (one slice
per range, values below the first edge and at or above the last edge are slices of their own).
Missing values are a slice of their own in both. Each (slice column, metric) pair is one gate:
the gap is the best minus the worst value among the *usable* slices, held against ``max_gap``.

A slice is usable for a metric when it has at least ``min_slice_rows`` rows and, for the metrics
that need positive rows (:data:`NEEDS_POSITIVES`), at least ``min_slice_positives`` of them.
Slices that are not usable are reported (with the reason) but not gated.

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
from airflow_mlops.registry.evaluation import (
    _TOLERANCE,
    GateResult,
    _fmt,
    _fmt_pair,
    allowances,
    compute_metrics,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Metrics that say nothing on a slice with (almost) no positive rows.
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
            f"< {_fmt(edges[0])}",
            *(f"[{_fmt(a)}, {_fmt(b)})" for a, b in itertools.pairwise(edges)),
            f">= {_fmt(edges[-1])}",
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
    threshold: float,
    min_slice_rows: int = 100,
    min_slice_positives: int = 10,
) -> FairnessResult:
    """Metric gaps between the slices of the holdout, one gate per (slice column, metric).

    :param holdout: the held-out rows (their slice columns are read; nothing is scored here).
    :param y_true: positive-class mask (or 0/1 labels) of the rows, in the holdout's order.
    :param y_score: the candidate's positive-class probabilities of the rows, in the same order.
    :param slices: column names (one slice per value) or ``{"column": name, "bins": [edges]}``.
    :param metrics: ``{metric: {"max_gap": x}}``, metrics of
        :func:`~airflow_mlops.registry.evaluation.compute_metrics`.
    :param threshold: the operating threshold the candidate is scored at.
    :raises ValueError: a malformed slice or metric entry (it must not silently vanish).
    """
    import numpy as np

    y = np.asarray(y_true).astype(np.int64)
    score = np.asarray(y_score, dtype=np.float64)
    if len(y) != len(holdout) or len(score) != len(holdout):
        raise DataError(f"{len(holdout)} holdout rows but {len(y)} labels and {len(score)} scores")
    gaps = allowances(metrics, key="max_gap", gate="fairness")
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
                reason = f"cannot slice by {column!r}: {exc}"
                gates.append(_gate(column, metric, None, max_gap, False, reason))
            continue
        for label, mask in masks:
            detail["slices"].append(
                _slice_detail(
                    label, y[mask], score[mask], gaps, threshold, min_slice_rows, min_slice_positives
                )
            )
        for metric, max_gap in gaps.items():
            gate, gap_detail = _gap_gate(column, metric, max_gap, detail["slices"])
            gates.append(gate)
            detail["gaps"][metric] = gap_detail
    details = {
        "threshold": float(threshold),
        "min_slice_rows": int(min_slice_rows),
        "min_slice_positives": int(min_slice_positives),
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


def _slice_detail(
    label: str,
    y: np.ndarray,
    score: np.ndarray,
    gaps: Mapping[str, float],
    threshold: float,
    min_rows: int,
    min_positives: int,
) -> dict[str, Any]:
    rows, positives = len(y), int(y.sum())
    measured = compute_metrics(y, score, threshold=threshold) if rows else {}
    excluded: dict[str, str] = {}
    for metric in gaps:
        if rows < min_rows:
            excluded[metric] = f"{rows} rows, fewer than min_slice_rows {min_rows}"
        elif metric in NEEDS_POSITIVES and positives < min_positives:
            excluded[metric] = f"{positives} positive rows, fewer than min_slice_positives {min_positives}"
    return {
        "slice": label,
        "rows": rows,
        "positives": positives,
        "metrics": {m: _json_number(v) for m, v in measured.items()},
        "excluded": excluded,
    }


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
    best = max(usable, key=lambda s: s["metrics"][metric])
    worst = min(usable, key=lambda s: s["metrics"][metric])
    high, low = best["metrics"][metric], worst["metrics"][metric]
    gap = high - low
    passed = gap <= max_gap + _TOLERANCE
    gap_s, bound_s = _fmt_pair(gap, max_gap)
    reason = (
        f"{metric} gap by {column} = {gap_s} (highest {best['slice']}: {_fmt(high)}, lowest "
        f"{worst['slice']}: {_fmt(low)}, {len(usable)} usable slices) "
        + ("<= " if passed else "is above the allowed gap ")
        + bound_s
    )
    gate = _gate(column, metric, gap, max_gap, passed, reason)
    return gate, {**detail, "gap": gap, "highest": best["slice"], "lowest": worst["slice"]}


def _gate(
    column: str, metric: str, value: float | None, max_gap: float, passed: bool, reason: str
) -> GateResult:
    return GateResult(f"{metric}.gap_by_{column}", "fairness", metric, value, max_gap, passed, reason)


def _json_number(value: float) -> float | None:
    """NaN (an undefined metric) as None, so the details stay strict JSON."""
    return None if value is None or math.isnan(value) else float(value)
