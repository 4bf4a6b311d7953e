"""``detect_drift``: compare a live window with the reference and return a :class:`DriftReport`.

The rules (documented in ``docs/drift.md``):

* **Per feature**, a p-value test (KS for numeric, chi-squared for categorical) and distances
  (Wasserstein on reference-std-scaled values and PSI for numeric; Jensen-Shannon and PSI for
  categorical). The p-values of all features are corrected together (Bonferroni by default, or
  Benjamini-Hochberg). A feature drifts when the change is **significant and large**: its
  corrected p-value is below ``p_value`` *and* at least one distance reaches its threshold (with
  only p-value tests configured, significance alone; with only distances, any distance).
* **Dataset drift**: the share of drifted features is at least ``drift_share``.
* **Multivariate drift**: MMD over the numeric features, permutation p-value below ``mmd_p_value``.
* **Prediction drift**: the champion's scores on the two windows, under the per-feature rule.
* **Performance drift**: a champion metric on the labelled live window dropped by more than its
  allowance from the recorded value.
* ``drifted`` = any of the four above. ``quality_failed`` = any data-quality check failed.
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
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    PerformanceCheck,
    PredictionDrift,
    QualityCheck,
    TestResult,
)
from airflow_mlops.exceptions import DriftInputError

log = logging.getLogger(__name__)

__all__ = ["CATEGORICAL_TESTS", "DEFAULT_MAX_METRIC_DROP", "NUMERIC_TESTS", "detect_drift"]

NUMERIC_TESTS = ("ks", "wasserstein", "psi")
CATEGORICAL_TESTS = ("chi2", "jensen_shannon", "psi")
P_VALUE_TESTS = frozenset({"ks", "chi2"})
CORRECTIONS = ("bonferroni", "bh", "none")
#: Used when ``expected_metrics`` is given without ``max_metric_drop``.
DEFAULT_MAX_METRIC_DROP: Mapping[str, float] = {"roc_auc": 0.05}
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
) -> DriftReport:
    """Compare ``current`` (the live window) with ``reference`` and report drift and data quality.

    :param features: columns to test (default: the reference's columns minus ``target``). With the
        default, the two frames must have the same columns; with an explicit list, both must hold
        those columns (others are ignored).
    :param categorical: columns tested as categories (default: object, string, category and bool
        dtypes); every other feature must be numeric.
    :param target: the label column: never a feature; with ``expected_metrics``, the labels of the
        live window for performance drift.
    :param reference_scores: the champion's scores on the reference window (prediction drift needs
        both score arrays). ``current_scores``: its scores on the live window, row by row
        (also used for performance drift).
    :param expected_metrics: the champion's recorded evaluation metrics; ``max_metric_drop`` the
        allowed drop per metric (default ``{"roc_auc": 0.05}``).
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
    families = (
        int(bool(univariate_p))
        + int(bool(multivariate and numeric))
        + int(reference_scores is not None and "ks" in numeric_tests)
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
    if numeric_stats is not None:
        quality += _range_checks(numeric, numeric_stats, max_out_of_range_share)
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
    for f in names:
        tests = tuple(
            _result(t, stat, p, adjusted.get((f, t), p), p_value, thresholds)
            for t, (stat, p) in raw.get(f, {}).items()
        )
        feature_reports.append(
            FeatureDrift(
                name=f, kind=kinds[f], tests=tests, drifted=_verdict(tests), histogram=histograms.get(f, {})
            )
        )
    tested = [fd for fd in feature_reports if fd.tests]
    drifted_names = [fd.name for fd in tested if fd.drifted]
    share = len(drifted_names) / len(tested) if tested else 0.0
    dataset_drift = bool(tested) and share >= drift_share
    reasons: list[str] = []
    if dataset_drift:
        reasons.append(
            f"{len(drifted_names)} of {len(tested)} features drifted (share {share:.2f} >= {drift_share:g}): "
            + ", ".join(drifted_names)
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
    if reference_scores is not None or current_scores is not None:
        cur_scores = _scores(current_scores, "current_scores")
        if reference_scores is not None:
            prediction = _prediction_drift(
                _scores(reference_scores, "reference_scores"), cur_scores, numeric_tests, p_value, thresholds
            )
            if prediction.drifted:
                reasons.append(
                    "prediction drift: the champion's scores changed ("
                    + "; ".join(t.format() for t in prediction.tests if t.drifted)
                    + ")"
                )

    performance: list[PerformanceCheck] = []
    if expected_metrics is not None:
        checks, label_check = _performance(
            current, target, current_scores, expected_metrics, max_metric_drop, positive_label, threshold
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

    failed = [q for q in quality if not q.passed]
    reasons += [f"data quality: {q.message}" for q in failed]
    drifted = dataset_drift or bool(mv and mv.drifted) or bool(prediction and prediction.drifted)
    drifted = drifted or any(p.drifted for p in performance)
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
    if problems:
        raise DriftInputError("invalid drift settings:\n  " + "\n  ".join(problems))
    keep = (
        "features", "categorical", "target", "numeric_tests", "categorical_tests", "p_value", "correction",
        "drift_share", "psi_threshold", "wasserstein_threshold", "jensen_shannon_threshold", "multivariate",
        "mmd_permutations", "mmd_max_rows", "mmd_p_value", "device", "seed", "max_null_rate_increase",
        "max_out_of_range_share", "max_new_category_share", "min_rows", "expected_metrics", "max_metric_drop",
        "threshold",
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


def _range_checks(numeric: list[str], stats: Any, max_share: float) -> list[QualityCheck]:
    checks = []
    for i, f in enumerate(numeric):
        n = int(stats.n_current[i])
        share = float(stats.out_of_range[i]) / n if n else 0.0
        ok = share <= max_share + 1e-12
        lo, hi = float(stats.reference_min[i]), float(stats.reference_max[i])
        checks.append(
            QualityCheck(
                check="out_of_range",
                column=f,
                reference=None if math.isnan(lo) else f"[{lo:g}, {hi:g}]",
                current=share,
                threshold=max_share,
                passed=ok,
                message=f"{share:.1%} of {f!r} outside the reference range [{lo:g}, {hi:g}]"
                + ("" if ok else f" (more than {max_share:.1%})"),
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


def _prediction_drift(
    ref: np.ndarray, cur: np.ndarray, tests: Sequence[str], alpha: float, thresholds: Mapping[str, float]
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
    )


def _performance(
    current: pd.DataFrame,
    target: str | None,
    current_scores: Any,
    expected: Mapping[str, float],
    max_drop: Mapping[str, float] | None,
    positive_label: Any,
    threshold: float,
) -> tuple[list[PerformanceCheck], QualityCheck | None]:
    from airflow_mlops.registry.evaluation import LOWER_IS_BETTER, compute_metrics

    if target is None or target not in current.columns:
        raise DriftInputError(
            f"expected_metrics needs the live window's labels, but target {target!r} is not a column of the "
            "current window; pass target=<label column> or leave expected_metrics out for unlabelled windows"
        )
    if current_scores is None:
        raise DriftInputError(
            "expected_metrics needs current_scores (the champion's scores on the live window)"
        )
    scores = _scores(current_scores, "current_scores")
    if len(scores) != len(current):
        raise DriftInputError(
            f"current_scores has {len(scores)} values but the current window has {len(current)} rows"
        )
    drops = dict(DEFAULT_MAX_METRIC_DROP if max_drop is None else max_drop)
    labelled = current[target].notna().to_numpy()
    if not labelled.any():
        raise DriftInputError(f"the target column {target!r} of the current window has no labels")
    y_true = (current[target][labelled] == positive_label).astype(int).to_numpy()
    metrics = compute_metrics(y_true, scores[labelled], threshold=threshold)
    problems = [
        f"{m!r} is not a metric (known: {', '.join(sorted(metrics))})" for m in drops if m not in metrics
    ]
    problems += [
        f"the champion has no recorded {m!r} in expected_metrics"
        for m in drops
        if m in metrics and m not in expected
    ]
    problems += [
        f"max_metric_drop[{m!r}]={v!r} must be a number >= 0"
        for m, v in drops.items()
        if not (isinstance(v, int | float) and v >= 0)
    ]
    if problems:
        raise DriftInputError("cannot check performance drift:\n  " + "\n  ".join(problems))
    checks, unmeasurable = [], []
    for m, allowed in drops.items():
        value, recorded = float(metrics[m]), float(expected[m])
        if math.isnan(value):
            unmeasurable.append(m)
            checks.append(PerformanceCheck(m, recorded, value, float(allowed), False))
            continue
        drop = value - recorded if m in LOWER_IS_BETTER else recorded - value
        checks.append(PerformanceCheck(m, recorded, value, float(allowed), drop > allowed + 1e-12))
    label_check = None
    if unmeasurable:
        label_check = QualityCheck(
            check="labels",
            column=target,
            reference=None,
            current=float(y_true.mean()),
            threshold=None,
            passed=False,
            message=(
                f"{', '.join(unmeasurable)} cannot be measured on the live window: its {int(labelled.sum())} "
                f"labelled rows are all one class (share positive {y_true.mean():.2f})"
            ),
        )
    return checks, label_check
