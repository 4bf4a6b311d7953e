"""The retrain ledger: the durable record of every decision the retrain gate made.

One JSON document per pipeline, beside its new-data watermark
(``{artifact_root}/{pipeline}/_state/retrain-ledger.json``, a local file or an S3 object). It holds

- ``runs``: each gated training run's decision, keyed by run id, with one entry per triggering
  asset event (admitted or suppressed, with the reason). A retried gate task finds its run here
  and returns that decision instead of deciding again;
- ``events``: which run decided each asset event (an event is never decided twice);
- ``retrains``: the admitted retrains (run id, time, trigger): cooldown and the daily maximum
  count these;
- ``keys``: the evidence keys (model, trigger kind, window or batch digest) already trained on;
- ``last_admitted``: the timestamp of the last admitted event of each trigger kind (debounce);
- ``pending_rows``: new-data rows seen since the last admitted new-data retrain (minimum rows).

Writes are compare-and-swap (:class:`LedgerStore`): a local file is replaced atomically under an
``flock`` after checking that it is still the version that was read; an S3 object is written with
a conditional put (``If-Match`` / ``If-None-Match``). Two gates deciding at once therefore cannot
both pass a cooldown: the second one's write fails, it reads the first one's decision and decides
again (see :func:`airflow_mlops.retrain.policy.gate_run`). Standard library only (boto3 lazily).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.artifacts import VersionConflict, VersionedDocument
from airflow_mlops.exceptions import RetrainLedgerCorruptError, RetrainLedgerError

LEDGER_FORMAT = "airflow-mlops/retrain-ledger"
LEDGER_VERSION = 1
LEDGER_FILE = "retrain-ledger.json"
#: Run decisions (with their per-event entries) are kept this long, then pruned.
DECISION_RETENTION = dt.timedelta(days=30)
#: At most this many event decisions are kept (the oldest runs' go first), so that a sustained
#: storm cannot grow the document every gate rewrites without bound.
MAX_EVENT_DECISIONS = 20_000
#: Evidence keys already trained on are kept this long: the same evidence never trains twice
#: within it.
KEY_RETENTION = dt.timedelta(days=365)


def ledger_uri(state_root: str) -> str:
    """The ledger's location in a pipeline's state folder (``{root}/{pipeline}/_state``)."""
    return f"{state_root.rstrip('/')}/{LEDGER_FILE}"


def parse_time(value: str) -> dt.datetime:
    """An ISO time written by the ledger (always timezone-aware, UTC)."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


@dataclass
class Ledger:
    """The state the retrain policy decides against (see the module docstring). Mutable: build
    the next state with :meth:`copy`, change it, save it."""

    pipeline: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    retrains: list[dict[str, str]] = field(default_factory=list)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    last_admitted: dict[str, dict[str, str]] = field(default_factory=dict)
    pending_rows: int = 0

    def copy(self) -> Ledger:
        return Ledger.from_dict(json.loads(json.dumps(self.to_dict())), source="<copy>")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "pipeline": self.pipeline,
            "pending_rows": self.pending_rows,
            "retrains": self.retrains,
            "last_admitted": self.last_admitted,
            "keys": self.keys,
            "events": self.events,
            "runs": self.runs,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Ledger:
        if not isinstance(data, dict) or data.get("format") != LEDGER_FORMAT:
            raise RetrainLedgerCorruptError(
                f"{source} is not a retrain ledger (no format {LEDGER_FORMAT!r}); it was edited or "
                "replaced by hand -- restore it from a backup or delete it (the gate then starts "
                "a new ledger, forgetting cooldowns and trained evidence)"
            )
        if data.get("version") != LEDGER_VERSION:
            raise RetrainLedgerCorruptError(
                f"{source} has ledger version {data.get('version')!r}; this airflow-mlops reads "
                f"version {LEDGER_VERSION} -- upgrade airflow-mlops on every worker"
            )
        try:
            return cls(
                pipeline=str(data["pipeline"]),
                runs={str(k): dict(v) for k, v in data["runs"].items()},
                events={str(k): str(v) for k, v in data["events"].items()},
                retrains=[dict(r) for r in data["retrains"]],
                keys={str(k): dict(v) for k, v in data["keys"].items()},
                last_admitted={str(k): dict(v) for k, v in data["last_admitted"].items()},
                pending_rows=int(data["pending_rows"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RetrainLedgerCorruptError(
                f"{source} is a damaged retrain ledger ({type(exc).__name__}: {exc}); restore it "
                "from a backup or delete it"
            ) from None

    @classmethod
    def from_json(cls, raw: str | bytes, *, source: str) -> Ledger:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RetrainLedgerCorruptError(
                f"{source} is not JSON ({exc}); restore it from a backup or delete it"
            ) from None
        return cls.from_dict(data, source=source)

    def pruned(self, now: dt.datetime) -> Ledger:
        """A copy without decisions older than :data:`DECISION_RETENTION` (or beyond
        :data:`MAX_EVENT_DECISIONS`, oldest first), keys older than
        :data:`KEY_RETENTION`, and retrains that can no longer count (older than a day, except
        the last one, which cooldown measures from)."""
        out = self.copy()
        old_runs = {
            run_id
            for run_id, run in out.runs.items()
            if now - parse_time(run["decided_at"]) > DECISION_RETENTION
        }
        kept = sum(len(run.get("events", [])) for run_id, run in out.runs.items() if run_id not in old_runs)
        for run_id in sorted(out.runs, key=lambda r: out.runs[r]["decided_at"]):
            if kept <= MAX_EVENT_DECISIONS:
                break
            if run_id not in old_runs:
                old_runs.add(run_id)
                kept -= len(out.runs[run_id].get("events", []))
        for run_id in old_runs:
            del out.runs[run_id]
        out.events = {e: r for e, r in out.events.items() if r not in old_runs}
        out.keys = {k: v for k, v in out.keys.items() if now - parse_time(v["at"]) <= KEY_RETENTION}
        recent = [r for r in out.retrains if now - parse_time(r["at"]) <= dt.timedelta(days=1)]
        out.retrains = recent if recent or not out.retrains else out.retrains[-1:]
        return out

    def suppressed(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The suppressed events, newest decision first, each with its run id and decision time."""
        out = []
        for run_id, run in self.runs.items():
            for event in run.get("events", []):
                if not event.get("admitted"):
                    out.append({**event, "run_id": run_id, "decided_at": run["decided_at"]})
        out.sort(key=lambda e: (e["decided_at"], e.get("timestamp", "")), reverse=True)
        return out if limit is None else out[:limit]


class LedgerConflict(RetrainLedgerError):
    """The ledger changed between this gate's read and its write (another gate wrote it)."""


class LedgerStore:
    """Loads and compare-and-swaps one ledger document (a local path or an ``s3://`` URI).

    ``load`` returns the ledger (None when none is stored yet) and a version token (the sha256 of
    the local file, the S3 ETag, None when absent); ``save`` writes only if the stored version is
    still that token, else raises :class:`LedgerConflict`. The storage is
    :class:`airflow_mlops.artifacts.VersionedDocument`, shared with the new-data watermark.
    """

    def __init__(self, uri: str, *, s3_client: Any = None) -> None:
        self.uri = uri
        self.document = VersionedDocument(uri, s3_client=s3_client)

    def load(self) -> tuple[Ledger | None, str | None]:
        try:
            raw, version = self.document.read()
        except Exception as exc:
            raise RetrainLedgerError(f"reading the retrain ledger {self.uri} failed: {exc}") from exc
        if raw is None:
            return None, None
        return Ledger.from_json(raw, source=self.uri), version

    def save(self, ledger: Ledger, *, expected_version: str | None) -> str:
        try:
            return self.document.write(ledger.to_json().encode("utf-8"), expected_version=expected_version)
        except VersionConflict as exc:
            raise LedgerConflict(f"the retrain ledger {self.uri} changed since it was read") from exc
        except Exception as exc:
            raise RetrainLedgerError(f"writing the retrain ledger {self.uri} failed: {exc}") from exc
