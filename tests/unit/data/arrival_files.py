"""Files, objects and watermarks the arrivals, listing and watermark tests build."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow_mlops.data.arrivals import ObjectInfo, Watermark

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # a fixed past time, so every file is older than any listing


def write(root: Path, rel: str, mtime_ns: int = T0, body: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def keys(objects: Any) -> list[str]:
    return [o.key for o in objects]


def obj(key: str, mtime_ns: int) -> ObjectInfo:
    return ObjectInfo(uri=f"/data/{key}", key=key, size=1, mtime_ns=mtime_ns)


def empty_wm(location: str = "/data", pattern: str = "**/*") -> Watermark:
    return Watermark.empty(location, pattern)
