"""The exact-or-refuse rule on real joblib/numpy output: every dtype and protocol joblib writes
passes, and each way a dtype state can disagree with numpy is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scan_bypass_corpus import bint, desync_region, dtype_bytes, tup, wrapper_newobj

from airflow_mlops.security.scanning import scan_model_dir


def _arrays() -> dict[str, object]:
    return {
        "dt": np.array(["2024-01-01"], dtype="M8[ns]"),
        "td": np.array([1], dtype="m8[s]"),
        "u": np.array(["abc", "d"]),
        "s": np.array([b"ab"]),
        "struct_obj": np.array([(1, "x")], dtype=[("a", "i4"), ("b", "O")]),
        "sub": np.zeros(2, dtype=("f8", (2, 3))),
        "nested": np.zeros(2, dtype=[("a", [("x", "i2"), ("y", ">f4")]), ("c", "S3")]),
        "be": np.arange(3, dtype=">i8"),
        "aligned": np.zeros(2, dtype=np.dtype([("a", "i1"), ("b", "f8")], align=True)),
        "masked": np.ma.masked_array([1, 2], [0, 1]),
        "empty": np.zeros((0, 5)),
        "scalar": np.array(3.0),
        "c": np.ones(2, np.complex64),
        "f16": np.ones(2, np.float16),
    }


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("compress", [0, 3])
def test_every_dtype_joblib_writes_passes_at_every_protocol(
    tmp_path: Path, protocol: int, compress: int
) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "arrays.joblib"
    joblib.dump(_arrays(), path, protocol=protocol, compress=compress)

    report = scan_model_dir(path)

    assert report.ok, "\n".join(f.format() for f in report.findings)
    assert set(joblib.load(path)) == set(_arrays())


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("f8", (3, "<", None, None, None, 4, -1, 0)),  # element size numpy ignores
        ("i4", (3, "<", None, None, None, 8, 4, 0)),
        ("c16", (3, "<", None, None, None, 1, -1, 0)),
        ("O8", (3, "|", None, None, None, -1, -1, 0)),  # object without the object flags
        ("i8", (3, "<", None, None, None, -1, -1, 1)),  # number with an object flag
        ("U5", (3, "<", None, None, None, 21, 4, 8)),  # not a whole number of characters
        ("S5", (3, "|", None, None, None, 5, 1, 63)),  # bytes claiming objects
        ("f8", (2, "<", None, None, None, -1, -1, 0)),  # an older state version
        ("f8", (3, "<", None, None, None, -1, -1, 0, None)),  # a 9-tuple must be version 4
    ],
)
def test_dtype_states_numpy_would_read_differently_are_refused(
    tmp_path: Path, code: str, state: tuple
) -> None:
    data = (
        b"\x80\x04" + wrapper_newobj(tup(bint(4)), dtype_bytes(code, state)) + b"\x00" + b"\xff" * 200 + b"."
    )
    (tmp_path / "m.joblib").write_bytes(data)

    report = scan_model_dir(tmp_path / "m.joblib")

    assert [f.kind for f in report.findings] == ["ambiguous_layout"], [f.format() for f in report.findings]
    assert "dtype" in report.findings[0].detail


def test_unicode_without_state_counts_four_bytes_a_character(tmp_path: Path) -> None:
    # 3 x U2 = 24 bytes for numpy; the payload after them must be found
    data = b"\x80\x04" + wrapper_newobj(tup(bint(3)), dtype_bytes("U2")) + b"\x00" + desync_region(6, 24)
    (tmp_path / "m.joblib").write_bytes(data)

    report = scan_model_dir(tmp_path / "m.joblib")

    assert "posix.system" in {f.symbol for f in report.findings} or "os.system" in {
        f.symbol for f in report.findings
    }
