"""Fixtures the unit tests of several packages share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# Importing Airflow configures logging: a handler on the root logger, bound to the sys.stdout of
# that moment. Import it while pytest collects (its stream lasts the session), never first inside
# a test that captures output with capsys: that stream is closed after the test, and each later
# log record would print a "Logging error" traceback to stderr (which the CLI tests refuse).
import airflow  # noqa: F401
import pytest


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (one per test module that asks for it): its endpoint URL."""
    from tests.unit.moto_s3 import moto_endpoint

    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    """A fresh ECDSA signing key pair ``(private PEM, public PEM)``, one per test module."""
    from airflow_mlops.security.keys import generate_key_pair

    return generate_key_pair()


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow database (migrating takes seconds; each test copies it)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return path
