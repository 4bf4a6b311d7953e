"""sha256 of a file, streamed: the one helper for it (standard library only, a leaf module)."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

__all__ = ["CHUNK_SIZE", "sha256_file", "sha256_stream"]

#: Bytes read at a time; a file of any size is hashed in bounded memory.
CHUNK_SIZE = 1 << 20


def sha256_stream(fh: BinaryIO) -> str:
    """The sha256 hex digest of what is left to read in the binary file ``fh``, in 1 MiB chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of the file at ``path``."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)
