"""``detect_drift``: compare a live window with the reference and return a :class:`DriftReport`.

The rules (documented in ``docs/drift.md``):

* **Per feature**, a p-value test (KS for numeric, chi-squared for categorical, its rare levels
  pooled) and distances (Wasserstein on reference-std-scaled values and PSI for numeric;
  Jensen-Shannon and PSI for categorical). The p-values of all features are corrected together
  (Bonferroni by default, or Benjamini-Hochberg). A numeric feature drifts when the change is
  **significant and large**: its corrected p-value is below ``p_value`` *and* at least one
  distance reaches its threshold (with only p-value tests configured, significance alone; with
  only distances, any distance). A categorical feature drifts when its chi-squared test is
  **significant** (the distances are reported beside it): a rare level whose share doubles moves
  no distance past its threshold. With only distances configured, any distance.
* **Out of range** (``out_of_range``): a numeric feature with more than ``max_out_of_range_share``
  of its live values beyond the reference's ``[min, max]``. With ``drift`` (the default) that
  feature drifted (rule ``out_of_range``: a covariate shift the model never saw), whatever its
  tests say, and the window drifted; with ``alarm`` it is a data-quality alarm (the behaviour of
  earlier releases); with ``both``, drift and alarm.
* **Dataset drift**: the share of drifted features is at least ``drift_share``.
* **Multivariate drift**: MMD over the numeric features, permutation p-value below ``mmd_p_value``.
* **Prediction drift**: the champion's output on the two windows, per ``task``: binary, the
  positive class's probability (the numeric tests) and the shares of its predicted classes at
  ``threshold`` (the categorical tests; the two p-values split the family's level); regression,
  the predicted values (the numeric tests); multiclass, the shares of the predicted classes (the
  categorical tests).
* **Performance drift**: a champion metric (:mod:`airflow_mlops.metrics`) on the labelled live
  window worse by more than its allowance than the recorded value, in the metric's direction.
  The labels are encoded by :func:`airflow_mlops.tasks.encode_target` (the shared label rule).
* ``drifted`` = dataset, out-of-range, multivariate, prediction or performance drift.
  ``quality_failed`` = a data-quality check whose failure is an alarm failed.
"""

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.drift.multivariate import multivariate_drift
from airflow_mlops.drift.performance import (
    DEFAULT_MAX_METRIC_DROP,
    DEFAULT_MAX_METRIC_DROPS,
    performance_checks,
)
from airflow_mlops.drift.prediction import class_names, class_share_drift, model_outputs, prediction_drift
from airflow_mlops.drift.quality import (
    beyond_range_p_value,
    null_and_type_checks,
    range_checks,
    range_shares,
    row_count_check,
)
from airflow_mlops.drift.report import (
    DriftReport,
    FeatureDrift,
    OutOfRange,
    PerformanceCheck,
    QualityCheck,
    percent,
)
from airflow_mlops.drift.settings import (
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    OUT_OF_RANGE_RULES,
    P_VALUE_TESTS,
    column_kinds,
    feature_names,
    raise_schema,
    validate_settings,
)
from airflow_mlops.drift.univariate import (
    feature_verdict,
    judge_test,
    numeric_matrix,
    run_categorical_tests,
    run_numeric_tests,
)
from airflow_mlops.exceptions import DriftInputError

__all__ = [
    "CATEGORICAL_TESTS",
    "DEFAULT_MAX_METRIC_DROP",
    "DEFAULT_MAX_METRIC_DROPS",
    "NUMERIC_TESTS",
    "OUT_OF_RANGE_RULES",
    "beyond_range_p_value",
    "detect_drift",
]


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    target: str | None = None,
    numeric_tests: Sequence[str] = NUMERIC_TESTS,
    categorical_tests: Sequence[str] = CATEGORICAL_TESTS,
    p_value: float = 0.05,
    correction: str = "bonferroni",
    drift_share: float = 0.5,
    psi_threshold: float = 0.2,
    wasserstein_threshold: float = 0.1,
    jensen_shannon_threshold: float = 0.1,
    multivariate: bool = True,
    mmd_permutations: int = 100,
    mmd_max_rows: int = 5000,
    mmd_p_value: float = 0.05,
    device: str = "auto",
    seed: int = 0,
    max_null_rate_increase: float = 0.05,
    max_out_of_range_share: float = 0.05,
    max_new_category_share: float = 0.05,
    min_rows: int = 1,
    reference_scores: Any = None,
    current_scores: Any = None,
    expected_metrics: Mapping[str, float] | None = None,
    max_metric_drop: Mapping[str, float] | None = None,
    positive_label: Any = 1,
    threshold: float = 0.5,
    task: str = "binary",
    classes: Sequence[str] | None = None,
    out_of_range: str = "drift",
) -> DriftReport:
    """Compare ``current`` (the live window) with ``reference`` and report drift and data quality.

    :param features: columns to test (default: the reference's columns minus ``target``). With the
        default, the two frames must have the same columns; with an explicit list, both must hold
        those columns (others are ignored).
    :param categorical: columns tested as categories (default: object, string, category and bool
        dtypes); every other feature must be numeric.
    :param target: the label column: never a feature; with ``expected_metrics``, the labels of the
        live window for performance drift.
    :param reference_scores: the champion's output on the reference window (prediction drift
        needs both). ``current_scores``: its output on the live window, row by row (also used for
        performance drift). The output of the ``task`` (:mod:`airflow_mlops.metrics`): binary, the
        positive class's probability (1-D); multiclass, the class probabilities ``(rows,
        classes)`` in ``classes`` order; regression, the predicted values (1-D).
    :param expected_metrics: the champion's recorded evaluation metrics; ``max_metric_drop`` the
        allowed drop per metric, any metric of the task (default: the task's primary metric may
        fall by 0.05, see :data:`DEFAULT_MAX_METRIC_DROPS`; a regression must name its own).
    :param positive_label: binary: the positive class (the labels are matched by
        :func:`airflow_mlops.labels.label_key`: ``"1"``, ``1`` and ``1.0`` are one class).
    :param threshold: binary: the operating threshold of the thresholded metrics (f1, ...).
    :param task: ``binary``, ``multiclass`` or ``regression``: what the scores are.
    :param classes: multiclass: the model's classes (canonical label texts), the order of the
        columns of the scores; binary: the model's two classes (optional: a live window whose
        labels are all negative is then still measured).
    :param out_of_range: what more than ``max_out_of_range_share`` of a feature's values beyond
        the reference's range means: ``drift`` (default), ``alarm`` or ``both``.
    :raises DriftInputError: an empty window, a schema difference (every difference listed),
        an unsupported or infinite-valued column, or an invalid setting.
    """
    settings = validate_settings(locals())
    if not isinstance(reference, pd.DataFrame) or not isinstance(current, pd.DataFrame):
        raise DriftInputError(
            f"reference and current must be pandas DataFrames, got {type(reference).__name__} and {type(current).__name__}"
        )
    if len(reference) == 0:
        raise DriftInputError("the reference window has no rows; drift cannot be measured against nothing")
    if len(current) == 0:
        raise DriftInputError(
            "the current (live) window has no rows: an empty window is an error, not 'no drift'"
        )
    names, problems = feature_names(reference, current, features, target)
    kinds, type_problems = column_kinds(reference, current, names, categorical)
    raise_schema(problems + type_problems)
    numeric = [f for f in names if kinds[f] == "numeric"]
    cats = [f for f in names if kinds[f] == "categorical"]
    if numeric and not numeric_tests:
        raise DriftInputError("numeric_tests is empty; name at least one of ks, wasserstein, psi")
    if cats and not categorical_tests:
        raise DriftInputError("categorical_tests is empty; name at least one of chi2, jensen_shannon, psi")

    # Family-wise error: each family of tests that can flag drift on its own (the univariate tests,
    # MMD, prediction drift) is tested at its level divided by the number of families (Bonferroni),
    # so under no drift the overall verdict's false-alarm rate stays at most the level.
    univariate_p = (numeric and any(t in P_VALUE_TESTS for t in numeric_tests)) or (
        cats and any(t in P_VALUE_TESTS for t in categorical_tests)
    )
    prediction_p = ("chi2" in categorical_tests and task != "regression") or (
        task != "multiclass" and "ks" in numeric_tests
    )
    families = (
        int(bool(univariate_p))
        + int(bool(multivariate and numeric))
        + int(reference_scores is not None and prediction_p)
    )
    split = max(families, 1)
    p_value, mmd_p_value = p_value / split, mmd_p_value / split
    if multivariate and numeric and 1 / (1 + mmd_permutations) >= mmd_p_value:
        raise DriftInputError(
            f"mmd_permutations={mmd_permutations} can never give a p-value below {mmd_p_value:.4f} "
            f"(mmd_p_value shared by {split} test families); use at least {math.ceil(1 / mmd_p_value)} "
            "permutations"
        )
    settings["family_split"] = split

    thresholds = {
        "wasserstein": wasserstein_threshold,
        "psi": psi_threshold,
        "jensen_shannon": jensen_shannon_threshold,
    }
    quality: list[QualityCheck] = [row_count_check(len(reference), len(current), min_rows)]

    raw: dict[str, dict[str, tuple[float, float | None]]] = {}  # feature -> test -> (stat, p)
    histograms: dict[str, dict[str, Any]] = {}
    numeric_stats = None
    if numeric:
        ref_m, cur_m = (
            numeric_matrix(reference, numeric, "reference"),
            numeric_matrix(current, numeric, "current"),
        )
        numeric_stats = run_numeric_tests(ref_m, cur_m, numeric, numeric_tests, raw, histograms)
    null_rates = {
        f: (1 - numeric_stats.n_reference[i] / len(reference), 1 - numeric_stats.n_current[i] / len(current))
        for i, f in enumerate(numeric)
        if numeric_stats is not None
    }
    quality += null_and_type_checks(reference, current, names, kinds, max_null_rate_increase, null_rates)
    ranges: dict[str, OutOfRange] = {}
    if numeric_stats is not None:
        ranges = range_shares(numeric, numeric_stats, max_out_of_range_share, p_value / max(len(numeric), 1))
        quality += range_checks(ranges, out_of_range)
    details: dict[tuple[str, str], str] = {}  # (feature, test) -> how its p-value was computed
    if cats:
        quality += run_categorical_tests(
            reference, current, cats, categorical_tests, raw, histograms, max_new_category_share, details
        )

    # Multiple-testing correction over every p-value of every feature.
    keys = [(f, t) for f in names for t in raw.get(f, {}) if t in P_VALUE_TESTS]
    p_raw = np.array([raw[f][t][1] for f, t in keys], dtype=np.float64)
    from airflow_mlops.drift.statistics import adjust_p_values

    adjusted = dict(zip(keys, adjust_p_values(p_raw, correction).tolist(), strict=True)) if keys else {}
    feature_reports = []
    range_is_drift = out_of_range in ("drift", "both")
    for f in names:
        tests = tuple(
            judge_test(t, stat, p, adjusted.get((f, t), p), p_value, thresholds, details.get((f, t), ""))
            for t, (stat, p) in raw.get(f, {}).items()
        )
        beyond = ranges.get(f)
        rules: tuple[str, ...] = ("tests",) if feature_verdict(tests, kinds[f]) else ()
        if range_is_drift and beyond is not None and beyond.exceeded:
            rules += ("out_of_range",)
        feature_reports.append(
            FeatureDrift(
                name=f,
                kind=kinds[f],
                tests=tests,
                drifted=bool(rules),
                histogram=histograms.get(f, {}),
                rules=rules,
                out_of_range=beyond,
            )
        )
    tested = [fd for fd in feature_reports if fd.tests or fd.rules]
    drifted_names = [fd.name for fd in tested if fd.drifted]
    share = len(drifted_names) / len(tested) if tested else 0.0
    dataset_drift = bool(tested) and share >= drift_share
    reasons: list[str] = []
    if dataset_drift:
        reasons.append(
            f"{len(drifted_names)} of {len(tested)} features drifted (share {share:.2f} >= {drift_share:g}): "
            + ", ".join(drifted_names)
        )
    beyond_range = [fd for fd in feature_reports if "out_of_range" in fd.rules]
    if beyond_range:
        reasons.append(
            f"out of range (more than {percent(max_out_of_range_share)} of a feature's values; "
            f"monitoring.out_of_range: {out_of_range}): "
            + "; ".join(
                f"{fd.name!r}: {fd.out_of_range.describe()}" for fd in beyond_range if fd.out_of_range
            )
        )

    mv = None
    if multivariate and numeric and numeric_stats is not None:
        mv = multivariate_drift(
            ref_m, cur_m, numeric, numeric_stats, mmd_permutations, mmd_max_rows, mmd_p_value, device, seed
        )
        if mv is not None and mv.drifted:
            reasons.append(
                f"multivariate drift: MMD over {len(mv.features)} numeric features, p={mv.p_value:.4f} < "
                f"{mv.threshold:g} (the joint distribution changed, e.g. a correlation)"
            )

    prediction = None
    cur_scores = None
    if reference_scores is not None or current_scores is not None:
        if current_scores is None:
            raise DriftInputError(
                "reference_scores needs current_scores (the champion's output on the live window)"
            )
        cur_scores = model_outputs(current_scores, "current_scores", task, classes)
        if reference_scores is not None:
            ref_scores = model_outputs(reference_scores, "reference_scores", task, classes)
            if task == "multiclass":
                prediction = class_share_drift(
                    ref_scores,
                    cur_scores,
                    class_names(classes, cur_scores),
                    categorical_tests,
                    p_value,
                    thresholds,
                )
            else:
                prediction = prediction_drift(
                    ref_scores,
                    cur_scores,
                    numeric_tests,
                    p_value,
                    thresholds,
                    task,
                    categorical_tests=categorical_tests if task == "binary" else (),
                    threshold=threshold,
                )
            if prediction.drifted:
                scores_kind = "categorical" if task == "multiclass" else "numeric"
                changed = [
                    f"{subject} changed (" + "; ".join(t.format() for t in tests if t.drifted) + ")"
                    for subject, tests, part_drifted in (
                        (
                            prediction.subject,
                            prediction.tests,
                            feature_verdict(prediction.tests, scores_kind),
                        ),
                        (prediction.class_subject, prediction.class_tests, prediction.class_drifted),
                    )
                    if part_drifted
                ]
                reasons.append("prediction drift: " + "; ".join(changed))

    performance: list[PerformanceCheck] = []
    if expected_metrics is not None:
        checks, label_check = performance_checks(
            current,
            target,
            cur_scores,
            expected_metrics,
            max_metric_drop,
            positive_label,
            threshold,
            task,
            classes,
        )
        performance = checks
        if label_check is not None:
            quality.append(label_check)
        for p in performance:
            if p.drifted:
                reasons.append(
                    f"performance drift: {p.metric} {p.current:.4f} on the live window vs {p.expected:.4f} recorded "
                    f"(worse by {p.drop:.4f} > {p.max_drop:g} allowed)"
                )

    failed = [q for q in quality if q.alarm]
    reasons += [f"data quality: {q.message}" for q in failed]
    drifted = dataset_drift or bool(beyond_range) or bool(mv and mv.drifted)
    drifted = drifted or bool(prediction and prediction.drifted) or any(p.drifted for p in performance)
    return DriftReport(
        drifted=drifted,
        quality_failed=bool(failed),
        reasons=tuple(reasons),
        features=tuple(feature_reports),
        multivariate=mv,
        quality=tuple(quality),
        prediction=prediction,
        performance=tuple(performance),
        reference_rows=len(reference),
        current_rows=len(current),
        settings=settings,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        dataset_drift=dataset_drift,
        drift_share=share,
    )
