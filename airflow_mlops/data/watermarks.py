"""New-data watermarks: what a watch has consumed (:class:`Watermark`), and where it is stored
(:class:`WatermarkStore`: a local folder, written under a lock, or an S3 prefix, written with a
conditional put), so a concurrent writer is detected (:class:`WatermarkConflictError`), never
silently overwritten. See :mod:`airflow_mlops.data.arrivals` for how a watermark decides what is new.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from airflow_mlops.artifacts import LazyS3Client, VersionConflict, VersionedDocument
from airflow_mlops.data.listing import ObjectInfo, normalize_location, ns_to_iso, watch_id
from airflow_mlops.exceptions import DataError, WatermarkConflictError, WatermarkError

WATERMARK_FORMAT = "airflow-mlops/new-data-watermark"
WATERMARK_VERSION = 1


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
            "mtime": ns_to_iso(self.mtime_ns) if self.mtime_ns is not None else None,
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
            "mtime": ns_to_iso(self.mtime_ns) if self.mtime_ns is not None else None,
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


# --- storing watermarks ---------------------------------------------------------------------


class WatermarkStore(LazyS3Client):
    """Persists one watermark document per watch id, in a local folder or under an S3 prefix.

    ``load`` returns the watermark and a version token (sha256 of the local file, or the S3
    ETag; ``None`` when nothing is stored yet). ``save`` is a compare-and-swap on that token
    (:class:`airflow_mlops.artifacts.VersionedDocument`, shared with the retrain ledger).
    """

    def __init__(self, state_uri: str, *, s3_client: Any = None) -> None:
        self.state_uri = normalize_location(state_uri)
        self.is_s3 = self.state_uri.startswith("s3://")
        self._s3 = s3_client

    def uri_for(self, watch: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", watch):
            raise WatermarkError(f"watch id {watch!r} is not a sha256 hex digest")
        return f"{self.state_uri}/{watch}.json"

    def _document(self, watch: str) -> VersionedDocument:
        return VersionedDocument(self.uri_for(watch), s3_client=self.s3 if self.is_s3 else None)

    def load(self, empty: Watermark) -> tuple[Watermark, str | None]:
        """The stored watermark of ``empty.watch_id`` (or ``empty`` itself when none is stored)."""
        document = self._document(empty.watch_id)
        raw, version = document.read()
        if raw is None:
            return empty, None
        uri = document.uri
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
        document = self._document(watermark.watch_id)
        try:
            return document.write(watermark.to_json().encode("utf-8"), expected_version=expected_version)
        except VersionConflict as exc:
            raise _conflict(document.uri) from exc


def _conflict(uri: str) -> WatermarkConflictError:
    return WatermarkConflictError(
        f"new-data watermark {uri} was changed by another writer since it was read; two watchers (or a "
        "sensor and an asset watcher) share one watch -- give each its own state_uri or consumer"
    )
