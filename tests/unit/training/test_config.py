"""The trainer's configuration and input table (``airflow_mlops/training/config.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.exceptions import DataError
from airflow_mlops.training.config import read_table


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "training data file not found"),
        ("unreadable", "cannot read training data"),
    ],
)
def test_read_table_errors(tmp_path: Path, setup: str, expected: str) -> None:
    path = tmp_path / "train.parquet"
    if setup == "unreadable":
        path.write_text("not parquet")
    with pytest.raises(DataError, match=expected):
        read_table(path)
