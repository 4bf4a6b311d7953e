"""Listing a watched folder or bucket (``airflow_mlops/data/listing.py``, re-exported by arrivals)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.data.arrivals import (
    Watermark,
    compile_pattern,
    list_local,
    list_s3,
    new_objects,
    normalize_location,
    watch_id,
)
from airflow_mlops.exceptions import DataError
from tests.unit.data.arrival_files import keys, write


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
