"""Fixtures shared by the security tests."""

from __future__ import annotations

import pytest

from airflow_mlops.security.keys import generate_key_pair


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_key_pair()
