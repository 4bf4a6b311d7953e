"""Shared fixtures. Tests never touch the developer's ~/airflow: AIRFLOW_HOME is a temp dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_home = tempfile.mkdtemp(prefix="mlops-test-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def pytest_collection_modifyitems(config: object, items: list) -> None:
    """Unit tests first (fast feedback), then the integration tests, and those that need the Docker
    engine last: scripts/run_tests.sh builds their images in the background meanwhile."""

    def rank(item: object) -> int:
        if item.get_closest_marker("docker") is not None:  # type: ignore[attr-defined]
            return 2
        return 1 if item.get_closest_marker("integration") is not None else 0  # type: ignore[attr-defined]

    items.sort(key=rank)  # stable: the order within each group is kept
