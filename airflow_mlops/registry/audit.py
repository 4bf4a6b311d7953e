"""The audit trail of the registry: who moved which alias to which version, when and why.

Every registration, promotion, rollback and rollout decision writes a JSON version tag
``mlops.audit.<action>[.<alias>]`` and an entry in the registered model's ``mlops.audit.history``
(the last :data:`HISTORY_LIMIT` entries, appended under the alias lock), and the same line to the
log. Pure domain code (no Airflow): functions take an ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TAG_HISTORY = "mlops.audit.history"
HISTORY_LIMIT = 50


def now() -> str:
    """The time of an audit record: UTC, ISO 8601, whole seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def command_line_actor() -> str:
    """Who runs a command by hand: ``cli:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def audit_entry(action: str, *, by: str, reason: str = "", **fields: Any) -> dict[str, Any]:
    """One audit record: what (``action`` and ``fields``), who (``by``), when (UTC), why."""
    return {"action": action, "at": now(), "by": by, "reason": reason[:2000], **fields}


def record_audit(
    client: MlflowClient,
    model_name: str,
    version: str | None,
    entry: Mapping[str, Any],
    *,
    key: str,
    history: bool = True,
) -> None:
    """Write ``entry`` as the version tag ``mlops.audit.<key>`` (when a version is given), append
    it to the registered model's history (``history``), and log it.

    The history is read, extended and written back: alias moves do it under their alias lock.
    (Moves of two *different* aliases at the same instant could still lose one history entry;
    the version tags, written first, keep both.)"""
    text = json.dumps(dict(entry), sort_keys=True, default=str)
    if version is not None:
        client.set_model_version_tag(model_name, str(version), f"mlops.audit.{key}", text)
    if not history:
        log.info("audit %s %s v%s: %s", model_name, entry.get("action"), version, text)
        return
    entries = audit_history(client, model_name, strict=False)
    entries = [*entries, {**dict(entry), "version": None if version is None else str(version)}]
    client.set_registered_model_tag(
        model_name, TAG_HISTORY, json.dumps(entries[-HISTORY_LIMIT:], sort_keys=True, default=str)
    )
    log.info("audit %s %s v%s: %s", model_name, entry.get("action"), version, text)


def in_history(client: MlflowClient, model_name: str, action: str, version: str, request: str) -> bool:
    """Whether the history already records ``action`` on ``version`` by ``request`` (a retry)."""
    return any(
        e.get("action") == action and e.get("version") == str(version) and e.get("request") == request
        for e in audit_history(client, model_name, strict=False)
    )


def last_move_is(client: MlflowClient, model_name: str, alias: str, action: str, version: str) -> bool:
    """Whether the history's last entry about ``alias`` is ``action`` to ``version``."""
    moves = [e for e in audit_history(client, model_name, strict=False) if e.get("alias") == alias]
    return bool(moves) and moves[-1].get("action") == action and moves[-1].get("version") == str(version)


def audit_history(client: MlflowClient, model_name: str, *, strict: bool = True) -> list[dict[str, Any]]:
    """The registered model's audit history, oldest first.

    :param strict: a history tag that is not JSON raises (``json.JSONDecodeError``); with False it
        reads as empty (the writers start it afresh rather than fail the move they record).
    """
    model = client.get_registered_model(model_name)
    raw = (model.tags or {}).get(TAG_HISTORY) or "[]"
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        if strict:
            raise
        return []
    return [dict(e) for e in history if isinstance(e, dict)] if isinstance(history, list) else []
