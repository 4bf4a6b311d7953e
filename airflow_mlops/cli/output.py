"""What every command prints on failure: one redacted, bounded line on stderr, never a traceback."""

from __future__ import annotations

import sys


def error(message: object) -> None:
    """Print an error of the ``model`` commands to stderr, credentials in any URI redacted."""
    from airflow_mlops.redaction import redact_credentials

    print(redact_credentials(message), file=sys.stderr)


def install_log_redaction() -> None:
    """Redact credentials (URI user-info, tokens in query strings) in every log record of this
    process: the ``model`` commands log what MLflow and the registry say, URIs included."""
    import logging

    from airflow_mlops.redaction import RedactingRecordFactory

    factory = logging.getLogRecordFactory()
    if not isinstance(factory, RedactingRecordFactory):
        logging.setLogRecordFactory(RedactingRecordFactory(factory))


def short(exc: BaseException, limit: int = 2000) -> str:
    """An exception's message for one error line: bounded (a message quoting a 100,000-digit
    number or a whole file stays readable)."""
    try:
        text = str(exc)
    except Exception:  # a message that cannot even be made: say so, never a traceback
        return "(the error's message could not be formatted)"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"
