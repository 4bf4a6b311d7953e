"""Drift reports built by hand for the page and figure tests."""

from __future__ import annotations

from typing import Any

from airflow_mlops.drift.report import (
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    PerformanceCheck,
    PredictionDrift,
    QualityCheck,
    TestResult,
)

SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>"
HOSTILE_NAME = '"><img src=x onerror=alert(1)>'


# --- fixtures --------------------------------------------------------------------------------


def numeric(name: str, *, drifted: bool = False, bins: int = 10, psi: float | None = None) -> FeatureDrift:
    edges = [float(i) for i in range(bins + 1)]
    reference = [1 / bins] * bins
    current = [(2 if i < bins // 2 else 0) / bins for i in range(bins)] if drifted else reference
    tests = (
        TestResult(
            "ks", 0.31 if drifted else 0.02, 1e-9 if drifted else 0.6, 4e-9 if drifted else 0.9, 0.05, drifted
        ),
        TestResult("psi", psi if psi is not None else (0.8 if drifted else 0.01), None, None, 0.2, drifted),
    )
    return FeatureDrift(
        name, "numeric", tests, drifted, {"edges": edges, "reference": reference, "current": current}
    )


def categorical(name: str, categories: list[str], *, drifted: bool = False) -> FeatureDrift:
    n = len(categories)
    reference = [1 / n] * n
    current = [1.0] + [0.0] * (n - 1) if drifted else reference
    tests = (
        TestResult(
            "chi2",
            40.0 if drifted else 1.0,
            1e-6 if drifted else 0.7,
            2e-6 if drifted else 0.9,
            0.05,
            drifted,
        ),
        TestResult("jensen_shannon", 0.4 if drifted else 0.01, None, None, 0.1, drifted),
    )
    return FeatureDrift(
        name,
        "categorical",
        tests,
        drifted,
        {"categories": categories, "reference": reference, "current": current},
    )


def make_report(
    features: tuple[FeatureDrift, ...],
    *,
    quality: tuple[QualityCheck, ...] = (),
    multivariate: MultivariateDrift | None = None,
    prediction: PredictionDrift | None = None,
    performance: tuple[PerformanceCheck, ...] = (),
    created_at: str = "2025-01-05T00:00:00+00:00",
    reasons: tuple[str, ...] | None = None,
    settings: dict[str, Any] | None = None,
) -> DriftReport:
    drifted_names = [f.name for f in features if f.drifted]
    quality_failed = any(not q.passed for q in quality)
    drifted = bool(drifted_names) or bool(multivariate and multivariate.drifted)
    if reasons is None:
        reasons = tuple(f"feature {n!r} drifted" for n in drifted_names)
        reasons += tuple(f"quality check {q.check} failed: {q.message}" for q in quality if not q.passed)
    return DriftReport(
        drifted=drifted,
        quality_failed=quality_failed,
        reasons=reasons,
        features=features,
        multivariate=multivariate,
        quality=quality,
        prediction=prediction,
        performance=performance,
        reference_rows=1000,
        current_rows=500,
        settings=settings
        if settings is not None
        else {"alpha": 0.05, "psi_threshold": 0.2, "numeric_tests": ["ks", "psi"]},
        created_at=created_at,
        dataset_drift=len(drifted_names) * 2 > len(features) if features else False,
        drift_share=len(drifted_names) / len(features) if features else 0.0,
    )


def full_report(**kwargs: Any) -> DriftReport:
    features = (
        numeric("age", drifted=True),
        numeric("income"),
        categorical("city", ["paris", "rome", HOSTILE], drifted=True),
        categorical("plan", ["basic", "pro"]),
    )
    quality = (
        QualityCheck("null_rate", "age", 0.01, 0.02, 0.1, True, "null rate 2% within 10%"),
        QualityCheck("row_count", None, 1000.0, 500.0, 100.0, True, "500 rows"),
        QualityCheck("new_categories", "city", None, HOSTILE, None, False, f"unseen category {HOSTILE}"),
    )
    mv = MultivariateDrift("mmd", 0.0123, 0.002, 0.05, 200, 500, 500, ("age", "income"), "cpu", True, 1.3)
    prediction = PredictionDrift(
        tests=(TestResult("ks", 0.2, 1e-4, None, 0.05, True),),
        histogram={
            "edges": [0.0, 0.25, 0.5, 0.75, 1.0],
            "reference": [0.25] * 4,
            "current": [0.1, 0.2, 0.3, 0.4],
        },
        drifted=True,
        reference_rows=1000,
        current_rows=500,
    )
    performance = (
        PerformanceCheck("roc_auc", 0.9, 0.8, 0.05, True),
        PerformanceCheck("log_loss", 0.3, 0.31, 0.05, False),
    )
    defaults: dict[str, Any] = dict(
        quality=quality, multivariate=mv, prediction=prediction, performance=performance
    )
    defaults.update(kwargs)
    return make_report(features, **defaults)


def binary_prediction_with_shares() -> PredictionDrift:
    return PredictionDrift(
        tests=(TestResult("ks", 0.02, 0.3, 0.6, 0.05, False),),
        histogram={"edges": [0.0, 0.5, 1.0], "reference": [0.98, 0.02], "current": [0.96, 0.04]},
        drifted=True,
        reference_rows=10_000,
        current_rows=10_000,
        class_tests=(
            TestResult("chi2", 68.0, 1.6e-16, 3.2e-16, 0.05, True, "2 levels, dof 1"),
            TestResult("jensen_shannon", 0.042, None, None, 0.1, False),
        ),
        class_histogram={
            "categories": ["negative", "positive"],
            "reference": [0.98, 0.02],
            "current": [0.96, 0.04],
        },
        threshold=0.5,
        class_drifted=True,
    )


def history_windows() -> list[DriftReport]:
    w1 = make_report((numeric("age", psi=0.05), numeric("income")), created_at="2025-01-01T00:00:00+00:00")
    w2 = make_report((numeric("age", psi=0.15),), created_at="2025-01-02T00:00:00+00:00")  # no "income"
    w3 = make_report(
        (numeric("age", psi=0.3, drifted=True), numeric("income")),
        created_at="2025-01-03T00:00:00+00:00",
        quality=(QualityCheck("row_count", None, 1000.0, 3.0, 100.0, False, "3 rows"),),
    )
    return [w1, w2, w3]
