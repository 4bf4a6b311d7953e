"""Prediction drift for :func:`~airflow_mlops.drift.detect.detect_drift`: the champion's output on
the reference and live windows, checked and compared per task (binary and regression, the numeric
tests on the scores, and for a binary model the categorical tests on its predicted classes' shares
too; multiclass, the categorical tests on the predicted classes' shares)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from airflow_mlops.drift.report import PredictionDrift, TestResult
from airflow_mlops.drift.univariate import PSI_BINS, feature_verdict, judge_test, numeric_histogram
from airflow_mlops.exceptions import DriftInputError


def _scores(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DriftInputError(f"{name} must be a 1-D array of numbers: {exc}") from exc
    if arr.size == 0:
        raise DriftInputError(f"{name} is empty; score the window first or leave {name} out")
    if not np.isfinite(arr).all():
        raise DriftInputError(f"{name} holds {int((~np.isfinite(arr)).sum())} NaN or infinite score(s)")
    return arr


def model_outputs(values: Any, name: str, task: str, classes: Sequence[str] | None) -> np.ndarray:
    """The champion's output for ``task``: 1-D, or ``(rows, classes)`` probabilities (multiclass)."""
    if task != "multiclass":
        return _scores(values, name)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DriftInputError(f"{name} must be a (rows, classes) array of probabilities: {exc}") from exc
    width = len(classes) if classes is not None else None
    if arr.ndim != 2 or arr.shape[1] < 2 or (width is not None and arr.shape[1] != width):
        raise DriftInputError(
            f"{name} of a multiclass model must be its class probabilities, shape (rows, "
            f"{width if width is not None else 'classes'}); got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise DriftInputError(f"{name} is empty; score the window first or leave {name} out")
    if not np.isfinite(arr).all():
        raise DriftInputError(f"{name} holds {int((~np.isfinite(arr)).sum())} NaN or infinite probabilities")
    return arr


def class_names(classes: Sequence[str] | None, proba: np.ndarray) -> list[str]:
    return [str(c) for c in classes] if classes is not None else [str(i) for i in range(proba.shape[1])]


def class_tests(
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    tests: Sequence[str],
    alpha: float,
    thresholds: Mapping[str, float],
    family: int = 1,
) -> tuple[TestResult, ...]:
    """The categorical tests on the predicted classes' counts; the chi-squared p-value adjusted
    for ``family`` p-value tests sharing the prediction family's level (Bonferroni)."""
    from airflow_mlops.drift.statistics import categorical_statistics

    stats = categorical_statistics(reference_counts[None, :], current_counts[None, :])
    results = []
    for t in tests:
        if t == "chi2":
            p = float(stats.chi2_p_value[0])
            adjusted = min(1.0, p * family)
            results.append(
                judge_test("chi2", float(stats.chi2[0]), p, adjusted, alpha, thresholds, stats.describe(0))
            )
        elif t == "jensen_shannon":
            results.append(judge_test(t, float(stats.jensen_shannon[0]), None, None, alpha, thresholds))
        else:
            results.append(judge_test(t, float(stats.psi[0]), None, None, alpha, thresholds))
    return tuple(results)


def _shares(categories: list[str], rc: np.ndarray, cc: np.ndarray) -> dict[str, Any]:
    return {
        "categories": list(categories),
        "reference": (rc / max(rc.sum(), 1.0)).tolist(),
        "current": (cc / max(cc.sum(), 1.0)).tolist(),
    }


def class_share_drift(
    ref: np.ndarray,
    cur: np.ndarray,
    classes: list[str],
    tests: Sequence[str],
    alpha: float,
    thresholds: Mapping[str, float],
) -> PredictionDrift:
    """Multiclass: the predicted classes' counts, reference against live, by the categorical tests
    (drift when the chi-squared test is significant, as for a categorical feature)."""
    k = len(classes)
    rc = np.bincount(np.argmax(ref, axis=1), minlength=k).astype(np.float64)
    cc = np.bincount(np.argmax(cur, axis=1), minlength=k).astype(np.float64)
    tests_t = class_tests(rc, cc, tests, alpha, thresholds)
    return PredictionDrift(
        tests=tests_t,
        histogram=_shares(classes, rc, cc),
        drifted=feature_verdict(tests_t, "categorical"),
        reference_rows=len(ref),
        current_rows=len(cur),
        task="multiclass",
    )


def prediction_drift(
    ref: np.ndarray,
    cur: np.ndarray,
    tests: Sequence[str],
    alpha: float,
    thresholds: Mapping[str, float],
    task: str = "binary",
    *,
    categorical_tests: Sequence[str] = (),
    threshold: float = 0.5,
) -> PredictionDrift:
    """Binary and regression: the numeric tests on the scores (or predicted values). A binary
    model's predicted classes (positive: score >= ``threshold``) also get ``categorical_tests``
    on their shares; the two p-value tests then split ``alpha`` (their p-values doubled)."""
    from airflow_mlops.drift.statistics import ks_p_values, numeric_statistics, psi

    shares = task == "binary" and bool(categorical_tests)
    family = 2 if shares and "chi2" in categorical_tests and "ks" in tests else 1
    stats = numeric_statistics(ref[None, :], cur[None, :], psi_bins=PSI_BINS)
    results = []
    for t in tests:
        if t == "ks":
            p = float(ks_p_values(stats.ks, stats.n_reference, stats.n_current)[0])
            results.append(judge_test("ks", float(stats.ks[0]), p, min(1.0, p * family), alpha, thresholds))
        elif t == "wasserstein":
            std = float(stats.reference_std[0]) or 1.0
            results.append(judge_test(t, float(stats.wasserstein[0]) / std, None, None, alpha, thresholds))
        else:
            results.append(
                judge_test(
                    t, float(psi(stats.psi_reference, stats.psi_current)[0]), None, None, alpha, thresholds
                )
            )
    tests_t = tuple(results)
    drifted = feature_verdict(tests_t)
    shares_t: tuple[TestResult, ...] = ()
    histogram: dict[str, Any] = {}
    shares_drifted = False
    if shares:
        positive_r, positive_c = float((ref >= threshold).sum()), float((cur >= threshold).sum())
        rc = np.array([len(ref) - positive_r, positive_r])
        cc = np.array([len(cur) - positive_c, positive_c])
        shares_t = class_tests(rc, cc, categorical_tests, alpha, thresholds, family)
        histogram = _shares(["negative", "positive"], rc, cc)
        shares_drifted = feature_verdict(shares_t, "categorical")
        drifted = drifted or shares_drifted
    return PredictionDrift(
        tests=tests_t,
        histogram=numeric_histogram(stats.psi_edges[0], stats.psi_reference[0], stats.psi_current[0]),
        drifted=drifted,
        reference_rows=len(ref),
        current_rows=len(cur),
        task=task,
        class_tests=shares_t,
        class_histogram=histogram,
        threshold=float(threshold) if shares else None,
        class_drifted=shares_drifted,
    )
