"""The dataset checks, ``class_balance`` and ``feature_shift``: the batch against the reference as a
whole (a finding fails the screen; no row is quarantined)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.features import finite_values, is_numeric
from airflow_mlops.data.poisoning.stats import finite_or_none, plain, quantiles
from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# class_balance without a positive class (multiclass): a class's share must also have moved by
# more than this many (two-sample binomial) standard errors, so that sampling noise in a class of
# a few rows does not fail the screen.
CLASS_SHIFT_Z = 3.0


def feature_shift(
    df: pd.DataFrame, reference: pd.DataFrame | None, features: list[str], max_shift: float
) -> tuple[dict[str, Any], list[str]]:
    """Per feature, KS (numeric) or total-variation (categorical) distance to the reference."""
    import numpy as np

    if reference is None:
        return {"status": "skipped: no reference"}, []
    distances: dict[str, float] = {}
    findings: list[str] = []
    for name in features:
        if is_numeric(df[name]):
            a = np.sort(finite_values(df[name]))
            b = np.sort(finite_values(reference[name]))
            if not len(a) or not len(b):
                continue
            d = _ks_distance(a, b)
            kind = "KS"
        else:
            p = df[name].astype(str).where(df[name].notna(), "__missing__").value_counts(normalize=True)
            q = (
                reference[name]
                .astype(str)
                .where(reference[name].notna(), "__missing__")
                .value_counts(normalize=True)
            )
            d = float(0.5 * p.sub(q, fill_value=0.0).abs().sum())
            kind = "total variation"
        distances[name] = d
        if d > max_shift:
            findings.append(
                f"feature_shift: {name} moved by {kind} distance {d:.3f} > max_feature_shift {max_shift:.3f}"
            )
    detail = {"status": "ran", "max_feature_shift": float(max_shift), "distances": distances}
    return detail, findings


def _ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance of the sorted arrays ``a`` and ``b``."""
    import numpy as np

    grid = np.concatenate([a, b])
    return float(
        np.max(
            np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))
        )
    )


def class_shares(
    labels: np.ndarray, reference: np.ndarray, max_shift: float
) -> tuple[dict[str, Any], str | None]:
    """class_balance of a target without a positive class (multiclass): every class's share of
    the labelled rows against the reference's.

    A class moved when its share changed by more than ``max_shift`` relative to the reference's
    share *and* by more than :data:`CLASS_SHIFT_Z` two-sample binomial standard errors (a small
    class's share is noisy); a class the reference does not have is an infinite change.
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops.tasks import sort_classes

    counts = pd.Series(labels).dropna().value_counts()
    ref_counts = pd.Series(reference).dropna().value_counts()
    n, m = int(counts.sum()), int(ref_counts.sum())
    detail: dict[str, Any] = {
        "status": "ran",
        "method": "each class's share of the labelled rows against the reference's: a relative change "
        f"above max_class_shift that is also beyond {CLASS_SHIFT_Z:g} standard errors",
        "max_class_shift": float(max_shift),
        "rows": n,
        "reference_rows": m,
    }
    if not n or not m:
        detail["largest_relative_change"] = None
        return (
            detail,
            "class_balance: cannot compare class shares: no labelled rows in the data or the reference",
        )
    per_class: dict[str, dict[str, Any]] = {}
    moved: list[tuple[float, str, float, float]] = []
    for c in sort_classes(set(counts.index) | set(ref_counts.index)):
        p, q = int(counts.get(c, 0)) / n, int(ref_counts.get(c, 0)) / m
        if q == 0:
            change, z = math.inf, math.inf
        else:
            change = abs(p - q) / q
            se = math.sqrt(q * (1 - q) * (1 / n + 1 / m))
            z = abs(p - q) / se if se > 0 else (0.0 if p == q else math.inf)
        per_class[c] = {
            "rows": int(counts.get(c, 0)),
            "share": p,
            "reference_share": q,
            "relative_change": change if math.isfinite(change) else "inf",
            "z": finite_or_none(z),
        }
        if change > max_shift and z > CLASS_SHIFT_Z:
            moved.append((change, c, p, q))
    largest = max((v[0] for v in moved), default=None)
    detail["classes"] = per_class
    detail["largest_relative_change"] = (
        None if largest is None else (largest if math.isfinite(largest) else "inf")
    )
    if not moved:
        return detail, None
    moved.sort(key=lambda v: (-v[0], v[1]))
    shown = "; ".join(
        f"class {c!r} share {p:.4f} vs reference {q:.4f} "
        + ("(not in the reference)" if q == 0 else f"(relative change {ch:.2f})")
        for ch, c, p, q in moved[:10]
    ) + ("; ..." if len(moved) > 10 else "")
    del np
    return (
        detail,
        f"class_balance: {len(moved)} class share(s) moved beyond max_class_shift {max_shift:.2f}: {shown}",
    )


def target_shift(y: np.ndarray, reference: np.ndarray, max_shift: float) -> tuple[dict[str, Any], str | None]:
    """class_balance of a regression target: its Kolmogorov-Smirnov distance to the reference's,
    judged like a feature's (against ``max_feature_shift``; a relative change of a class share
    means nothing for a number)."""
    import numpy as np

    detail: dict[str, Any] = {
        "status": "ran",
        "method": "regression target: Kolmogorov-Smirnov distance to the reference's target, "
        "against max_feature_shift",
        "max_feature_shift": float(max_shift),
        "quantiles": quantiles(y),
        "reference_quantiles": quantiles(reference),
    }
    if not len(y) or not len(reference):
        detail["ks_distance"] = None
        return (
            detail,
            "class_balance: cannot compare the target: no finite target in the data or the reference",
        )
    d = _ks_distance(np.sort(y), np.sort(reference))
    detail["ks_distance"] = d
    if d > max_shift:
        return detail, (
            f"class_balance: the target's distribution moved by KS distance {d:.3f} > max_feature_shift "
            f"{max_shift:.3f} (median {float(np.median(y)):.4g} vs reference {float(np.median(reference)):.4g})"
        )
    return detail, None


def _positive_rates(
    labels: pd.Series, reference: pd.Series, positive_label: Any, target: str
) -> tuple[float, float]:
    """Share of (non-missing) positive labels in the data and in the reference (NaN when none).

    One rule for what "positive" means (``airflow_mlops/labels.py``), applied to both together: the
    positive label must occur in one of them and they may hold two classes between them.
    """
    import pandas as pd

    from airflow_mlops.labels import positive_mask

    labels, reference = labels.dropna(), reference.dropna()
    both = pd.concat([labels.astype(object), reference.astype(object)], ignore_index=True)
    mask = positive_mask(both, positive_label, column=target, require_both=False)
    data_mask, ref_mask = mask[: len(labels)], mask[len(labels) :]
    rate = float(data_mask.mean()) if len(data_mask) else float("nan")
    ref_rate = float(ref_mask.mean()) if len(ref_mask) else float("nan")
    return rate, ref_rate


def class_balance(
    df: pd.DataFrame, target: str, reference: pd.DataFrame | None, positive_label: Any, max_shift: float
) -> tuple[dict[str, Any], str | None]:
    """The class_balance check's details and its dataset finding (``None`` when it passes)."""
    if reference is None:
        return {"status": "skipped: no reference"}, None
    if target not in reference.columns:
        raise DataError(
            f"class_balance: the reference data has no target column {target!r}; it has "
            f"{list(map(str, reference.columns))}"
        )
    rate, ref_rate = _positive_rates(df[target], reference[target], positive_label, target)
    detail: dict[str, Any] = {
        "status": "ran",
        "positive_label": plain(positive_label),
        "positive_rate": rate,
        "reference_positive_rate": ref_rate,
        "max_class_shift": float(max_shift),
    }
    if math.isnan(ref_rate) or math.isnan(rate):
        detail["relative_change"] = None
        return (
            detail,
            "class_balance: cannot compare positive rates: no labelled rows in the data or the reference",
        )
    # A class that was absent from the reference and appears now is an infinite change.
    change = abs(rate - ref_rate) / ref_rate if ref_rate else (0.0 if rate == 0 else math.inf)
    detail["relative_change"] = change if math.isfinite(change) else "inf"
    if change > max_shift:
        return detail, (
            f"class_balance: positive rate {rate:.4f} vs reference {ref_rate:.4f} "
            f"(relative change {change:.2f} > max_class_shift {max_shift:.2f})"
        )
    return detail, None
