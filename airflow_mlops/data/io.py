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

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    path: str | os.PathLike[str], fmt: str | None = None, *, name: str | None = None
) -> pd.DataFrame:
    """Read a parquet or CSV file into a DataFrame.

    :param path: the file to read.
    :param fmt: ``"parquet"`` or ``"csv"``; default: from the file extension.
    :param name: how messages name the file (e.g. the ``s3://`` URI a local copy came from);
        default: ``path``.
    :raises DataError: the file is missing, unreadable, of an unknown format, or has no rows.
    """
    import pandas as pd

    p = Path(path)
    shown = name or str(p)
    fmt = format_from_path(path, fmt)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "does not exist"
        raise DataError(f"data file {shown} {what}: check data.source / data.reference and the data interval")
    try:
        df = pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {shown} is empty (no columns, no rows)") from None
    except Exception as exc:
        raise DataError(f"cannot read {shown} as {fmt}: {type(exc).__name__}: {exc}") from exc
    if len(df.columns) == 0:
        raise DataError(f"data file {shown} has no columns")
    if df.empty:
        raise DataError(f"data file {shown} has no rows (columns: {list(df.columns)})")
    log.info("Read %s rows x %s columns from %s (%s)", len(df), len(df.columns), shown, fmt)
    return df


def read_source(
    uri: str, dest_dir: str | os.PathLike[str], fmt: str | None = None, *, s3_client: Any = None
) -> pd.DataFrame:
    """Read a parquet or CSV table from a local path, a ``file://`` URI or an ``s3://`` URI.

    An S3 object is downloaded into ``dest_dir`` first (with ``s3_client``, else a boto3 client
    for ``AWS_ENDPOINT_URL`` and the standard credential chain); a local file is read in place.
    Every message names ``uri``, never the local copy. The format comes from ``fmt`` or from the
    URI's extension, and is checked before anything is downloaded.

    :raises DataError: the object or file does not exist, is empty, unreadable, has no rows or an
        unknown format. Other S3 failures (network, permissions) propagate as they are.
    """
    fmt = format_from_path(uri, fmt)
    if not uri.startswith("s3://"):
        local = uri[len("file://") :] if uri.startswith("file://") else uri
        return read_table(Path(local).expanduser(), fmt, name=uri)
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise DataError(f"data location {uri} does not name an object: use s3://bucket/path/file.{fmt}")
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    target = Path(dest_dir) / key.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3_client.download_file(bucket, key, str(target))
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in _S3_MISSING:
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


# S3's answers for "no such object / bucket" (download_file reports a HEAD 404 as "404").
_S3_MISSING = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


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
