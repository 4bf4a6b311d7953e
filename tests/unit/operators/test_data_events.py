"""operators/data.py: the batch of an event-started training run (the asset events' data), without an
Airflow server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from run_context import T0, accessor, event, frame, validate_operator

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import ArtifactIntegrityError, DataError
from airflow_mlops.operators.data import retrain_reason, triggering_data


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


def test_an_event_started_run_reads_exactly_the_events_data(tmp_path: Path) -> None:
    a, b = tmp_path / "in" / "a.parquet", tmp_path / "in" / "b.parquet"
    a.parent.mkdir()
    frame(4).to_parquet(a)
    frame(6, start=100).to_parquet(b)
    store = ArtifactStore(str(tmp_path / "store"))
    b_ref = store.put_file(b, "other-run/monitor/window.parquet", producer="monitor.score").to_dict()
    context = {
        "logical_date": None,
        "triggering_asset_events": accessor(
            event("x-mlops://p/new_data", {"from_trigger": True, "payload": {"data": [str(a)]}}),
            event("x-mlops://p/drift", {"data": [b_ref["uri"]], "data_refs": [b_ref]}, minutes=1),
        ),
    }
    df, source = validate_operator(tmp_path)._read_batch(context, tmp_path / "scratch")
    assert source == f"{a},{b_ref['uri']}"
    assert df["x"].tolist() == [0, 1, 2, 3, *range(100, 106)]  # nothing dropped, event order

    # A ref pins the data: a window changed after the monitor stored it is refused.
    pd.DataFrame({"x": [9] * 6, "y": [0] * 6}).to_parquet(b_ref["uri"])
    (tmp_path / "scratch2").mkdir()
    with pytest.raises(ArtifactIntegrityError):
        validate_operator(tmp_path)._read_batch(context, tmp_path / "scratch2")


def test_event_batches_with_different_columns_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame(2).to_parquet(a)
    frame(2).rename(columns={"x": "z"}).to_parquet(b)
    context = {
        "logical_date": None,
        "triggering_asset_events": accessor(event("x-mlops://p/new_data", {"data": [str(a), str(b)]})),
    }
    with pytest.raises(DataError, match="different columns"):
        validate_operator(tmp_path)._read_batch(context, tmp_path)


def test_an_event_without_data_reads_event_source_or_says_what_to_set(tmp_path: Path) -> None:
    latest = tmp_path / "latest.parquet"
    frame(4).to_parquet(latest)
    context = {
        "logical_date": None,
        "triggering_asset_events": accessor(event("x-mlops://p/drift", {"reason": "unlabelled window"})),
    }
    df, source = validate_operator(tmp_path, event_source=str(latest))._read_batch(context, tmp_path)
    assert source == str(latest) and len(df) == 4
    with pytest.raises(DataError, match=r"set data\.event_source"):
        validate_operator(tmp_path)._read_batch(context, tmp_path)


def test_a_scheduled_run_renders_source_for_its_interval(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    frame(2).to_parquet(tmp_path / "train" / "2026-01-03.parquet")
    context = {"logical_date": T0, "ds": "2026-01-03", "triggering_asset_events": accessor()}
    df, source = validate_operator(tmp_path)._read_batch(context, tmp_path)
    assert source == str(tmp_path / "train" / "2026-01-03.parquet") and len(df) == 2
