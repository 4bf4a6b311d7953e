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

import functools
import itertools
import logging
import math
import re
from collections.abc import Mapping
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
    r"api[_-]?key|access[_-]?key|private[_-]?key|credential|signature))['\"]?\s*[=:]\s*['\"]?)"
    r"(?P<value>[^\s&;,'\"<>]+)"
)
# An HTTP Authorization header as a message prints it (``Authorization: Basic dTpw``, a dict's repr).
_AUTH_HEADER = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization['\"]?\s*[=:]\s*['\"]?(?:[A-Za-z-]+\s+)?)(?P<value>[^\s'\",}]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<name>(?:bearer|basic|token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})")
# Absolute POSIX paths (not the path part of a URL), object-store / file URIs, and every URI of
# a scheme other than http(s) whose rest is a path (``sqlite:////srv/mlflow.db``,
# ``mlflow-artifacts:/0/abc``, ``dbfs:/Volumes/x``, ``file:/tmp/x``).
_STORE_URI = re.compile(r"(?i)\b(?:s3|gs|gcs|abfss?|wasbs?|file|hdfs)://[^\s'\"<>]*")
_PATH_URI = re.compile(r"(?i)\b(?!https?:)[a-z][a-z0-9+.-]*:/(?:/?/)?(?=[^/\s]|/)[^\s'\"<>]*")
_ABS_PATH = re.compile(r"(?<![\w:/.~-])(?:~)?/(?:[^\s'\"<>,;()]+)")
# Windows paths (``C:\\Users\\x``, ``\\\\server\\share``) and relative ones (``./mlruns/0``, ``../x``).
_WINDOWS_PATH = re.compile(r"(?i)(?<![\w])(?:[a-z]:\\|\\\\)[^\s'\"<>,;]*")
_RELATIVE_PATH = re.compile(r"(?<![\w/.~-])\.{1,2}/[^\s'\"<>,;()]+")
# Environment variables whose values are credentials wherever they appear in a message (MLflow
# and the cloud SDKs read them; a library may echo one). Others are masked when their name looks
# like a credential and the value is long enough not to be a common word.
_CREDENTIAL_ENV = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_USERNAME",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
_ENV_NAME = re.compile(r"(SECRET|PASSW(OR)?D|PASSPHRASE|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY)", re.I)


def _env_secrets() -> tuple[str, ...]:
    """Values of the environment's credential variables, longest first.

    Called for every redacted message (every log record, once the command line installs its
    record factory): worked out once per state of the environment, not once per message."""
    import os

    return _secrets_in(tuple(os.environ.items()))


@functools.lru_cache(maxsize=1)
def _secrets_in(environment: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    found = set()
    for name, value in environment:
        if name.upper() in _CREDENTIAL_ENV:
            if len(value) >= 4:
                found.add(value)
        elif _ENV_NAME.search(name) and len(value) >= 8 and value.lower() not in ("true", "false"):
            found.add(value)
    return tuple(sorted(found, key=len, reverse=True))


def redact_credentials(text: object) -> str:
    """``text`` with every URI's user-info and every credential-bearing value replaced by ``***``.

    >>> redact_credentials("cannot reach http://alice:s3cret@mlflow:5000/api?token=abc&x=1")
    'cannot reach http://***@mlflow:5000/api?token=***&x=1'
    """
    out = str(text)
    for value in _env_secrets():
        out = out.replace(value, MASK)
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", out)
    out = _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", out)
    out = _SECRET_PAIR.sub(lambda m: f"{m['name']}{MASK}", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m['name']}{MASK}", out)
    return _BEARER.sub(lambda m: f"{m['name']}{MASK}", out)


def redact_paths(text: object, placeholder: str = "<path>") -> str:
    """:func:`redact_credentials`, then absolute paths and store URIs replaced by ``placeholder``."""
    out = redact_credentials(text)
    out = _STORE_URI.sub(placeholder, out)
    out = _PATH_URI.sub(placeholder, out)
    out = _WINDOWS_PATH.sub(placeholder, out)
    out = _RELATIVE_PATH.sub(placeholder, out)
    return _ABS_PATH.sub(placeholder, out)


class RedactingRecordFactory:
    """A ``logging`` record factory whose records carry :func:`redact_credentials`'d messages
    (installed by the command line: every logger of the process, whatever its handlers)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.factory(*args, **kwargs)
        redact_record(record)
        return record


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact a log record in place: its message, and the traceback and stack it carries.

    A traceback (``exc_info``) is formatted here, once, and redacted into ``exc_text``; the
    exception itself is dropped from the record, so no formatter or handler can format it again
    from the live exception (whose message and frames may hold a URI with credentials)."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to logging's own error handling
        message = None
    if message is not None:
        redacted = redact_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[0] is not None:
        if not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
    if record.exc_text:
        record.exc_text = redact_credentials(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_credentials(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """A handler filter applying :func:`redact_record` (for records made before the factory was
    installed, or by a factory set later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


# --- credentials where plain values belong (pod environment variables) ----------------

# Names of variables whose value must come from a secret reference, never a literal (any case,
# anywhere in the name: S3_KEY, apiKey, db_passwd, GH_TOKEN, ...).
SECRET_LIKE_NAME = re.compile(r"(SECRET|PASSW(OR)?D|PASSPHRASE|TOKEN|KEY|CREDENTIAL|PRIVATE)", re.I)
# Values that are credentials whatever the variable is called.
_SECRET_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a PEM key or certificate", re.compile(r"-----BEGIN [A-Z0-9 ]+-----")),
    (
        "an AWS access key id",
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"),
    ),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
    (
        "a service token",
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|"
            r"xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}|hf_[A-Za-z0-9]{30,}|"
            r"npm_[A-Za-z0-9]{30,}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})"
        ),
    ),
    (
        "a password or token pair",
        re.compile(
            r"(?i)(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?"
            r"\s*[=:]\s*[^\s&;,]+"
        ),
    ),
)
# A random-looking token: base64/base62 characters only, long, high entropy (paths, URIs, numbers,
# model names and hex digests are not).
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+/=_-]{16,}$")
_WORD = re.compile(r"[A-Z]?[a-z]{2,}")
_HEX_OR_NUMBER = re.compile(r"[0-9a-fA-F]+|[0-9._-]+")


def _char_kind(c: str) -> str:
    return "lower" if c.islower() else "upper" if c.isupper() else "digit" if c.isdigit() else "other"


def _entropy(text: str) -> float:
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_like_value(value: Any) -> str | None:
    """Why ``value`` looks like a credential (a PEM block, an AWS key id, a JWT, a known service
    token, a ``password=`` pair, a URI with user-info or a token in its query, or a long
    high-entropy token), or None for an ordinary value (paths, URIs, numbers, names, digests)."""
    text = str(value).strip()
    for what, pattern in _SECRET_VALUES:
        if pattern.search(text):
            return what
    if "://" in text and redact_credentials(text) != text:
        return "a URI with credentials"
    if _TOKEN_CHARS.match(text) and not text.startswith("/") and not _HEX_OR_NUMBER.fullmatch(text):
        kinds = [_char_kind(c) for c in text if c.isalnum()]
        switches = sum(a != b for a, b in itertools.pairwise(kinds)) / max(len(kinds) - 1, 1)
        words = sum(len(w) for w in _WORD.findall(text)) / len(text)
        # a random token switches between lower, upper and digit every other character and holds
        # few words; names (CamelCase, kebab-case, words with versions) are mostly words
        if len(set(kinds)) >= 2 and switches >= 0.3 and words < 0.35 and _entropy(text) >= 3.5:
            return "a random token"
    return None


def plain_env_problem(env: Mapping[str, Any]) -> str | None:
    """Why plain environment variables ``env`` must not be written out in plain text (a name or
    a value that looks like a credential), naming the variables but never their values; None
    when every variable is ordinary. The spec (``training.kubernetes.env``) and the pod operator
    both apply this one rule."""
    by_name = sorted(str(k) for k in env if SECRET_LIKE_NAME.search(str(k)))
    if by_name:
        return (
            f"variable(s) {', '.join(by_name)} look like credentials by name and would be written "
            "into the pod spec in plain text"
        )
    by_value = sorted(f"{k} ({why})" for k, v in env.items() if (why := secret_like_value(v)))
    if by_value:
        return (
            f"the value(s) of variable(s) {', '.join(by_value)} look like credentials and would be "
            "written into the pod spec in plain text"
        )
    return None
