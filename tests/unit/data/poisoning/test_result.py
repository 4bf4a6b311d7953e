"""The screen's stop rule tolerates a small batch's sampling noise, and only that."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.data.poisoning import allowed_suspects


@pytest.mark.parametrize("rows", [60, 100, 228, 1000, 3000, 100_000])
def test_a_batch_suspect_at_the_allowed_rate_passes_nineteen_times_in_twenty(rows: int) -> None:
    allowed = allowed_suspects(rows, 0.02)
    draws = np.random.default_rng(rows).binomial(rows, 0.02, size=20_000)
    assert 0.94 <= float(np.mean(draws <= allowed)) <= 0.995
    assert allowed >= int(rows * 0.02)


def test_the_tolerance_shrinks_with_the_batch_and_a_clear_excess_stops() -> None:
    shares = [allowed_suspects(n, 0.02) / n for n in (60, 1000, 100_000)]
    assert shares == sorted(shares, reverse=True) and shares[-1] < 0.021
    assert allowed_suspects(60, 0.02) < 6  # 10 % of a small batch suspect still stops it
    assert allowed_suspects(100_000, 0.02) < 2500  # 2.5 % of a large one too
    assert allowed_suspects(500, 0.0) == 0 and allowed_suspects(500, 1.0) == 500
