"""Redaction of credentials (and server paths) in text shown to people: CLI errors, logs, UI errors.

One function per concern, used everywhere a message may carry a URI:

- :func:`redact_credentials` replaces the user-info of every URI (``http://user:secret@host``,
  ``https://token@host``) and the values of query parameters that carry credentials
  (``?token=...``, ``&X-Amz-Signature=...``, ``password=...``) with ``***``. Host, port, path and
  the other parameters stay, so the message still says which server failed.
- :func:`redact_paths` also hides absolute filesystem paths and object-store URIs (for answers
  to web clients, which must not learn the server's layout).

Pure Python, no imports beyond the standard library: cheap to call from any layer.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# scheme://userinfo@ -- userinfo is everything up to the last "@" before the host part ends.
# A password may hold ":", "/" -- but not whitespace, quotes or "@" (which ends userinfo).
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#@'\"<>]*(?:[/?#][^\s@'\"<>]*?)?)@"
)
# Names of parameters whose values are credentials, in any case, anywhere in the name.
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|pwd|passphrase|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|client[_-]?secret|credential|signature|sig|auth|session|cookie|key)[A-Za-z0-9_.-]*"
)
_SECRET_PARAM = re.compile(rf"(?i)(?P<name>[?&;]{_SECRET_NAME}=)(?P<value>[^&#\s'\"<>]*)")
# ``password=...`` / ``token: ...`` pairs outside a URI (DSNs, connection strings, messages).
_SECRET_PAIR = re.compile(
    r"(?i)(?P<name>(?<![?&;\w])(?:[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|pwd|passphrase|"
    r"api[_-]?key|access[_-]?key|private[_-]?key|credential|signature))\s*[=:]\s*)(?P<value>[^\s&;,'\"<>]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<name>(?:bearer|basic|token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})")
# Absolute POSIX paths (not the path part of a URL) and object-store / file URIs.
_STORE_URI = re.compile(r"(?i)\b(?:s3|gs|gcs|abfss?|wasbs?|file|hdfs)://[^\s'\"<>]*")
_ABS_PATH = re.compile(r"(?<![\w:/.~-])(?:~)?/(?:[^\s'\"<>,;()]+)")


def redact_credentials(text: object) -> str:
    """``text`` with every URI's user-info and every credential-bearing value replaced by ``***``.

    >>> redact_credentials("cannot reach http://alice:s3cret@mlflow:5000/api?token=abc&x=1")
    'cannot reach http://***@mlflow:5000/api?token=***&x=1'
    """
    out = str(text)
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", out)
    out = _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", out)
    out = _SECRET_PAIR.sub(lambda m: f"{m['name']}{MASK}", out)
    return _BEARER.sub(lambda m: f"{m['name']}{MASK}", out)


def redact_paths(text: object, placeholder: str = "<path>") -> str:
    """:func:`redact_credentials`, then absolute paths and store URIs replaced by ``placeholder``."""
    out = redact_credentials(text)
    out = _STORE_URI.sub(placeholder, out)
    return _ABS_PATH.sub(placeholder, out)


class RedactingRecordFactory:
    """A ``logging`` record factory whose records carry :func:`redact_credentials`'d messages
    (installed by the command line: every logger of the process, whatever its handlers)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return record
        redacted = redact_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record
