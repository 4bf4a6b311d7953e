"""Vectorised two-sample statistics over many features at once (numpy; scipy only for distributions).

Numeric features (:func:`numeric_statistics`) get the exact Kolmogorov-Smirnov statistic ``D``, the
exact 1-Wasserstein distance and the counts of a 10-bin PSI histogram, for every column of a
``(features, rows)`` matrix at once. Categorical features (:func:`categorical_statistics`) get
Pearson's chi-squared (as :func:`scipy.stats.chi2_contingency` computes it, Yates' correction at one
degree of freedom included) on the level counts with the rare levels pooled (Fisher's exact test
where a 2 x 2 table stays small), the Jensen-Shannon distance and PSI from padded count matrices.
The p-values come from one vectorised call each (``scipy.stats.kstwo.sf``, ``scipy.stats.chi2.sf``):
no Python loop of per-column scipy test calls (Fisher's exact test, on small tables only, excepted).

How the numeric statistics avoid sorting every column (the step that dominates scipy's
``ks_2samp`` and ``wasserstein_distance``): each column is cut into ``2^k`` equal-width fine bins
between robust bounds (its 0.1 % and 99.9 % quantiles, from a strided subsample of both windows),
plus one open bin at each end. One ``bincount`` over all columns gives the counts and value sums
of both windows per fine bin, hence the two ECDFs *exactly* at every bin boundary:

* KS: the largest ECDF gap at a boundary is a lower bound of ``D``; inside a bin the gap can move
  by at most that bin's share of either window, an upper bound. Only the few bins whose upper
  bound beats the lower bound are sorted, and ``D`` is evaluated there exactly, at the same points
  and with the same ``count / n`` arithmetic as ``scipy.stats.ks_2samp``. ``D`` is identical.
* Wasserstein: ``W1 = integral |F1 - F2|``. In a bin where ``F1 - F2`` cannot change sign the
  integral of the difference follows from the counts and value sums alone; the bins where it can
  change sign are integrated exactly over their sorted values. Equal to
  ``scipy.stats.wasserstein_distance`` up to float rounding (relative 1e-9 or better).

Missing values (NaN) are ignored per column, like ``ks_2samp`` on the column without them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PSI_EPSILON",
    "CategoricalStatistics",
    "MIN_EXPECTED",
    "NumericStatistics",
    "adjust_p_values",
    "categorical_statistics",
    "ks_p_values",
    "numeric_statistics",
    "pool_rare_levels",
    "psi",
]

#: Proportions below this are raised to it before PSI's logarithm (an empty bin is not infinite drift).
PSI_EPSILON = 1e-4
#: Elements (reference + current rows times columns) processed per chunk of columns.
_CHUNK_ELEMENTS = 4_000_000
_MAX_FINE_BINS = 65_536
_MAGIC = 6755399441055744.0  # 1.5 * 2**52
_MAGIC_BITS = int(np.array(_MAGIC).view(np.int64))


@dataclass(frozen=True)
class NumericStatistics:
    """Per-column results of :func:`numeric_statistics` (arrays of length ``features``)."""

    n_reference: np.ndarray  # non-null values per column
    n_current: np.ndarray
    ks: np.ndarray  # KS D (NaN where a window has no values)
    wasserstein: np.ndarray  # W1 in the column's own units
    reference_mean: np.ndarray
    reference_std: np.ndarray  # population std (ddof=0)
    reference_min: np.ndarray
    reference_max: np.ndarray
    out_of_range: np.ndarray  # current values outside [reference_min, reference_max]
    psi_edges: np.ndarray  # (features, bins + 1): min, 9 decile boundaries, max
    psi_reference: np.ndarray  # (features, bins) counts
    psi_current: np.ndarray


@dataclass(frozen=True)
class CategoricalStatistics:
    """Per-feature results of :func:`categorical_statistics`."""

    chi2: np.ndarray  # on the table with the rare levels pooled (see pool_rare_levels)
    chi2_dof: np.ndarray
    chi2_p_value: np.ndarray  # Fisher's exact test's where ``exact``
    jensen_shannon: np.ndarray
    psi: np.ndarray
    levels: np.ndarray  # levels either window has
    pooled_levels: np.ndarray  # levels that lost a column of their own in the chi-squared table
    exact: np.ndarray  # bool: a small 2 x 2 table, Fisher's exact p-value

    def describe(self, i: int) -> str:
        """How feature ``i``'s p-value was computed, e.g. ``12 levels, 4 rare pooled, dof 8``."""
        parts = [f"{int(self.levels[i])} level{'s' if self.levels[i] != 1 else ''}"]
        if self.pooled_levels[i]:
            parts.append(f"{int(self.pooled_levels[i])} rare pooled")
        if self.exact[i]:
            parts.append("Fisher's exact p")
        else:
            parts.append(f"dof {int(self.chi2_dof[i])}")
        return ", ".join(parts)


# N * D**2 above which a KS p-value is below 2.3e-7 (see ks_p_values).
KS_FAR_TAIL = 8.0


def ks_p_values(d: np.ndarray, n_reference: np.ndarray, n_current: np.ndarray) -> np.ndarray:
    """Two-sided KS p-values, exactly as ``scipy.stats.ks_2samp(..., method="asymp")`` computes them:
    ``kstwo.sf(D, round(n1 * n2 / (n1 + n2)))`` (sizes ordered as scipy orders them), clipped to [0, 1]."""
    from scipy import stats

    n1 = np.asarray(n_reference, dtype=np.float64)
    n2 = np.asarray(n_current, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    m, n = np.maximum(n1, n2), np.minimum(n1, n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        en = np.round(m * n / (m + n))
        nx2 = en * d * d
    # Where N * D**2 > 8 scipy's exact branch (2 * smirnov(N, D), O(N) per value: 0.2-0.8 s at
    # N = 500,000) is not needed: by the Dvoretzky-Kiefer-Wolfowitz-Massart bound the exact p-value
    # is below 2 * exp(-2 * N * D**2) < 2.3e-7, and so is the Kolmogorov limit used instead, so the
    # two differ by less than 1e-6. Everywhere else this is scipy's own computation.
    nx2 = np.nan_to_num(nx2, nan=0.0)
    far = nx2 > KS_FAR_TAIL
    # Where 2.2 <= N * D**2 <= 8 (and N > 140, D < 0.5) scipy computes 2 * smirnov(N, D) by an O(N)
    # scalar loop; the same Birnbaum-Tingey sum, vectorised over its N terms in log space, gives it
    # to ~1e-12 at a tenth of the time.
    band = ~far & (nx2 >= 2.2) & (en > 140) & (d < 0.5)
    rest = ~far & ~band
    out = np.empty_like(d)
    out[rest] = stats.kstwo.sf(d[rest], en[rest])
    out[far] = stats.kstwobign.sf(d[far] * np.sqrt(en[far]))
    out[band] = [2.0 * smirnov_sf(int(n_), float(x)) for n_, x in zip(en[band], d[band], strict=True)]
    return np.clip(out, 0.0, 1.0)


def smirnov_sf(n: int, e: float) -> float:
    """P(D+_n >= e), the one-sided Smirnov statistic's survival function, by the exact
    Birnbaum-Tingey (1951) sum ``e * sum_j C(n, j) (1 - e - j/n)^(n - j) (e + j/n)^(j - 1)`` over
    ``j = 0 .. floor(n (1 - e))``, evaluated at once in log space (what ``scipy.special.smirnov``
    computes term by term)."""
    from scipy import special

    j = np.arange(0, math.floor(n * (1 - e)) + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logs = (
            special.gammaln(n + 1.0)
            - special.gammaln(j + 1.0)
            - special.gammaln(n - j + 1.0)
            + (n - j) * np.log(np.maximum(1.0 - e - j / n, 0.0))  # rounding may dip below 0 at the end
            + (j - 1.0) * np.log(e + j / n)
        )
    top = float(logs.max())
    return float(e * math.exp(top) * np.exp(logs - top).sum())


def adjust_p_values(p_values: np.ndarray, method: str) -> np.ndarray:
    """Multiple-testing adjusted p-values.

    ``"bonferroni"``: ``min(1, m * p)``. ``"bh"``: Benjamini-Hochberg step-up (scipy's
    ``false_discovery_control``: ``min_{j >= i} m * p_(j) / j`` over the sorted p-values, capped
    at 1; controls the false discovery rate). ``"none"``: unchanged. ``m`` is the number of p-values (NaNs excluded).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = p.copy()
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0 or method == "none":
        return out
    q = p[ok]
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, q * m)
    elif method == "bh":
        from scipy.stats import false_discovery_control

        out[ok] = false_discovery_control(q, method="bh")
    else:
        raise ValueError(f"unknown correction {method!r}; use 'bonferroni', 'bh' or 'none'")
    return out


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> np.ndarray:
    """Population stability index along the last axis: ``sum((c - r) * ln(c / r))`` over the
    proportions, each raised to at least :data:`PSI_EPSILON`. Bins empty in both count zero."""
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = r / r.sum(axis=-1, keepdims=True)
        pc = c / c.sum(axis=-1, keepdims=True)
    used = (r + c) > 0
    pr = np.maximum(pr, PSI_EPSILON)
    pc = np.maximum(pc, PSI_EPSILON)
    return np.where(used, (pc - pr) * np.log(pc / pr), 0.0).sum(axis=-1)


# --- numeric ------------------------------------------------------------------------------------


def numeric_statistics(
    reference: np.ndarray, current: np.ndarray, *, psi_bins: int = 10, wasserstein: bool = True
) -> NumericStatistics:
    """KS D, Wasserstein-1, PSI counts and range facts for every row of two ``(features, rows)``
    float64 matrices (NaN = missing; no infinities). With ``wasserstein=False`` the distance is
    not computed (NaN): the per-bin value sums it needs are a fifth of the work."""
    ref = np.ascontiguousarray(reference, dtype=np.float64)
    cur = np.ascontiguousarray(current, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[0] != cur.shape[0]:
        raise ValueError(
            f"need two (features, rows) matrices with the same features, got {ref.shape} and {cur.shape}"
        )
    k = ref.shape[0]
    rows = ref.shape[1] + cur.shape[1]
    fine = int(min(_MAX_FINE_BINS, max(64, 2 ** math.ceil(math.log2(max(rows, 2) / 32)))))
    chunk = max(1, min(k, _CHUNK_ELEMENTS // max(rows, 1)))
    buffers = _Buffers(chunk, ref.shape[1], cur.shape[1])
    parts = [
        _numeric_chunk(ref[i : i + chunk], cur[i : i + chunk], fine, psi_bins, buffers, wasserstein)
        for i in range(0, k, chunk)
    ]
    if not parts:  # no features
        empty = np.zeros(0)
        return NumericStatistics(
            *(empty.astype(np.int64),) * 2,
            *(empty,) * 7,
            np.zeros((0, psi_bins + 1)),
            *(np.zeros((0, psi_bins)),) * 2,
        )
    return NumericStatistics(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))


class _Buffers:
    """Scratch arrays reused by every chunk (allocating them per chunk costs more than the work)."""

    def __init__(self, chunk: int, n_ref: int, n_cur: int) -> None:
        self.u = {"ref": np.empty((chunk, n_ref)), "cur": np.empty((chunk, n_cur))}
        self.t = {"ref": np.empty((chunk, n_ref)), "cur": np.empty((chunk, n_cur))}


def _numeric_chunk(
    ref: np.ndarray, cur: np.ndarray, fine: int, psi_bins: int, buffers: _Buffers, with_wasserstein: bool
) -> tuple[np.ndarray, ...]:
    c = ref.shape[0]
    nb = fine + 2  # fine bins plus the two open ends
    stride = nb + 1  # plus one bin for missing values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        # min/max pass a NaN on (and are several times faster than nanmin/nanmax): a NaN minimum
        # says the window has missing values, and only then are they looked for value by value.
        rmin, rmax = ref.min(axis=1, initial=np.inf), ref.max(axis=1, initial=-np.inf)
        cmin, cmax = cur.min(axis=1, initial=np.inf), cur.max(axis=1, initial=-np.inf)
        has_missing = {"ref": bool(np.isnan(rmin).any()), "cur": bool(np.isnan(cmin).any())}
        if has_missing["ref"]:
            rmin, rmax = np.nanmin(ref, axis=1), np.nanmax(ref, axis=1)
        if has_missing["cur"]:
            cmin, cmax = np.nanmin(cur, axis=1), np.nanmax(cur, axis=1)
        rmin, rmax = np.where(np.isinf(rmin), np.nan, rmin), np.where(np.isinf(rmax), np.nan, rmax)
        cmin, cmax = np.where(np.isinf(cmin), np.nan, cmin), np.where(np.isinf(cmax), np.nan, cmax)
        lo, hi = np.fmin(rmin, cmin), np.fmax(rmax, cmax)
        step_r, step_c = max(1, ref.shape[1] // 8192), max(1, cur.shape[1] // 8192)
        sample = np.concatenate([ref[:, ::step_r], cur[:, ::step_c]], axis=1)
        q_lo, q_hi = np.nanquantile(sample, [0.001, 0.999], axis=1)
    narrow = ~(q_hi > q_lo)
    q_lo = np.where(narrow, lo, q_lo)
    q_hi = np.where(narrow, hi, q_hi)
    empty = np.isnan(lo)
    q_lo[empty] = q_hi[empty] = lo[empty] = hi[empty] = 0.0
    width = q_hi - q_lo
    scale = np.where(width > 0, fine / np.where(width > 0, width, 1.0), 0.0)

    # Fine-bin index of every value, computed in place: j = round(clip((v - q_lo) * scale, -1, fine))
    # by the float "magic number" trick (adding 1.5 * 2**52 leaves round(t) in the low bits), so
    # bin j + 1 holds t in [j - 0.5, j + 0.5); -1 and fine are the open ends. Rounding is monotone,
    # so the bins are ordered intervals and equal values share a bin.
    shift = (_MAGIC_BITS - 1 - np.arange(c, dtype=np.int64) * stride)[:, None]
    binned = {}
    for side, data in (("ref", ref), ("cur", cur)):
        u = buffers.u[side][:c]
        t = buffers.t[side][:c]
        missing = np.isnan(data) if has_missing[side] else None
        np.subtract(data, q_lo[:, None], out=u)
        np.multiply(u, scale[:, None], out=t)
        np.clip(t, -1, fine, out=t)
        t += _MAGIC
        idx = t.view(np.int64)
        idx -= shift
        if missing is not None:
            np.copyto(idx, np.arange(c, dtype=np.int64)[:, None] * stride + nb, where=missing)
        flat = idx.reshape(-1)
        counts = np.bincount(flat, minlength=c * stride).reshape(c, stride)[:, :nb]
        sums = (
            np.bincount(flat, weights=u.reshape(-1), minlength=c * stride).reshape(c, stride)[:, :nb]
            if with_wasserstein
            else None
        )
        n = data.shape[1] - (missing.sum(axis=1) if missing is not None else np.zeros(c, dtype=np.int64))
        binned[side] = (counts, sums, n, missing)
    c1, s1, n1, ref_missing = binned["ref"]
    c2, s2, n2, _ = binned["cur"]
    n1s, n2s = np.maximum(n1, 1)[:, None], np.maximum(n2, 1)[:, None]

    # Bin edges: relative to q_lo (for the value sums) and absolute (for exact integration).
    rel = np.empty((c, nb + 1))
    rel[:, 0] = lo - q_lo
    rel[:, 1 : fine + 2] = width[:, None] * ((np.arange(1, fine + 2) - 1.5) / fine)
    rel[:, fine + 2] = hi - q_lo
    edges = rel + q_lo[:, None]

    cum1, cum2 = np.cumsum(c1, axis=1), np.cumsum(c2, axis=1)
    after = cum1 / n1s - cum2 / n2s  # ECDF gap at each bin's upper boundary (scipy's arithmetic)
    before = np.zeros_like(after)
    before[:, 1:] = after[:, :-1]
    lower_bound = np.abs(after).max(axis=1)
    up, low = before + c1 / n1s, before - c2 / n2s
    upper = np.maximum(np.abs(up), np.abs(low))
    occupied = (c1 + c2) > 0
    ks_candidate = upper * (1 + 1e-12) + 1e-15 > lower_bound[:, None]
    sign_change = (low < 0) & (up > 0) & occupied & with_wasserstein
    if s1 is not None and s2 is not None:
        integral = (
            before * (rel[:, 1:] - rel[:, :-1]) + (c1 * rel[:, 1:] - s1) / n1s - (c2 * rel[:, 1:] - s2) / n2s
        )
        wasserstein = np.where(sign_change, 0.0, np.abs(integral)).sum(axis=1)
    else:
        wasserstein = np.full(c, np.nan)  # not asked for
    ks = lower_bound.copy()

    flag = np.zeros((c, stride), dtype=bool)
    flag[:, :nb] = (ks_candidate & occupied) | sign_change
    flag_flat = flag.reshape(-1)
    pieces = []
    for side, data, label in (("ref", ref, 1), ("cur", cur, 0)):
        idx = buffers.t[side][:c].view(np.int64)
        sel = np.take(flag_flat, idx)
        pieces.append((data[sel], idx[sel], np.full(int(sel.sum()), label, dtype=np.int64)))
    v = np.concatenate([p[0] for p in pieces])
    if v.size:
        g = np.concatenate([p[1] for p in pieces])
        is_ref = np.concatenate([p[2] for p in pieces])
        order = np.lexsort((v, g))
        v, g, is_ref = v[order], g[order], is_ref[order]
        col, b_idx = np.divmod(g, stride)
        cr, cc = np.cumsum(is_ref), np.cumsum(1 - is_ref)
        new_group = np.r_[True, g[1:] != g[:-1]]
        start = np.flatnonzero(new_group)
        group = np.cumsum(new_group) - 1
        base_r, base_c = (cr - is_ref)[start], (cc - (1 - is_ref))[start]
        count1 = (cum1 - c1)[col, b_idx] + cr - base_r[group]
        count2 = (cum2 - c2)[col, b_idx] + cc - base_c[group]
        diff = count1 / n1s[col, 0] - count2 / n2s[col, 0]
        last = np.r_[(v[1:] != v[:-1]) | (g[1:] != g[:-1]), True]
        np.maximum.at(ks, col[last], np.abs(diff[last]))
        if with_wasserstein:  # exact integral of |F1 - F2| over the bins where it may change sign
            exact = sign_change[col, b_idx]
            nxt = np.where(np.r_[~new_group[1:], False], np.r_[v[1:], 0.0], edges[col, b_idx + 1])
            piece = np.abs(diff) * (nxt - v)
            wasserstein += np.bincount(col[exact], weights=piece[exact], minlength=c)
            first = start[exact[start]]
            lead = np.abs(before[col[first], b_idx[first]]) * (v[first] - edges[col[first], b_idx[first]])
            wasserstein += np.bincount(col[first], weights=lead, minlength=c)

    # PSI bins: upper boundary of the fine bin that holds each reference decile.
    ranks = np.ceil(np.arange(1, psi_bins) / psi_bins * n1[:, None]).astype(np.int64)  # (c, bins-1)
    big = int(n1.max(initial=0)) + 1
    keys = (cum1 + np.arange(c)[:, None] * big).reshape(-1)
    where = np.searchsorted(keys, ranks + np.arange(c)[:, None] * big, side="left")
    where = np.clip(where - (np.arange(c) * nb)[:, None], 0, nb - 1)
    rows_ix = np.arange(c)[:, None]
    ref_le = np.concatenate([np.zeros((c, 1), np.int64), cum1[rows_ix, where], n1[:, None]], axis=1)
    cur_le = np.concatenate([np.zeros((c, 1), np.int64), cum2[rows_ix, where], n2[:, None]], axis=1)
    psi_edges = np.concatenate([lo[:, None], edges[rows_ix, where + 1], hi[:, None]], axis=1)
    psi_edges[:, -1] = np.maximum(psi_edges[:, -1], psi_edges[:, -2])

    # Reference moments from the shifted values (NaN -> 0 first).
    u = buffers.u["ref"][:c]
    if ref_missing is not None:
        np.putmask(u, ref_missing, 0.0)
    mean_u = u.sum(axis=1) / n1s[:, 0]
    var = np.maximum(np.einsum("ij,ij->i", u, u) / n1s[:, 0] - mean_u * mean_u, 0.0)
    out_of_range = np.count_nonzero(cur < rmin[:, None], axis=1) + np.count_nonzero(
        cur > rmax[:, None], axis=1
    )

    none = (n1 == 0) | (n2 == 0)
    ks[none] = np.nan
    wasserstein[none] = np.nan
    return (
        n1.astype(np.int64),
        n2.astype(np.int64),
        ks,
        wasserstein,
        np.where(n1 > 0, mean_u + q_lo, np.nan),
        np.where(n1 > 0, np.sqrt(var), np.nan),
        rmin,
        rmax,
        out_of_range.astype(np.int64),
        psi_edges,
        np.diff(ref_le, axis=1),
        np.diff(cur_le, axis=1),
    )


# --- categorical --------------------------------------------------------------------------------

#: A level whose expected count under "no change" is below this in either window is pooled with the
#: other rare levels before the chi-squared test (Cochran's rule: below it the chi-squared
#: distribution of the statistic is unreliable); a 2 x 2 table still below it gets Fisher's exact test.
MIN_EXPECTED = 5.0


def pool_rare_levels(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One feature's level counts as the 2 x C table its chi-squared test runs on.

    Levels neither window has are dropped. A level whose expected count is below
    :data:`MIN_EXPECTED` in either window (its total below ``MIN_EXPECTED * n / min(n_reference,
    n_current)``) joins one pooled level of the rare levels; a pooled level still that rare joins
    the rarest common level. Which levels are pooled depends on the level totals and window sizes
    only, not on how a level's rows split between the windows, so the test keeps its level under
    no change. When fewer than two levels would remain, the table is the most common level against
    all the others (2 x 2, small: Fisher's exact test). Returns the reference and current counts
    per tested level and how many levels lost a column of their own.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    used = (r + c) > 0
    r, c = r[used], c[used]
    nr, nc = float(r.sum()), float(c.sum())
    if r.size < 2 or nr == 0 or nc == 0:
        return r, c, 0
    total = r + c
    need = MIN_EXPECTED * (nr + nc) / min(nr, nc)
    small = total < need
    rare = int(small.sum())
    if rare == 0:
        return r, c, 0
    keep_r, keep_c = r[~small], c[~small]
    rare_r, rare_c = float(r[small].sum()), float(c[small].sum())
    if rare_r + rare_c >= need and keep_r.size >= 1:
        return np.append(keep_r, rare_r), np.append(keep_c, rare_c), rare
    if keep_r.size >= 2:  # the pooled level is still rare: it joins the rarest common level
        j = int(np.argmin(keep_r + keep_c))
        keep_r[j] += rare_r
        keep_c[j] += rare_c
        return keep_r, keep_c, rare + 1
    top = int(np.argmax(total))  # else the most common level against the rest
    return np.array([r[top], nr - r[top]]), np.array([c[top], nc - c[top]]), int(r.size) - 2


def categorical_statistics(reference_counts: np.ndarray, current_counts: np.ndarray) -> CategoricalStatistics:
    """The chi-squared test, Jensen-Shannon distance and PSI for every row of two ``(features,
    categories)`` count matrices (rows padded with zeros; a category counts when either window has it).

    The chi-squared test runs on the table of :func:`pool_rare_levels` (rare levels pooled) and is
    there :func:`scipy.stats.chi2_contingency` (its default ``correction=True``: Yates' continuity
    correction at one degree of freedom; statistic 0 and p-value 1 with a single level or an empty
    window). Where that table is 2 x 2 with an expected count below :data:`MIN_EXPECTED`, the
    p-value is Fisher's exact test's (:func:`scipy.stats.fisher_exact`, two-sided) instead. The
    Jensen-Shannon distance (:func:`scipy.spatial.distance.jensenshannon`, natural logarithm, range
    0 to sqrt(ln 2)) and PSI use every level as it is.
    """
    from scipy import special, stats

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    k = r.shape[0]
    tables = [pool_rare_levels(r[i], c[i]) for i in range(k)]
    width = max((len(t[0]) for t in tables), default=1)
    tr, tc = np.zeros((k, max(width, 1))), np.zeros((k, max(width, 1)))
    for i, (a, b, _) in enumerate(tables):
        tr[i, : len(a)], tc[i, : len(b)] = a, b
    used = (tr + tc) > 0
    rt, ct = tr.sum(axis=1, keepdims=True), tc.sum(axis=1, keepdims=True)
    total = rt + ct
    col = tr + tc
    with np.errstate(invalid="ignore", divide="ignore"):
        er, ec = rt * col / total, ct * col / total
    dof = np.where((rt[:, 0] > 0) & (ct[:, 0] > 0), used.sum(axis=1) - 1, 0)
    yates = (dof == 1)[:, None]

    def corrected(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        delta = expected - observed
        return np.where(yates, observed + np.sign(delta) * np.minimum(0.5, np.abs(delta)), observed)

    with np.errstate(invalid="ignore", divide="ignore"):
        terms = (corrected(tr, er) - er) ** 2 / er + (corrected(tc, ec) - ec) ** 2 / ec
    stat = np.where(used, terms, 0.0).sum(axis=1)
    stat = np.where(dof > 0, stat, 0.0)
    p_value = np.where(dof > 0, stats.chi2.sf(stat, np.maximum(dof, 1)), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        small_expected = np.where(used, np.minimum(er, ec), np.inf).min(axis=1) < MIN_EXPECTED
    exact = (dof == 1) & small_expected
    for i in np.flatnonzero(exact):
        a, b, _ = tables[i]
        p_value[i] = float(stats.fisher_exact(np.vstack([a, b]).astype(np.int64)).pvalue)

    with np.errstate(invalid="ignore", divide="ignore"):
        p, q = r / r.sum(axis=1, keepdims=True), c / c.sum(axis=1, keepdims=True)
    m = (p + q) / 2
    js = np.sqrt(
        np.maximum((special.rel_entr(p, m).sum(axis=1) + special.rel_entr(q, m).sum(axis=1)) / 2, 0.0)
    )
    return CategoricalStatistics(
        chi2=stat,
        chi2_dof=dof.astype(np.int64),
        chi2_p_value=np.clip(p_value, 0.0, 1.0),
        jensen_shannon=js,
        psi=psi(r, c),
        levels=((r + c) > 0).sum(axis=1).astype(np.int64),
        pooled_levels=np.array([t[2] for t in tables], dtype=np.int64),
        exact=exact,
    )
