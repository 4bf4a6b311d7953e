"""What is new since the watermark, and the watch that polls (``airflow_mlops/data/arrivals.py``);
the listing and the watermark stores, on a real folder and a real S3 endpoint (moto server), are
in test_listing.py and test_watermarks.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.data.arrivals import (
    Listing,
    NewDataWatch,
    WatchConfig,
    Watermark,
    list_local,
    new_objects,
    uris_from_event_extra,
)
from airflow_mlops.exceptions import DataError
from tests.unit.data.arrival_files import NS, T0, empty_wm, keys, obj, write


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
