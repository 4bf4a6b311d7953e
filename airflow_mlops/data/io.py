"""Reading and writing tabular data files (parquet or CSV).

Every failure raises :class:`~airflow_mlops.exceptions.DataError` naming the path, so a task log
says which file is missing, empty or unreadable. Writes are atomic: the table is written to a
temporary file beside the target and moved into place with :func:`os.replace`, so a reader never
sees half a file and a retried task simply overwrites the previous attempt.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

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


def read_table(path: str | os.PathLike[str], fmt: str | None = None) -> pd.DataFrame:
    """Read a parquet or CSV file into a DataFrame.

    :param path: the file to read.
    :param fmt: ``"parquet"`` or ``"csv"``; default: from the file extension.
    :raises DataError: the file is missing, unreadable, of an unknown format, or has no rows.
    """
    import pandas as pd

    fmt = format_from_path(path, fmt)
    p = Path(path)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "does not exist"
        raise DataError(f"data file {p} {what}: check data.source / data.reference and the data interval")
    try:
        df = pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {p} is empty (no columns, no rows)") from None
    except Exception as exc:
        raise DataError(f"cannot read {p} as {fmt}: {type(exc).__name__}: {exc}") from exc
    if df.empty:
        raise DataError(f"data file {p} has no rows (columns: {list(df.columns)})")
    log.info("Read %s rows x %s columns from %s (%s)", len(df), len(df.columns), p, fmt)
    return df


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
