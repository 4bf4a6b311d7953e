"""A fraud batch, clean and poisoned, its reference, and their screens (module-scoped: each test
module that asks for them screens once); an S3 endpoint with a bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A boto3 S3 client against a moto server on a free local port, with the bucket ``lake``
    (one server per test module that asks for it)."""
    from tests.unit.moto_s3 import moto_endpoint, s3_client

    with moto_endpoint() as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="lake")
        yield client
