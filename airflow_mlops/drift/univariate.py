"""The univariate tests of :func:`~airflow_mlops.drift.detect.detect_drift`: per numeric feature
KS, Wasserstein and PSI; per categorical feature chi-squared (rare levels pooled), Jensen-Shannon
and PSI (with the new-categories check); the histograms the report draws; and a feature's verdict
(numeric: significant and large; categorical: significant)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.drift.report import QualityCheck, TestResult
from airflow_mlops.drift.settings import P_VALUE_TESTS
from airflow_mlops.exceptions import DriftInputError

PSI_BINS = 10


#: Rows per block of the blocked transpose (a block of 50 float64 columns: 26 MB).
_TRANSPOSE_ROWS = 65_536


def _float_block(frame: pd.DataFrame, names: list[str]) -> np.ndarray | None:
    """``names`` as a ``(features, rows)`` matrix straight from the frame's one float64 block, or
    None when the frame is not one float64 block (then :func:`numeric_matrix` copies column by
    column).

    A block laid out column by column (a frame built from a dict of arrays, or read by pandas or
    pyarrow) gives a read-only view of ``names`` when they are adjacent and in order: no copy at
    all. Copying 2 x 1M x 50 values into fresh memory costs more here (page faults: 2-3 s on a
    2-core guest) than every statistic of the 50 columns together. A block laid out row by row (a
    frame built from a ``(rows, features)`` array) is transposed block by block: reading its
    columns one at a time would read every cache line of the frame once per column.
    """
    # pandas' block count (internal, hence the guard): with several blocks ``to_numpy`` would copy
    if getattr(getattr(frame, "_mgr", None), "nblocks", None) != 1 or not names:
        return None
    if not frame.columns.is_unique or not (frame.dtypes == np.float64).all():
        return None
    whole = frame.to_numpy(copy=False)  # (rows, columns), a view of the block
    if not np.shares_memory(whole, frame[names[0]].to_numpy(copy=False)):
        return None  # pandas copied after all
    positions = [int(frame.columns.get_loc(n)) for n in names]
    first = positions[0]
    if whole.T.flags.c_contiguous:  # column by column
        if positions != list(range(first, first + len(names))):
            return None
        view = whole.T[first : first + len(names)].view()
        view.flags.writeable = False  # nothing downstream may write into the caller's frame
        return view
    if not whole.flags.c_contiguous:
        return None
    out = np.empty((len(names), len(frame)))
    index = np.asarray(positions)
    for start in range(0, len(frame), _TRANSPOSE_ROWS):
        out[:, start : start + _TRANSPOSE_ROWS] = whole[start : start + _TRANSPOSE_ROWS, index].T
    return out


def numeric_matrix(frame: pd.DataFrame, names: list[str], which: str) -> np.ndarray:
    """The features as a ``(features, rows)`` float64 matrix, one contiguous row per column: a
    read-only view of the frame's own block where it has one (:func:`_float_block`), else a copy."""
    out = _float_block(frame, names)
    if out is None:
        # Column by column into the rows of one matrix: pandas keeps each column contiguous, so
        # this is one pass over the data, with no (rows, features) copy and no transpose.
        out = np.empty((len(names), len(frame)))
        for i, name in enumerate(names):
            column = frame[name]
            if column.dtype == np.float64:  # already NaN for missing: no conversion, one copy
                out[i] = column.to_numpy(copy=False)
            else:
                out[i] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    # Infinite values: a column's min and max are finite unless it holds one (or a NaN, which the
    # reduction passes on: only those columns are checked value by value). No full-size mask.
    finite = np.isfinite(out.min(axis=1, initial=0.0)) & np.isfinite(out.max(axis=1, initial=0.0))
    bad = [names[i] for i in np.flatnonzero(~finite) if np.isinf(out[i]).any()]
    if bad:
        raise DriftInputError(
            f"infinite values in the {which} window's column(s) {', '.join(bad)}; replace them with NaN "
            "(missing) or finite values"
        )
    return out


def run_numeric_tests(
    ref: np.ndarray,
    cur: np.ndarray,
    names: list[str],
    tests: Sequence[str],
    raw: dict[str, dict[str, tuple[float, float | None]]],
    histograms: dict[str, dict[str, Any]],
) -> Any:
    from airflow_mlops.drift.statistics import ks_p_values, numeric_statistics, psi

    stats = numeric_statistics(ref, cur, psi_bins=PSI_BINS, wasserstein="wasserstein" in tests)
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
        histograms[f] = numeric_histogram(stats.psi_edges[i], stats.psi_reference[i], stats.psi_current[i])
    return stats


def numeric_histogram(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
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
        first_r, first_c = rc.pop(0), cc.pop(0)  # pop first: ``rc[1] += rc.pop(0)`` adds to the third
        rc[0] += first_r
        cc[0] += first_c
    r_total, c_total = sum(rc) or 1.0, sum(cc) or 1.0
    return {"edges": bounds, "reference": [v / r_total for v in rc], "current": [v / c_total for v in cc]}


def _label(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)


def run_categorical_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: list[str],
    tests: Sequence[str],
    raw: dict[str, dict[str, tuple[float, float | None]]],
    histograms: dict[str, dict[str, Any]],
    max_new_share: float,
    details: dict[tuple[str, str], str] | None = None,
) -> list[QualityCheck]:
    """The categorical tests of every feature into ``raw`` (and ``histograms``), the new-categories
    checks returned; ``details`` gets how each chi2 p-value was computed (levels, rare levels
    pooled, degrees of freedom or Fisher's exact test), keyed ``(feature, "chi2")``."""
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
                if details is not None:
                    details[(f, t)] = stats.describe(i)
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


def judge_test(
    test: str,
    stat: float,
    p: float | None,
    adjusted: float | None,
    alpha: float,
    thresholds: Mapping[str, float],
    detail: str = "",
) -> TestResult:
    if test in P_VALUE_TESTS:
        assert p is not None and adjusted is not None
        return TestResult(test, stat, p, adjusted, alpha, bool(adjusted < alpha), detail)
    limit = thresholds[test]
    return TestResult(test, stat, None, None, limit, bool(stat >= limit), detail)


def feature_verdict(tests: Sequence[TestResult], kind: str = "numeric") -> bool:
    """A numeric feature's change must be significant and large: a p-value test rejects and a
    distance reaches its threshold. A categorical feature's must be significant: its chi-squared
    test rejects (a rare level whose share doubles, 2 % to 4 %, moves the Jensen-Shannon distance
    and PSI far less than their thresholds, yet it is the change that matters: the share of
    positive predictions, a rare fraud channel). With no p-value test, any distance decides."""
    p_tests = [t for t in tests if t.p_value is not None]
    d_tests = [t for t in tests if t.p_value is None]
    significant = any(t.drifted for t in p_tests) if p_tests else True
    large = any(t.drifted for t in d_tests) if d_tests else True
    if kind == "categorical" and p_tests:
        large = True
    return bool(tests) and significant and large
