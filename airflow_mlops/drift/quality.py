"""The data-quality checks of :func:`~airflow_mlops.drift.detect.detect_drift`: row count, null
rates and value types per feature, and each numeric feature's share of live values beyond the
reference's range (with the chance of that many if the window were drawn like the reference)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from airflow_mlops.drift.report import OutOfRange, QualityCheck, percent


def row_count_check(n_ref: int, n_cur: int, min_rows: int) -> QualityCheck:
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


def null_and_type_checks(
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


def range_shares(numeric: list[str], stats: Any, max_share: float, alpha: float) -> dict[str, OutOfRange]:
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


def range_checks(ranges: Mapping[str, OutOfRange], action: str) -> list[QualityCheck]:
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
