"""Drift detection: univariate tests, multivariate MMD, data quality, prediction and performance drift.

``import airflow_mlops.drift`` stays light (standard library only): the report model is imported
eagerly, :func:`detect_drift` (numpy, pandas; torch and scipy inside functions) on first use.

Example::

    from airflow_mlops.drift import detect_drift

    report = detect_drift(reference_df, live_df, target="label")
    print(report.summary())
    if report.quality_failed: ...   # broken live data: fail, do not retrain
    elif report.drifted: ...        # retrain
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.drift.report import (
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    OutOfRange,
    PerformanceCheck,
    PredictionDrift,
    QualityCheck,
    TestResult,
)
from airflow_mlops.exceptions import DriftInputError

if TYPE_CHECKING:
    from airflow_mlops.drift.detect import detect_drift

__all__ = [
    "DriftInputError",
    "DriftReport",
    "FeatureDrift",
    "MultivariateDrift",
    "OutOfRange",
    "PerformanceCheck",
    "PredictionDrift",
    "QualityCheck",
    "TestResult",
    "detect_drift",
]


def __getattr__(name: str) -> Any:
    if name == "detect_drift":
        from airflow_mlops.drift.detect import detect_drift

        return detect_drift
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
