"""Reading and writing tabular data files (parquet or CSV), and checking their shape.

Tables are read from a local path or an ``s3://`` URI (:func:`read_source`). Every failure raises
:class:`~airflow_mlops.exceptions.DataError` naming the file (its URI, never a local copy), so a
task log says which file is missing, empty or unreadable; :func:`check_table` and
:func:`compare_schema` name the file and each column that lacks, holds only nulls, or differs
from the reference. Writes are atomic: the table is written to a
temporary file beside the target and moved into place with :func:`os.replace`, so a reader never
sees half a file and a retried task simply overwrites the previous attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from airflow_mlops.artifacts import S3_ABSENT_CODES, s3_error_code
from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SUPPORTED_FORMATS: tuple[str, ...] = ("parquet", "csv")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def format_from_path(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The table format of ``path``: ``fmt`` when given, else derived from the file extension.

    :raises DataError: the format is unknown or cannot be derived from the extension.
    """
    if fmt is not None:
        if fmt not in SUPPORTED_FORMATS:
            raise DataError(
                f"unknown table format {fmt!r} for {os.fspath(path)}: use one of {', '.join(SUPPORTED_FORMATS)}"
            )
        return fmt
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise DataError(
            f"cannot tell the table format of {os.fspath(path)} from its extension {suffix or '(none)'!r}: "
            f"name it *.parquet or *.csv, or set data.format to one of {', '.join(SUPPORTED_FORMATS)}"
        ) from None


def read_table(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    name: str | None = None,
    checked: bool = False,
) -> pd.DataFrame:
    """Read a parquet or CSV file into a DataFrame, exactly as the file holds it.

    The file is opened once, following no symbolic link (see
    :func:`airflow_mlops.allowed_roots.open_resolved`), and every check and pandas read the same
    open file: what was checked is what is read.

    :param path: the file to read.
    :param fmt: ``"parquet"`` or ``"csv"``; default: from the file extension.
    :param name: how messages name the file (e.g. the ``s3://`` URI a local copy came from);
        default: ``path``.
    :param checked: ``path`` is the resolved path an allowed-roots check returned: it is opened
        as it is, and a link found on it since the check is refused
        (:class:`~airflow_mlops.exceptions.OutsideAllowedRootsError`). Otherwise (a scratch
        copy) it is resolved here first.
    :raises DataError: the file is missing, unreadable, of an unknown format, has no rows, or has
        columns pandas would silently change (see :func:`check_csv_layout` and
        :func:`check_parquet_schema`). Every such error is final: no retry reads it differently.
    """
    from airflow_mlops.allowed_roots import open_resolved

    shown = name or os.fspath(path)
    fmt = format_from_path(path, fmt)
    target = os.fspath(path) if checked else os.path.realpath(path)
    try:
        fh = open_resolved(target, what=f"data file {shown}")
    except FileNotFoundError:
        raise DataError(
            f"data file {shown} does not exist: check data.source / data.reference and the data interval"
        ) from None
    except IsADirectoryError:
        raise DataError(
            f"data file {shown} is a directory, not a file (a partitioned dataset folder is not read): "
            "name one file in data.source / data.reference"
        ) from None
    except OSError as exc:  # a link swapped in since the check is an OutsideAllowedRootsError: not caught
        raise DataError(f"cannot open {shown}: {exc}") from None
    with fh:
        return _read_open_table(fh, fmt, shown)


def _read_open_table(fh: Any, fmt: str, shown: str) -> pd.DataFrame:
    import pandas as pd

    expected_rows = check_csv_layout(fh, shown) if fmt == "csv" else check_parquet_schema(fh, shown)
    fh.seek(0)
    try:
        # index_col=False: a row with one field too many never turns the first column into the index.
        df = _parquet_frame(fh) if fmt == "parquet" else pd.read_csv(fh, index_col=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {shown} is empty (no columns, no rows)") from None
    except Exception as exc:
        raise DataError(f"cannot read {shown} as {fmt}: {type(exc).__name__}: {exc}") from exc
    if len(df.columns) == 0:
        raise DataError(f"data file {shown} has no columns")
    if df.empty:
        raise DataError(f"data file {shown} has no rows (columns: {list(df.columns)})")
    check_column_names(list(df.columns), shown)
    if expected_rows is not None and len(df) != expected_rows:
        raise DataError(
            f"data file {shown} holds {expected_rows} row(s) but {len(df)} were read; refusing to "
            "train on a silently changed table: check the file's quoting and line endings"
        )
    log.info("Read %s rows x %s columns from %s (%s)", len(df), len(df.columns), shown, fmt)
    return df


def _parquet_frame(fh: Any) -> pd.DataFrame:
    """The parquet file's columns as they are stored: the pandas metadata a writer may add is
    not applied (it could rename columns, turn one into the index or impose another dtype), only
    pandas' own stored index (``__index_level_N__``) is left out, as pandas leaves it out."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(fh) as parquet:
        table = parquet.read(use_pandas_metadata=False)
    index = _pandas_index_columns(table.schema)
    if index:
        table = table.drop_columns([n for n in table.column_names if n in index])
    return table.to_pandas(ignore_metadata=True)


def _name_key(name: str) -> str:
    """How column names are compared for near-duplicates: invisible characters dropped,
    Unicode-normalized, trimmed, case-folded."""
    visible = "".join(c for c in name if unicodedata.category(c) not in ("Cf", "Cc"))
    return unicodedata.normalize("NFKC", visible).strip().casefold()


def _invisible(name: str) -> list[str]:
    """The control and format characters (BOM, zero-width space, NUL...) in a column name."""
    return sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in ("Cf", "Cc")})


def check_column_names(names: Sequence[Any], source: str) -> None:
    """Every column must have a name of its own, as a string.

    Refused (one message naming every offending column): a name that is not a string (a
    multi-level header), an empty or blank name (pandas would call it ``Unnamed: N``), a name
    holding an invisible character (a second byte-order mark, a zero-width space, a control
    character: ``\ufeffage`` is not ``age``), and names
    that are equal or differ only in case, surrounding whitespace, invisible characters or Unicode
    form (``a`` / ``a``,
    ``Age`` / ``age ``): pandas renames exact duplicates (``a``, ``a.1``) and keeps the others
    apart, and either way a model would be trained on a column the spec does not mean.

    :raises DataError: final; the message lists the columns and how to fix the file.
    """
    problems = []
    groups: dict[str, list[str]] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            problems.append(f"column {index + 1} has a non-text name {name!r} (a multi-level header?)")
            continue
        if not name.strip():
            problems.append(f"column {index + 1} has no name")
            continue
        hidden = _invisible(name)
        if hidden:
            problems.append(
                f"column {index + 1} {name!r} holds invisible or control characters ({', '.join(hidden)}: "
                "a byte-order mark, a zero-width space, a tab or line break) that a spec cannot name"
            )
        groups.setdefault(_name_key(name), []).append(name)
    for same in groups.values():
        if len(same) > 1:
            kind = (
                "are duplicated" if len(set(same)) == 1 else "differ only in case, whitespace or Unicode form"
            )
            problems.append(f"columns {same} {kind}")
    if problems:
        raise DataError(
            f"data file {source} has unusable column names: "
            + "; ".join(problems)
            + ". Give every column one distinct name in the file's header"
        )


def check_csv_layout(path: str | os.PathLike[str] | BinaryIO, source: str) -> int:
    """Check a CSV's header and that every row has the header's number of fields; return the
    number of data rows (blank lines are not rows, as for pandas).

    pandas would rename duplicated headers (``a``, ``a.1``), name an empty one ``Unnamed: N``,
    fill a short row with nulls, shift a long one, and cut a field at a NUL byte: each is refused
    here, naming the columns or the line.

    :param path: the file, or a binary file open on it (read from where it is; not closed).
    :raises DataError: final; the header's or the first bad row's problem, with its line number.
    """
    import io

    with contextlib.ExitStack() as stack:
        binary = cast(
            "BinaryIO",
            path if hasattr(path, "read") else stack.enter_context(open(cast("str", path), "rb")),
        )
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        stack.callback(text.detach)  # leave the caller's file open
        return _csv_rows(text, source)


def _csv_rows(fh: Any, source: str) -> int:
    import csv

    try:
        reader = csv.reader(fh)
        header: list[str] | None = None
        rows = 0
        for fields in reader:
            if any("\x00" in f for f in fields):
                raise DataError(
                    f"data file {source}: line {reader.line_num} holds a NUL byte; pandas would cut "
                    "the field there. Is it a binary file, or UTF-16 text? Write it as UTF-8 CSV"
                )
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if header is None:
                header = fields
                check_column_names(header, source)
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"data file {source}: line {reader.line_num} has {len(fields)} field(s), the header "
                    f"has {len(header)} ({header}); pandas would "
                    + ("fill the missing ones with nulls" if len(fields) < len(header) else "shift the row")
                    + ". Fix the row (quote fields that contain commas)"
                )
            rows += 1
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {source} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataError(f"cannot read {source} as csv: {exc}") from None
    if header is None:
        raise DataError(f"data file {source} is empty (no columns, no rows)")
    return rows


def _unsupported_arrow_type(arrow_type: Any) -> str | None:
    """Why a parquet column of ``arrow_type`` cannot be used, or None when it is a flat column
    pandas reads faithfully (booleans, numbers, text, dates, timestamps, categoricals of those)."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        return _unsupported_arrow_type(arrow_type.value_type)
    if t.is_nested(arrow_type):
        return "nested values (a list, struct, map or union per row)"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_fixed_size_binary(arrow_type):
        return "raw bytes"
    if t.is_decimal(arrow_type):
        return "decimals (pandas would read them as text); cast them to double"
    if t.is_time(arrow_type) or t.is_duration(arrow_type) or t.is_interval(arrow_type):
        return "times of day, durations or intervals; cast them to numbers"
    flat = (
        t.is_boolean(arrow_type)
        or t.is_integer(arrow_type)
        or t.is_floating(arrow_type)
        or t.is_string(arrow_type)
        or t.is_large_string(arrow_type)
        or getattr(t, "is_string_view", lambda _: False)(arrow_type)
        or t.is_timestamp(arrow_type)
        or t.is_date(arrow_type)
        or t.is_null(arrow_type)  # an all-null column: check_table names it
    )
    return None if flat else "a type the pipeline cannot use"


def check_parquet_schema(path: str | os.PathLike[str] | BinaryIO, source: str) -> int | None:
    """Check a parquet file's columns before pandas reads it; return its row count (footer).

    Refused, naming each column and its type: nested columns (lists, structs, maps, unions),
    raw bytes, decimals, times and durations, and any other type that is not a flat boolean,
    number, text, date or timestamp; column names as :func:`check_column_names` requires.
    The pandas metadata of the file is not applied (see :func:`read_table`).

    :param path: the file, or a binary file open on it.
    :raises DataError: final.
    """
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except Exception as exc:
        raise DataError(f"cannot read {source} as parquet: {type(exc).__name__}: {exc}") from exc
    pandas_index = _pandas_index_columns(schema)
    names = [f.name for f in schema if f.name not in pandas_index]
    check_column_names(names, source)
    bad = [
        f"{f.name!r} ({f.type}): {why}"
        for f in schema
        if (why := _unsupported_arrow_type(f.type)) is not None and f.name not in pandas_index
    ]
    if bad:
        raise DataError(
            f"data file {source} has column(s) the pipeline cannot use: "
            + "; ".join(bad)
            + ". Flatten or drop them in the extract (one scalar per cell)"
        )
    return int(metadata.num_rows)


def _pandas_index_columns(schema: Any) -> set[str]:
    """Columns pandas stored as the frame's unnamed index (``__index_level_0__``): not data
    columns. Any other column the metadata calls an index (a named one, or a data column a writer
    lists there) stays a data column."""
    import json

    raw = (schema.metadata or {}).get(b"pandas")
    if not raw:
        return set()
    try:
        index = json.loads(raw).get("index_columns") or []
    except (ValueError, AttributeError):
        return set()
    return {c for c in index if isinstance(c, str) and _PANDAS_INDEX.fullmatch(c)}


_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


def read_source(
    uri: str,
    dest_dir: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    s3_client: Any = None,
    allowed_roots: Iterable[str] | None = None,
    what: str = "data location",
) -> pd.DataFrame:
    """Read a parquet or CSV table from a local path, a ``file://`` URI or an ``s3://`` URI.

    The location is first checked against the allowed roots (``allowed_roots`` and, where it is
    set, ``AIRFLOW_MLOPS_ALLOWED_ROOTS``; see :mod:`airflow_mlops.allowed_roots`): a local one
    with ``..`` and symbolic links resolved, and the resolved file is what is read.
    An S3 object is downloaded into ``dest_dir`` first (with ``s3_client``, else a boto3 client
    for ``AWS_ENDPOINT_URL`` and the standard credential chain); a local file is read in place.
    Every message names ``uri``, never the local copy. The format comes from ``fmt`` or from the
    URI's extension, and is checked before anything is downloaded.

    :raises OutsideAllowedRootsError: the location lies outside the allowed roots (final).
    :raises DataError: the object or file does not exist, is empty, unreadable, has no rows or an
        unknown format. Other S3 failures (network, permissions) propagate as they are.
    """
    from airflow_mlops.allowed_roots import check_runtime

    fmt = format_from_path(uri, fmt)
    location = check_runtime(uri, allowed_roots, what=what)
    if not uri.startswith("s3://"):
        return read_table(location, fmt, name=uri, checked=True)
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key or key.rsplit("/", 1)[-1] in ("", ".", ".."):
        raise DataError(f"data location {uri} does not name an object: use s3://bucket/path/file.{fmt}")
    if s3_client is None:
        from airflow_mlops.artifacts import default_s3_client

        s3_client = default_s3_client()
    target = Path(dest_dir) / key.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3_client.download_file(bucket, key, str(target))
    except Exception as exc:
        code = s3_error_code(exc)
        if code in S3_ABSENT_CODES:
            target.unlink(missing_ok=True)
            raise DataError(
                f"data file {uri} does not exist (S3 answered {code}): check data.source / "
                "data.reference, the bucket and the data interval"
            ) from None
        raise
    try:
        return read_table(target, fmt, name=uri)
    finally:
        target.unlink(missing_ok=True)  # the frame is in memory; leave no copy behind


def count_table_rows(
    location: str, *, s3_client: Any = None, scratch: str | os.PathLike[str] | None = None
) -> int | None:
    """The data rows of a parquet or CSV table at an already checked ``location`` (a local path
    or an ``s3://`` URI), without loading it: a parquet file's footer (of an S3 object only its
    last bytes are read), a CSV's lines (an S3 object is downloaded into ``scratch``, a temporary
    folder by default, and removed). The columns and rows are checked as for reading
    (:func:`check_parquet_schema`, :func:`check_csv_layout`).

    :raises DataError: unknown format, a missing object, or a table that fails those checks.
    """
    fmt = format_from_path(location)
    if not location.startswith("s3://"):
        return (
            check_csv_layout(location, location) if fmt == "csv" else check_parquet_schema(location, location)
        )
    bucket, _, key = location[len("s3://") :].partition("/")
    if s3_client is None:
        from airflow_mlops.artifacts import default_s3_client

        s3_client = default_s3_client()
    try:
        if fmt == "parquet":
            return _s3_parquet_rows(s3_client, bucket, key, location)
        with tempfile.TemporaryDirectory(prefix="mlops-count-", dir=scratch) as tmp:
            target = Path(tmp) / "table.csv"
            s3_client.download_file(bucket, key, str(target))
            return check_csv_layout(target, location)
    except DataError:
        raise
    except Exception as exc:
        code = s3_error_code(exc)
        if code in S3_ABSENT_CODES:
            raise DataError(f"data file {location} does not exist (S3 answered {code})") from None
        raise


def _s3_parquet_rows(s3_client: Any, bucket: str, key: str, location: str) -> int | None:
    """A parquet object's row count from its footer: two ranged reads (the length, then the
    footer), never the data pages."""
    import struct

    import pyarrow as pa

    size = int(s3_client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    if size < 12:
        raise DataError(f"{location} is not a parquet file ({size} bytes)")

    def tail(count: int) -> bytes:
        body = s3_client.get_object(Bucket=bucket, Key=key, Range=f"bytes={size - count}-{size - 1}")["Body"]
        return bytes(body.read())

    end = tail(8)
    (footer_length,) = struct.unpack("<i", end[:4])
    if end[4:] != b"PAR1" or not 0 < footer_length <= size - 12:
        raise DataError(f"{location} is not a parquet file (no parquet footer at its end)")
    # The footer as a file of its own: magic, footer, length, magic (no data pages needed).
    footer = b"PAR1" + tail(footer_length + 8)
    return check_parquet_schema(pa.BufferReader(footer), location)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` atomically to ``path`` as parquet or CSV (chosen by the extension).

    The index is not written; ``df.attrs`` are not written either. Parent directories are
    created. The same frame always gives the same bytes, so re-running a task is idempotent.

    :raises DataError: the extension is unknown or the file cannot be written.
    """
    fmt = format_from_path(path)
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise DataError(f"cannot write {p}: {exc}") from exc
    os.close(fd)
    try:
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; data files are meant to be shared
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            plain = df.copy(deep=False)
            plain.attrs = {}  # pandas/pyarrow would store attrs in the file's metadata
            pq.write_table(pa.Table.from_pandas(plain, preserve_index=False), tmp_name)
        else:
            df.to_csv(tmp_name, index=False)
        os.replace(tmp_name, p)
    except Exception as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise DataError(f"cannot write {p} as {fmt}: {type(exc).__name__}: {exc}") from exc
    log.info("Wrote %s rows x %s columns to %s (%s)", len(df), len(df.columns), p, fmt)


# --- the shape of a table -------------------------------------------------------------------


def column_kind(dtype: Any) -> str:
    """The kind of a column's dtype, as schema checks compare it.

    ``boolean``, ``numeric`` (integers and floats: an integer column with a missing value reads
    back as float), ``datetime``, ``text`` (strings, objects, categoricals) or ``other``.
    """
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    ):
        return "text"
    return "other"


def check_table(
    df: pd.DataFrame,
    *,
    source: str,
    columns: Sequence[str] | None = None,
    target: str | None = None,
) -> None:
    """Check that ``df`` (read from ``source``) has what the pipeline needs.

    * ``target`` (the label, ``data.target``) is a column;
    * every one of ``columns`` (features and target) is a column;
    * none of ``columns`` (default: every column) is entirely null.

    :raises DataError: one message naming the file and every column at fault.
    """
    present = [str(c) for c in df.columns]
    if target is not None and target not in present:
        raise DataError(
            f"data file {source} has no target column {target!r} (data.target); its columns are {present}"
        )
    wanted = list(columns) if columns else present
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"data file {source} lacks column(s) {missing} that the spec uses (data.features, "
            f"data.target); its columns are {present}"
        )
    empty = [c for c in wanted if bool(df[c].isna().all())]
    if empty:
        raise DataError(
            f"data file {source}: column(s) {empty} hold only nulls ({len(df)} row(s)); nothing can "
            "be validated or learnt from them: fix the extract, or drop them from data.features"
        )


def compare_schema(
    batch: pd.DataFrame, reference: pd.DataFrame, *, source: str, reference_source: str
) -> None:
    """Check that ``batch`` has the reference's columns, no others, and the same kind of each.

    Kinds are compared, not exact dtypes (see :func:`column_kind`): ``int64`` against
    ``float64`` is the same numeric column, text against numbers is not.

    :raises DataError: one message naming both files and listing every column that differs.
    """
    ref_columns = [str(c) for c in reference.columns]
    batch_columns = [str(c) for c in batch.columns]
    problems = [
        f"column {c!r} is in the reference but not in the batch"
        for c in ref_columns
        if c not in batch_columns
    ]
    problems += [
        f"column {c!r} is in the batch but not in the reference"
        for c in batch_columns
        if c not in ref_columns
    ]
    for c in ref_columns:
        if c not in batch_columns:
            continue
        kind, ref_kind = column_kind(batch[c].dtype), column_kind(reference[c].dtype)
        if kind != ref_kind:
            problems.append(
                f"column {c!r} changed type: {kind} ({batch[c].dtype}) in the batch, "
                f"{ref_kind} ({reference[c].dtype}) in the reference"
            )
    if problems:
        raise DataError(
            f"the schema of data file {source} differs from the reference {reference_source}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nFix the data, or refresh data.reference when the change is intended."
        )
