"""operators/data.py: the batch of an event-started training run (the asset events' data), without an
Airflow server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import ArtifactIntegrityError, DataError
from airflow_mlops.operators.data import DataValidateOperator, retrain_reason, triggering_data

T0 = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)


def event(uri: str, extra: dict[str, Any], minutes: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        asset=SimpleNamespace(uri=uri), extra=extra, timestamp=T0 + dt.timedelta(minutes=minutes)
    )


class _Events(dict):
    """Like Airflow's accessor: iterating gives assets (objects with .uri), items give their events."""

    def items(self):  # type: ignore[override]
        return [(SimpleNamespace(uri=k), v) for k, v in super().items()]


def accessor(*evs: SimpleNamespace) -> _Events:
    out = _Events()
    for ev in evs:
        out.setdefault(ev.asset.uri, []).append(ev)
    return out


def test_triggering_data_reads_task_and_watcher_events_oldest_first_each_uri_once() -> None:
    drift = event("x-mlops://p/drift", {"data": ["/w/b"], "reason": "amount drifted"}, minutes=5)
    watcher = event("x-mlops://p/new_data", {"from_trigger": True, "payload": {"data": ["/in/a", "/w/b"]}})
    other = event("s3://x/y", {"note": "no data here"}, minutes=1)
    items = triggering_data({"triggering_asset_events": accessor(drift, watcher, other)})
    assert [i["uri"] for i in items] == ["/in/a", "/w/b"]
    assert items[0]["ref"] is None
    assert triggering_data({"triggering_asset_events": accessor(other)}) == []
    assert triggering_data({}) == []


def test_any_task_of_the_run_tells_why_it_trains_from_its_events_and_run_type() -> None:
    drift = event("x-mlops://p/drift", {"drifted_features": ["amount"], "source_run": "p__monitor/m1"})
    context = {
        "triggering_asset_events": accessor(drift),
        "dag_run": SimpleNamespace(run_type="asset_triggered"),
    }
    reason = retrain_reason(context)
    assert reason["kind"] == "drift" and reason["run_type"] == "asset_triggered"
    assert reason["summary"] == "feature amount drifted in window p__monitor/m1"
    scheduled = {"triggering_asset_events": accessor(), "dag_run": SimpleNamespace(run_type="scheduled")}
    assert retrain_reason(scheduled)["kind"] == "schedule"
    assert retrain_reason({})["kind"] == "other"  # a bare context: nothing known, nothing claimed


def _validate(tmp_path: Path, **kwargs: Any) -> DataValidateOperator:
    from airflow.sdk import DAG

    with DAG("p__train", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
        return DataValidateOperator(
            task_id="validate",
            pipeline="p",
            artifact_root=str(tmp_path / "store"),
            source=str(tmp_path / "train" / "{{ ds }}.parquet"),
            **kwargs,
        )


def _frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": range(start, start + n), "y": [0, 1] * (n // 2)})


def test_an_event_started_run_reads_exactly_the_events_data(tmp_path: Path) -> None:
    a, b = tmp_path / "in" / "a.parquet", tmp_path / "in" / "b.parquet"
    a.parent.mkdir()
    _frame(4).to_parquet(a)
    _frame(6, start=100).to_parquet(b)
    store = ArtifactStore(str(tmp_path / "store"))
    b_ref = store.put_file(b, "other-run/monitor/window.parquet", producer="monitor.score").to_dict()
    context = {
        "logical_date": None,
        "triggering_asset_events": accessor(
            event("x-mlops://p/new_data", {"from_trigger": True, "payload": {"data": [str(a)]}}),
            event("x-mlops://p/drift", {"data": [b_ref["uri"]], "data_refs": [b_ref]}, minutes=1),
        ),
    }
    df, source = _validate(tmp_path)._read_batch(context, tmp_path / "scratch")
    assert source == f"{a},{b_ref['uri']}"
    assert df["x"].tolist() == [0, 1, 2, 3, *range(100, 106)]  # nothing dropped, event order

    # A ref pins the data: a window changed after the monitor stored it is refused.
    pd.DataFrame({"x": [9] * 6, "y": [0] * 6}).to_parquet(b_ref["uri"])
    (tmp_path / "scratch2").mkdir()
    with pytest.raises(ArtifactIntegrityError):
        _validate(tmp_path)._read_batch(context, tmp_path / "scratch2")


def test_event_batches_with_different_columns_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _frame(2).to_parquet(a)
    _frame(2).rename(columns={"x": "z"}).to_parquet(b)
    context = {
        "logical_date": None,
        "triggering_asset_events": accessor(event("x-mlops://p/new_data", {"data": [str(a), str(b)]})),
    }
    with pytest.raises(DataError, match="different columns"):
        _validate(tmp_path)._read_batch(context, tmp_path)


def test_an_event_without_data_reads_event_source_or_says_what_to_set(tmp_path: Path) -> None:
    latest = tmp_path / "latest.parquet"
    _frame(4).to_parquet(latest)
    context = {
        "logical_date": None,
        "triggering_asset_events": accessor(event("x-mlops://p/drift", {"reason": "unlabelled window"})),
    }
    df, source = _validate(tmp_path, event_source=str(latest))._read_batch(context, tmp_path)
    assert source == str(latest) and len(df) == 4
    with pytest.raises(DataError, match=r"set data\.event_source"):
        _validate(tmp_path)._read_batch(context, tmp_path)


def test_a_scheduled_run_renders_source_for_its_interval(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    _frame(2).to_parquet(tmp_path / "train" / "2026-01-03.parquet")
    context = {"logical_date": T0, "ds": "2026-01-03", "triggering_asset_events": accessor()}
    df, source = _validate(tmp_path)._read_batch(context, tmp_path)
    assert source == str(tmp_path / "train" / "2026-01-03.parquet") and len(df) == 2
