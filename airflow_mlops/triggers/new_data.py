"""New-data triggers: an Airflow asset watcher and the trigger behind :class:`NewDataSensor`.

:class:`NewDataTrigger` is a ``BaseEventTrigger`` for ``AssetWatcher``: it fires one event per
batch of objects that landed under a local folder or an S3 prefix after the stored watermark
(see :mod:`airflow_mlops.data.arrivals`). The triggerer turns each event into an asset event
whose ``extra`` is ``{"from_trigger": True, "payload": <the event payload>}``; the payload's
``data`` key is the list of new URIs (read it with
:func:`airflow_mlops.data.arrivals.uris_from_event_extra`).

Where the watermark is persisted (restart safety)
-------------------------------------------------
The triggerer resumes a trigger's generator right after a ``yield``, when the event is only in
the runner's in-memory outbound queue; the supervisor writes the asset event to the metadata
database a sync round later. Committing the watermark on resume would lose the batch if the
triggerer died in between. So the trigger runs in Airflow's *shared-stream ack mode*
(``create_shared_stream_producer``): the triggerer calls :meth:`NewDataProducer.advance` only
after the event was confirmed persisted, and the watermark is committed there. Hence:

* a batch is never missed: the watermark moves only past batches whose asset event is stored;
  a batch whose event was not confirmed (ack timeout, no subscriber) is listed again;
* a batch is repeated only if the triggerer dies between the database commit of the asset event
  and the watermark write that follows it (about one triggerer sync round, ~1 s, plus one file
  or S3 write). That is the one window where exactly-once cannot hold, since the metadata database
  and the watermark store cannot commit together. Every payload carries a deterministic
  ``batch_id`` so a consumer can drop such a repeat.

:meth:`NewDataTrigger.run` is the standalone fallback (unit tests, runners without the
shared-stream manager): it commits when the generator is resumed after the ``yield``, so there the
window is the other way round (a crash before the event is stored loses that batch).

Watcher triggers are de-duplicated by Airflow on their serialized kwargs, so every kwarg is a
plain, normalized value (floats, ints, strings, ``None``) that is the same on every DAG parse.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_mlops.compat import AdvanceItem, SharedStreamProducer
from airflow_mlops.data.arrivals import NewDataWatch, WatchConfig, Watermark

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_SETTLE_SECONDS = 30.0
DEFAULT_MAX_OBJECTS = 1000


class _NewDataArgs:
    """The arguments every new-data trigger takes, normalized so serialization is stable."""

    classpath: str = ""

    def __init__(
        self,
        *,
        location: str,
        pattern: str = "**/*",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        state_uri: str,
        aws_conn_id: str | None = None,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        max_objects_per_event: int | None = DEFAULT_MAX_OBJECTS,
        lookback_seconds: float = 0.0,
        consumer: str = "",
        with_sha256: bool = False,
        allowed_roots: Sequence[str] | None = None,
    ) -> None:
        super().__init__()  # the trigger base class (this mixin comes first in the bases)
        if not float(poll_interval) > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        self.location = str(location)
        self.pattern = str(pattern)
        self.poll_interval = float(poll_interval)
        self.state_uri = str(state_uri)
        self.aws_conn_id = aws_conn_id or None
        self.settle_seconds = float(settle_seconds)
        self.max_objects_per_event = None if max_objects_per_event is None else int(max_objects_per_event)
        self.lookback_seconds = float(lookback_seconds)
        self.consumer = str(consumer)
        self.with_sha256 = bool(with_sha256)
        self.allowed_roots = [str(r) for r in allowed_roots] if allowed_roots is not None else None
        self.validate()

    def validate(self) -> WatchConfig:
        """Check every setting now (at DAG parse), so a bad one fails where it is written."""
        return self.config

    @property
    def config(self) -> WatchConfig:
        return WatchConfig(
            location=self.location,
            pattern=self.pattern,
            state_uri=self.state_uri,
            settle_seconds=self.settle_seconds,
            lookback_seconds=self.lookback_seconds,
            max_objects=self.max_objects_per_event,
            consumer=self.consumer,
            with_sha256=self.with_sha256,
            allowed_roots=tuple(self.allowed_roots) if self.allowed_roots is not None else None,
        )

    def _kwargs(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "pattern": self.pattern,
            "poll_interval": self.poll_interval,
            "state_uri": self.state_uri,
            "aws_conn_id": self.aws_conn_id,
            "settle_seconds": self.settle_seconds,
            "max_objects_per_event": self.max_objects_per_event,
            "lookback_seconds": self.lookback_seconds,
            "consumer": self.consumer,
            "with_sha256": self.with_sha256,
            "allowed_roots": self.allowed_roots,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and every constructor argument."""
        return self.classpath, self._kwargs()

    def build_watch(self) -> NewDataWatch:
        """The domain watch, with an S3 client from the Airflow connection when one is named.

        Blocking (reads the connection): call it in a thread from async code.
        """
        return build_watch(self.config, self.aws_conn_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _NewDataArgs):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((self.classpath, json.dumps(self._kwargs(), sort_keys=True)))


def build_watch(config: WatchConfig, aws_conn_id: str | None) -> NewDataWatch:
    """A :class:`NewDataWatch`; S3 credentials come from ``aws_conn_id`` via ``S3Hook`` if given."""
    client = None
    uses_s3 = config.location.startswith("s3://") or config.state_uri.startswith("s3://")
    if uses_s3 and aws_conn_id:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        client = S3Hook(aws_conn_id=aws_conn_id).get_conn()
    return NewDataWatch(config, s3_client=client)


class NewDataTrigger(_NewDataArgs, BaseEventTrigger):
    """Fire one event per batch of new objects under a folder or S3 prefix (an asset watcher).

    :param location: absolute local folder or ``s3://bucket/prefix`` to watch.
    :param pattern: glob over keys relative to ``location`` (``*/batch.parquet``, ``**/*.parquet``).
    :param poll_interval: seconds between listings.
    :param state_uri: local folder or ``s3://bucket/prefix`` where the watermark is kept.
    :param aws_conn_id: Airflow AWS connection for S3 (default: boto3's own credential chain).
    :param settle_seconds: objects younger than this are left for a later poll (half-copied files).
    :param max_objects_per_event: at most this many objects per event; the rest go in the next ones.
    :param lookback_seconds: also compare keys this far below the watermark (S3 multipart uploads).
    :param consumer: separates watermarks of watches on the same location (e.g. the pipeline name).
    :param with_sha256: add each local file's sha256 to the batch (reads every new file).
    :param allowed_roots: roots ``location`` must lie under, symbolic links resolved, checked
        when the trigger is built and on every listing (and ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` where
        it is set); the consumers check every file they read again.

    Payload: ``location``, ``pattern``, ``batch_id``, ``objects`` and ``data`` (lists of URIs),
    ``count``, ``bytes``, ``watermark`` (a summary of the watermark after the batch).
    """

    classpath = "airflow_mlops.triggers.new_data.NewDataTrigger"

    # -- ack mode: the path the Airflow 3.3 triggerer takes ------------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """Identical watches share one poll (and one watermark writer)."""
        return ("airflow_mlops.new_data", json.dumps(self._kwargs(), sort_keys=True))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> NewDataProducer:
        return NewDataProducer(cls(**kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for payload in shared_stream:
            self.log.info(
                "New data under %s: %s object(s), batch %s",
                payload["location"],
                payload["count"],
                payload["batch_id"],
            )
            yield TriggerEvent(payload)

    # -- standalone fallback -------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll, yield one event per batch, commit the watermark when resumed after the yield."""
        watch = await asyncio.to_thread(self.build_watch)
        watermark, version = await asyncio.to_thread(watch.load)
        while True:
            batch = await asyncio.to_thread(watch.poll, watermark)
            if not batch:
                await asyncio.sleep(self.poll_interval)
                continue
            self.log.info("New data under %s: %s object(s)", batch.watermark.location, len(batch.objects))
            yield TriggerEvent(batch.payload())
            version = await asyncio.to_thread(watch.commit, batch.watermark, expected_version=version)
            watermark = batch.watermark


@dataclass(frozen=True)
class _Emitted:
    """What the producer needs to commit one emitted batch (the shared stream's broker payload)."""

    watermark: Watermark
    generation: int
    batch_id: str


class NewDataProducer(SharedStreamProducer):
    """Lists the location and commits the watermark once Airflow confirmed the event is stored.

    ``_emitted`` is the watermark after the last batch handed to the triggerer; ``_committed``
    the one in the store. A batch that did not resolve cleanly rewinds ``_emitted`` to
    ``_committed`` (a new *generation*): that batch and every later one are listed and emitted
    again, and advances of the older generation are ignored, so no batch is skipped.
    """

    def __init__(self, trigger: NewDataTrigger) -> None:
        self.trigger = trigger
        self._watch: NewDataWatch | None = None
        self._committed: Watermark | None = None
        self._version: str | None = None
        self._emitted: Watermark | None = None
        self._generation = 0

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        watch = await asyncio.to_thread(self.trigger.build_watch)
        committed, self._version = await asyncio.to_thread(watch.load)
        self._watch, self._committed, self._emitted = watch, committed, committed
        log.info(
            "Watching %s (%r) from watermark %s", committed.location, committed.pattern, committed.summary()
        )
        while True:
            base = self._emitted
            batch = await asyncio.to_thread(watch.poll, base)
            if self._emitted is not base:
                continue  # rewound while listing: list again from the committed watermark
            if not batch:
                await asyncio.sleep(self.trigger.poll_interval)
                continue
            self._emitted = batch.watermark
            yield batch.payload(), _Emitted(batch.watermark, self._generation, batch.batch_id)
            full = self.trigger.max_objects_per_event is not None and len(batch.objects) >= (
                self.trigger.max_objects_per_event
            )
            if not full:  # a full batch means more may be waiting: list again at once
                await asyncio.sleep(self.trigger.poll_interval)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        if self._watch is None:
            raise RuntimeError("NewDataProducer.advance called before open_stream")
        for item in batch:
            emitted: _Emitted = item.broker_payload
            if emitted.generation != self._generation:
                continue  # emitted before a rewind; it is being listed again
            if not item.outcome.is_clean:
                log.warning(
                    "New-data batch %s was not confirmed stored (%s); listing it again from the "
                    "committed watermark",
                    emitted.batch_id,
                    item.outcome,
                )
                self._generation += 1
                self._emitted = self._committed
                continue
            self._version = await asyncio.to_thread(
                self._watch.commit, emitted.watermark, expected_version=self._version
            )
            self._committed = emitted.watermark
            log.info("Committed new-data watermark after batch %s", emitted.batch_id)


class NewDataSensorTrigger(_NewDataArgs, BaseTrigger):
    """The trigger a deferred :class:`~airflow_mlops.sensors.new_data.NewDataSensor` waits on.

    Fires once, with the first non-empty batch, the watermark after it and the version of the
    stored watermark it was computed from; it commits nothing: the sensor commits on the worker
    (compare-and-swap on that version), after the task has the batch.
    """

    classpath = "airflow_mlops.triggers.new_data.NewDataSensorTrigger"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = await asyncio.to_thread(self.build_watch)
        watermark, version = await asyncio.to_thread(watch.load)
        while True:
            batch = await asyncio.to_thread(watch.poll, watermark)
            if batch:
                yield TriggerEvent({"status": "success", "batch": batch.to_dict(), "base_version": version})
                return
            await asyncio.sleep(self.poll_interval)


def new_data_asset(
    pipeline: str,
    *,
    location: str,
    pattern: str,
    poll_interval: float,
    state_uri: str,
    aws_conn_id: str | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    max_objects_per_event: int | None = DEFAULT_MAX_OBJECTS,
    lookback_seconds: float = 0.0,
    allowed_roots: Sequence[str] | None = None,
) -> Any:
    """The pipeline's ``x-mlops://<pipeline>/new_data`` asset, watched by a :class:`NewDataTrigger`.

    Same uri, name and group as :func:`airflow_mlops.factory.builder.pipeline_asset`; the watch's
    ``consumer`` is the pipeline, so pipelines that watch one folder keep separate watermarks.
    """
    from airflow.sdk import Asset, AssetWatcher

    trigger = NewDataTrigger(
        location=location,
        pattern=pattern,
        poll_interval=poll_interval,
        state_uri=state_uri,
        aws_conn_id=aws_conn_id,
        settle_seconds=settle_seconds,
        max_objects_per_event=max_objects_per_event,
        lookback_seconds=lookback_seconds,
        consumer=pipeline,
        allowed_roots=allowed_roots,
    )
    return Asset(
        uri=f"x-mlops://{pipeline}/new_data",
        name=f"{pipeline}__new_data",
        group="mlops",
        watchers=[AssetWatcher(name=f"{pipeline}__new_data_watcher", trigger=trigger)],
    )
