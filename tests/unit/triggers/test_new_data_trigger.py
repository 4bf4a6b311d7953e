"""NewDataTrigger: serialization, the standalone run() loop, and Airflow's shared-stream ack path.

The ack path is driven through Airflow's own SharedStreamManager in-process, the way the
triggerer's run_trigger drives it, with persistence confirmed (or not) by the test.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.data.arrivals import WatchConfig, Watermark, WatermarkStore
from airflow_mlops.exceptions import DataError
from airflow_mlops.triggers.new_data import NewDataSensorTrigger, NewDataTrigger, new_data_asset

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def write(root: Path, rel: str, mtime_ns: int = T0) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return str(path)


def make(tmp_path: Path, **kw: Any) -> NewDataTrigger:
    args: dict[str, Any] = {
        "location": str(tmp_path / "in"),
        "pattern": "*/batch.parquet",
        "poll_interval": 0.02,
        "state_uri": str(tmp_path / "state"),
        "settle_seconds": 0,
    }
    return NewDataTrigger(**{**args, **kw})


def stored(trigger: NewDataTrigger) -> Watermark:
    config: WatchConfig = trigger.config
    empty = Watermark.empty(config.location, config.pattern, config.consumer)
    return WatermarkStore(config.state_uri).load(empty)[0]


# --- serialization --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [NewDataTrigger, NewDataSensorTrigger])
def test_serialize_returns_classpath_and_every_argument(tmp_path: Path, cls: type) -> None:
    from airflow.sdk.module_loading import import_string

    trigger = cls(
        location="s3://lake/in/",
        pattern="**/*.parquet",
        poll_interval=30,
        state_uri=str(tmp_path),
        aws_conn_id="aws_lake",
        settle_seconds=5,
        max_objects_per_event=10,
        lookback_seconds=60,
        consumer="churn",
    )
    classpath, kwargs = trigger.serialize()
    assert import_string(classpath) is cls
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert sorted(kwargs) == sorted(params)
    assert kwargs["poll_interval"] == 30.0 and isinstance(kwargs["poll_interval"], float)
    again = import_string(classpath)(**kwargs)
    assert again == trigger and hash(again) == hash(trigger)
    assert again != cls(**{**kwargs, "consumer": "other"})


def test_watcher_dedup_hash_is_stable_across_parses(tmp_path: Path) -> None:
    """Airflow de-duplicates watcher triggers by hashing their encoded kwargs."""
    from airflow.serialization.decoders import smart_decode_trigger_kwargs
    from airflow.serialization.encoders import encode_trigger
    from airflow.triggers.base import BaseEventTrigger

    first = encode_trigger(make(tmp_path))
    second = encode_trigger(make(tmp_path))  # a second DAG parse
    assert BaseEventTrigger.hash(first["classpath"], first["kwargs"]) == BaseEventTrigger.hash(
        second["classpath"], second["kwargs"]
    )
    decoded = {k: smart_decode_trigger_kwargs(v) for k, v in first["kwargs"].items()}
    restored = NewDataTrigger(**decoded)
    assert restored == make(tmp_path)
    again = encode_trigger(restored)
    assert BaseEventTrigger.hash(again["classpath"], again["kwargs"]) == BaseEventTrigger.hash(
        first["classpath"], first["kwargs"]
    )
    assert make(tmp_path).shared_stream_key() == restored.shared_stream_key()
    assert make(tmp_path, poll_interval=1).shared_stream_key() != restored.shared_stream_key()


def test_bad_settings_fail_when_the_trigger_is_written(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="relative path"):
        make(tmp_path, location="incoming")
    with pytest.raises(DataError):
        make(tmp_path, pattern="")
    with pytest.raises(ValueError, match="poll_interval"):
        make(tmp_path, poll_interval=0)


def test_new_data_asset_matches_the_pipeline_asset(tmp_path: Path) -> None:
    from airflow.sdk import AssetWatcher

    from airflow_mlops.factory.builder import pipeline_asset

    asset = new_data_asset(
        "churn",
        location=str(tmp_path),
        pattern="**/*.parquet",
        poll_interval=60,
        state_uri=str(tmp_path / "s"),
    )
    reference = pipeline_asset("churn", "new_data")
    assert (asset.uri, asset.name, asset.group) == (reference.uri, reference.name, reference.group)
    (watcher,) = asset.watchers
    assert isinstance(watcher, AssetWatcher) and watcher.name == "churn__new_data_watcher"
    assert isinstance(watcher.trigger, NewDataTrigger) and watcher.trigger.consumer == "churn"


# --- the standalone run() -------------------------------------------------------------------


async def next_event(agen: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(agen.__anext__(), timeout)


async def no_event(agen: Any, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(agen.__anext__(), wait)


def test_run_fires_one_event_per_batch_and_a_restart_neither_repeats_nor_misses(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    first = [write(inbox, "d1/batch.parquet"), write(inbox, "d2/batch.parquet")]
    write(inbox, "d2/batch.parquet.part")

    async def first_life() -> list[Any]:
        agen = make(tmp_path).run()
        events = [await next_event(agen)]
        write(inbox, "d3/batch.parquet", T0 + NS)
        events.append(await next_event(agen))  # resuming commits the first batch
        await no_event(agen)  # ... and the second; nothing else is new
        await agen.aclose()
        return events

    events = asyncio.run(first_life())
    assert [e.payload["count"] for e in events] == [2, 1]
    assert sorted(events[0].payload["data"]) == sorted(first)
    assert events[0].payload["objects"] == events[0].payload["data"]
    assert events[1].payload["data"] == [str(inbox / "d3" / "batch.parquet")]
    assert events[1].payload["watermark"]["batches"] == 2
    # Down: a file lands while no triggerer runs.
    late = write(inbox, "d4/batch.parquet", T0 + 2 * NS)

    async def second_life() -> list[Any]:
        agen = make(tmp_path).run()
        got = [await next_event(agen)]
        await no_event(agen)
        await agen.aclose()
        return got

    assert [e.payload["data"] for e in asyncio.run(second_life())] == [[late]]


# --- the ack path (what the triggerer runs) -------------------------------------------------


class Triggerer:
    """The part of TriggerRunner.run_trigger that matters here, around a real SharedStreamManager."""

    def __init__(self, trigger: NewDataTrigger, *, confirm: bool, ack_timeout: float = 30.0) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.trigger = trigger
        self.confirm = confirm
        self.manager = SharedStreamManager(ack_timeout=ack_timeout)
        self.key = trigger.shared_stream_key()
        self.events: list[Any] = []
        self.error: BaseException | None = None

    async def run_trigger(self) -> None:
        stream = self.manager.subscribe(trigger_id=1, trigger=self.trigger, key=self.key)
        try:
            async for event in self.trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=1, key=self.key)
                self.events.append(event)
                if self.confirm and seq is not None:
                    # The supervisor stored the asset event; the confirmation comes back later.
                    asyncio.get_running_loop().call_later(0.05, self.manager.confirm_persisted, [seq])
        except Exception as exc:
            self.error = exc
        finally:
            await self.manager.unsubscribe(1, self.key)

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.02)


def test_ack_path_commits_only_after_the_event_is_stored(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    a = write(inbox, "d1/batch.parquet")

    async def life(confirm: bool, *, add: str | None = None, expect: int = 1) -> list[Any]:
        trigger = make(tmp_path)
        triggerer = Triggerer(trigger, confirm=confirm)
        task = asyncio.create_task(triggerer.run_trigger())
        await triggerer.until(lambda: len(triggerer.events) >= expect)
        if add:
            write(inbox, add, T0 + NS)
            await triggerer.until(lambda: len(triggerer.events) >= expect + 1)
        await asyncio.sleep(0.3)  # time for confirmations and the advance
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert triggerer.error is None
        return triggerer.events

    # 1. The event is never confirmed stored (the triggerer dies first): nothing is committed...
    unconfirmed = asyncio.run(life(confirm=False))
    assert [e.payload["data"] for e in unconfirmed] == [[a]]
    assert stored(make(tmp_path)).mtime_ns is None
    # 2. ... so the next life emits the same batch again (never missed), now confirmed, and
    #    a file added meanwhile comes as its own batch.
    confirmed = asyncio.run(life(confirm=True, add="d2/batch.parquet"))
    assert [e.payload["data"] for e in confirmed] == [[a], [str(inbox / "d2" / "batch.parquet")]]
    assert confirmed[0].payload["batch_id"] == unconfirmed[0].payload["batch_id"]
    wm = stored(make(tmp_path))
    assert wm.batches == 2 and wm.objects == 2
    # 3. Restart after confirmed batches: nothing repeats; a file that landed while down fires.
    late = write(inbox, "d3/batch.parquet", T0 + 2 * NS)
    restarted = asyncio.run(life(confirm=True))
    assert [e.payload["data"] for e in restarted] == [[late]]


def test_ack_timeout_rewinds_so_the_batch_is_listed_again(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    a = write(inbox, "d1/batch.parquet")

    async def life() -> Triggerer:
        triggerer = Triggerer(make(tmp_path), confirm=False, ack_timeout=0.2)
        task = asyncio.create_task(triggerer.run_trigger())
        await triggerer.until(lambda: triggerer.error is not None)
        await asyncio.gather(task, return_exceptions=True)
        return triggerer

    triggerer = asyncio.run(life())
    assert type(triggerer.error).__name__ == "AckTimeout"
    assert [e.payload["data"] for e in triggerer.events] == [[a]]
    assert stored(make(tmp_path)).mtime_ns is None  # the unstored batch was not committed


def test_sensor_trigger_fires_once_and_commits_nothing(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    trigger = NewDataSensorTrigger(
        location=str(inbox),
        pattern="*/batch.parquet",
        poll_interval=0.02,
        state_uri=str(tmp_path / "s"),
        settle_seconds=0,
    )

    async def collect() -> list[Any]:
        agen = trigger.run()
        pending = asyncio.ensure_future(agen.__anext__())
        await asyncio.sleep(0.1)
        assert not pending.done()  # nothing there yet: it keeps polling
        write(inbox, "d1/batch.parquet")
        events = [await asyncio.wait_for(pending, 5)]
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()
        return events

    (event,) = asyncio.run(collect())
    assert event.payload["status"] == "success" and event.payload["base_version"] is None
    assert event.payload["batch"]["count"] == 1
    assert event.payload["batch"]["next_watermark"]["batches"] == 1
    assert not (tmp_path / "s").exists()
