"""Compressed streams and archive layouts, as the loaders read them (standard library only).

- zlib, gzip, bz2, lzma and xz streams (joblib ``compress=...``), decompressed as a bounded
  stream (:class:`Decompressed`), and the format a file's first bytes announce
  (:func:`compression_of`, joblib's own detection order);
- the compressed formats the scanner refuses rather than reads: joblib's pre-0.10 ``ZF`` files,
  LZ4 frames, tar archives (``torch.load``'s legacy format);
- zip layouts on which Python's ``zipfile`` and torch's reader would disagree
  (:func:`zip_directory_problem`).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

LZ4_PREFIX = b"\x04\x22\x4d\x18"  # joblib's lz4 compressor prefix (LZ4 frame magic)

_ZFILE_PREFIX = b"ZF"  # joblib < 0.10 compressed format: "ZF", 19-byte hex length, zlib data

DECOMPRESS_CHUNK = 1 << 20


class Decompressed:
    """A read-only stream of the decompressed bytes of a zlib/gzip/bz2/lzma/xz file.

    Memory is bounded: at most about one chunk of input and ``n`` bytes of output are held.
    Concatenated streams are all decompressed (as joblib and gzip do).
    """

    def __init__(self, raw: IO[bytes], fmt: str) -> None:
        self._raw = raw
        self._fmt = fmt
        self._pending = b""  # decompressed bytes not yet returned
        self._dec: Any = self._new()
        self._input_done = False
        self._feed = b""
        self.compressed_offset = 0

    def _new(self) -> Any:
        if self._fmt == "zlib":
            return zlib.decompressobj(15)
        if self._fmt == "gzip":
            return zlib.decompressobj(31)
        if self._fmt == "bz2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor(format=lzma.FORMAT_AUTO)

    def seekable(self) -> bool:
        return False

    def _produce(self, max_length: int) -> bytes:
        """Up to ``max_length`` more decompressed bytes (b"" at the end of the last stream)."""
        while True:
            if self._dec.eof:
                leftover = self._dec.unused_data or self._read_input()
                if not leftover.strip(b"\x00"):
                    self._input_done = True  # end of input (gzip allows zero padding)
                    return b""
                self._dec = self._new()
                self._feed = leftover
            feed, self._feed = self._feed, b""
            if not feed and self._fmt in ("zlib", "gzip"):
                feed = self._dec.unconsumed_tail
            if not feed:
                out = self._dec.decompress(b"", max_length)
                if out:
                    return bytes(out)
                if self._dec.eof:
                    continue
                feed = self._read_input()
                if not feed:
                    raise EOFError(f"{self._fmt} stream ends before its end marker (truncated)")
            out = self._dec.decompress(feed, max_length)
            if out:
                return bytes(out)

    def _read_input(self) -> bytes:
        data = self._raw.read(DECOMPRESS_CHUNK)
        self.compressed_offset += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = DECOMPRESS_CHUNK
        parts = []
        have = 0
        if self._pending:
            parts.append(self._pending[:n])
            have = len(parts[0])
            self._pending = self._pending[n:]
        while have < n and not self._input_done:
            data = self._produce(n - have)
            if not data:
                break
            parts.append(data)
            have += len(data)
        return b"".join(parts)


def compression_of(head: bytes) -> str | None:
    """The compression format a file's first bytes announce (joblib's own detection order)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00"):
        # joblib's prefix: lzma.LZMAFile then reads the .lzma header, whatever dictionary size
        # the next bytes give (4096 is 5d 00 10 00 00)
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


def is_tar(path: Path) -> bool:
    """True when ``tarfile`` opens the file as ``torch.load`` does for its legacy tar format
    (a valid first header block is enough; the extension plays no part)."""
    try:
        with path.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:", format=tarfile.PAX_FORMAT):
            return True
    except (tarfile.TarError, OSError, ValueError, EOFError, UnicodeDecodeError):
        return False


def is_joblib_zfile(head: bytes) -> bool:
    """True when ``joblib.load`` would read the file in its pre-0.10 "ZF" format: it checks only the
    two-byte prefix, then parses the next 19 bytes as a hexadecimal length."""
    return head.startswith(_ZFILE_PREFIX)


def decompresses(path: Path, fmt: str) -> bool:
    """True when a file whose first bytes announce ``fmt`` really starts a stream of that format
    (a zlib stream of stored blocks can be valid UTF-8 text, and joblib.load decompresses it)."""
    with path.open("rb") as fh:
        try:
            return bool(Decompressed(fh, fmt).read(1))
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
            return False


_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_END_SIZE = 56  # without extensible data, which is what zipfile assumes


def zip_directory_problem(zf: zipfile.ZipFile) -> str | None:
    """Why Python's zipfile and torch's reader (miniz) could read different central directories.

    Both find the same end record (the last one). Python's zipfile then assumes the zip64 end
    record sits right before the zip64 locator and adds any gap between the directory and the end
    records to every member offset (prepended bytes); miniz follows the locator's offset to the
    zip64 record and takes member offsets as written. Only a layout where the two agree passes:
    no shift, and a locator that points exactly where zipfile reads the zip64 record.
    """
    end_record = getattr(zipfile, "_EndRecData", None)
    start_dir = getattr(zf, "start_dir", None)
    if end_record is None or not isinstance(start_dir, int) or zf.fp is None:  # pragma: no cover
        raise RuntimeError("zipfile internals changed; the zip layout check needs _EndRecData")
    endrec = end_record(zf.fp)
    if not endrec:  # pragma: no cover - ZipFile opened it, so the record exists
        raise zipfile.BadZipFile("no end of central directory record")
    shift = int(start_dir - endrec[zipfile._ECD_OFFSET])  # type: ignore[attr-defined]
    if shift:
        return (
            f"the central directory is {shift} bytes away from where the end record puts it "
            "(prepended bytes or a second directory): Python's zipfile and torch.load would "
            "read different members"
        )
    location = int(endrec[zipfile._ECD_LOCATION])  # type: ignore[attr-defined]
    if location < _ZIP64_LOCATOR_SIZE:
        return None
    zf.fp.seek(location - _ZIP64_LOCATOR_SIZE)
    locator = zf.fp.read(_ZIP64_LOCATOR_SIZE)
    if not locator.startswith(_ZIP64_LOCATOR):
        return None  # neither reader looks for a zip64 record
    _sig, _disk, record_at, _disks = struct.unpack("<4sIQI", locator)
    expected = location - _ZIP64_LOCATOR_SIZE - _ZIP64_END_SIZE
    if record_at != expected:
        return (
            f"the zip64 locator points at byte {record_at} for the zip64 end record, but Python's "
            f"zipfile reads it at byte {expected}: torch.load (which follows the locator) and "
            "zipfile would read different central directories"
        )
    zf.fp.seek(expected)
    record = zf.fp.read(12)
    if not record.startswith(_ZIP64_END) or struct.unpack("<Q", record[4:12])[0] != _ZIP64_END_SIZE - 12:
        return (
            f"the zip64 end record at byte {expected} is missing or carries extensible data: "
            "Python's zipfile and torch.load would place the central directory differently"
        )
    return None


class Replay:
    """A stream that first returns ``head`` (already read), then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: Decompressed) -> None:
        self._head = head
        self._raw = raw

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                n = len(self._head) + DECOMPRESS_CHUNK
            out, self._head = self._head[:n], self._head[n:]
            if len(out) < n:
                out += self._raw.read(n - len(out))
            return out
        return self._raw.read(n)
