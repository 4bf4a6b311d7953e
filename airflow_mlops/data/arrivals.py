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
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_mlops.digests import sha256_file, sha256_stream
from airflow_mlops.exceptions import DataError, WatermarkConflictError, WatermarkError

WATERMARK_FORMAT = "airflow-mlops/new-data-watermark"
WATERMARK_VERSION = 1
TEMP_SUFFIXES = (".part", ".tmp", ".temp", ".partial", ".inprogress", ".crdownload")
_NS = 1_000_000_000
_HIDDEN_START = "(?![._])"  # a wildcard never matches a leading "." or "_" of a segment


# --- locations and patterns -----------------------------------------------------------------


def normalize_location(location: str) -> str:
    """``s3://bucket/prefix`` without a trailing slash, or an absolute local path.

    Relative local paths are refused: the triggerer and the workers run in other directories, so
    a relative path would silently watch a different folder on each.
    """
    if not isinstance(location, str) or not location.strip():
        raise DataError("new-data location is empty; give a local folder (absolute) or s3://bucket/prefix")
    loc = location.strip()
    if loc.startswith("s3://"):
        bucket, _, prefix = loc[len("s3://") :].partition("/")
        if not bucket:
            raise DataError(f"new-data location {location!r} names no bucket; use s3://bucket/prefix")
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if "://" in loc and not loc.startswith("file://"):
        raise DataError(
            f"new-data location {location!r} has an unsupported scheme; use a local folder or s3://bucket/prefix"
        )
    if loc.startswith("file://"):
        loc = loc[len("file://") :]
    path = os.path.expanduser(loc)
    if not os.path.isabs(path):
        raise DataError(
            f"new-data location {location!r} is a relative path; the triggerer and workers run in other "
            "directories, so give an absolute path"
        )
    return os.path.normpath(path)


def _translate_segment(segment: str, pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        guard = _HIDDEN_START if i == 0 else ""
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1
            out.append(guard + "[^/]*")
        elif c == "?":
            out.append(guard + "[^/]")
        elif c == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                raise DataError(f"new-data pattern {pattern!r} has an unclosed '[' in segment {segment!r}")
            body = segment[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(guard + ("[^/" + body + "]" if negate else "[" + body + "]"))
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a glob over relative keys: ``*``/``?``/``[..]`` within a segment, ``**`` for any depth."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise DataError("new-data pattern is empty; use e.g. '**/*.parquet' or '*/batch.parquet'")
    segments = pattern.strip().split("/")
    if pattern.startswith("/") or any(s == "" for s in segments):
        raise DataError(
            f"new-data pattern {pattern!r} has an empty path segment; patterns are relative to the "
            "location, e.g. '**/*.parquet'"
        )
    if any(s in (".", "..") for s in segments):
        raise DataError(f"new-data pattern {pattern!r} may not contain '.' or '..' segments")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            any_dirs = f"(?:{_HIDDEN_START}[^/]+/)*"
            parts.append(any_dirs + (f"{_HIDDEN_START}[^/]+" if last else ""))
        elif "**" in segment:
            raise DataError(
                f"new-data pattern {pattern!r}: '**' must be a whole path segment (as in 'a/**/b.parquet')"
            )
        else:
            parts.append(_translate_segment(segment, pattern) + ("" if last else "/"))
    return re.compile("".join(parts))


def _temp_suffix_allowed(pattern: str) -> tuple[str, ...]:
    last = pattern.rsplit("/", 1)[-1].lower()
    return tuple(s for s in TEMP_SUFFIXES if last.endswith(s))


def watch_id(location: str, pattern: str, consumer: str = "") -> str:
    """The stable id of a watch: sha256 of its normalized location, pattern and consumer."""
    text = f"{normalize_location(location)}\n{pattern.strip()}\n{consumer}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- objects and listings -------------------------------------------------------------------


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, tz=UTC).isoformat()


def datetime_to_ns(value: datetime) -> int:
    """Exact integer nanoseconds of a datetime (naive = UTC), without float rounding."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return calendar.timegm(value.timetuple()) * _NS + value.microsecond * 1000


@dataclass(frozen=True)
class ObjectInfo:
    """One object found under a watched location."""

    uri: str  # absolute local path or s3://bucket/key
    key: str  # path relative to the watched location (posix)
    size: int
    mtime_ns: int
    etag: str | None = None
    sha256: str | None = None

    @property
    def mtime(self) -> str:
        return _iso(self.mtime_ns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "key": self.key,
            "size": self.size,
            "mtime": self.mtime,
            "mtime_ns": self.mtime_ns,
            "etag": self.etag,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectInfo:
        try:
            return cls(
                uri=str(data["uri"]),
                key=str(data["key"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                etag=data.get("etag"),
                sha256=data.get("sha256"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a new-data object record: {data!r} ({exc})") from exc


@dataclass(frozen=True)
class Listing:
    """What one listing saw, and the clock reading taken just before it started."""

    location: str
    pattern: str
    started_ns: int
    objects: tuple[ObjectInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "pattern": self.pattern,
            "started": _iso(self.started_ns),
            "objects": [o.to_dict() for o in self.objects],
        }


class _Matcher:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern.strip()
        self.regex = compile_pattern(self.pattern)
        self.temp_allowed = _temp_suffix_allowed(self.pattern)
        segments = self.pattern.split("/")
        # Hidden/underscore folders can only match literal segments that start that way.
        self.literal_hidden = {s for s in segments if s[:1] in (".", "_")}
        self.max_depth = None if "**" in segments else len(segments)

    def matches(self, key: str) -> bool:
        if not self.regex.fullmatch(key):
            return False
        name = key.rsplit("/", 1)[-1].lower()
        return not any(name.endswith(s) and s not in self.temp_allowed for s in TEMP_SUFFIXES)

    def may_descend(self, name: str, depth: int) -> bool:
        if self.max_depth is not None and depth >= self.max_depth:
            return False
        return name[:1] not in (".", "_") or name in self.literal_hidden

    def literal_prefix(self) -> str:
        """Leading literal folders of the pattern (to narrow an S3 listing)."""
        prefix: list[str] = []
        for segment in self.pattern.split("/")[:-1]:
            if any(ch in segment for ch in "*?["):
                break
            prefix.append(segment)
        return "/".join(prefix)


def _walk_local(root: str, matcher: _Matcher) -> Iterator[ObjectInfo]:
    """The regular files below the resolved folder ``root`` that ``matcher`` matches.

    No symbolic link is followed, at any depth and at any moment: each folder is opened as the
    exact path the walk expects (:func:`~airflow_mlops.allowed_roots.open_resolved_dir`), so a
    folder swapped for a link while the walk runs is not entered; links to files are skipped.
    """
    from airflow_mlops.allowed_roots import OutsideAllowedRootsError, open_resolved_dir

    stack: list[tuple[str, str, int]] = [(root, "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        try:
            fd = open_resolved_dir(folder, what="new-data folder")
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed (or replaced by a file) while we were listing
        except OutsideAllowedRootsError:
            if not rel:
                raise  # the watched folder itself: checked a moment ago, now a link
            continue  # a folder below it swapped for a link: links are never followed
        try:
            yield from _scan(fd, folder, rel, depth, matcher, stack)
        finally:
            os.close(fd)


def _scan(
    fd: int, folder: str, rel: str, depth: int, matcher: _Matcher, stack: list[tuple[str, str, int]]
) -> Iterator[ObjectInfo]:
    """One folder of :func:`_walk_local`, read through its open descriptor ``fd``."""
    with os.scandir(fd) as found:
        entries = list(found)
    for entry in entries:
        key = f"{rel}{entry.name}"
        path = f"{folder.rstrip('/')}/{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                if matcher.may_descend(entry.name, depth + 1):
                    stack.append((path, key + "/", depth + 1))
                continue
            # Regular files only: a symlink could point outside the watched folder.
            if not entry.is_file(follow_symlinks=False) or not matcher.matches(key):
                continue
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield ObjectInfo(uri=path, key=key, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def list_local(location: str, pattern: str, *, root: str | None = None) -> Listing:
    """List the regular files under a local folder whose relative path matches ``pattern``.

    A folder that does not exist yet lists as empty (data may not have arrived); a location that
    is a file, or that cannot be read, is an error. ``root``: the folder to walk, as an
    allowed-roots check resolved ``location`` (default: ``location`` resolved here, ``file://``
    URIs decoded as that check decodes them); the objects' URIs lie below it.
    """
    from airflow_mlops.allowed_roots import resolve_local

    location_text = normalize_location(location)
    if location_text.startswith("s3://"):
        raise DataError(f"list_local got an S3 location {location!r}; use list_s3")
    walk_root = root if root is not None else resolve_local(location.strip())
    matcher = _Matcher(pattern)
    started = time.time_ns()
    if os.path.lexists(walk_root) and not os.path.isdir(walk_root):
        raise DataError(f"new-data location {location_text} is a file, not a folder; watch its parent folder")
    objects = tuple(_walk_local(walk_root, matcher)) if os.path.isdir(walk_root) else ()
    return Listing(location_text, matcher.pattern, started, objects)


def list_s3(client: Any, location: str, pattern: str) -> Listing:
    """List the objects under ``s3://bucket/prefix`` whose key relative to the prefix matches."""
    loc = normalize_location(location)
    if not loc.startswith("s3://"):
        raise DataError(f"list_s3 got a local location {location!r}; use list_local")
    bucket, _, prefix = loc[len("s3://") :].partition("/")
    matcher = _Matcher(pattern)
    base = f"{prefix}/" if prefix else ""
    narrowed = matcher.literal_prefix()
    started = time.time_ns()
    objects: list[ObjectInfo] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=base + (f"{narrowed}/" if narrowed else "")):
        for item in page.get("Contents", ()):
            full_key: str = item["Key"]
            key = full_key[len(base) :]
            if not key or key.endswith("/") or not matcher.matches(key):
                continue
            objects.append(
                ObjectInfo(
                    uri=f"s3://{bucket}/{full_key}",
                    key=key,
                    size=int(item.get("Size", 0)),
                    mtime_ns=datetime_to_ns(item["LastModified"]),
                    etag=str(item.get("ETag", "")).strip('"') or None,
                )
            )
    return Listing(loc, matcher.pattern, started, tuple(objects))


def sha256_of(path: str) -> str:
    """The sha256 of the file at the resolved ``path``, opened without following a link."""
    from airflow_mlops.allowed_roots import open_resolved

    with open_resolved(path, what="new-data file") as fh:
        return sha256_stream(fh)


# --- the watermark --------------------------------------------------------------------------


def batch_id(objects: Iterable[ObjectInfo]) -> str:
    """A deterministic id of a batch (sha256 of its uris, times and sizes), for de-duplication."""
    text = "".join(f"{o.uri}\t{o.mtime_ns}\t{o.size}\n" for o in sorted(objects, key=lambda o: o.uri))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Watermark:
    """What a watch has consumed: the boundary time and the keys consumed at (or near) it."""

    watch_id: str
    location: str
    pattern: str
    consumer: str = ""
    mtime_ns: int | None = None  # None: nothing consumed yet
    boundary: tuple[tuple[str, int], ...] = ()  # sorted (key, mtime_ns) pairs at/near mtime_ns
    lookback_ns: int = 0
    batches: int = 0
    objects: int = 0
    last_batch_id: str | None = None
    committed_by: str | None = None
    last_batch: tuple[ObjectInfo, ...] = field(default=())

    @classmethod
    def empty(cls, location: str, pattern: str, consumer: str = "") -> Watermark:
        return cls(
            watch_id=watch_id(location, pattern, consumer),
            location=normalize_location(location),
            pattern=pattern.strip(),
            consumer=consumer,
        )

    @cached_property
    def _boundary_map(self) -> dict[str, int]:
        return dict(self.boundary)

    def is_new(self, obj: ObjectInfo, lookback_ns: int = 0) -> bool:
        """Whether ``obj`` has not been consumed under this watermark."""
        if self.mtime_ns is None or obj.mtime_ns > self.mtime_ns:
            return True
        # Only keys this watermark recorded can be compared below the boundary.
        window = min(lookback_ns, self.lookback_ns)
        if obj.mtime_ns < self.mtime_ns - window:
            return False
        return self._boundary_map.get(obj.key) != obj.mtime_ns

    def advance(
        self, batch: Sequence[ObjectInfo], *, lookback_ns: int = 0, committed_by: str | None = None
    ) -> Watermark:
        """The watermark after consuming ``batch`` (an empty batch returns ``self``)."""
        if not batch:
            return self
        high = max([o.mtime_ns for o in batch] + ([self.mtime_ns] if self.mtime_ns is not None else []))
        merged = dict(self.boundary)
        for obj in batch:
            merged[obj.key] = obj.mtime_ns
        boundary = tuple(sorted((k, m) for k, m in merged.items() if m >= high - lookback_ns))
        return Watermark(
            watch_id=self.watch_id,
            location=self.location,
            pattern=self.pattern,
            consumer=self.consumer,
            mtime_ns=high,
            boundary=boundary,
            lookback_ns=lookback_ns,
            batches=self.batches + 1,
            objects=self.objects + len(batch),
            last_batch_id=batch_id(batch),
            committed_by=committed_by,
            last_batch=tuple(batch),
        )

    def summary(self) -> dict[str, Any]:
        """A compact view for event payloads and logs."""
        return {
            "watch_id": self.watch_id,
            "mtime": _iso(self.mtime_ns) if self.mtime_ns is not None else None,
            "mtime_ns": self.mtime_ns,
            "boundary_keys": len(self.boundary),
            "batches": self.batches,
            "objects": self.objects,
            "last_batch_id": self.last_batch_id,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": WATERMARK_FORMAT,
            "version": WATERMARK_VERSION,
            "watch_id": self.watch_id,
            "location": self.location,
            "pattern": self.pattern,
            "consumer": self.consumer,
            "mtime_ns": self.mtime_ns,
            "mtime": _iso(self.mtime_ns) if self.mtime_ns is not None else None,
            "boundary": [[k, m] for k, m in self.boundary],
            "lookback_ns": self.lookback_ns,
            "batches": self.batches,
            "objects": self.objects,
            "last_batch_id": self.last_batch_id,
            "committed_by": self.committed_by,
            "last_batch": [o.to_dict() for o in self.last_batch],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<watermark>") -> Watermark:
        """Parse a stored watermark strictly: anything unexpected is an error, never a reset."""
        fix = (
            f"fix or delete {source}; deleting it makes the watch report every object under its "
            "location again"
        )
        if not isinstance(data, dict):
            raise WatermarkError(f"new-data watermark {source} is not a JSON object; {fix}")
        if data.get("format") != WATERMARK_FORMAT or data.get("version") != WATERMARK_VERSION:
            raise WatermarkError(
                f"new-data watermark {source} has format {data.get('format')!r} version "
                f"{data.get('version')!r}, expected {WATERMARK_FORMAT!r} version {WATERMARK_VERSION}; {fix}"
            )
        try:
            mtime_ns = data["mtime_ns"]
            boundary = tuple((str(k), int(m)) for k, m in data["boundary"])
            wm = cls(
                watch_id=str(data["watch_id"]),
                location=str(data["location"]),
                pattern=str(data["pattern"]),
                consumer=str(data.get("consumer", "")),
                mtime_ns=None if mtime_ns is None else int(mtime_ns),
                boundary=tuple(sorted(boundary)),
                lookback_ns=int(data.get("lookback_ns", 0)),
                batches=int(data["batches"]),
                objects=int(data["objects"]),
                last_batch_id=data.get("last_batch_id"),
                committed_by=data.get("committed_by"),
                last_batch=tuple(ObjectInfo.from_dict(o) for o in data.get("last_batch", ())),
            )
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise WatermarkError(f"new-data watermark {source} is malformed ({exc!r}); {fix}") from exc
        if wm.mtime_ns is None and wm.boundary:
            raise WatermarkError(f"new-data watermark {source} has boundary keys but no time; {fix}")
        return wm

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<watermark>") -> Watermark:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WatermarkError(
                f"new-data watermark {source} is not valid JSON ({exc}); fix or delete it -- deleting "
                "it makes the watch report every object under its location again"
            ) from exc
        return cls.from_dict(data, source=source)


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
    lookback_ns = int(lookback_seconds * _NS)
    cutoff = listing.started_ns - int(settle_seconds * _NS)
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


# --- storing watermarks ---------------------------------------------------------------------


class WatermarkStore:
    """Persists one watermark document per watch id, in a local folder or under an S3 prefix.

    ``load`` returns the watermark and a version token (sha256 of the local file, or the S3
    ETag; ``None`` when nothing is stored yet). ``save`` is a compare-and-swap on that token.
    """

    def __init__(self, state_uri: str, *, s3_client: Any = None) -> None:
        self.state_uri = normalize_location(state_uri)
        self.is_s3 = self.state_uri.startswith("s3://")
        self._s3 = s3_client

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        return self._s3

    def uri_for(self, watch: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", watch):
            raise WatermarkError(f"watch id {watch!r} is not a sha256 hex digest")
        return f"{self.state_uri}/{watch}.json"

    def _s3_key(self, watch: str) -> tuple[str, str]:
        bucket, _, key = self.uri_for(watch)[len("s3://") :].partition("/")
        return bucket, key

    def load(self, empty: Watermark) -> tuple[Watermark, str | None]:
        """The stored watermark of ``empty.watch_id`` (or ``empty`` itself when none is stored)."""
        uri = self.uri_for(empty.watch_id)
        if self.is_s3:
            bucket, key = self._s3_key(empty.watch_id)
            try:
                response = self.s3.get_object(Bucket=bucket, Key=key)
            except Exception as exc:
                if _s3_error_code(exc) in ("NoSuchKey", "404"):
                    return empty, None
                raise
            raw = response["Body"].read()
            version: str | None = str(response["ETag"]).strip('"')
        else:
            try:
                raw = Path(uri).read_bytes()
            except FileNotFoundError:
                return empty, None
            version = hashlib.sha256(raw).hexdigest()
        stored = Watermark.from_json(raw, source=uri)
        if stored.watch_id != empty.watch_id:
            raise WatermarkError(
                f"new-data watermark {uri} belongs to watch {stored.watch_id} ({stored.location}, "
                f"{stored.pattern!r}), not {empty.watch_id} ({empty.location}, {empty.pattern!r}); the file "
                "was copied or renamed by hand -- restore the right file or delete this one"
            )
        return stored, version

    def save(self, watermark: Watermark, *, expected_version: str | None) -> str:
        """Write ``watermark`` if the stored version is still ``expected_version``; the new version."""
        body = watermark.to_json().encode("utf-8")
        uri = self.uri_for(watermark.watch_id)
        if self.is_s3:
            bucket, key = self._s3_key(watermark.watch_id)
            condition = {"IfMatch": expected_version} if expected_version else {"IfNoneMatch": "*"}
            try:
                response = self.s3.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition
                )
            except Exception as exc:
                if _s3_error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    raise _conflict(uri) from exc
                raise
            return str(response["ETag"]).strip('"')
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_name(f".{path.name}.lock")):
            try:
                current: str | None = sha256_file(path)
            except FileNotFoundError:
                current = None
            if current != expected_version:
                raise _conflict(uri)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            _fsync_dir(path.parent)
        return hashlib.sha256(body).hexdigest()


def _conflict(uri: str) -> WatermarkConflictError:
    return WatermarkConflictError(
        f"new-data watermark {uri} was changed by another writer since it was read; two watchers (or a "
        "sensor and an asset watcher) share one watch -- give each its own state_uri or consumer"
    )


def _s3_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code")) or None
    return None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    import fcntl

    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
                objects, lookback_ns=int(self.config.lookback_seconds * _NS), committed_by=committed_by
            )
        return Batch(tuple(objects), watermark, nxt)

    def commit(self, watermark: Watermark, *, expected_version: str | None) -> str:
        return self.store.save(watermark, expected_version=expected_version)


def _with_sha256(obj: ObjectInfo, allowed_roots: Sequence[str] | None = None) -> ObjectInfo:
    from airflow_mlops.allowed_roots import check_runtime

    path = check_runtime(obj.uri, allowed_roots, what="new-data file")  # it is about to be read
    return ObjectInfo(obj.uri, obj.key, obj.size, obj.mtime_ns, obj.etag, sha256_of(path))
