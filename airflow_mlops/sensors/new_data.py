"""Wait for new data under a folder or an S3 prefix, and hand the batch to the next task."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_mlops.data.arrivals import ObjectInfo, WatchConfig, Watermark
from airflow_mlops.exceptions import WatermarkError
from airflow_mlops.triggers.new_data import (
    DEFAULT_MAX_OBJECTS,
    DEFAULT_SETTLE_SECONDS,
    NewDataSensorTrigger,
    build_watch,
)


class NewDataSensor(BaseSensorOperator):
    """Wait until objects land under ``location`` after the stored watermark; return them.

    Pokes once, then (deferrable, the default when ``[operators] default_deferrable`` is set)
    defers to :class:`~airflow_mlops.triggers.new_data.NewDataSensorTrigger`; without deferral it
    pokes every ``poke_interval`` with the same domain function.

    :param location: absolute local folder or ``s3://bucket/prefix`` (templated).
    :param pattern: glob over keys relative to ``location`` (templated).
    :param state_uri: local folder or ``s3://bucket/prefix`` holding the watermark (templated).
    :param aws_conn_id: Airflow AWS connection for S3.
    :param settle_seconds: objects younger than this are left for a later poke.
    :param lookback_seconds: also compare keys this far below the watermark.
    :param max_objects: at most this many objects per batch.
    :param consumer: separates this sensor's watermark from other watches of the same location.
    :param with_sha256: add each local file's sha256 to the batch.
    :param allowed_roots: roots ``location`` must lie under (symbolic links resolved), checked on
        every poke, and ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` where it is set.
    :param commit: commit the watermark when the batch is returned (default). ``False`` only
        peeks: the same batch is reported again until something commits.
    :param deferrable: defer to the triggerer while waiting.

    Returns the batch: a list of ``{"uri", "key", "size", "mtime", "mtime_ns", "etag", "sha256"}``.
    A retried try of the same task instance that finds its own earlier commit returns that batch
    again instead of waiting for the next one.
    """

    template_fields: Sequence[str] = ("location", "pattern", "state_uri")
    ui_color = "#fdf3d0"

    def __init__(
        self,
        *,
        location: str,
        pattern: str = "**/*",
        state_uri: str,
        aws_conn_id: str | None = None,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        lookback_seconds: float = 0.0,
        max_objects: int | None = DEFAULT_MAX_OBJECTS,
        consumer: str = "",
        with_sha256: bool = False,
        commit: bool = True,
        allowed_roots: Sequence[str] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.location = location
        self.pattern = pattern
        self.state_uri = state_uri
        self.aws_conn_id = aws_conn_id
        self.settle_seconds = settle_seconds
        self.lookback_seconds = lookback_seconds
        self.max_objects = max_objects
        self.consumer = consumer
        self.with_sha256 = with_sha256
        self.commit = commit
        self.allowed_roots = list(allowed_roots) if allowed_roots is not None else None
        self.deferrable = deferrable

    # -- helpers -------------------------------------------------------------------------------

    def watch_config(self) -> WatchConfig:
        return WatchConfig(
            location=self.location,
            pattern=self.pattern,
            state_uri=self.state_uri,
            settle_seconds=self.settle_seconds,
            lookback_seconds=self.lookback_seconds,
            max_objects=self.max_objects,
            consumer=self.consumer,
            with_sha256=self.with_sha256,
            allowed_roots=tuple(self.allowed_roots) if self.allowed_roots is not None else None,
        )

    @staticmethod
    def identity(context: Any) -> str:
        """The task instance this commit belongs to (stable across tries)."""
        ti = context["ti"]
        return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"

    def _finish(
        self, context: Any, batch: Sequence[ObjectInfo], nxt: Watermark, base_version: str | None
    ) -> list[dict[str, Any]]:
        """Commit (unless peeking) and return the batch as XCom-safe dicts."""
        if self.commit:
            watch = build_watch(self.watch_config(), self.aws_conn_id)
            watch.commit(
                dataclasses.replace(nxt, committed_by=self.identity(context)), expected_version=base_version
            )
            self.log.info("Committed watermark of %s after %s object(s)", nxt.location, len(batch))
        return [o.to_dict() for o in batch]

    def _poke_once(self, context: Any) -> list[dict[str, Any]] | None:
        watch = build_watch(self.watch_config(), self.aws_conn_id)
        watermark, version = watch.load()
        if self.commit and watermark.committed_by == self.identity(context) and watermark.last_batch:
            self.log.info(
                "An earlier try of this task committed batch %s; returning it", watermark.last_batch_id
            )
            return [o.to_dict() for o in watermark.last_batch]
        batch = watch.poll(watermark)
        self.log.info("Listed %s: %s new object(s)", watch.config.location, len(batch.objects))
        if not batch:
            return None
        return self._finish(context, batch.objects, batch.watermark, version)

    # -- Airflow entry points ------------------------------------------------------------------

    def poke(self, context: Any) -> bool | PokeReturnValue:
        result = self._poke_once(context)
        return PokeReturnValue(is_done=result is not None, xcom_value=result)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        result = self._poke_once(context)
        if result is not None:
            return result
        config = self.watch_config()
        self.defer(
            trigger=NewDataSensorTrigger(
                location=config.location,
                pattern=config.pattern,
                poll_interval=self.poke_interval,
                state_uri=config.state_uri,
                aws_conn_id=self.aws_conn_id,
                settle_seconds=config.settle_seconds,
                max_objects_per_event=config.max_objects,
                lookback_seconds=config.lookback_seconds,
                consumer=config.consumer,
                with_sha256=config.with_sha256,
                allowed_roots=self.allowed_roots,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if not event or event.get("status") != "success" or "batch" not in event:
            raise WatermarkError(f"NewDataSensor {self.task_id} got an unexpected trigger event: {event!r}")
        payload = event["batch"]
        objects = [ObjectInfo.from_dict(o) for o in payload["details"]]
        nxt = Watermark.from_dict(payload["next_watermark"], source=f"the trigger event of {self.task_id}")
        return self._finish(context, objects, nxt, event.get("base_version"))
