"""NewDataSensor: poke, defer, execute_complete, and a retried try finding its own commit."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops.data.arrivals import Watermark, WatermarkStore
from airflow_mlops.exceptions import WatermarkError
from airflow_mlops.sensors.new_data import NewDataSensor
from airflow_mlops.triggers.new_data import NewDataSensorTrigger

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def write(root: Path, rel: str, mtime_ns: int = T0) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return str(path)


def context(run_id: str = "scheduled__2026-01-01", try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="churn__train", run_id=run_id, task_id="wait", map_index=-1, try_number=try_number
    )
    return {"ti": ti}


def sensor(tmp_path: Path, **kw: Any) -> NewDataSensor:
    args: dict[str, Any] = {
        "task_id": "wait",
        "location": str(tmp_path / "in"),
        "pattern": "*/batch.parquet",
        "state_uri": str(tmp_path / "state"),
        "settle_seconds": 0,
        "poke_interval": 7,
        "timeout": 600,
    }
    return NewDataSensor(**{**args, **kw})


def stored(op: NewDataSensor) -> Watermark:
    config = op.watch_config()
    return WatermarkStore(config.state_uri).load(Watermark.empty(config.location, config.pattern))[0]


def test_poke_returns_the_batch_commits_and_then_waits(tmp_path: Path) -> None:
    op = sensor(tmp_path, deferrable=False)
    assert op.poke(context()).is_done is False
    uri = write(tmp_path / "in", "d1/batch.parquet")
    result = op.poke(context())
    assert result.is_done is True
    assert [o["uri"] for o in result.xcom_value] == [uri]
    assert set(result.xcom_value[0]) >= {"uri", "size", "mtime", "sha256"}
    assert stored(op).committed_by == "churn__train/scheduled__2026-01-01/wait/-1"
    assert sensor(tmp_path, deferrable=False).poke(context("scheduled__2026-01-02")).is_done is False


def test_peek_mode_does_not_commit(tmp_path: Path) -> None:
    write(tmp_path / "in", "d1/batch.parquet")
    op = sensor(tmp_path, deferrable=False, commit=False)
    assert op.poke(context()).is_done and op.poke(context("other")).is_done
    assert stored(op).mtime_ns is None


def test_execute_pokes_once_then_defers_to_the_sensor_trigger(tmp_path: Path) -> None:
    op = sensor(tmp_path, deferrable=True, max_objects=5, consumer="churn")
    with pytest.raises(TaskDeferred) as info:
        op.execute(context())
    trigger = info.value.trigger
    assert isinstance(trigger, NewDataSensorTrigger)
    assert info.value.method_name == "execute_complete"
    assert info.value.timeout is not None and info.value.timeout.total_seconds() == 600
    kwargs = trigger.serialize()[1]
    assert kwargs["location"] == str(tmp_path / "in") and kwargs["poll_interval"] == 7.0
    assert kwargs["max_objects_per_event"] == 5 and kwargs["consumer"] == "churn"
    # Data already there: no deferral at all.
    uri = write(tmp_path / "in", "d1/batch.parquet")
    assert [o["uri"] for o in op.execute(context())] == [uri]


def test_execute_complete_commits_the_batch_from_the_trigger_event(tmp_path: Path) -> None:
    op = sensor(tmp_path, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context())
    uri = write(tmp_path / "in", "d1/batch.parquet")

    async def first_event() -> Any:
        agen = info.value.trigger.run()
        return await asyncio.wait_for(agen.__anext__(), 5)

    event = asyncio.run(first_event())
    out = op.execute_complete(context(), event.payload)
    assert [o["uri"] for o in out] == [uri]
    wm = stored(op)
    assert wm.batches == 1 and wm.committed_by == "churn__train/scheduled__2026-01-01/wait/-1"
    # A second try of the same task instance (the first died after committing) gets the batch back...
    assert [o["uri"] for o in sensor(tmp_path, deferrable=True).execute(context(try_number=2))] == [uri]
    # ... while the next run waits for new data.
    with pytest.raises(TaskDeferred):
        sensor(tmp_path, deferrable=True).execute(context("scheduled__2026-01-02"))
    # Replaying a stale event after someone else committed is refused, not applied twice.
    from airflow_mlops.exceptions import WatermarkConflictError

    with pytest.raises(WatermarkConflictError):
        op.execute_complete(context("scheduled__2026-01-03"), event.payload)
    with pytest.raises(WatermarkError, match="unexpected trigger event"):
        op.execute_complete(context(), {"status": "error"})


def test_default_deferrable_follows_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    default = inspect.signature(NewDataSensor.__init__).parameters["deferrable"].default
    from airflow.configuration import conf

    assert default == conf.getboolean("operators", "default_deferrable", fallback=False)
    assert sensor(tmp_path).deferrable is default
