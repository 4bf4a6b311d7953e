"""read_source (local and S3 against a real HTTP endpoint: the ``s3`` fixture of this folder's
conftest), check_table and compare_schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.data.io import check_table, compare_schema, read_source
from airflow_mlops.exceptions import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"amount": [1.5, 2.25, 3.0], "country": ["US", "DE", "NG"], "is_fraud": [0, 1, 0]})


@pytest.mark.parametrize("name", ["in/batch.parquet", "in/batch.csv"])
def test_s3_round_trip(tmp_path: Path, s3: Any, frame: pd.DataFrame, name: str) -> None:
    local = tmp_path / Path(name).name
    frame.to_parquet(local) if name.endswith(".parquet") else frame.to_csv(local, index=False)
    s3.upload_file(str(local), "lake", name)
    got = read_source(f"s3://lake/{name}", tmp_path / "dl", s3_client=s3)
    pd.testing.assert_frame_equal(got, frame)
    assert list((tmp_path / "dl").iterdir()) == []  # no local copy left behind


def test_s3_errors_name_the_uri(tmp_path: Path, s3: Any) -> None:
    with pytest.raises(DataError, match=r"data file s3://lake/none\.parquet does not exist"):
        read_source("s3://lake/none.parquet", tmp_path, s3_client=s3)
    with pytest.raises(DataError, match=r"data file s3://no-bucket/x\.csv does not exist"):
        read_source("s3://no-bucket/x.csv", tmp_path, s3_client=s3)
    s3.put_object(Bucket="lake", Key="empty.csv", Body=b"")
    with pytest.raises(DataError, match=r"data file s3://lake/empty\.csv is empty"):
        read_source("s3://lake/empty.csv", tmp_path, s3_client=s3)
    s3.put_object(Bucket="lake", Key="bad.parquet", Body=b"not parquet")
    with pytest.raises(DataError, match=r"cannot read s3://lake/bad\.parquet as parquet"):
        read_source("s3://lake/bad.parquet", tmp_path, s3_client=s3)
    with pytest.raises(DataError, match=r"cannot tell the table format of s3://lake/t\.xlsx"):
        read_source("s3://lake/t.xlsx", tmp_path, s3_client=s3)
    with pytest.raises(DataError, match="does not name an object"):
        read_source("s3://lake/", tmp_path, fmt="csv", s3_client=s3)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_local_and_file_uri(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(tmp_path / "t.csv", index=False)
    pd.testing.assert_frame_equal(read_source(f"file://{tmp_path}/t.csv", tmp_path), frame)
    with pytest.raises(DataError, match=r"file://.*/nope\.csv does not exist"):
        read_source(f"file://{tmp_path}/nope.csv", tmp_path)


def test_check_table_names_file_and_column(frame: pd.DataFrame) -> None:
    check_table(frame, source="b.parquet", columns=["amount", "is_fraud"], target="is_fraud")
    with pytest.raises(DataError, match=r"data file b\.parquet has no target column 'label'"):
        check_table(frame, source="b.parquet", target="label")
    with pytest.raises(DataError, match=r"b\.parquet lacks column\(s\) \['tenure'\]"):
        check_table(frame, source="b.parquet", columns=["amount", "tenure"])
    nulls = frame.assign(country=None, amount=float("nan"))
    with pytest.raises(
        DataError, match=r"data file b\.parquet: column\(s\) \['amount', 'country'\] hold only nulls"
    ):
        check_table(nulls, source="b.parquet")
    check_table(nulls, source="b.parquet", columns=["is_fraud"])  # only the listed columns count


def test_compare_schema_lists_every_difference(frame: pd.DataFrame) -> None:
    compare_schema(
        frame.astype({"is_fraud": "float64"}), frame, source="b", reference_source="r"
    )  # int ~ float
    changed = frame.drop(columns=["country"]).assign(extra=1, is_fraud=["no", "yes", "no"])
    with pytest.raises(DataError) as info:
        compare_schema(changed, frame, source="s3://d/b.csv", reference_source="/ref.parquet")
    message = str(info.value)
    assert message.startswith("the schema of data file s3://d/b.csv differs from the reference /ref.parquet")
    assert "column 'country' is in the reference but not in the batch" in message
    assert "column 'extra' is in the batch but not in the reference" in message
    assert (
        "column 'is_fraud' changed type: text (object) in the batch, numeric (int64) in the reference"
        in message
    )
    assert "amount" not in message
