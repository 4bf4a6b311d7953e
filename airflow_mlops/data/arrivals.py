"""New-data arrivals: list a folder or an S3 prefix, and say what is new since a watermark.

Pure domain logic (no Airflow). The asset-watcher trigger and the sensor in
:mod:`airflow_mlops.triggers.new_data` / :mod:`airflow_mlops.sensors.new_data` are thin adapters
over :class:`NewDataWatch`.

How "new" is decided
--------------------
Every object has a modification time in integer nanoseconds (local ``st_mtime_ns``; S3
``LastModified``, whole seconds on real S3) and a key (its path relative to the watched
location). A :class:`Watermark` holds the highest consumed time ``mtime_ns`` and the keys (with
their times) consumed at that boundary. An object is new when its time is above the boundary, or
equal to it (or within ``lookback_seconds`` below it) and its ``(key, mtime)`` is not recorded.
So objects that share a timestamp (same-second S3 uploads, coarse file-system clocks) are never
lost when some of them land after a listing, and never repeated.

Listings are cut at ``started - settle_seconds`` (the clock read *before* listing): an object
written while the listing runs, or younger than the settle delay (a file still being copied, whose
mtime keeps moving), is left for the next poll. That also closes the race where a listing sees a
late-written object in one folder but misses an earlier-written one in a folder it had already
walked: both are newer than the cut. ``settle_seconds`` should exceed the clock skew between this
machine and the storage (S3 stamps objects with the server's clock). ``lookback_seconds`` covers
stores that stamp an object before it becomes visible (an S3 multipart upload carries the time it
was *started*): objects up to that far below the boundary are still compared key by key.

Temporary and partial objects are skipped: a path segment that starts with ``.`` or ``_``
(``.staging/``, ``_temporary/``, ``_SUCCESS``) is never matched by a wildcard, and names ending in
``.part``, ``.tmp``, ``.temp``, ``.partial``, ``.inprogress`` or ``.crdownload`` are skipped --
unless the pattern names them literally (``*/_SUCCESS`` watches success markers).

Watermarks are stored as one JSON document per watch (:class:`WatermarkStore`), in a local
folder (written to a temporary file, fsynced and renamed, under a lock) or an S3 prefix
(conditional ``PutObject`` with ``If-Match`` on the ETag read, or ``If-None-Match: *`` for the
first write), so a concurrent writer is detected (:class:`WatermarkConflictError`), never
silently overwritten. A watch's id is the sha256 of its normalized location, pattern and consumer.

The listing (locations, patterns, :class:`ObjectInfo`, :class:`Listing`) is in
:mod:`airflow_mlops.data.listing`, the watermark and its store in
:mod:`airflow_mlops.data.watermarks`; their public names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.data.listing import (
    NS_PER_SECOND,
    TEMP_SUFFIXES,
    Listing,
    ObjectInfo,
    compile_pattern,
    datetime_to_ns,
    list_local,
    list_s3,
    normalize_location,
    sha256_of,
    watch_id,
)
from airflow_mlops.data.watermarks import (
    WATERMARK_FORMAT,
    WATERMARK_VERSION,
    Watermark,
    WatermarkStore,
    batch_id,
)
from airflow_mlops.exceptions import DataError

__all__ = [
    "TEMP_SUFFIXES",
    "WATERMARK_FORMAT",
    "WATERMARK_VERSION",
    "Batch",
    "Listing",
    "NewDataWatch",
    "ObjectInfo",
    "WatchConfig",
    "Watermark",
    "WatermarkStore",
    "batch_id",
    "compile_pattern",
    "datetime_to_ns",
    "event_payload",
    "list_local",
    "list_s3",
    "new_objects",
    "normalize_location",
    "sha256_of",
    "uris_from_event_extra",
    "watch_id",
]


# --- what is new ----------------------------------------------------------------------------


def new_objects(
    listing: Listing,
    watermark: Watermark,
    *,
    settle_seconds: float = 0.0,
    lookback_seconds: float = 0.0,
    max_objects: int | None = None,
    committed_by: str | None = None,
) -> tuple[list[ObjectInfo], Watermark]:
    """The objects of ``listing`` that are new since ``watermark``, and the watermark after them.

    Objects modified after ``listing.started_ns - settle_seconds`` are left for a later call.
    The batch is ordered by ``(mtime, key)`` and cut at ``max_objects``; the rest stays new.
    """
    if settle_seconds < 0 or lookback_seconds < 0:
        raise DataError(
            f"settle_seconds ({settle_seconds}) and lookback_seconds ({lookback_seconds}) must be >= 0"
        )
    if max_objects is not None and max_objects < 1:
        raise DataError(f"max_objects must be at least 1 (or None for no limit), got {max_objects}")
    lookback_ns = int(lookback_seconds * NS_PER_SECOND)
    cutoff = listing.started_ns - int(settle_seconds * NS_PER_SECOND)
    fresh = sorted(
        (o for o in listing.objects if o.mtime_ns <= cutoff and watermark.is_new(o, lookback_ns)),
        key=lambda o: (o.mtime_ns, o.key),
    )
    if max_objects is not None:
        fresh = fresh[:max_objects]
    return fresh, watermark.advance(fresh, lookback_ns=lookback_ns, committed_by=committed_by)


def event_payload(extra: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The body of an asset event's extra: a watcher's trigger payload is stored under
    ``extra["payload"]`` (with ``from_trigger``); an event a task emitted carries it directly."""
    if not extra:
        return {}
    payload = extra.get("payload")
    return payload if isinstance(payload, Mapping) else extra


def uris_from_event_extra(extra: Mapping[str, Any] | None) -> list[str]:
    """The new data URIs carried by a new-data asset event.

    Airflow stores a watcher's trigger payload under ``extra["payload"]``; an event emitted by a
    task (or by hand) may carry ``extra["data"]`` directly. Both are read; anything else is an error.
    """
    if not extra:
        raise DataError("the asset event carries no extra; expected a new-data event with a 'data' list")
    data = event_payload(extra).get("data")
    if not isinstance(data, list) or not all(isinstance(u, str) for u in data):
        raise DataError(
            f"the asset event's extra has no 'data' list of URIs (got keys {sorted(extra)}); expected the "
            "payload of NewDataTrigger or NewDataSensor"
        )
    return list(data)


# --- a watch: configuration + listing + store -----------------------------------------------


@dataclass(frozen=True)
class Batch:
    """New objects found by one poll, the watermark it was computed from, and the one after it."""

    objects: tuple[ObjectInfo, ...]
    base: Watermark
    watermark: Watermark

    @property
    def batch_id(self) -> str:
        return batch_id(self.objects)

    def __bool__(self) -> bool:
        return bool(self.objects)

    def payload(self) -> dict[str, Any]:
        """The event payload. ``data`` is the key downstream DAGs read (a list of URIs)."""
        uris = [o.uri for o in self.objects]
        return {
            "location": self.watermark.location,
            "pattern": self.watermark.pattern,
            "batch_id": self.batch_id,
            "objects": uris,
            "data": list(uris),
            "count": len(uris),
            "bytes": sum(o.size for o in self.objects),
            "watermark": self.watermark.summary(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.payload(),
            "details": [o.to_dict() for o in self.objects],
            "next_watermark": self.watermark.to_dict(),
        }


@dataclass(frozen=True)
class WatchConfig:
    """What to watch and how; validated on creation, so bad settings fail where they are written."""

    location: str
    pattern: str
    state_uri: str
    settle_seconds: float = 0.0
    lookback_seconds: float = 0.0
    max_objects: int | None = None
    consumer: str = ""
    with_sha256: bool = False
    #: roots the watched location must lie under (symbolic links resolved); None: only
    #: ``AIRFLOW_MLOPS_ALLOWED_ROOTS``, where it is set (see :mod:`airflow_mlops.allowed_roots`).
    allowed_roots: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        normalize_location(self.location)
        self.check_location()
        compile_pattern(self.pattern)
        normalize_location(self.state_uri)
        if self.settle_seconds < 0 or self.lookback_seconds < 0:
            raise DataError(
                f"settle_seconds ({self.settle_seconds}) and lookback_seconds ({self.lookback_seconds}) "
                "must be >= 0"
            )
        if self.max_objects is not None and self.max_objects < 1:
            raise DataError(f"max_objects_per_event must be at least 1, got {self.max_objects}")
        if self.with_sha256 and self.location.startswith("s3://"):
            raise DataError("with_sha256 hashes local files only; S3 objects carry their ETag instead")

    def check_location(self) -> str:
        """The watched location, checked against the allowed roots (raises
        :class:`~airflow_mlops.exceptions.OutsideAllowedRootsError`)."""
        from airflow_mlops.allowed_roots import check_runtime

        return check_runtime(self.location, self.allowed_roots, what="new-data location")

    @property
    def watch_id(self) -> str:
        return watch_id(self.location, self.pattern, self.consumer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "pattern": self.pattern,
            "state_uri": self.state_uri,
            "settle_seconds": self.settle_seconds,
            "lookback_seconds": self.lookback_seconds,
            "max_objects": self.max_objects,
            "consumer": self.consumer,
            "with_sha256": self.with_sha256,
            "allowed_roots": list(self.allowed_roots) if self.allowed_roots is not None else None,
            "watch_id": self.watch_id,
        }


class NewDataWatch:
    """Lists a location, finds what is new since the stored watermark, and commits watermarks."""

    def __init__(self, config: WatchConfig, *, s3_client: Any = None) -> None:
        self.config = config
        self._s3 = s3_client
        self.store = WatermarkStore(config.state_uri, s3_client=s3_client)

    @property
    def is_s3(self) -> bool:
        return normalize_location(self.config.location).startswith("s3://")

    def empty(self) -> Watermark:
        return Watermark.empty(self.config.location, self.config.pattern, self.config.consumer)

    def load(self) -> tuple[Watermark, str | None]:
        return self.store.load(self.empty())

    def list(self) -> Listing:
        # Checked again on every listing (a folder can be swapped for a link), and the folder
        # walked is the one the check resolved, opened without following links.
        root = self.config.check_location()
        if self.is_s3:
            return list_s3(
                self.store.s3 if self._s3 is None else self._s3, self.config.location, self.config.pattern
            )
        return list_local(self.config.location, self.config.pattern, root=root)

    def poll(self, watermark: Watermark, *, committed_by: str | None = None) -> Batch:
        """List once and return what is new since ``watermark`` (possibly empty)."""
        objects, nxt = new_objects(
            self.list(),
            watermark,
            settle_seconds=self.config.settle_seconds,
            lookback_seconds=self.config.lookback_seconds,
            max_objects=self.config.max_objects,
            committed_by=committed_by,
        )
        if self.config.with_sha256 and objects:
            objects = [_with_sha256(o, self.config.allowed_roots) for o in objects]
            nxt = watermark.advance(
                objects,
                lookback_ns=int(self.config.lookback_seconds * NS_PER_SECOND),
                committed_by=committed_by,
            )
        return Batch(tuple(objects), watermark, nxt)

    def commit(self, watermark: Watermark, *, expected_version: str | None) -> str:
        return self.store.save(watermark, expected_version=expected_version)


def _with_sha256(obj: ObjectInfo, allowed_roots: Sequence[str] | None = None) -> ObjectInfo:
    from airflow_mlops.allowed_roots import check_runtime

    path = check_runtime(obj.uri, allowed_roots, what="new-data file")  # it is about to be read
    return ObjectInfo(obj.uri, obj.key, obj.size, obj.mtime_ns, obj.etag, sha256_of(path))
