"""Tables pandas would read wrongly fail clearly and finally: columns it would rename or could not
hold, and rows it would fill, shift or lose."""

from __future__ import annotations

import decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.data.io import read_source, read_table
from airflow_mlops.exceptions import DataError, is_retryable


def csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        read_table(path)
    assert not is_retryable(info.value)
    return info.value


def test_a_duplicated_csv_header_names_the_columns(tmp_path: Path) -> None:
    err = refused(csv(tmp_path, "a,b,a\n1,2,3\n"), r"columns \['a', 'a'\] are duplicated")
    assert "t.csv" in str(err)


@pytest.mark.parametrize(
    ("header", "names"),
    [
        ("age,Age", repr(["age", "Age"])),
        ("age,age ", repr(["age", "age "])),
        ("age, age", repr(["age", " age"])),
        ("caf\u00e9,cafe\u0301", repr(["caf\u00e9", "cafe\u0301"])),  # one name in two Unicode forms
    ],
)
def test_near_duplicate_headers_are_refused(tmp_path: Path, header: str, names: str) -> None:
    err = refused(csv(tmp_path, f"{header}\n1,2\n"), "differ only in case, whitespace or Unicode form")
    assert names in str(err)


def test_a_header_without_a_name_is_refused(tmp_path: Path) -> None:
    refused(csv(tmp_path, "a,,c\n1,2,3\n"), "column 2 has no name")
    refused(csv(tmp_path, "a, ,c\n1,2,3\n"), "column 2 has no name")


def test_short_and_long_rows_are_refused_with_their_line(tmp_path: Path) -> None:
    refused(csv(tmp_path, "a,b,c\n1,2,3\n4,5\n"), r"line 3 has 2 field\(s\), the header has 3.*fill")
    refused(csv(tmp_path, "a,b\n1,2,3\n4,5,6\n"), r"line 2 has 3 field\(s\).*shift")


def test_csv_rows_are_all_kept(tmp_path: Path) -> None:
    # blank lines are not rows (as for pandas); quoted newlines and commas stay in one row
    df = read_table(csv(tmp_path, 'a,b\n1,"x,\ny"\n\n2,z\n   \n3,w\n'))
    assert df["a"].tolist() == [1, 2, 3] and df["b"].tolist()[0] == "x,\ny"
    # a UTF-8 byte-order mark is not part of the first name
    assert list(read_table(csv(tmp_path, "\ufeffa,b\n1,2\n", "bom.csv")).columns) == ["a", "b"]


def test_a_csv_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("name\ncaf\u00e9\n".encode("latin-1"))
    refused(path, "not UTF-8")


def parquet(tmp_path: Path, table: pa.Table, name: str = "t.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("column", "label"),
    [
        (pa.array([[1, 2], [3]]), "list<"),
        (pa.array([[1, 2], [3]], type=pa.large_list(pa.int64())), "large_list<"),
        (pa.array([[1, 2], [3, 4]], type=pa.list_(pa.int64(), 2)), "fixed_size_list<"),
        (pa.array([{"u": 1}, {"u": 2}]), "struct<"),
        (pa.array([[("k", 1)], [("j", 2)]], type=pa.map_(pa.string(), pa.int64())), "map<"),
        (pa.array([b"\x00", b"\x01"]), "binary"),
        (pa.array([decimal.Decimal("1.10"), decimal.Decimal("2.20")]), "decimal128"),
        (pa.array([1, 2], type=pa.duration("s")), "duration"),
    ],
)
def test_parquet_columns_pandas_cannot_hold_name_the_column_and_type(
    tmp_path: Path, column: pa.Array, label: str
) -> None:
    table = pa.table({"ok": pa.array([1.0, 2.0]), "bad": column})
    err = refused(parquet(tmp_path, table), "column")
    assert "'bad'" in str(err) and label in str(err) and "'ok'" not in str(err)


def test_flat_parquet_types_are_read(tmp_path: Path) -> None:
    table = pa.table(
        {
            "i": pa.array([1, 2]),
            "f": pa.array([0.5, None]),
            "b": pa.array([True, False]),
            "s": pa.array(["x", "y"]),
            "c": pa.array(["x", "y"]).dictionary_encode(),
            "t": pa.array([1, 2], type=pa.timestamp("ms", tz="UTC")),
            "d": pa.array([1, 2], type=pa.date32()),
        }
    )
    df = read_table(parquet(tmp_path, table))
    assert list(df.columns) == ["i", "f", "b", "s", "c", "t", "d"] and len(df) == 2


def test_duplicate_parquet_names_are_refused(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    refused(parquet(tmp_path, table), r"columns \['a', 'a'\] are duplicated")
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["Label", "label"])
    refused(parquet(tmp_path, table, "case.parquet"), "differ only in case")


def test_a_pandas_index_stored_in_parquet_is_not_a_column(tmp_path: Path) -> None:
    path = tmp_path / "indexed.parquet"
    pd.DataFrame({"a": [1, 2]}, index=pd.Index([10, 11], name="x")).to_parquet(path)
    assert read_table(path)["a"].tolist() == [1, 2]


def test_read_source_applies_the_same_checks(tmp_path: Path) -> None:
    path = csv(tmp_path, "a,a\n1,2\n")
    with pytest.raises(DataError, match="duplicated"):
        read_source(f"file://{path}", tmp_path)
