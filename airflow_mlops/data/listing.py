"""New-data listings: locations and patterns, the objects found and one listing's result.

A local folder is walked without following any link (:func:`list_local`); an S3 prefix is listed
page by page (:func:`list_s3`). Wildcards never match a segment that starts with ``.`` or ``_``,
and temporary names (:data:`TEMP_SUFFIXES`) are skipped unless the pattern names them; see
:mod:`airflow_mlops.data.arrivals` for how what is listed becomes new data.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_mlops.digests import sha256_stream
from airflow_mlops.exceptions import DataError

TEMP_SUFFIXES = (".part", ".tmp", ".temp", ".partial", ".inprogress", ".crdownload")
NS_PER_SECOND = 1_000_000_000
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


def ns_to_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS_PER_SECOND, tz=UTC).isoformat()


def datetime_to_ns(value: datetime) -> int:
    """Exact integer nanoseconds of a datetime (naive = UTC), without float rounding."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return calendar.timegm(value.timetuple()) * NS_PER_SECOND + value.microsecond * 1000


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
        return ns_to_iso(self.mtime_ns)

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
            "started": ns_to_iso(self.started_ns),
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
