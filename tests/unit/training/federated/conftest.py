"""The Flower environment the app modules run in (``.venv-flower``, see docs/training.md)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]


def flower_python() -> Path | None:
    """The Python of the Flower environment (``AIRFLOW_MLOPS_FLOWER_VENV`` or ``.venv-flower``)."""
    venv = Path(os.environ.get("AIRFLOW_MLOPS_FLOWER_VENV") or ROOT / ".venv-flower")
    python = venv / "bin" / "python"
    return python if python.exists() else None


@pytest.fixture
def in_flower() -> object:
    """Run Python code in the Flower environment with this checkout first on the path."""
    python = flower_python()
    if python is None:
        pytest.skip("no Flower environment (make flower-venv)")

    def run(code: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp")}
        return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=300)

    return run
