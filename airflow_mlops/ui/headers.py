"""The security headers of every answer the Models view gives, errors included.

:class:`SecureHeaders` is a plain ASGI middleware (no import beyond the standard library, so the
plugin can wrap its lazily built app with it): it adds :data:`SECURITY_HEADERS` to every
response that does not set its own value, and turns an exception that escaped the app into a
bare 500 (logged here, never shown: a traceback would name server paths).

The policy: nothing loads from anywhere (``default-src 'none'``); the view's pages and the stage
reports carry their styles inline (``<style>`` blocks and ``style`` attributes), and some
reports inline images as ``data:`` URIs, so ``style-src 'unsafe-inline'`` and ``img-src data:``
are all that is allowed. No script runs. The Airflow UI shows the view in a same-origin frame,
so only the same origin may frame it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow_mlops.redaction import RedactingFilter

log = logging.getLogger(__name__)
log.addFilter(RedactingFilter())  # tracebacks in the api-server log, credentials masked

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

#: The view's own pages (and the default of every answer).
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
#: Served documents (stage reports): the page policy, and sandboxed (no origin, no script).
REPORT_CSP = f"{PAGE_CSP}; sandbox"

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _with_security_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in raw}
    added = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in SECURITY_HEADERS.items()
        if name.lower().encode("latin-1") not in present
    ]
    return [*raw, *added]


class SecureHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP answer; escaped errors become 500s."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
                message["headers"] = _with_security_headers(list(message.get("headers") or []))
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception:
            log.exception("Models view: an error escaped the request handler")
            if started:  # too late for an answer of ours; the server closes the connection
                raise
            await send_error(send_secured, 500, "internal error of the Models view (see the api-server log)")


async def send_error(send: Any, status_code: int, detail: str) -> None:
    """A JSON error answer ``{"detail": ...}`` (the caller's ``send`` adds the headers)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
