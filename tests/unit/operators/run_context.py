"""Run contexts for operator tests without an Airflow server: triggering asset events as
Airflow's accessor hands them to a task, and a ``data.validate`` operator to read them with."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from airflow_mlops.operators.data import DataValidateOperator

T0 = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)


def event(uri: str, extra: dict[str, Any], minutes: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        asset=SimpleNamespace(uri=uri), extra=extra, timestamp=T0 + dt.timedelta(minutes=minutes)
    )


class Events(dict):
    """Like Airflow's accessor: iterating gives assets (objects with .uri), items give their events."""

    def items(self):  # type: ignore[override]
        return [(SimpleNamespace(uri=k), v) for k, v in super().items()]


def accessor(*evs: SimpleNamespace) -> Events:
    out = Events()
    for ev in evs:
        out.setdefault(ev.asset.uri, []).append(ev)
    return out


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": range(start, start + n), "y": [0, 1] * (n // 2)})


def validate_operator(tmp_path: Path, **kwargs: Any) -> DataValidateOperator:
    from airflow.sdk import DAG

    with DAG("p__train", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
        return DataValidateOperator(
            task_id="validate",
            pipeline="p",
            artifact_root=str(tmp_path / "store"),
            source=str(tmp_path / "train" / "{{ ds }}.parquet"),
            **kwargs,
        )
