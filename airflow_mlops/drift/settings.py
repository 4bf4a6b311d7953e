"""The settings and the schema of :func:`~airflow_mlops.drift.detect.detect_drift`: the settings
validated (and their JSON-able form), the features compared and the kind of each (numeric or
categorical), every schema difference listed at once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from airflow_mlops.drift.report import QUALITY_ACTIONS
from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.tasks import TASKS

NUMERIC_TESTS = ("ks", "wasserstein", "psi")
CATEGORICAL_TESTS = ("chi2", "jensen_shannon", "psi")
P_VALUE_TESTS = frozenset({"ks", "chi2"})
CORRECTIONS = ("bonferroni", "bh", "none")
#: What a share of values beyond the reference's range above the limit means.
OUT_OF_RANGE_RULES = QUALITY_ACTIONS  # ("alarm", "drift", "both")


def validate_settings(args: dict[str, Any]) -> dict[str, Any]:
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
        elif isinstance(v, Iterable) and not isinstance(v, str | bytes):  # also an array, a pandas Index
            v = [str(x) for x in v]
        out[k] = v
    out["positive_label"] = (
        args["positive_label"]
        if isinstance(args["positive_label"], int | float | str | bool)
        else str(args["positive_label"])
    )
    out["prediction_drift"] = args["reference_scores"] is not None
    return out


def feature_names(
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


def raise_schema(problems: list[str]) -> None:
    if problems:
        raise DriftInputError(
            "the current window's schema differs from the reference:\n  - "
            + "\n  - ".join(problems)
            + "\n  fix the live feed, or pass features=[...] naming the columns to compare"
        )


def column_kind(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    return f"unsupported ({dtype})"


def column_kinds(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str], categorical: Sequence[str] | None
) -> tuple[dict[str, str], list[str]]:
    forced = set(categorical or ())
    unknown = sorted(forced - set(names))
    problems = [f"categorical names columns that are not features: {', '.join(unknown)}"] if unknown else []
    kinds: dict[str, str] = {}
    for f in names:
        if f not in reference.columns or f not in current.columns:
            continue  # already reported as missing
        ref_kind, cur_kind = column_kind(reference[f]), column_kind(current[f])
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
