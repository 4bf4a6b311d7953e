"""count_table_rows: the rows of a batch without loading it -- a local file, and an S3 object
read as the retrain gate reads it (a parquet object's footer only; a CSV object downloaded)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.data.io import count_table_rows
from airflow_mlops.exceptions import DataError


def parquet_bytes(rows: int) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"amount": range(rows), "country": ["de"] * rows}).to_parquet(buffer, row_group_size=1000)
    return buffer.getvalue()


class Ranges:
    """An S3 client that records the byte ranges read."""

    def __init__(self, client: Any) -> None:
        self.client, self.ranges, self.downloads = client, [], []

    def head_object(self, **kw: Any) -> Any:
        return self.client.head_object(**kw)

    def get_object(self, **kw: Any) -> Any:
        self.ranges.append(kw.get("Range"))
        return self.client.get_object(**kw)

    def download_file(self, *args: Any) -> None:
        self.downloads.append(args[1])
        self.client.download_file(*args)


def test_local_tables_are_counted(tmp_path: Path) -> None:
    (tmp_path / "b.parquet").write_bytes(parquet_bytes(2500))
    (tmp_path / "b.csv").write_text("amount,country\n" + "1,de\n" * 7 + "\n")
    assert count_table_rows(str(tmp_path / "b.parquet")) == 2500
    assert count_table_rows(str(tmp_path / "b.csv")) == 7


def test_an_s3_parquet_object_is_counted_from_its_footer(s3: Any) -> None:
    body = parquet_bytes(12_345)
    s3.put_object(Bucket="lake", Key="in/b1.parquet", Body=body)
    spy = Ranges(s3)
    assert count_table_rows("s3://lake/in/b1.parquet", s3_client=spy) == 12_345
    # two ranged reads of the end, far less than the object
    assert len(spy.ranges) == 2 and all(r and r.startswith("bytes=") for r in spy.ranges)
    read = sum(int(r.split("-")[1]) - int(r[len("bytes=") :].split("-")[0]) + 1 for r in spy.ranges)
    assert read < len(body) / 4 and not spy.downloads


def test_an_s3_csv_object_is_downloaded_counted_and_removed(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="lake", Key="in/b2.csv", Body=b"amount,country\n" + b"3,fr\n" * 40)
    spy = Ranges(s3)
    assert count_table_rows("s3://lake/in/b2.csv", s3_client=spy, scratch=tmp_path) == 40
    assert len(spy.downloads) == 1 and not list(tmp_path.iterdir())  # the copy is gone


@pytest.mark.parametrize(
    ("key", "body", "words"),
    [
        ("in/tiny.parquet", b"PAR1", "is not a parquet file (4 bytes)"),
        ("in/fake.parquet", b"not a parquet file at all, just text", "no parquet footer"),
        ("in/bad.csv", b"a,b\n1,2,3\n", "line 2 has 3 field(s)"),
    ],
)
def test_what_cannot_be_counted_is_a_data_error(s3: Any, key: str, body: bytes, words: str) -> None:
    s3.put_object(Bucket="lake", Key=key, Body=body)
    with pytest.raises(DataError, match=re.escape(words)):
        count_table_rows(f"s3://lake/{key}", s3_client=s3)


def test_a_missing_object_says_so(s3: Any) -> None:
    with pytest.raises(DataError, match="does not exist"):
        count_table_rows("s3://lake/in/none.parquet", s3_client=s3)
    with pytest.raises(DataError, match="does not exist"):
        count_table_rows("s3://lake/in/none.csv", s3_client=s3)
