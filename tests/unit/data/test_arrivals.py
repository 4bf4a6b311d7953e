"""New-data listing and watermark logic, on a real folder and a real S3 endpoint (moto server)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.data.arrivals import (
    Listing,
    NewDataWatch,
    ObjectInfo,
    WatchConfig,
    Watermark,
    WatermarkStore,
    compile_pattern,
    list_local,
    list_s3,
    new_objects,
    normalize_location,
    uris_from_event_extra,
    watch_id,
)
from airflow_mlops.exceptions import DataError, WatermarkConflictError, WatermarkError

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


# --- listing --------------------------------------------------------------------------------


def test_local_listing_matches_the_pattern_and_skips_partial_files(tmp_path: Path) -> None:
    for rel in [
        "2026-01-01/batch.parquet",
        "2026-01-02/batch.parquet",
        "2026-01-02/other.parquet",
        "2026-01-03/batch.parquet.part",
        "2026-01-03/.batch.parquet",
        "_temporary/batch.parquet",
        ".staging/batch.parquet",
        "deep/er/batch.parquet",
        "2026-01-01/_SUCCESS",
    ]:
        write(tmp_path, rel)
    (tmp_path / "2026-01-04").mkdir()
    (tmp_path / "2026-01-04" / "batch.parquet").symlink_to(tmp_path / "2026-01-01" / "batch.parquet")

    listing = list_local(str(tmp_path), "*/batch.parquet")
    assert sorted(keys(listing.objects)) == ["2026-01-01/batch.parquet", "2026-01-02/batch.parquet"]
    assert listing.objects[0].uri == str(tmp_path / listing.objects[0].key)

    deep = list_local(str(tmp_path), "**/*.parquet")
    assert sorted(keys(deep.objects)) == [
        "2026-01-01/batch.parquet",
        "2026-01-02/batch.parquet",
        "2026-01-02/other.parquet",
        "deep/er/batch.parquet",
    ]
    everything = list_local(str(tmp_path), "**/*")
    assert not any(
        k.endswith(".part") or "/_" in k or k.startswith(("_", ".")) for k in keys(everything.objects)
    )
    # A marker named literally by the pattern is asked for, so it is not skipped.
    assert keys(list_local(str(tmp_path), "*/_SUCCESS").objects) == ["2026-01-01/_SUCCESS"]
    assert keys(list_local(str(tmp_path), "*/*.part").objects) == ["2026-01-03/batch.parquet.part"]


def test_missing_folder_lists_empty_and_bad_locations_are_clear_errors(tmp_path: Path) -> None:
    assert list_local(str(tmp_path / "not-yet"), "**/*").objects == ()
    write(tmp_path, "file.csv")
    with pytest.raises(DataError, match="is a file"):
        list_local(str(tmp_path / "file.csv"), "**/*")
    with pytest.raises(DataError, match="relative path"):
        normalize_location("data/incoming")
    with pytest.raises(DataError, match="unsupported scheme"):
        normalize_location("gs://bucket/x")
    for bad in ["", "/abs/*.csv", "a//b", "../x", "a**/b"]:
        with pytest.raises(DataError):
            compile_pattern(bad)
    assert normalize_location("s3://b/p/") == "s3://b/p"
    assert normalize_location(f"file://{tmp_path}/") == str(tmp_path)
    assert (
        watch_id(f"{tmp_path}/", "*.csv")
        == watch_id(str(tmp_path), "*.csv")
        != watch_id(str(tmp_path), "*.csv", "p")
    )


# --- what is new ----------------------------------------------------------------------------


def test_equal_mtimes_are_neither_lost_nor_repeated() -> None:
    first = Listing("/data", "**/*", T0 + 10 * NS, (obj("a", T0), obj("b", T0)))
    batch, wm = new_objects(first, empty_wm())
    assert keys(batch) == ["a", "b"]
    assert wm.mtime_ns == T0 and dict(wm.boundary) == {"a": T0, "b": T0}
    # "c" landed after the first listing with the same (same-second) timestamp.
    second = Listing("/data", "**/*", T0 + 20 * NS, (obj("a", T0), obj("b", T0), obj("c", T0)))
    batch2, wm2 = new_objects(second, wm)
    assert keys(batch2) == ["c"]
    batch3, wm3 = new_objects(second, wm2)
    assert batch3 == [] and wm3 == wm2
    # A later object moves the boundary; the old boundary keys are dropped.
    third = Listing("/data", "**/*", T0 + 30 * NS, (*second.objects, obj("d", T0 + NS)))
    batch4, wm4 = new_objects(third, wm3)
    assert keys(batch4) == ["d"] and wm4.boundary == (("d", T0 + NS),)
    assert wm4.batches == 3 and wm4.objects == 4


def test_objects_written_during_the_listing_wait_for_the_next_poll() -> None:
    started = T0 + 100 * NS
    # "early" was written into a folder the listing had already passed, "late" into one it had
    # not: the listing only saw "late". Both are newer than the cut, so neither is taken yet.
    during = Listing("/data", "**/*", started, (obj("old", T0), obj("late", started + 2)))
    batch, wm = new_objects(during, empty_wm())
    assert keys(batch) == ["old"]
    after = Listing(
        "/data", "**/*", started + NS, (obj("old", T0), obj("early", started + 1), obj("late", started + 2))
    )
    batch2, _ = new_objects(after, wm)
    assert keys(batch2) == ["early", "late"]


def test_settle_leaves_young_objects_for_later() -> None:
    started = T0 + 100 * NS
    listing = Listing("/data", "**/*", started, (obj("old", T0), obj("young", started - 5 * NS)))
    batch, wm = new_objects(listing, empty_wm(), settle_seconds=10)
    assert keys(batch) == ["old"]
    later = Listing("/data", "**/*", started + 6 * NS, listing.objects)
    assert keys(new_objects(later, wm, settle_seconds=10)[0]) == ["young"]
    with pytest.raises(DataError):
        new_objects(listing, empty_wm(), settle_seconds=-1)


def test_max_objects_cuts_inside_an_equal_mtime_group_without_losing_any() -> None:
    listing = Listing("/data", "**/*", T0 + NS, tuple(obj(k, T0) for k in "edcba"))
    wm, seen = empty_wm(), []
    for _ in range(4):
        batch, wm = new_objects(listing, wm, max_objects=2)
        seen.append(keys(batch))
    assert seen == [["a", "b"], ["c", "d"], ["e"], []]


def test_lookback_catches_objects_that_appear_below_the_watermark() -> None:
    # An S3 multipart upload is stamped with its start time but visible only when complete.
    first = Listing("/data", "**/*", T0 + 100 * NS, (obj("small", T0 + 50 * NS),))
    late = Listing("/data", "**/*", T0 + 200 * NS, (obj("small", T0 + 50 * NS), obj("big", T0 + 20 * NS)))
    _, wm = new_objects(first, empty_wm())
    assert new_objects(late, wm)[0] == []  # without lookback it is below the boundary
    _, wm_lb = new_objects(first, empty_wm(), lookback_seconds=60)
    batch, wm_lb2 = new_objects(late, wm_lb, lookback_seconds=60)
    assert keys(batch) == ["big"]
    assert new_objects(late, wm_lb2, lookback_seconds=60)[0] == []


def test_a_rewritten_file_is_new_again(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", T0)
    batch, wm = new_objects(list_local(str(tmp_path), "*.csv"), Watermark.empty(str(tmp_path), "*.csv"))
    assert keys(batch) == ["a.csv"]
    write(tmp_path, "a.csv", T0 + NS, b"changed")
    batch2, _ = new_objects(list_local(str(tmp_path), "*.csv"), wm)
    assert keys(batch2) == ["a.csv"] and batch2[0].size == len(b"changed")


def test_uris_from_event_extra_reads_watcher_and_task_events() -> None:
    assert uris_from_event_extra({"from_trigger": True, "payload": {"data": ["s3://b/k"]}}) == ["s3://b/k"]
    assert uris_from_event_extra({"data": ["/x"]}) == ["/x"]
    for bad in [None, {}, {"payload": {"objects": 3}}, {"data": [1]}]:
        with pytest.raises(DataError):
            uris_from_event_extra(bad)


# --- the watermark and its store ------------------------------------------------------------


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


def test_watch_polls_and_hashes_local_files(tmp_path: Path) -> None:
    write(tmp_path / "in", "d1/batch.csv", body=b"a,b\n1,2\n")
    watch = NewDataWatch(
        WatchConfig(
            location=str(tmp_path / "in"),
            pattern="*/batch.csv",
            state_uri=str(tmp_path / "s"),
            with_sha256=True,
        )
    )
    wm, version = watch.load()
    batch = watch.poll(wm)
    assert len(batch.objects) == 1
    import hashlib

    assert batch.objects[0].sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    payload = batch.payload()
    assert payload["data"] == payload["objects"] == [str(tmp_path / "in" / "d1" / "batch.csv")]
    assert payload["count"] == 1 and payload["batch_id"] == batch.batch_id
    watch.commit(batch.watermark, expected_version=version)
    assert not watch.poll(watch.load()[0])
    with pytest.raises(DataError, match="local files only"):
        WatchConfig(location="s3://b/p", pattern="*", state_uri=str(tmp_path), with_sha256=True)
    with pytest.raises(DataError, match="max_objects"):
        WatchConfig(location="/x", pattern="*", state_uri=str(tmp_path), max_objects=0)


# --- S3 against a real HTTP endpoint --------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="lake")
        yield client
    finally:
        server.stop()


def test_s3_listing_and_same_second_objects(s3: Any) -> None:
    for key in [
        "in/2026-01-01/batch.parquet",
        "in/2026-01-02/batch.parquet",
        "in/_tmp/batch.parquet",
        "other/x",
    ]:
        s3.put_object(Bucket="lake", Key=key, Body=b"1")
    s3.put_object(Bucket="lake", Key="in/2026-01-03/batch.parquet.tmp", Body=b"1")
    time.sleep(0.01)
    listing = list_s3(s3, "s3://lake/in/", "*/batch.parquet")
    assert sorted(keys(listing.objects)) == ["2026-01-01/batch.parquet", "2026-01-02/batch.parquet"]
    assert listing.objects[0].uri.startswith("s3://lake/in/2026-01-0") and listing.objects[0].etag
    batch, wm = new_objects(listing, Watermark.empty("s3://lake/in", "*/batch.parquet"))
    assert len(batch) == 2
    s3.put_object(Bucket="lake", Key="in/2026-01-04/batch.parquet", Body=b"1")
    time.sleep(0.01)
    batch2, wm2 = new_objects(list_s3(s3, "s3://lake/in", "*/batch.parquet"), wm)
    assert keys(batch2) == ["2026-01-04/batch.parquet"]
    assert new_objects(list_s3(s3, "s3://lake/in", "*/batch.parquet"), wm2)[0] == []
    narrowed = list_s3(s3, "s3://lake", "in/2026-01-0[12]/*.parquet")
    assert sorted(keys(narrowed.objects)) == ["in/2026-01-01/batch.parquet", "in/2026-01-02/batch.parquet"]


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
