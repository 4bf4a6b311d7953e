"""Event-started training data, and the drift event emitter, without an Airflow server."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import ArtifactIntegrityError, DataError, DriftAlarmError
from airflow_mlops.operators.data import DataValidateOperator, triggering_data
from airflow_mlops.operators.monitor import DriftEventEmitOperator

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


def _emitter(**kwargs: Any) -> DriftEventEmitOperator:
    from airflow.sdk import Asset

    args: dict[str, Any] = {
        "task_id": "emit_drift",
        "pipeline": "p",
        "asset": Asset(uri="x-mlops://p/drift", name="p__drift", group="mlops"),
        "drifted": True,
        "reasons": ["3 of 4 features drifted (share 0.75 >= 0.5): a, b, c"],
        "drifted_features": ["a", "b", "c"],
        "report": {"uri": "/s/r.json", "sha256": "0" * 64, "size": 1, "media_type": "application/json"},
        "html": {"uri": "/s/r.html", "sha256": "1" * 64, "size": 1, "media_type": "text/html"},
        "window": {"uri": "/s/w.parquet", "sha256": "2" * 64, "size": 1, "media_type": "x"},
        "labelled": True,
        "champion_version": "3",
    }
    args.update(kwargs)
    return DriftEventEmitOperator(**args)


def _context() -> dict[str, Any]:
    return {
        "outlet_events": defaultdict(SimpleNamespace),
        "dag": SimpleNamespace(dag_id="p__monitor"),
        "run_id": "manual__1",
    }


def test_drift_emits_an_event_that_says_why_and_names_the_labelled_window() -> None:
    op = _emitter()
    context = _context()
    extra = op.execute(context)
    assert context["outlet_events"][op.asset].extra == extra
    assert extra["reasons"] == ["3 of 4 features drifted (share 0.75 >= 0.5): a, b, c"]
    assert extra["drifted_features"] == ["a", "b", "c"] and extra["champion_version"] == "3"
    assert extra["data"] == ["/s/w.parquet"] and extra["data_refs"][0]["sha256"] == "2" * 64
    assert extra["source_run"] == "p__monitor/manual__1"
    # An unlabelled window is reported but not offered as training data.
    unlabelled = _emitter(labelled=False).execute(_context())
    assert "data" not in unlabelled and "data_refs" not in unlabelled


def test_no_drift_skips_so_no_event_exists_and_alert_mode_fails() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    for not_drifted in (False, None, "True"):  # only a real True emits
        with pytest.raises(AirflowSkipException):
            _emitter(drifted=not_drifted).execute(_context())
    alert = _emitter(on_drift="alert")
    assert alert.outlets == []
    with pytest.raises(DriftAlarmError, match="3 of 4 features drifted"):
        alert.execute(_context())
    with pytest.raises(ValueError, match="on_drift"):
        _emitter(on_drift="ignore")
