"""Helpers of the check-then-open tests (allowed roots, the artifact store, reading sources)."""

from __future__ import annotations

import shutil
from pathlib import Path


def swap_for_link(folder: Path, target: Path) -> None:
    """Replace ``folder`` by a symbolic link to ``target`` (what an attacker does after a check)."""
    shutil.move(str(folder), str(folder) + ".old")
    folder.symlink_to(target, target_is_directory=True)


class _FakeS3:
    """Lists one directory artifact whose objects include a key with `..` segments."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.downloaded: list[str] = []

    def get_paginator(self, _name: str) -> _FakeS3:
        return self

    def paginate(self, **_kwargs: object) -> list[dict[str, object]]:
        return [{"Contents": [{"Key": k, "Size": 1} for k in self.keys]}]

    def download_file(self, _bucket: str, key: str, target: str) -> None:
        self.downloaded.append(target)
        Path(target).write_bytes(b"x")
