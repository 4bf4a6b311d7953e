"""Reading spec files: encodings, the size limit, special files, and telling a spec from other YAML.

A spec is UTF-8, or UTF-16/UTF-32 by byte-order mark or YAML's NUL pattern; it is read up to
:data:`~airflow_mlops.spec.limits.MAX_SPEC_BYTES` (one byte more tells it is too big) and only
if it is a regular file (a FIFO or a device would never end).
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.limits import MAX_SPEC_BYTES
from airflow_mlops.spec.yaml_messages import too_big_issue

# Byte-order marks, longest first (UTF-32's LE mark starts with UTF-16's), and the encodings
# YAML 1.2 (5.2) detects without one from the NULs around an ASCII first character.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NUL_PATTERNS = (
    (re.compile(rb"\A\x00\x00\x00[^\x00]"), "utf-32-be"),
    (re.compile(rb"\A[^\x00]\x00\x00\x00"), "utf-32-le"),
    (re.compile(rb"\A\x00[^\x00]"), "utf-16-be"),
    (re.compile(rb"\A[^\x00]\x00"), "utf-16-le"),
)


def spec_encoding(data: bytes) -> tuple[str, int]:
    """The encoding of a spec's bytes and the length of its byte-order mark.

    UTF-8 unless a byte-order mark or YAML's NUL pattern says UTF-16 or UTF-32 (the encodings
    the YAML spec asks every reader to accept); the mark is not part of the text.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    for pattern, encoding in _NUL_PATTERNS:
        if pattern.match(data):
            return encoding, 0
    return "utf-8", 0


def decode_spec(data: bytes, file: str) -> str:
    """A spec file's text from its bytes (see :func:`spec_encoding`); :class:`SpecError` if it
    is not valid in its encoding, at the line where it stops being."""
    encoding, skip = spec_encoding(data)
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        good = data[skip : skip + exc.start].decode(encoding, "replace")
        line = good.count("\n") + 1
        column = len(good) - (good.rfind("\n") + 1) + 1
        bad = data[skip + exc.start : skip + min(exc.end, exc.start + 4)].hex(" ")
        detected = "" if encoding == "utf-8" else f" (detected as {encoding.upper()} from its first bytes)"
        raise SpecError(
            [
                SpecIssue(
                    file,
                    line,
                    column,
                    "",
                    f"the file is not valid {encoding.upper()}{detected}: bytes {bad} cannot be decoded",
                    hint="save the file as UTF-8 (a spec may also be UTF-16 or UTF-32 with a byte-order mark)",
                )
            ]
        ) from None


def read_spec_bytes(path: Path, limit: int = MAX_SPEC_BYTES) -> bytes:
    """At most ``limit + 1`` bytes of the file (one more tells that it is too big).

    :raises OSError: also when it is not a regular file: a FIFO would block the reader forever,
        a device (``/dev/zero``, ``/dev/urandom``) would never end, a folder cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISFIFO(mode):
            kind = "a FIFO"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a device"
        elif stat.S_ISDIR(mode):
            kind = "a folder"
        else:
            kind = "not a file"
        raise OSError(f"{path} is {kind}, not a regular file: a spec is a plain text file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def read_spec_head(path: Path) -> str:
    """The text a spec file starts with, decoded leniently: what spec detection looks at."""
    data = read_spec_bytes(path)
    encoding, skip = spec_encoding(data)
    return data[skip:].decode(encoding, "replace")


def read_spec_text(path: Path) -> str:
    """A spec (or defaults) file's text; raises :class:`SpecError` when it cannot be read as text
    in its encoding (:func:`spec_encoding`) or is over :data:`MAX_SPEC_BYTES`."""
    try:
        data = read_spec_bytes(path)
    except OSError as exc:
        raise SpecError([SpecIssue(str(path), None, None, "", f"cannot read the spec: {exc}")]) from None
    if len(data) > MAX_SPEC_BYTES:
        try:
            size = path.stat().st_size
        except OSError:
            size = len(data)
        head = data[:MAX_SPEC_BYTES].decode(spec_encoding(data)[0], "replace")
        issue = too_big_issue(head, str(path), size)
        raise SpecError([issue])
    return decode_spec(data, str(path))


# `apiVersion: mlops/...` as a key: at the start of a line (indented too: a document may be),
# after `---`, or in a flow mapping (`{apiVersion: mlops/v1, ...}`, JSON), quoted or not.
_API_VERSION_LINE = re.compile(
    r"""(?:^[ \t]*(?:---[ \t]+)?|[{,][ \t]*)["']?apiVersion["']?[ \t]*:\s*["']?mlops/""", re.MULTILINE
)
# The top-level keys a spec must have besides apiVersion; a file with `pipeline:` and one of the
# others (and no `kind:`, which other tools' manifests have) is taken for a spec without one.
SPEC_KEYS = ("pipeline", "data", "registry")
_TOP_KEY = re.compile(r"""^(?:---[ \t]+)?["']?(pipeline|data|registry|kind)["']?[ \t]*:""", re.MULTILINE)


def is_spec_document(text: str) -> bool:
    """Cheap check used to pick spec files out of a dags folder.

    True for an ``apiVersion: mlops/...`` key, and for a document that looks like a spec without
    one, or with another (top-level ``pipeline:`` and ``data:`` or ``registry:``, and no ``kind:``):
    loading it then reports the missing or wrong ``apiVersion`` instead of skipping the file
    without a word. Other YAML (``mlops-defaults.yaml`` has ``kind: Defaults``) is not a spec.
    """
    if _API_VERSION_LINE.search(text) is not None:
        return True
    keys = set(_TOP_KEY.findall(text))
    return "pipeline" in keys and bool(keys & {"data", "registry"}) and "kind" not in keys
