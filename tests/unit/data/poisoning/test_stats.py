"""The poisoning screen's shared statistics: conformal p-values, and Benjamini-Hochberg, where
scipy's ``false_discovery_control`` makes the same decisions as the step-up rule the screen
computed by hand before."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.data.poisoning.stats import (
    FDR_LEVEL,
    ROW_LEVEL,
    bh_threshold,
    conformal_p_values,
    suspect_level,
)

LEVELS = (FDR_LEVEL, 0.05, 0.2, 0.01, 0.0)


def test_conformal_p_values_are_ranks_with_a_smoothed_tail_below_the_reference():
    rng = np.random.default_rng(5)
    ref = np.sort(rng.normal(0.0, 1.0, 400))
    inside = np.array([ref[0], ref[3] + 1e-9, 0.0, 5.0])
    p = conformal_p_values(ref, inside)
    expected = (1 + np.array([(ref <= v).sum() for v in inside])) / (len(ref) + 1)
    assert p == pytest.approx(expected)
    # Below the lowest reference score p keeps falling (a rank p-value would stay at 1/(n+1)).
    below = conformal_p_values(ref, np.array([ref[0] - 0.1, ref[0] - 1.0, ref[0] - 5.0]))
    assert (below < 1 / (len(ref) + 1)).all() and below[0] > below[1] > below[2] > 0
    # Valid: clean scores from the reference's distribution get (super-)uniform p-values, also in
    # the smoothed tail.
    fresh = conformal_p_values(ref, rng.normal(0.0, 1.0, 200_000))
    for alpha in (0.001, 0.01, 0.1):
        assert (fresh <= alpha).mean() <= alpha * 1.25 + 2e-4, alpha


def test_bh_threshold_matches_an_independent_computation():
    rng = np.random.default_rng(6)
    p = np.concatenate([rng.uniform(size=900), rng.uniform(0, 0.002, size=100), [np.inf] * 50])
    t = bh_threshold(p, 0.1)
    m = len(p)
    ranked = sorted(p)
    best = max((ranked[i - 1] for i in range(1, m + 1) if ranked[i - 1] <= 0.1 * i / m), default=0.0)
    assert t == best and (p <= t).sum() >= 100
    assert bh_threshold(rng.uniform(0.5, 1.0, size=100), 0.1) == 0.0
    assert bh_threshold(np.array([]), 0.1) == 0.0


def hand_written_bh(p: np.ndarray, level: float) -> float:
    """The screen's own rule before it used scipy (the oracle): the largest ``p_(i) <= i level / m``
    (0 when there is none); ``inf`` entries are not tests but count in ``m``."""
    m = len(p)
    if not m:
        return 0.0
    order = np.sort(p)
    passing = np.flatnonzero(order <= level * np.arange(1, m + 1) / m)
    return float(order[passing[-1]]) if len(passing) else 0.0


def on_the_line(p: np.ndarray, level: float) -> bool:
    """Some p-value lies (to rounding) on the line ``i level / m``: there the rounding of
    ``i level / m`` (the oracle) and of ``p m / i`` (scipy) decides, not the rule. (A zero is
    exact in both.)"""
    ranked = np.sort(p)
    line = level * np.arange(1, len(p) + 1) / len(p)
    return bool(np.any((ranked > 0) & (np.abs(ranked - line) <= 1e-12 * line)))


def random_p_values(rng: np.random.Generator, kind: int) -> np.ndarray:
    """p-value vectors as the screen meets them, and the corners: ties, zeros, ones, not-a-test
    entries (inf, NaN), rank p-values of a small reference, and every small size."""
    m = int(rng.integers(0, 8)) if kind % 2 else int(rng.integers(1, 400))
    if kind == 0:
        return rng.uniform(size=m)
    if kind == 1:  # ties, zeros, ones and tests that are not tests
        grid = [0.0, 1e-4, 0.001, 0.003, 0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 1.0, np.inf, np.nan]
        return rng.choice(grid, size=m)
    if kind == 2:  # rank p-values (1 + r) / (n + 1) of a reference of n scores: many ties
        n = int(rng.integers(1, 300))
        return (1 + rng.integers(0, n + 1, size=m)) / (n + 1)
    if kind == 3:  # a few strong suspects among clean rows, some rows not tested (inf)
        p = np.concatenate([rng.uniform(0.0, 0.002, size=m // 4), rng.uniform(size=m - m // 4)])
        p[rng.uniform(size=m) < 0.2] = np.inf
        return p
    if kind == 4:  # the exponential tail below the reference: tiny and underflowing p-values
        return np.exp(-rng.exponential(20.0, size=m)) * rng.choice([1.0, 0.0], size=m, p=[0.9, 0.1])
    return np.round(rng.uniform(0.0, 0.2, size=m), 3)  # coarse values: ties near the line


@pytest.mark.parametrize("kind", range(6))
def test_scipy_benjamini_hochberg_decides_as_the_hand_written_rule(kind: int) -> None:
    rng = np.random.default_rng(100 + kind)
    compared = 0
    for _ in range(400):
        p = random_p_values(rng, kind)
        for level in LEVELS:
            if len(p) and on_the_line(p, level):
                continue
            expected, got = hand_written_bh(p, level), bh_threshold(p, level)
            assert got == expected, (p.tolist(), level)
            # The same rows are suspect (the screen keeps p <= threshold).
            assert np.array_equal(p <= got, p <= expected)
            compared += 1
    assert compared >= 0.9 * 400 * len(LEVELS)  # few vectors have a p-value on the line


def test_a_p_value_on_the_line_is_rejected_as_the_rule_says() -> None:
    """``p_(m) = level`` lies on the line ``m level / m``, so BH rejects every row: scipy does at
    every size; the hand-written rule's ``level * m / m`` rounds below ``level`` at some sizes."""
    for m in range(1, 400):
        p = np.full(m, 0.1)
        assert bh_threshold(p, 0.1) == 0.1
    assert any(hand_written_bh(np.full(m, 0.1), 0.1) == 0.0 for m in range(1, 400))


def test_not_tests_count_in_m_but_are_never_rejected() -> None:
    p = np.array([0.01, np.inf, np.nan, np.inf])
    # m = 4: 0.01 <= 0.1 * 1 / 4
    assert bh_threshold(p, 0.1) == 0.01
    assert bh_threshold(np.array([0.03, np.inf, np.inf, np.inf]), 0.1) == 0.0  # 0.03 > 0.1 / 4
    assert bh_threshold(np.array([np.inf, np.nan]), 0.1) == 0.0
    assert bh_threshold(np.array([]), 0.1) == 0.0


def test_the_suspect_level_is_bh_or_the_row_level() -> None:
    rng = np.random.default_rng(7)
    clean = rng.uniform(size=1000)
    assert suspect_level(clean) == max(hand_written_bh(clean, FDR_LEVEL), ROW_LEVEL)
    poisoned = np.concatenate([clean, rng.uniform(0.0, 1e-4, size=100)])
    assert suspect_level(poisoned) == hand_written_bh(poisoned, FDR_LEVEL) > ROW_LEVEL


@pytest.mark.parametrize("level", [1.0, 1.5, -0.1])
def test_a_false_discovery_rate_outside_0_1_is_refused(level: float) -> None:
    with pytest.raises(ValueError, match="false discovery rate"):
        bh_threshold(np.array([0.01, 0.5]), level)
