"""digests.py: the one sha256 of a file or stream, read in bounded chunks."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from airflow_mlops import digests


@pytest.mark.parametrize(
    "size", [0, 1, digests.CHUNK_SIZE - 1, digests.CHUNK_SIZE, 2 * digests.CHUNK_SIZE + 7]
)
def test_the_digest_is_sha256_of_every_byte(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert digests.sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert digests.sha256_stream(io.BytesIO(data)) == hashlib.sha256(data).hexdigest()


def test_a_stream_is_hashed_from_where_it_stands_in_bounded_reads() -> None:
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(-1 if n is None else n)
            return super().read(n)

    stream = Counting(b"head" + b"x" * (3 * digests.CHUNK_SIZE))
    stream.read(4)
    reads.clear()
    assert digests.sha256_stream(stream) == hashlib.sha256(b"x" * (3 * digests.CHUNK_SIZE)).hexdigest()
    assert reads and all(n == digests.CHUNK_SIZE for n in reads)  # never the whole file at once


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        digests.sha256_file(tmp_path / "absent")
