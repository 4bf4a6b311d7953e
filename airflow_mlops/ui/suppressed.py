"""The Models view's "suppressed triggers" panel: what the retrain gate held back, and why, read from
the pipeline's retrain ledger (``{artifact_root}/{pipeline}/_state/retrain-ledger.json``, see
:mod:`airflow_mlops.retrain.ledger`). No Airflow import; a ledger that cannot be read shows as
that error, never as "nothing suppressed"."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops.retrain.ledger import Ledger

log = logging.getLogger(__name__)

#: Suppressed events listed by name on the page (newest first); the counts cover all of them.
SHOWN = 10


@dataclass(frozen=True)
class SuppressedEvent:
    kind: str
    timestamp: str
    code: str
    reason: str
    run_id: str


@dataclass(frozen=True)
class SuppressedTriggers:
    """``total`` suppressed events kept in the ledger (30 days), ``by_code`` their reasons'
    counts, ``latest`` the newest :data:`SHOWN`, ``last_retrain`` the last admitted retrain
    (``at``, ``trigger``, ``run_id``), ``error`` why the ledger could not be read."""

    total: int = 0
    by_code: Mapping[str, int] = field(default_factory=dict)
    latest: tuple[SuppressedEvent, ...] = ()
    last_retrain: Mapping[str, str] | None = None
    error: str = ""


def summarize(ledger: Ledger) -> SuppressedTriggers:
    """The panel's content from a loaded ledger."""
    events = ledger.suppressed()
    by_code: dict[str, int] = {}
    for event in events:
        by_code[str(event.get("code"))] = by_code.get(str(event.get("code")), 0) + 1
    latest = tuple(
        SuppressedEvent(
            kind=str(e.get("kind", "")),
            timestamp=str(e.get("timestamp", "")),
            code=str(e.get("code", "")),
            reason=str(e.get("reason", "")),
            run_id=str(e.get("run_id", "")),
        )
        for e in events[:SHOWN]
    )
    last = dict(ledger.retrains[-1]) if ledger.retrains else None
    return SuppressedTriggers(len(events), dict(sorted(by_code.items())), latest, last)


def read_suppressed(
    artifact_root: str, pipeline: str, *, s3_client: object = None
) -> SuppressedTriggers | None:
    """The panel of ``pipeline``: None when it has no ledger (no ``schedule.policy``, or no run
    gated yet); a panel carrying the error when the ledger cannot be read."""
    from airflow_mlops.redaction import redact_paths
    from airflow_mlops.retrain.ledger import LedgerStore, ledger_uri

    uri = ledger_uri(f"{artifact_root.rstrip('/')}/{pipeline}/_state")
    try:
        ledger, _ = LedgerStore(uri, s3_client=s3_client).load()
    except Exception as exc:  # shown on the page; the rest of the view still renders
        log.warning("Models view: reading the retrain ledger of %s failed: %s", pipeline, redact_paths(exc))
        return SuppressedTriggers(error=f"the retrain ledger could not be read: {type(exc).__name__}")
    return None if ledger is None else summarize(ledger)
