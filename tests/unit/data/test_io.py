"""read_table / write_table: round trips, atomic writes and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.data.io import read_table, write_table
from airflow_mlops.exceptions import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [1.5, 2.25, 3.0],
            "country": ["US", "DE", "NG"],
            "hour": [0, 12, 23],
            "is_fraud": [0, 1, 0],
        }
    )


@pytest.mark.parametrize("name", ["t.parquet", "t.csv", "sub/dir/t.parquet"])
def test_round_trip(tmp_path, frame, name):
    path = tmp_path / name
    write_table(frame, path)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, frame)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_explicit_format_overrides_extension(tmp_path, frame):
    path = tmp_path / "t.csv"
    write_table(frame, path)
    path.rename(tmp_path / "t.data")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.data", fmt="csv"), frame)


def test_write_is_idempotent_and_drops_attrs_and_index(tmp_path, frame):
    frame = frame.set_index(pd.Index([10, 11, 12]))
    frame.attrs["secret"] = "must not be written"
    write_table(frame, tmp_path / "a.parquet")
    write_table(frame, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert b"must not be written" not in (tmp_path / "a.parquet").read_bytes()
    assert list(read_table(tmp_path / "a.parquet").index) == [0, 1, 2]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, frame):
    path = tmp_path / "t.parquet"
    write_table(frame, path)
    before = path.read_bytes()
    bad = pd.DataFrame({"x": [object(), object()]})  # pyarrow cannot convert arbitrary objects
    with pytest.raises(DataError, match=r"cannot write .*t\.parquet"):
        write_table(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nope\.parquet does not exist"):
        read_table(tmp_path / "nope.parquet")


def test_directory_is_not_a_file(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path / "d.parquet")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.csv", "", "is empty"),
        ("header_only.csv", "a,b\n", "has no rows"),
        ("broken.parquet", "this is not parquet", r"cannot read .*broken\.parquet as parquet"),
    ],
)
def test_unreadable_or_empty(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_table(path)


def test_unknown_format(tmp_path, frame):
    with pytest.raises(DataError, match=r"cannot tell the table format of .*t\.xlsx"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(DataError, match="unknown table format 'json'"):
        read_table(tmp_path / "t.parquet", fmt="json")
    with pytest.raises(DataError, match="cannot tell the table format"):
        write_table(frame, tmp_path / "t.txt")
