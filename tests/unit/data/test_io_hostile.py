"""Hostile input tables: each is a clear final error, or is read with every row and column as the
file holds it (never renamed, re-indexed or cut by metadata or a parser quirk)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.data.io import read_table
from airflow_mlops.exceptions import DataError, is_retryable


def csv(tmp_path: Path, text: str | bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("\ufeffa,\ufeffa\n1,2\n", "U\\+FEFF"),  # a BOM'd duplicate after the file's own BOM
        ("\ufeff\ufeffa,a\n1,2\n", "U\\+FEFF"),  # two BOMs: the second stays in the name
        ("a,a\u200b\n1,2\n", "U\\+200B"),  # zero-width space
        ("a,a\u2060\n1,2\n", "U\\+2060"),  # word joiner
        ("a\tb,c\n1,2\n", "U\\+0009"),
        ('"a\nb",c\n1,2\n', "U\\+000A"),
        ("caf\u00e9,cafe\u0301\n1,2\n", "Unicode form"),  # NFC / NFD
        ("\ufb01le,file\n1,2\n", "Unicode form"),  # ligature fi (NFKC)
        ("a,b\n1,\x002\n", "NUL byte"),  # pandas would cut the field at the NUL
        ("a,b\x00\n1,2\n", "NUL byte"),
        ("a,b\n1;2\n", "line 2 has 1 field"),  # mixed delimiters
        ("a;b\n1,2\n", "line 2 has 2 field"),
        ("", "empty"),
        ("\n\n", "empty"),
        ("a,b\n", "no rows"),
        ("a,b\n\n\n", "no rows"),
        ("a,b\n1,2\n\x0c\n3,4\n", "3 were read"),  # a form feed line pandas reads as a row
    ],
)
def test_hostile_csv_is_a_clear_final_error(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        read_table(csv(tmp_path, text))
    assert not is_retryable(info.value)
    assert "t.csv" in str(info.value)


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ('a,b\n"x\ny",2\n3,4\n', [["x\ny", 2], ["3", 4]]),  # a quoted newline is one field
        ("a,b\r1,2\r3,4\r", [[1, 2], [3, 4]]),
        ("\ufeffa,b\r\n1,2\r\n", [[1, 2]]),  # one BOM is the file's, not the name's
        ("a,b\n\n1,2\n\n3,4\n", [[1, 2], [3, 4]]),  # blank lines are not rows
    ],
)
def test_awkward_but_valid_csv_is_read_whole(tmp_path: Path, text: str, rows: list[list[object]]) -> None:
    df = read_table(csv(tmp_path, text))
    assert list(df.columns) == ["a", "b"]
    assert df.values.tolist() == rows


def pandas_metadata(columns: list[dict[str, object]], index: list[object]) -> bytes:
    return json.dumps(
        {"index_columns": index, "column_indexes": [], "columns": columns, "pandas_version": "2.2.0"}
    ).encode()


def column(name: str, field: str, numpy_type: str = "int64") -> dict[str, object]:
    return {
        "name": name,
        "field_name": field,
        "pandas_type": "int64",
        "numpy_type": numpy_type,
        "metadata": None,
    }


def test_pandas_metadata_cannot_turn_a_column_into_the_index(tmp_path: Path) -> None:
    table = pa.table({"age": [1, 2], "y": [0, 1]})
    meta = pandas_metadata([column("age", "age"), column("y", "y")], ["age"])
    pq.write_table(table.replace_schema_metadata({b"pandas": meta}), tmp_path / "t.parquet")
    df = read_table(tmp_path / "t.parquet")
    assert list(df.columns) == ["age", "y"] and df["age"].tolist() == [1, 2]


def test_pandas_metadata_cannot_rename_or_retype_columns(tmp_path: Path) -> None:
    table = pa.table({"x": [1, 2], "age": [5, 6]})
    meta = pandas_metadata([column("age", "x"), column("y", "age", "period[D]")], [])
    pq.write_table(table.replace_schema_metadata({b"pandas": meta}), tmp_path / "t.parquet")
    df = read_table(tmp_path / "t.parquet")
    assert list(df.columns) == ["x", "age"]
    assert df["age"].tolist() == [5, 6] and str(df["age"].dtype) == "int64"


def test_the_index_pandas_stored_is_still_left_out(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"a": [1, 2, 3]}, index=[7, 8, 9]).to_parquet(tmp_path / "t.parquet")
    df = read_table(tmp_path / "t.parquet")
    assert list(df.columns) == ["a"] and df["a"].tolist() == [1, 2, 3]
    pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 6], name="id")).to_parquet(tmp_path / "n.parquet")
    # A named index is a column of the file like any other (pandas metadata is not applied).
    assert sorted(read_table(tmp_path / "n.parquet").columns) == ["a", "id"]


def test_row_groups_with_no_rows_are_counted_not_lost(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2, 3]})
    with pq.ParquetWriter(tmp_path / "t.parquet", table.schema) as writer:
        writer.write_table(table)
        writer.write_table(table.slice(0, 0))
        writer.write_table(table)
    assert read_table(tmp_path / "t.parquet")["a"].tolist() == [1, 2, 3, 1, 2, 3]
    pq.write_table(table.slice(0, 0), tmp_path / "e.parquet")
    with pytest.raises(DataError, match="no rows"):
        read_table(tmp_path / "e.parquet")


class _Uuid(pa.ExtensionType):
    def __init__(self) -> None:
        super().__init__(pa.binary(16), "test.hostile.uuid")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> _Uuid:
        return cls()


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]), "duplicated"),
        (pa.table([pa.array([1]), pa.array([2])], names=["a", "\ufeffa"]), "U\\+FEFF"),
        (pa.table({"a": pa.array([[1]])}), "nested"),
        (pa.table({"a": pa.array([[("k", 1)]], type=pa.map_(pa.string(), pa.int64()))}), "nested"),
        (pa.table({"a": pa.array([{"x": 1}])}), "nested"),
        (pa.table({"a": pa.array([b"x"]).dictionary_encode()}), "raw bytes"),
        (pa.table({"a": pa.array([1], pa.decimal128(5, 2))}), "decimals"),
    ],
)
def test_hostile_parquet_is_a_clear_final_error(tmp_path: Path, table: pa.Table, match: str) -> None:
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(DataError, match=match) as info:
        read_table(tmp_path / "t.parquet")
    assert not is_retryable(info.value)


def test_extension_types_are_refused(tmp_path: Path) -> None:
    try:
        pa.register_extension_type(_Uuid())
    except pa.ArrowKeyError:
        pass
    storage = pa.array([b"0" * 16], pa.binary(16))
    pq.write_table(pa.table({"a": pa.ExtensionArray.from_storage(_Uuid(), storage)}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="cannot use"):
        read_table(tmp_path / "t.parquet")


def test_a_partitioned_dataset_folder_is_named_as_such(tmp_path: Path) -> None:
    pq.write_to_dataset(
        pa.table({"a": [1, 2], "k": ["x", "y"]}), tmp_path / "d.parquet", partition_cols=["k"]
    )
    with pytest.raises(DataError, match="partitioned dataset"):
        read_table(tmp_path / "d.parquet")
