"""Tests for airflow_mlops.security.scanning.compression: the bounded decompressed stream (every
format joblib writes, concatenated streams, padding, truncation, corruption, bombs read in bounded
steps, one layer at a time), the format a file's first bytes announce, the formats the scanner
refuses (tar, joblib "ZF"), and the zip layouts Python's zipfile and torch's reader would read
differently. Only bytes are built and read; nothing is unpickled."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path

import pytest
from scan_bypass_corpus import (
    EVIL_PICKLE,
    _comment_end_record_zip,
    _torch_tar,
    _two_directory_zip,
    _zip,
    _zip64_extensible_zip,
    _zip64_locator_zip,
    _zlib_stored_utf8,
)

from airflow_mlops.security.scanning import compression
from airflow_mlops.security.scanning.compression import (
    LZ4_PREFIX,
    Decompressed,
    Replay,
    compression_of,
    decompresses,
    is_joblib_zfile,
    is_tar,
    zip_directory_problem,
)

DATA = b"a pickle that compresses well " * 500

COMPRESS = {
    "zlib": zlib.compress,
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
}
FORMATS = sorted(COMPRESS)
#: what the standard library raises for a corrupt stream of each format
CORRUPT = (zlib.error, OSError, lzma.LZMAError, EOFError)


def _read_all(dec: Decompressed, step: int = 1 << 20) -> bytes:
    parts = []
    while chunk := dec.read(step):
        assert len(chunk) <= step
        parts.append(chunk)
    return b"".join(parts)


class _Counting(io.BytesIO):
    """Counts the compressed bytes the stream pulls from the file."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.consumed += len(data)
        return data


# --- compression_of ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_compression_of_a_real_stream_names_its_format(fmt: str) -> None:
    assert compression_of(COMPRESS[fmt](DATA)[:8]) == fmt


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\x78\x01", "zlib"),
        (b"\x78\x9c", "zlib"),
        (b"\x78\xda", "zlib"),
        (b"x^ plain text", "zlib"),  # 0x785e is a valid zlib header: text can announce zlib
        (b"\x78\x00", None),  # header checksum wrong
        (b"BZh9", "bz2"),
        (b"BZhx", None),  # the block size must be a digit
        (b"BZh", None),
        (b"\x5d\x00\x00\x10\x00", "lzma"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x80\x04", None),
        (b"PK\x03\x04", None),
        (b"", None),
        (b"x", None),
    ],
)
def test_compression_of_a_head(head: bytes, fmt: str | None) -> None:
    assert compression_of(head) == fmt


# --- Decompressed --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_decompresses_to_the_original_bytes(fmt: str) -> None:
    dec = Decompressed(io.BytesIO(COMPRESS[fmt](DATA)), fmt)
    assert not dec.seekable()
    assert _read_all(dec, step=777) == DATA
    assert dec.read(10) == b""  # the end stays the end


@pytest.mark.parametrize("fmt", FORMATS)
def test_concatenated_streams_are_all_decompressed(fmt: str) -> None:
    """joblib and gzip read every stream of the file: a payload in a second stream is not hidden."""
    second = COMPRESS[fmt](EVIL_PICKLE)
    dec = Decompressed(io.BytesIO(COMPRESS[fmt](DATA) + second), fmt)
    assert _read_all(dec) == DATA + EVIL_PICKLE


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_padding_after_the_last_stream_ends_the_input(fmt: str) -> None:
    dec = Decompressed(io.BytesIO(COMPRESS[fmt](DATA) + b"\x00" * 100), fmt)
    assert _read_all(dec) == DATA


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_stream_raises_eoferror_after_the_bytes_it_holds(fmt: str) -> None:
    compressed = COMPRESS[fmt](DATA)
    dec = Decompressed(io.BytesIO(compressed[: len(compressed) // 2]), fmt)
    with pytest.raises(EOFError, match=f"{fmt} stream ends before its end marker"):
        _read_all(dec)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_input_is_truncated(fmt: str) -> None:
    with pytest.raises(EOFError, match="truncated"):
        Decompressed(io.BytesIO(b""), fmt).read(1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_junk_after_a_stream_is_an_error_not_ignored(fmt: str) -> None:
    """Bytes after the end marker start another stream; if they are not one, reading fails."""
    dec = Decompressed(io.BytesIO(COMPRESS[fmt](DATA) + b"junk-not-a-stream"), fmt)
    with pytest.raises(CORRUPT):
        _read_all(dec)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_corrupt_stream_is_an_error(fmt: str) -> None:
    compressed = COMPRESS[fmt](DATA)
    with pytest.raises(CORRUPT):
        _read_all(Decompressed(io.BytesIO(compressed[:2] + b"\xff" * 64), fmt))


def test_a_bomb_is_read_in_bounded_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """8 MiB of zeros in about 8 KiB: each read returns at most what was asked, and the stream
    pulls compressed input a chunk at a time as output is asked for, not the whole file at once."""
    monkeypatch.setattr(compression, "DECOMPRESS_CHUNK", 1024)
    packer = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(8)) + packer.flush()
    assert len(bomb) > 4 * 1024
    raw = _Counting(bomb)
    dec = Decompressed(raw, "zlib")

    head = dec.read(100)

    assert head == bytes(100)
    assert raw.consumed <= 1024 and dec.compressed_offset == raw.consumed
    assert len(dec.read()) == 1024  # read() without a size returns one chunk, not the rest
    total = 100 + 1024 + len(_read_all(dec, step=1 << 16))
    assert total == 8 << 20
    assert raw.consumed == len(bomb) == dec.compressed_offset


def test_nested_compression_is_decompressed_one_layer_at_a_time() -> None:
    """gzip inside gzip decompresses to a gzip stream, as joblib would read it (not the inner pickle)."""
    inner = gzip.compress(EVIL_PICKLE)
    outer = gzip.compress(inner)
    out = _read_all(Decompressed(io.BytesIO(outer), "gzip"))
    assert out == inner and compression_of(out[:8]) == "gzip"
    assert _read_all(Decompressed(io.BytesIO(out), "gzip")) == EVIL_PICKLE


# --- Replay --------------------------------------------------------------------------------


def test_replay_returns_the_head_then_the_rest() -> None:
    dec = Decompressed(io.BytesIO(zlib.compress(b"0123456789")), "zlib")
    head = dec.read(4)
    replay = Replay(head, dec)
    assert not replay.seekable()
    assert replay.read(2) == b"01"
    assert replay.read(5) == b"23456"  # the rest of the head, then the stream
    assert replay.read(-1) == b"789"
    assert replay.read(3) == b""


# --- decompresses / refused formats --------------------------------------------------------


def test_decompresses_tells_a_real_stream_from_text_that_only_looks_like_one(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"x^ these are notes, not zlib")
    assert compression_of(text.read_bytes()[:2]) == "zlib" and not decompresses(text, "zlib")
    real = tmp_path / "model.joblib"
    real.write_bytes(zlib.compress(b"\x80\x04N."))
    assert decompresses(real, "zlib")
    assert not decompresses(real, "gzip") and not decompresses(real, "bz2") and not decompresses(real, "xz")
    empty = tmp_path / "empty.z"
    empty.write_bytes(zlib.compress(b""))
    assert not decompresses(empty, "zlib")  # nothing to read


def test_a_zlib_stream_that_is_valid_utf8_text_still_decompresses(tmp_path: Path) -> None:
    path = tmp_path / "looks_like.txt"
    path.write_bytes(_zlib_stored_utf8(b"cos\nsystem\n"))
    path.read_bytes().decode("utf-8")  # it is text
    assert decompresses(path, "zlib")
    with path.open("rb") as fh:
        assert Decompressed(fh, "zlib").read(11) == b"cos\nsystem\n"


def test_is_tar_by_content_not_extension(tmp_path: Path) -> None:
    cases = {
        "model.pt": _torch_tar(EVIL_PICKLE),  # torch's legacy tar format, whatever its name
        "archive.tar": _zip({"a": b"1"}),
        "notes.tar": b"hello " * 200,
        "empty.tar": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert {n: is_tar(tmp_path / n) for n in cases} == {
        "model.pt": True,
        "archive.tar": False,
        "notes.tar": False,
        "empty.tar": False,
    }
    assert not is_tar(tmp_path / "missing")


def test_joblib_zfile_and_lz4_prefixes() -> None:
    assert is_joblib_zfile(b"ZF0x0000000000000001" + zlib.compress(b"x"))
    assert is_joblib_zfile(b"ZF")  # joblib checks only the two bytes
    assert not is_joblib_zfile(b"Zf") and not is_joblib_zfile(b"Z") and not is_joblib_zfile(b"")
    assert LZ4_PREFIX == b"\x04\x22\x4d\x18"  # the LZ4 frame magic joblib's lz4 compressor writes


# --- zip_directory_problem -----------------------------------------------------------------


def _zip_problem(data: bytes) -> str | None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zip_directory_problem(zf)


def test_an_ordinary_zip_has_no_layout_problem() -> None:
    assert _zip_problem(_zip({"archive/data.pkl": b"\x80\x02N.", "archive/version": b"3\n"})) is None


def test_a_zip64_layout_both_readers_agree_on_passes() -> None:
    assert _zip_problem(_zip64_locator_zip(to_evil=False)) is None


def test_prepended_bytes_shift_the_directory() -> None:
    problem = _zip_problem(b"JUNK" * 10 + _zip({"a": b"1"}))
    assert problem is not None and "is 40 bytes away from where the end record puts it" in problem


def test_a_second_central_directory_is_refused() -> None:
    problem = _zip_problem(_two_directory_zip())
    assert problem is not None and "would read different members" in problem


def test_a_zip64_locator_pointing_elsewhere_is_refused() -> None:
    problem = _zip_problem(_zip64_locator_zip(to_evil=True))
    assert problem is not None and "the zip64 locator points at byte" in problem
    assert "torch.load (which follows the locator)" in problem


def test_a_zip64_end_record_with_extensible_data_is_refused() -> None:
    problem = _zip_problem(_zip64_extensible_zip())
    assert problem is not None and "missing or carries extensible data" in problem


@pytest.mark.parametrize("evil_inner", [True, False])
def test_an_end_record_in_a_comment_is_the_last_one_for_both_readers(evil_inner: bool) -> None:
    """Both readers use the last end record, so the directory check itself finds no disagreement
    (the members it names are what the scanner then reads)."""
    assert _zip_problem(_comment_end_record_zip(evil_inner=evil_inner, trailing=b"")) is None
