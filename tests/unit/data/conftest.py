"""A fraud batch, clean and poisoned, its reference, and their screens (module-scoped: each test
module that asks for them screens once)."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.data.generate import generate_fraud_data, inject_poison
from airflow_mlops.data.poisoning import ScreenResult
from tests.unit.data.screens import ALL, screen


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_fraud_data(10_000, seed=30)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_fraud_data(4000, seed=31)


@pytest.fixture(scope="module")
def poisoned(clean) -> pd.DataFrame:
    return inject_poison(clean, seed=2, n_conflicting_duplicates=12, n_label_flips=20)


@pytest.fixture(scope="module")
def clean_result(clean, reference) -> ScreenResult:
    return screen(clean, checks=ALL, reference=reference)


@pytest.fixture(scope="module")
def poisoned_result(poisoned, reference) -> ScreenResult:
    return screen(poisoned, checks=ALL, reference=reference)
