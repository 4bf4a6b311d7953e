"""The watermark and its stores (``airflow_mlops/data/watermarks.py``, re-exported by arrivals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.data.arrivals import (
    Listing,
    Watermark,
    WatermarkStore,
    new_objects,
)
from airflow_mlops.exceptions import WatermarkConflictError, WatermarkError
from tests.unit.data.arrival_files import NS, T0, empty_wm, obj


def test_watermark_json_round_trip_and_strict_parsing() -> None:
    listing = Listing("/data", "**/*", T0 + NS, (obj("a", T0), obj("b", T0)))
    _, wm = new_objects(listing, empty_wm(), committed_by="dag/run/task/-1")
    again = Watermark.from_json(wm.to_json())
    assert again == wm and again.last_batch == wm.last_batch and again.committed_by == "dag/run/task/-1"
    for text, match in [
        ("{not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        (json.dumps({**wm.to_dict(), "version": 99}), "version"),
        (json.dumps({k: v for k, v in wm.to_dict().items() if k != "boundary"}), "malformed"),
        (json.dumps({**wm.to_dict(), "mtime_ns": None}), "no time"),
    ]:
        with pytest.raises(WatermarkError, match=match):
            Watermark.from_json(text, source="/state/x.json")


def test_local_store_is_atomic_compare_and_swap_and_refuses_corrupt_files(tmp_path: Path) -> None:
    store = WatermarkStore(str(tmp_path / "state"))
    empty = Watermark.empty(str(tmp_path / "in"), "*.csv")
    loaded, version = store.load(empty)
    assert loaded == empty and version is None
    _, wm = new_objects(Listing(empty.location, "*.csv", T0 + NS, (obj("a.csv", T0),)), empty)
    v1 = store.save(wm, expected_version=None)
    assert store.load(empty) == (wm, v1)
    with pytest.raises(WatermarkConflictError, match="another writer"):
        store.save(wm, expected_version=None)  # someone else already wrote it
    with pytest.raises(WatermarkConflictError):
        store.save(wm, expected_version="0" * 64)
    assert store.save(wm, expected_version=v1) == v1
    assert sorted(p.name for p in (tmp_path / "state").iterdir() if not p.name.endswith(".lock")) == [
        f"{empty.watch_id}.json"
    ]  # no temporary file left behind

    path = Path(store.uri_for(empty.watch_id))
    path.write_text(path.read_text()[:40])
    with pytest.raises(WatermarkError, match="not valid JSON") as info:
        store.load(empty)
    assert str(path) in str(info.value) and "delete" in str(info.value)
    other = Watermark.empty(str(tmp_path / "elsewhere"), "*.csv")
    path.write_text(other.to_json())
    with pytest.raises(WatermarkError, match="belongs to watch"):
        store.load(empty)


def test_s3_store_uses_conditional_writes(s3: Any) -> None:
    store = WatermarkStore("s3://lake/state/", s3_client=s3)
    empty = Watermark.empty("s3://lake/in", "**/*")
    assert store.load(empty) == (empty, None)
    _, wm = new_objects(Listing(empty.location, "**/*", T0 + NS, (obj("a", T0),)), empty)
    v1 = store.save(wm, expected_version=None)
    assert store.load(empty) == (wm, v1)
    with pytest.raises(WatermarkConflictError):
        store.save(wm, expected_version=None)  # If-None-Match: * refuses to overwrite
    with pytest.raises(WatermarkConflictError):
        store.save(wm, expected_version="not-the-etag")  # If-Match refuses a stale version
    store.save(wm, expected_version=v1)
    s3.put_object(Bucket="lake", Key=f"state/{empty.watch_id}.json", Body=b"garbage")
    with pytest.raises(WatermarkError, match="not valid JSON"):
        store.load(empty)
