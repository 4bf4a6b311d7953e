"""``detect_drift``: compare a live window with the reference and return a :class:`DriftReport`.

The rules (documented in ``docs/drift.md``):

* **Per feature**, a p-value test (KS for numeric, chi-squared for categorical) and distances
  (Wasserstein on reference-std-scaled values and PSI for numeric; Jensen-Shannon and PSI for
  categorical). The p-values of all features are corrected together (Bonferroni by default, or
  Benjamini-Hochberg). A feature drifts when the change is **significant and large**: its
  corrected p-value is below ``p_value`` *and* at least one distance reaches its threshold (with
  only p-value tests configured, significance alone; with only distances, any distance).
* **Out of range** (``out_of_range``): a numeric feature with more than ``max_out_of_range_share``
  of its live values beyond the reference's ``[min, max]``. With ``drift`` (the default) that
  feature drifted (rule ``out_of_range``: a covariate shift the model never saw), whatever its
  tests say, and the window drifted; with ``alarm`` it is a data-quality alarm (the behaviour of
  earlier releases); with ``both``, drift and alarm.
* **Dataset drift**: the share of drifted features is at least ``drift_share``.
* **Multivariate drift**: MMD over the numeric features, permutation p-value below ``mmd_p_value``.
* **Prediction drift**: the champion's output on the two windows, per ``task``: binary, the
  positive class's probability and regression, the predicted values (the numeric tests);
  multiclass, the shares of the predicted classes (the categorical tests).
* **Performance drift**: a champion metric (:mod:`airflow_mlops.metrics`) on the labelled live
  window worse by more than its allowance than the recorded value, in the metric's direction.
  The labels are encoded by :func:`airflow_mlops.tasks.encode_target` (the shared label rule).
* ``drifted`` = dataset, out-of-range, multivariate, prediction or performance drift.
  ``quality_failed`` = a data-quality check whose failure is an alarm failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.drift.report import (
    QUALITY_ACTIONS,
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    OutOfRange,
    PerformanceCheck,
    PredictionDrift,
    QualityCheck,
    TestResult,
    percent,
)
from airflow_mlops.exceptions import DataError, DriftInputError
from airflow_mlops.tasks import TASKS

log = logging.getLogger(__name__)

__all__ = [
    "CATEGORICAL_TESTS",
    "DEFAULT_MAX_METRIC_DROP",
    "DEFAULT_MAX_METRIC_DROPS",
    "NUMERIC_TESTS",
    "OUT_OF_RANGE_RULES",
    "detect_drift",
]

NUMERIC_TESTS = ("ks", "wasserstein", "psi")
CATEGORICAL_TESTS = ("chi2", "jensen_shannon", "psi")
P_VALUE_TESTS = frozenset({"ks", "chi2"})
CORRECTIONS = ("bonferroni", "bh", "none")
#: Used when ``expected_metrics`` is given without ``max_metric_drop``: the task's primary metric
#: (:data:`airflow_mlops.metrics.PRIMARY_METRIC`) may fall by 0.05. A regression has none: its
#: metrics are in the target's units, so name the metric and its allowance.
DEFAULT_MAX_METRIC_DROPS: Mapping[str, Mapping[str, float]] = {
    "binary": {"roc_auc": 0.05},
    "multiclass": {"f1_macro": 0.05},
}
DEFAULT_MAX_METRIC_DROP: Mapping[str, float] = DEFAULT_MAX_METRIC_DROPS["binary"]
#: What a share of values beyond the reference's range above the limit means.
OUT_OF_RANGE_RULES = QUALITY_ACTIONS  # ("alarm", "drift", "both")
PSI_BINS = 10


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
    settings = _settings(locals())
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
    names, problems = _feature_names(reference, current, features, target)
    kinds, type_problems = _kinds(reference, current, names, categorical)
    _raise_schema(problems + type_problems)
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
    prediction_p = "chi2" in categorical_tests if task == "multiclass" else "ks" in numeric_tests
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
    quality: list[QualityCheck] = [_row_count(len(reference), len(current), min_rows)]

    raw: dict[str, dict[str, tuple[float, float | None]]] = {}  # feature -> test -> (stat, p)
    histograms: dict[str, dict[str, Any]] = {}
    numeric_stats = None
    if numeric:
        ref_m, cur_m = (
            _numeric_matrix(reference, numeric, "reference"),
            _numeric_matrix(current, numeric, "current"),
        )
        numeric_stats = _numeric_tests(ref_m, cur_m, numeric, numeric_tests, raw, histograms)
    null_rates = {
        f: (1 - numeric_stats.n_reference[i] / len(reference), 1 - numeric_stats.n_current[i] / len(current))
        for i, f in enumerate(numeric)
        if numeric_stats is not None
    }
    quality += _null_and_type_checks(reference, current, names, kinds, max_null_rate_increase, null_rates)
    ranges: dict[str, OutOfRange] = {}
    if numeric_stats is not None:
        ranges = _ranges(numeric, numeric_stats, max_out_of_range_share, p_value / max(len(numeric), 1))
        quality += _range_checks(ranges, out_of_range)
    if cats:
        quality += _categorical_tests(
            reference, current, cats, categorical_tests, raw, histograms, max_new_category_share
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
            _result(t, stat, p, adjusted.get((f, t), p), p_value, thresholds)
            for t, (stat, p) in raw.get(f, {}).items()
        )
        beyond = ranges.get(f)
        rules: tuple[str, ...] = ("tests",) if _verdict(tests) else ()
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
        mv = _multivariate(
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
        cur_scores = _outputs(current_scores, "current_scores", task, classes)
        if reference_scores is not None:
            ref_scores = _outputs(reference_scores, "reference_scores", task, classes)
            if task == "multiclass":
                prediction = _class_share_drift(
                    ref_scores,
                    cur_scores,
                    _class_names(classes, cur_scores),
                    categorical_tests,
                    p_value,
                    thresholds,
                )
            else:
                prediction = _prediction_drift(
                    ref_scores, cur_scores, numeric_tests, p_value, thresholds, task
                )
            if prediction.drifted:
                reasons.append(
                    f"prediction drift: {prediction.subject} changed ("
                    + "; ".join(t.format() for t in prediction.tests if t.drifted)
                    + ")"
                )

    performance: list[PerformanceCheck] = []
    if expected_metrics is not None:
        checks, label_check = _performance(
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


# --- settings and schema ------------------------------------------------------------------------


def _settings(args: dict[str, Any]) -> dict[str, Any]:
    """Validate the settings and return their JSON-able form (data and scores left out)."""
    problems = []

    def unit(name: str, low_open: bool = True, high: float = 1.0, high_open: bool = True) -> None:
        v = args[name]
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > 0 if low_open else v >= 0) and (v < high if high_open else v <= high)
        if not ok:
            problems.append(
                f"{name}={v!r} must be a number in {'(' if low_open else '['}0, {high:g}{')' if high_open else ']'}"
            )

    for name in ("p_value", "mmd_p_value"):
        unit(name)
    unit("drift_share", high_open=False)
    for name in ("max_null_rate_increase", "max_out_of_range_share", "max_new_category_share"):
        unit(name, low_open=False, high_open=False)
    for name in ("psi_threshold", "wasserstein_threshold", "jensen_shannon_threshold"):
        unit(name, high=math.inf)
    unit("threshold", low_open=False, high_open=False)
    if args["correction"] not in CORRECTIONS:
        problems.append(f"correction={args['correction']!r} must be one of {', '.join(CORRECTIONS)}")
    for name, allowed in (("numeric_tests", NUMERIC_TESTS), ("categorical_tests", CATEGORICAL_TESTS)):
        value = args[name]
        if isinstance(value, str) or not all(t in allowed for t in value):
            problems.append(f"{name}={value!r}: each test must be one of {', '.join(allowed)}")
    for name, low in (("mmd_permutations", 1), ("mmd_max_rows", 2), ("min_rows", 1)):
        v = args[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            problems.append(f"{name}={v!r} must be an integer >= {low}")
    if not problems and args["multivariate"]:
        smallest = 1 / (1 + args["mmd_permutations"])
        if smallest >= args["mmd_p_value"]:
            need = math.ceil(1 / args["mmd_p_value"])
            problems.append(
                f"mmd_permutations={args['mmd_permutations']} can never give a p-value below mmd_p_value="
                f"{args['mmd_p_value']:g} (smallest possible {smallest:.3f}); use at least {need} permutations"
            )
    if not isinstance(args["device"], str):
        problems.append(f"device={args['device']!r} must be 'auto', 'cpu' or 'cuda[:N]'")
    if args["task"] not in TASKS:
        problems.append(f"task={args['task']!r} must be one of {', '.join(TASKS)}")
    if args["out_of_range"] not in OUT_OF_RANGE_RULES:
        problems.append(
            f"out_of_range={args['out_of_range']!r} must be one of {', '.join(OUT_OF_RANGE_RULES)}"
        )
    classes = args["classes"]
    if classes is not None and (
        isinstance(classes, str) or len(classes) < 2 or len({str(c) for c in classes}) != len(classes)
    ):
        problems.append(f"classes={classes!r} must list two or more distinct class labels")
    if problems:
        raise DriftInputError("invalid drift settings:\n  " + "\n  ".join(problems))
    keep = (
        "features", "categorical", "target", "numeric_tests", "categorical_tests", "p_value", "correction",
        "drift_share", "psi_threshold", "wasserstein_threshold", "jensen_shannon_threshold", "multivariate",
        "mmd_permutations", "mmd_max_rows", "mmd_p_value", "device", "seed", "max_null_rate_increase",
        "max_out_of_range_share", "max_new_category_share", "min_rows", "expected_metrics", "max_metric_drop",
        "threshold", "task", "classes", "out_of_range",
    )  # fmt: skip
    out: dict[str, Any] = {}
    for k in keep:
        v = args[k]
        if isinstance(v, Mapping):
            v = {str(a): float(b) for a, b in v.items()}
        elif isinstance(v, Sequence) and not isinstance(v, str):
            v = [str(x) for x in v]
        out[k] = v
    out["positive_label"] = (
        args["positive_label"]
        if isinstance(args["positive_label"], int | float | str | bool)
        else str(args["positive_label"])
    )
    out["prediction_drift"] = args["reference_scores"] is not None
    return out


def _feature_names(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str] | None, target: str | None
) -> tuple[list[str], list[str]]:
    ref_cols = [str(c) for c in reference.columns]
    cur_cols = [str(c) for c in current.columns]
    problems = []
    if features is None:
        names = [c for c in ref_cols if c != target]
        missing = [c for c in names if c not in cur_cols]
        extra = [c for c in cur_cols if c not in ref_cols and c != target]
    else:
        if isinstance(features, str):
            raise DriftInputError(f"features must be a list of column names, got the string {features!r}")
        names = [str(f) for f in features]
        if target is not None and target in names:
            problems.append(f"the target {target!r} is listed in features; a label is never a feature")
        absent = [f for f in names if f not in ref_cols]
        if absent:
            problems.append(f"features missing from the reference: {', '.join(absent)}")
        missing = [f for f in names if f not in cur_cols]
        extra = []
    if missing:
        problems.append(f"columns missing from the current window: {', '.join(missing)}")
    if extra:
        problems.append(f"columns in the current window that the reference does not have: {', '.join(extra)}")
    if not problems and not names:
        problems.append("no features to compare (the reference has no columns besides the target)")
    return names, problems


def _raise_schema(problems: list[str]) -> None:
    if problems:
        raise DriftInputError(
            "the current window's schema differs from the reference:\n  - "
            + "\n  - ".join(problems)
            + "\n  fix the live feed, or pass features=[...] naming the columns to compare"
        )


def _kind(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    return f"unsupported ({dtype})"


def _kinds(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str], categorical: Sequence[str] | None
) -> tuple[dict[str, str], list[str]]:
    forced = set(categorical or ())
    unknown = sorted(forced - set(names))
    problems = [f"categorical names columns that are not features: {', '.join(unknown)}"] if unknown else []
    kinds: dict[str, str] = {}
    for f in names:
        if f not in reference.columns or f not in current.columns:
            continue  # already reported as missing
        ref_kind, cur_kind = _kind(reference[f]), _kind(current[f])
        if ref_kind.startswith("unsupported"):
            problems.append(
                f"column {f!r} has dtype {reference[f].dtype}, which drift cannot test; convert it or leave it out of features"
            )
            continue
        if ref_kind != cur_kind and not bool(current[f].isna().all()):
            problems.append(
                f"column {f!r} changed type: {reference[f].dtype} ({ref_kind}) in the reference, "
                f"{current[f].dtype} ({cur_kind}) in the current window"
            )
            continue
        kinds[f] = "categorical" if f in forced else ref_kind
    return kinds, problems


# --- quality ------------------------------------------------------------------------------------


def _row_count(n_ref: int, n_cur: int, min_rows: int) -> QualityCheck:
    ok = n_cur >= min_rows
    return QualityCheck(
        check="row_count",
        column=None,
        reference=float(n_ref),
        current=float(n_cur),
        threshold=float(min_rows),
        passed=ok,
        message=f"{n_cur} rows in the current window (at least {min_rows} needed; reference has {n_ref})",
    )


def _value_type(series: pd.Series) -> str:
    return str(pd.api.types.infer_dtype(series, skipna=True))


def _null_and_type_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: list[str],
    kinds: dict[str, str],
    max_increase: float,
    known: Mapping[str, tuple[float, float]],
) -> list[QualityCheck]:
    checks = []
    for f in names:
        if f in known:  # numeric: from the non-null counts already made
            ref_rate, cur_rate = (float(v) for v in known[f])
        else:
            ref_rate, cur_rate = float(reference[f].isna().mean()), float(current[f].isna().mean())
        rise = cur_rate - ref_rate
        ok = rise <= max_increase + 1e-12
        checks.append(
            QualityCheck(
                check="null_rate",
                column=f,
                reference=ref_rate,
                current=cur_rate,
                threshold=max_increase,
                passed=ok,
                message=(
                    f"null rate of {f!r} {'rose' if rise > 0 else 'is'} {ref_rate:.1%} -> {cur_rate:.1%}"
                    + ("" if ok else f" (+{rise * 100:.1f} points > {max_increase * 100:.1f} allowed)")
                ),
            )
        )
        if kinds[f] == "categorical":
            ref_type, cur_type = _value_type(reference[f]), _value_type(current[f])
            ok = cur_type == ref_type or cur_type == "empty"
        else:
            ref_type, cur_type = str(reference[f].dtype), str(current[f].dtype)
            ok = True  # numeric on both sides (a retyped column is a schema error)
        checks.append(
            QualityCheck(
                check="type",
                column=f,
                reference=ref_type,
                current=cur_type,
                threshold=None,
                passed=ok,
                message=f"values of {f!r} are {cur_type}"
                + ("" if ok else f", the reference's are {ref_type}"),
            )
        )
    return checks


def _ranges(numeric: list[str], stats: Any, max_share: float, alpha: float) -> dict[str, OutOfRange]:
    """Each numeric feature's share of live values beyond the reference's range (non-null ones),
    with the chance of that many beyond it if the window were drawn like the reference (see
    :func:`beyond_range_p_value`)."""
    out = {}
    for i, f in enumerate(numeric):
        n = int(stats.n_current[i])
        beyond = int(stats.out_of_range[i])
        share = beyond / n if n else 0.0
        p = beyond_range_p_value(beyond, int(stats.n_reference[i]), n)
        lo, hi = float(stats.reference_min[i]), float(stats.reference_max[i])
        out[f] = OutOfRange(share=share, low=lo, high=hi, threshold=max_share, p_value=p, alpha=alpha)
    return out


def beyond_range_p_value(beyond: int, n_reference: int, n_current: int) -> float:
    """The chance that ``beyond`` or more of ``n_current`` values lie outside the range of
    ``n_reference`` values when all come from one distribution (exchangeable, whatever it is).

    In the sorted ``n + m`` values the reference's are a uniformly random subset. ``k`` live values
    outside the range means ``a`` before the reference's first and ``k - a`` after its last, the
    ``m - k`` others between them: ``P(K = k) = (k + 1) C(n + m - k - 2, n - 2) / C(n + m, n)``.
    Ties with the extremes only lower the true chance, so the value is an upper bound there. Fewer
    than two reference values tell nothing: 1.
    """
    m, n = n_current, n_reference
    if beyond <= 0 or n < 2:
        return 1.0
    if beyond > m:
        return 0.0

    def log_comb(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    total = log_comb(n + m, n)
    below = sum(math.exp(math.log(k + 1) + log_comb(n + m - k - 2, n - 2) - total) for k in range(beyond))
    return float(min(1.0, max(0.0, 1.0 - below)))


def _range_checks(ranges: Mapping[str, OutOfRange], action: str) -> list[QualityCheck]:
    checks = []
    for f, r in ranges.items():
        ok = not r.exceeded
        consequence = {
            "drift": "counted as drift of the feature, not an alarm",
            "alarm": "a data-quality alarm",
            "both": "drift of the feature and a data-quality alarm",
        }[action]
        checks.append(
            QualityCheck(
                check="out_of_range",
                column=f,
                reference=None if math.isnan(r.low) else f"[{r.low:g}, {r.high:g}]",
                current=r.share,
                threshold=r.threshold,
                passed=ok,
                message=f"{percent(r.share)} of {f!r} beyond the reference's range [{r.low:g}, {r.high:g}]"
                + (
                    f" (more than {percent(r.threshold)}, p={r.p_value:.2g} < {r.alpha:.2g}: {consequence})"
                    if not ok
                    else f" (p={r.p_value:.2g}: as many beyond it as a sample like the reference puts there)"
                    if r.share > r.threshold
                    else ""
                ),
                action=action,
            )
        )
    return checks


# --- numeric and categorical tests --------------------------------------------------------------


def _numeric_matrix(frame: pd.DataFrame, names: list[str], which: str) -> np.ndarray:
    """The features as a ``(features, rows)`` float64 matrix, one contiguous row per column."""
    # Column by column into the rows of one matrix: pandas keeps each column contiguous, so this is
    # one pass over the data, with no (rows, features) copy and no transpose.
    out = np.empty((len(names), len(frame)))
    for i, name in enumerate(names):
        column = frame[name]
        if column.dtype == np.float64:  # already NaN for missing: no conversion, one copy
            out[i] = column.to_numpy(copy=False)
        else:
            out[i] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = [names[i] for i in np.flatnonzero(np.isinf(out).any(axis=1))]
    if bad:
        raise DriftInputError(
            f"infinite values in the {which} window's column(s) {', '.join(bad)}; replace them with NaN "
            "(missing) or finite values"
        )
    return out


def _numeric_tests(
    ref: np.ndarray,
    cur: np.ndarray,
    names: list[str],
    tests: Sequence[str],
    raw: dict[str, dict[str, tuple[float, float | None]]],
    histograms: dict[str, dict[str, Any]],
) -> Any:
    from airflow_mlops.drift.statistics import ks_p_values, numeric_statistics, psi

    stats = numeric_statistics(ref, cur, psi_bins=PSI_BINS)
    ks_p = ks_p_values(stats.ks, stats.n_reference, stats.n_current)
    std = np.where(stats.reference_std > 0, stats.reference_std, 1.0)
    w_scaled = stats.wasserstein / std
    psi_values = psi(stats.psi_reference, stats.psi_current)
    for i, f in enumerate(names):
        if stats.n_reference[i] == 0 or stats.n_current[i] == 0:
            continue  # all null in a window: the null-rate check reports it
        row: dict[str, tuple[float, float | None]] = {}
        for t in tests:
            if t == "ks":
                row[t] = (float(stats.ks[i]), float(ks_p[i]))
            elif t == "wasserstein":
                row[t] = (float(w_scaled[i]), None)
            else:
                row[t] = (float(psi_values[i]), None)
        raw[f] = row
        histograms[f] = _numeric_histogram(stats.psi_edges[i], stats.psi_reference[i], stats.psi_current[i])
    return stats


def _numeric_histogram(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    """Proportions per bin; zero-width bins (repeated deciles) are merged into their neighbour."""
    bounds: list[float] = [float(edges[0])]
    rc: list[float] = []
    cc: list[float] = []
    for i in range(len(ref)):
        if not rc or edges[i + 1] > bounds[-1]:
            bounds.append(float(edges[i + 1]))
            rc.append(0.0)
            cc.append(0.0)
        rc[-1] += float(ref[i])
        cc[-1] += float(cur[i])
    if len(rc) > 1 and bounds[1] <= bounds[0]:  # a zero-width first bin joins the second
        del bounds[1]
        rc[1] += rc.pop(0)
        cc[1] += cc.pop(0)
    r_total, c_total = sum(rc) or 1.0, sum(cc) or 1.0
    return {"edges": bounds, "reference": [v / r_total for v in rc], "current": [v / c_total for v in cc]}


def _label(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)


def _categorical_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: list[str],
    tests: Sequence[str],
    raw: dict[str, dict[str, tuple[float, float | None]]],
    histograms: dict[str, dict[str, Any]],
    max_new_share: float,
) -> list[QualityCheck]:
    from airflow_mlops.drift.statistics import categorical_statistics

    counted = []
    for f in names:
        rv = reference[f].value_counts(dropna=True, sort=True)
        cv = current[f].value_counts(dropna=True, sort=True)
        new = [c for c in cv.index if c not in rv.index]
        cats = [*rv.index, *new]
        counted.append(
            (
                f,
                cats,
                rv.reindex(cats, fill_value=0).to_numpy(),
                cv.reindex(cats, fill_value=0).to_numpy(),
                new,
            )
        )
    width = max((len(c[1]) for c in counted), default=1)
    ref_m = np.zeros((len(counted), width))
    cur_m = np.zeros((len(counted), width))
    for i, (_, cats, rc, cc, _) in enumerate(counted):
        ref_m[i, : len(cats)] = rc
        cur_m[i, : len(cats)] = cc
    stats = categorical_statistics(ref_m, cur_m)
    checks = []
    for i, (f, cats, rc, cc, new) in enumerate(counted):
        n_ref, n_cur = int(rc.sum()), int(cc.sum())
        new_count = float(cc[len(cats) - len(new) :].sum()) if new else 0.0
        share = new_count / n_cur if n_cur else 0.0
        ok = share <= max_new_share + 1e-12
        shown = ", ".join(repr(_label(c)) for c in new[:10]) + (" ..." if len(new) > 10 else "")
        checks.append(
            QualityCheck(
                check="new_categories",
                column=f,
                reference=float(len(cats) - len(new)),
                current=share,
                threshold=max_new_share,
                passed=ok,
                message=(
                    f"{share:.1%} of {f!r} in categories the reference never had"
                    + (f" ({shown})" if new else "")
                    + ("" if ok else f" (more than {max_new_share:.1%})")
                ),
            )
        )
        if n_ref == 0 or n_cur == 0:
            continue
        row: dict[str, tuple[float, float | None]] = {}
        for t in tests:
            if t == "chi2":
                row[t] = (float(stats.chi2[i]), float(stats.chi2_p_value[i]))
            elif t == "jensen_shannon":
                row[t] = (float(stats.jensen_shannon[i]), None)
            else:
                row[t] = (float(stats.psi[i]), None)
        raw[f] = row
        histograms[f] = {
            "categories": [_label(c) for c in cats],
            "reference": (rc / n_ref).tolist(),
            "current": (cc / n_cur).tolist(),
        }
    return checks


def _result(
    test: str,
    stat: float,
    p: float | None,
    adjusted: float | None,
    alpha: float,
    thresholds: Mapping[str, float],
) -> TestResult:
    if test in P_VALUE_TESTS:
        assert p is not None and adjusted is not None
        return TestResult(test, stat, p, adjusted, alpha, bool(adjusted < alpha))
    limit = thresholds[test]
    return TestResult(test, stat, None, None, limit, bool(stat >= limit))


def _verdict(tests: Sequence[TestResult]) -> bool:
    """Significant and large: a p-value test rejects and a distance reaches its threshold."""
    p_tests = [t for t in tests if t.p_value is not None]
    d_tests = [t for t in tests if t.p_value is None]
    significant = any(t.drifted for t in p_tests) if p_tests else True
    large = any(t.drifted for t in d_tests) if d_tests else True
    return bool(tests) and significant and large


# --- multivariate, prediction and performance ---------------------------------------------------


def _multivariate(
    ref: np.ndarray,
    cur: np.ndarray,
    names: list[str],
    stats: Any,
    permutations: int,
    max_rows: int,
    alpha: float,
    device: str,
    seed: int,
) -> MultivariateDrift | None:
    from airflow_mlops.drift.mmd import mmd_permutation_test

    usable = [i for i in range(len(names)) if stats.n_reference[i] > 0 and stats.n_current[i] > 0]
    if not usable:
        return None
    mean = stats.reference_mean[usable][:, None]
    std = np.where(stats.reference_std[usable] > 0, stats.reference_std[usable], 1.0)[:, None]
    rng = np.random.default_rng(seed)

    def rows(matrix: np.ndarray) -> np.ndarray:
        x = matrix[usable]
        complete = np.flatnonzero(~np.isnan(x).any(axis=0))
        if len(complete) > max_rows:
            complete = np.sort(rng.choice(complete, size=max_rows, replace=False))
        return ((x[:, complete] - mean) / std).T

    x, y = rows(ref), rows(cur)
    if len(x) < 2 or len(y) < 2:
        log.warning("MMD skipped: fewer than 2 complete rows (%s reference, %s current)", len(x), len(y))
        return None
    result = mmd_permutation_test(x, y, permutations=permutations, seed=seed, device=device)
    return MultivariateDrift(
        test="mmd",
        statistic=result.statistic,
        p_value=result.p_value,
        threshold=alpha,
        permutations=permutations,
        reference_rows=len(x),
        current_rows=len(y),
        features=tuple(names[i] for i in usable),
        device=result.device,
        drifted=result.p_value < alpha,
        bandwidth=result.bandwidth,
    )


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


def _outputs(values: Any, name: str, task: str, classes: Sequence[str] | None) -> np.ndarray:
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


def _class_names(classes: Sequence[str] | None, proba: np.ndarray) -> list[str]:
    return [str(c) for c in classes] if classes is not None else [str(i) for i in range(proba.shape[1])]


def _class_share_drift(
    ref: np.ndarray,
    cur: np.ndarray,
    classes: list[str],
    tests: Sequence[str],
    alpha: float,
    thresholds: Mapping[str, float],
) -> PredictionDrift:
    """Multiclass: the predicted classes' counts, reference against live, by the categorical tests."""
    from airflow_mlops.drift.statistics import categorical_statistics

    k = len(classes)
    rc = np.bincount(np.argmax(ref, axis=1), minlength=k).astype(np.float64)
    cc = np.bincount(np.argmax(cur, axis=1), minlength=k).astype(np.float64)
    stats = categorical_statistics(rc[None, :], cc[None, :])
    results = []
    for t in tests:
        if t == "chi2":
            p = float(stats.chi2_p_value[0])
            results.append(_result("chi2", float(stats.chi2[0]), p, p, alpha, thresholds))
        elif t == "jensen_shannon":
            results.append(_result(t, float(stats.jensen_shannon[0]), None, None, alpha, thresholds))
        else:
            results.append(_result(t, float(stats.psi[0]), None, None, alpha, thresholds))
    tests_t = tuple(results)
    return PredictionDrift(
        tests=tests_t,
        histogram={
            "categories": list(classes),
            "reference": (rc / rc.sum()).tolist(),
            "current": (cc / cc.sum()).tolist(),
        },
        drifted=_verdict(tests_t),
        reference_rows=len(ref),
        current_rows=len(cur),
        task="multiclass",
    )


def _prediction_drift(
    ref: np.ndarray,
    cur: np.ndarray,
    tests: Sequence[str],
    alpha: float,
    thresholds: Mapping[str, float],
    task: str = "binary",
) -> PredictionDrift:
    from airflow_mlops.drift.statistics import ks_p_values, numeric_statistics, psi

    stats = numeric_statistics(ref[None, :], cur[None, :], psi_bins=PSI_BINS)
    results = []
    for t in tests:
        if t == "ks":
            p = float(ks_p_values(stats.ks, stats.n_reference, stats.n_current)[0])
            results.append(_result("ks", float(stats.ks[0]), p, p, alpha, thresholds))
        elif t == "wasserstein":
            std = float(stats.reference_std[0]) or 1.0
            results.append(_result(t, float(stats.wasserstein[0]) / std, None, None, alpha, thresholds))
        else:
            results.append(
                _result(
                    t, float(psi(stats.psi_reference, stats.psi_current)[0]), None, None, alpha, thresholds
                )
            )
    tests_t = tuple(results)
    return PredictionDrift(
        tests=tests_t,
        histogram=_numeric_histogram(stats.psi_edges[0], stats.psi_reference[0], stats.psi_current[0]),
        drifted=_verdict(tests_t),
        reference_rows=len(ref),
        current_rows=len(cur),
        task=task,
    )


def _performance(
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
