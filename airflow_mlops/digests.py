"""sha256 of a file, streamed: the one helper for it (standard library only, a leaf module)."""

from __future__ import annotations

import hashlib
import os

__all__ = ["CHUNK_SIZE", "sha256_file"]

#: Bytes read at a time; a file of any size is hashed in bounded memory.
CHUNK_SIZE = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()
