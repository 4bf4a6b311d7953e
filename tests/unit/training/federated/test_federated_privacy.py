"""The epsilon of DP on client updates, and its budget."""

from __future__ import annotations

import pytest

from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.training.federated import privacy

pytest.importorskip("opacus")


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    few = privacy.client_level_epsilon(noise_multiplier=1.0, rounds=3, delta=1e-5)
    many = privacy.client_level_epsilon(noise_multiplier=1.0, rounds=30, delta=1e-5)
    noisy = privacy.client_level_epsilon(noise_multiplier=4.0, rounds=3, delta=1e-5)
    assert 0 < noisy < few < many


def test_one_round_matches_the_gaussian_mechanism_bound() -> None:
    # a single Gaussian mechanism with sigma = 5: the RDP bound is close to the classic
    # sqrt(2 ln(1.25/delta)) / sigma (~0.97 at delta 1e-5) and never far below it
    epsilon = privacy.client_level_epsilon(noise_multiplier=5.0, rounds=1, delta=1e-5)
    assert 0.6 < epsilon < 1.2


def test_the_budget_is_enforced_before_the_run() -> None:
    spent = privacy.check_budget(noise_multiplier=2.0, rounds=5, delta=1e-5, budget=None)
    assert privacy.check_budget(noise_multiplier=2.0, rounds=5, delta=1e-5, budget=spent + 0.01) == spent
    with pytest.raises(TrainingRejectedError, match="above the budget"):
        privacy.check_budget(noise_multiplier=2.0, rounds=5, delta=1e-5, budget=spent / 2)
    with pytest.raises(TrainingRejectedError, match="positive"):
        privacy.client_level_epsilon(noise_multiplier=0.0, rounds=1, delta=1e-5)
