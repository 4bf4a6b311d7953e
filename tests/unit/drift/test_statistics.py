"""The vectorised statistics against scipy, column by column."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from airflow_mlops.drift.statistics import (
    MIN_EXPECTED,
    adjust_p_values,
    categorical_statistics,
    ks_p_values,
    numeric_statistics,
    pool_rare_levels,
    psi,
)

RNG = np.random.default_rng(20261201)


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r = RNG
    heavy = r.lognormal(0, 3, size=(3, 4000))
    heavy[0, :5] = 1e12  # an outlier far outside the robust bin range
    nans_ref = r.normal(size=(3, 3000))
    nans_ref[nans_ref > 1.2] = np.nan
    nans_cur = r.normal(0.1, 1, size=(3, 2000))
    nans_cur[:, ::4] = np.nan
    return {
        "normal, unequal sizes": (r.normal(size=(6, 5000)), r.normal(0.03, 1.1, size=(6, 1700))),
        "ties (small integers)": (
            r.integers(0, 5, (4, 3000)).astype(float),
            r.integers(0, 6, (4, 900)).astype(float),
        ),
        "heavy tail and outliers": (heavy, r.lognormal(0.2, 3, size=(3, 800))),
        "missing values": (nans_ref, nans_cur),
        "missing values in one live column only": (
            r.normal(size=(3, 3000)),
            _holes(r.normal(size=(3, 2000))),
        ),
        "tiny samples": (r.normal(size=(4, 7)), r.normal(size=(4, 12))),
        "large offset, small spread": (r.normal(1e6, 1, (3, 4000)), r.normal(1e6 + 0.02, 1, (3, 4000))),
        "big, distinct shift": (r.normal(size=(2, 60000)), r.normal(0.5, 1, size=(2, 40000))),
        "constant vs shifted constant": (np.ones((2, 50)), np.vstack([np.ones(40), np.full(40, 2.0)])),
    }


def _holes(values: np.ndarray) -> np.ndarray:
    values[1, ::3] = np.nan
    return values


@pytest.mark.parametrize("case", list(_cases()))
def test_without_wasserstein_every_other_statistic_is_the_same(case: str) -> None:
    """KS only (``wasserstein=False``) skips the per-bin value sums, and nothing else changes."""
    ref, cur = _cases()[case]
    full = numeric_statistics(ref, cur)
    lean = numeric_statistics(ref, cur, wasserstein=False)
    assert np.isnan(lean.wasserstein).all()
    for name in full.__dataclass_fields__:
        if name != "wasserstein":
            np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)


@pytest.mark.parametrize("case", list(_cases()))
def test_ks_and_wasserstein_equal_scipy_column_by_column(case: str) -> None:
    ref, cur = _cases()[case]
    result = numeric_statistics(ref, cur)
    p = ks_p_values(result.ks, result.n_reference, result.n_current)
    for j in range(ref.shape[0]):
        x, y = ref[j][~np.isnan(ref[j])], cur[j][~np.isnan(cur[j])]
        expected = stats.ks_2samp(x, y, method="asymp")
        assert result.ks[j] == pytest.approx(expected.statistic, abs=1e-12)
        assert abs(p[j] - expected.pvalue) <= 1e-6
        w = stats.wasserstein_distance(x, y)
        assert result.wasserstein[j] == pytest.approx(w, rel=1e-9, abs=1e-12)
        assert result.n_reference[j] == len(x) and result.n_current[j] == len(y)
        assert result.reference_std[j] == pytest.approx(np.std(x), rel=1e-9, abs=1e-12)
        outside = int(((y < x.min()) | (y > x.max())).sum())
        assert result.out_of_range[j] == outside


def test_ks_detects_a_shift_and_psi_bins_are_reference_deciles() -> None:
    ref = RNG.normal(size=(1, 20000))
    cur = RNG.normal(1.0, 1, size=(1, 20000))
    result = numeric_statistics(ref, cur)
    assert ks_p_values(result.ks, result.n_reference, result.n_current)[0] < 1e-50
    share = result.psi_reference[0] / result.psi_reference[0].sum()
    assert np.allclose(share, 0.1, atol=0.01)  # equal-count bins of the reference
    # a 1-sd shift moves about a third of the current window into the top decile
    assert result.psi_current[0][-1] / 20000 > 0.3
    assert psi(result.psi_reference, result.psi_current)[0] > 0.5


def test_all_missing_column_has_no_statistic() -> None:
    ref = RNG.normal(size=(2, 100))
    cur = RNG.normal(size=(2, 100))
    cur[1] = np.nan
    result = numeric_statistics(ref, cur)
    assert result.n_current[1] == 0 and np.isnan(result.ks[1]) and np.isnan(result.wasserstein[1])
    assert not np.isnan(result.ks[0])


def _table(rng: np.random.Generator, categories: int, n: int, shift: float) -> np.ndarray:
    p = rng.dirichlet(np.ones(categories))
    q = (1 - shift) * p + shift * rng.dirichlet(np.ones(categories))
    return np.vstack([rng.multinomial(n, p), rng.multinomial(n // 2 + 7, q)])


def test_chi2_and_jensen_shannon_equal_scipy() -> None:
    """The chi-squared test is scipy's on the table with the rare levels pooled (Fisher's exact test
    where that table is a small 2 x 2); the distances use every level as it is."""
    tables = [
        _table(RNG, k, n, s)
        for k, n, s in [(2, 300, 0.0), (2, 50, 0.4), (3, 1000, 0.1), (7, 5000, 0.0), (12, 80, 0.5)]
    ]
    tables.append(np.array([[40, 0, 3], [0, 12, 9]]))  # categories seen in one window only
    tables.append(np.array([[30, 0], [25, 0]]))  # one category: dof 0
    tables.append(np.array([[6, 2], [1, 5]]))  # small 2 x 2: Fisher's exact test
    width = max(t.shape[1] for t in tables)
    ref = np.zeros((len(tables), width + 2))  # extra zero padding must not count
    cur = np.zeros_like(ref)
    for i, t in enumerate(tables):
        ref[i, : t.shape[1]], cur[i, : t.shape[1]] = t
    result = categorical_statistics(ref, cur)
    for i, t in enumerate(tables):
        a, b, pooled = pool_rare_levels(t[0], t[1])
        table = np.vstack([a, b])
        assert result.pooled_levels[i] == pooled and result.levels[i] == (t.sum(axis=0) > 0).sum()
        if table.shape[1] > 1:
            stat, p, dof, expected = stats.chi2_contingency(table)
        else:
            stat, p, dof, expected = 0.0, 1.0, 0, np.full(1, np.inf)
        small = bool(np.min(expected) < MIN_EXPECTED)
        assert bool(result.exact[i]) is (dof == 1 and small)
        if result.exact[i]:
            p = stats.fisher_exact(table.astype(int)).pvalue
        else:  # after pooling, every expected count reaches the minimum
            assert not small or dof == 0
        assert result.chi2[i] == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert abs(result.chi2_p_value[i] - p) <= 1e-6
        assert result.chi2_dof[i] == dof
        assert result.jensen_shannon[i] == pytest.approx(jensenshannon(t[0], t[1]), rel=1e-9, abs=1e-12)
    assert result.exact[-1] and result.describe(len(tables) - 1) == "2 levels, Fisher's exact p"
    assert result.describe(0) == "2 levels, dof 1"


@pytest.mark.parametrize(
    ("reference", "current", "expected", "pooled"),
    [
        # every level common enough: the table as it is (levels neither window has dropped)
        ([300, 200, 0], [310, 190, 0], ([300, 200], [310, 190]), 0),
        # three rare levels (expected count below 5) pooled into one level of their own
        ([100, 100, 2, 2, 2], [100, 100, 3, 3, 3], ([100, 100, 6], [100, 100, 9]), 3),
        # one rare level, still rare alone: it joins the rarest common level
        ([500, 400, 3, 2], [450, 420, 0, 9], ([500, 400, 5], [450, 420, 9]), 2),
        # a level the reference never had, common enough to keep its own column
        ([500, 500, 0], [450, 450, 100], ([500, 500, 0], [450, 450, 100]), 0),
        # tiny windows: the most common level against the rest
        ([5, 3, 2, 0, 0], [2, 2, 0, 4, 2], ([5, 5], [2, 8]), 3),
        ([7], [9], ([7], [9]), 0),  # a single level: nothing to pool, nothing to test
        ([3, 4], [0, 0], ([3, 4], [0, 0]), 0),  # an empty window
    ],
)
def test_rare_levels_are_pooled_until_every_expected_count_is_five(
    reference: list[int], current: list[int], expected: tuple[list[int], list[int]], pooled: int
) -> None:
    r, c, n = pool_rare_levels(np.array(reference, float), np.array(current, float))
    assert (r.tolist(), c.tolist(), n) == (*expected, pooled)
    assert r.sum() == sum(reference) and c.sum() == sum(current)  # no row lost


def test_a_single_level_or_an_empty_window_is_no_evidence() -> None:
    result = categorical_statistics(np.array([[7.0, 0.0], [3.0, 4.0]]), np.array([[9.0, 0.0], [0.0, 0.0]]))
    assert result.chi2.tolist() == [0.0, 0.0] and result.chi2_p_value.tolist() == [1.0, 1.0]
    assert result.chi2_dof.tolist() == [0, 0] and not result.exact.any()
    assert result.describe(0) == "1 level, dof 0"


def test_bonferroni_and_benjamini_hochberg_match_a_hand_computation() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.20, np.nan])
    m = 5
    assert np.allclose(adjust_p_values(p, "bonferroni")[:5], np.minimum(1, p[:5] * m))
    # BH by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.20 -> m*p/rank = 0.025, 0.025, 0.05, 0.05, 0.20,
    # then the running minimum from the top (already monotone here).
    expected = {0.005: 0.025, 0.01: 0.025, 0.03: 0.05, 0.04: 0.05, 0.20: 0.20}
    bh = adjust_p_values(p, "bh")
    assert np.allclose(bh[:5], [expected[v] for v in p[:5]])
    assert np.isnan(bh[5]) and np.isnan(adjust_p_values(p, "bonferroni")[5])
    # the running minimum matters when a larger p has a smaller m*p/rank
    assert np.allclose(adjust_p_values(np.array([0.04, 0.045]), "bh"), [0.045, 0.045])
    assert np.array_equal(adjust_p_values(p, "none")[:5], p[:5])
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values(p, "holm")


def test_ks_p_values_in_the_far_tail_match_scipy_within_1e_6() -> None:
    """Where N * D**2 > 8 the Kolmogorov limit stands in for scipy's O(N) exact branch."""
    from scipy import stats

    from airflow_mlops.drift.statistics import KS_FAR_TAIL, ks_p_values

    for n in (400, 20_000, 300_000):
        d = np.sqrt(np.linspace(KS_FAR_TAIL * 0.5, KS_FAR_TAIL * 3, 25) / n)
        ours = ks_p_values(d, np.full(d.shape, 2 * n), np.full(d.shape, 2 * n))
        exact = np.clip(stats.kstwo.sf(d, n), 0, 1)
        assert np.abs(ours - exact).max() < 1e-6, n
        assert (d * d * n > KS_FAR_TAIL).any() and (d * d * n <= KS_FAR_TAIL).any()


def test_ks_p_values_in_scipys_smirnov_band_match_scipy_within_1e_6() -> None:
    """2.2 <= N * D**2 <= 8: the vectorised Birnbaum-Tingey sum stands in for scipy's scalar loop."""
    from scipy import special, stats

    from airflow_mlops.drift.statistics import ks_p_values, smirnov_sf

    for n in (141, 3_000, 60_000):
        d = np.sqrt(np.linspace(2.2, 8.0, 9) / n)
        ours = ks_p_values(d, np.full(d.shape, 2 * n), np.full(d.shape, 2 * n))
        assert np.abs(ours - np.clip(stats.kstwo.sf(d, n), 0, 1)).max() < 1e-6, n
        assert abs(smirnov_sf(n, float(d[3])) - special.smirnov(n, float(d[3]))) < 1e-12


def test_bh_adjustment_matches_the_step_up_formula_on_random_p_values() -> None:
    """scipy's Benjamini-Hochberg gives the step-up formula's adjusted p-values, ties included."""
    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 40, 500):
        p = np.round(rng.uniform(size=m), 2)  # rounding makes ties
        order = np.argsort(p, kind="stable")
        ranked = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
        expected = np.empty(m)
        expected[order] = np.minimum(1.0, ranked)
        assert np.allclose(adjust_p_values(p, "bh"), expected, rtol=1e-12, atol=0)
