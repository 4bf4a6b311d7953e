"""The retrain policy (``schedule.policy``): which asset events may start a retrain.

The retrain gate (the first task of ``<pipeline>__train``) calls :func:`gate_run` with the run's
triggering asset events. Each event is **admitted** or **suppressed with a reason**, in event-time
order; the run proceeds when at least one event is admitted, otherwise the rest of the run is
skipped. The checks, in the order they apply to an event (the first that fails names the reason):

``already_decided``
    the event was decided by another run (an event is never decided twice);
``duplicate``
    ``dedupe``: its evidence key -- model, trigger kind and the drift window's digest (its sha256
    when the event carries the window's ``ArtifactRef``, else its URI) or the new-data batch's
    ``batch_id`` -- was already trained on (by an earlier run, or by an earlier event of this run);
``no_estimated_drop``
    ``require_estimated_drop``: a drift event whose extra carries no ``estimated_performance``
    with a finite ``drop`` that is a drop: ``dropped: true`` when the monitor judged it against
    its ``max_drop``, else ``drop > 0`` (missing, malformed or no drop: suppressed);
``no_row_count`` / ``min_new_rows``
    ``min_new_rows``: a new-data event whose row count is unknown, or before the new-data rows seen
    since the last admitted new-data retrain (suppressed batches add up) reach the minimum;
``debounced``
    ``debounce``: an event of the same kind within ``debounce`` after the last admitted one (a
    burst retrains once);
``cooldown`` / ``max_per_day``
    the run would start a retrain within ``cooldown`` of the last admitted retrain, or beyond
    ``max_per_day`` retrains in the last 24 hours.

Once an event of a run is admitted, the later events of the same run need no new budget (the run
trains once, on all of its events' data); each still gets its own decision (a duplicate or a
debounced event is recorded as such).

Runs with no triggering event -- started by the time schedule, a backfill or by hand -- are
admitted as ``schedule`` / ``manual`` and count as retrains: cooldown and the daily maximum
measure from them too, so an event right after a scheduled retrain waits. A ``force`` key in an
event's extra or a run's conf is not honoured: forcing a suppressed retrain goes through the
human-approval path (``schedule.policy.force: approval``).

Standard library only; times are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_mlops.exceptions import RetrainLedgerError
from airflow_mlops.retrain.ledger import Ledger, LedgerConflict, LedgerStore, iso, parse_time

log = logging.getLogger(__name__)

DRIFT, NEW_DATA, ASSET, SCHEDULE, MANUAL = "drift", "new_data", "asset", "schedule", "manual"
ADMITTED = "admitted"
#: Every reason code a suppressed event may carry, in the order the checks apply.
SUPPRESS_CODES = (
    "already_decided",
    "duplicate",
    "no_estimated_drop",
    "no_row_count",
    "min_new_rows",
    "debounced",
    "cooldown",
    "max_per_day",
)
#: The outcomes whose new-data rows count toward ``min_new_rows`` (rows that really arrived).
COUNTED_ROWS = frozenset({ADMITTED, "min_new_rows", "debounced", "cooldown", "max_per_day"})
#: Times a gate re-reads the ledger after another gate wrote it between its read and write.
CAS_ATTEMPTS = 50


@dataclass(frozen=True)
class RetrainPolicy:
    """The spec's ``schedule.policy`` (durations in seconds; see the module docstring)."""

    cooldown: float = 0.0
    debounce: float = 0.0
    max_per_day: int | None = None
    min_new_rows: int = 0
    dedupe: bool = True
    require_estimated_drop: bool = False
    force: str = "never"  # "approval": a held-back run asks a person (retrain.force)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RetrainPolicy:
        """From the spec model's ``model_dump()`` (durations as timedeltas or seconds)."""

        def seconds(value: Any) -> float:
            return value.total_seconds() if isinstance(value, dt.timedelta) else float(value or 0)

        max_per_day = data.get("max_per_day")
        return cls(
            cooldown=seconds(data.get("cooldown")),
            debounce=seconds(data.get("debounce")),
            max_per_day=None if max_per_day is None else int(max_per_day),
            min_new_rows=int(data.get("min_new_rows") or 0),
            dedupe=bool(data.get("dedupe", True)),
            require_estimated_drop=bool(data.get("require_estimated_drop", False)),
            force=str(data.get("force") or "never"),
        )

    def describe(self) -> str:
        """The policy in one line, for DAG docs and ``airflow-mlops plan``."""
        parts = []
        if self.cooldown:
            parts.append(f"cooldown {_duration(self.cooldown)} after a retrain")
        if self.debounce:
            parts.append(f"events of one kind within {_duration(self.debounce)} are one burst")
        if self.max_per_day is not None:
            parts.append(f"at most {self.max_per_day} retrain(s) in 24 hours")
        if self.min_new_rows:
            parts.append(f"new data retrains after {self.min_new_rows} new rows")
        if self.require_estimated_drop:
            parts.append("drift retrains only with an estimated performance drop")
        parts.append("the same evidence never trains twice" if self.dedupe else "no dedupe of evidence")
        if self.force == "approval":
            parts.append("a held-back run asks a person whether to retrain anyway")
        return "; ".join(parts)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


def event_payload(extra: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """An event's body: an asset watcher's payload sits under ``extra["payload"]``."""
    if not extra:
        return {}
    payload = extra.get("payload")
    return payload if isinstance(payload, Mapping) else extra


@dataclass(frozen=True)
class Trigger:
    """One triggering asset event as the gate sees it. ``rows``: new rows it brings (new data)."""

    asset: str
    kind: str
    timestamp: dt.datetime
    extra: Mapping[str, Any] = field(default_factory=dict)
    rows: int | None = None

    @property
    def event_id(self) -> str:
        """A stable id of the event: its asset, time and extra (Airflow gives tasks no event id)."""
        return digest([self.asset, iso(self.timestamp), dict(self.extra)])


def trigger_kind(pipeline: str, asset_uri: str) -> str:
    """``drift`` / ``new_data`` for the pipeline's own assets, ``asset`` for any other."""
    for kind in (DRIFT, NEW_DATA):
        if asset_uri == f"x-mlops://{pipeline}/{kind}":
            return kind
    return ASSET


def evidence_key(model: str, trigger: Trigger) -> str:
    """What the event is evidence of, so the same evidence never trains twice (see the module
    docstring): ``<model>/<kind>/<what>``."""
    payload = event_payload(trigger.extra)
    if trigger.kind == DRIFT:
        window = payload.get("window")
        if isinstance(window, str) and window:
            refs = [r for r in payload.get("data_refs") or [] if isinstance(r, Mapping)]
            sha = next((r.get("sha256") for r in refs if r.get("uri") == window and r.get("sha256")), None)
            return f"{model}/drift/window-sha256:{sha}" if sha else f"{model}/drift/window:{window}"
    elif trigger.kind == NEW_DATA:
        batch = payload.get("batch_id")
        if isinstance(batch, str) and batch:
            return f"{model}/new_data/batch:{batch}"
        data = payload.get("data")
        if isinstance(data, list) and data:
            return f"{model}/new_data/data-sha256:{digest(sorted(map(str, data)))}"
    else:
        return f"{model}/asset:{trigger.asset}/extra-sha256:{digest(dict(payload))}"
    return f"{model}/{trigger.kind}/extra-sha256:{digest(dict(payload))}"


def estimated_drop(extra: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The drift event's ``estimated_performance`` and, when it shows no drop, why (read
    defensively: anything missing or malformed is a reason to suppress)."""
    estimate = event_payload(extra).get("estimated_performance")
    if not isinstance(estimate, Mapping):
        return None, (
            "the drift event carries no estimated_performance (require_estimated_drop admits drift "
            "only when the monitor estimated a performance drop)"
        )
    shown = {k: estimate.get(k) for k in ("metric", "reference", "estimate", "lower", "upper", "drop")}
    drop = estimate.get("drop")
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not math.isfinite(drop):
        return shown, f"estimated_performance has no finite drop (got {drop!r})"
    dropped = estimate.get("dropped")
    if isinstance(dropped, bool):  # the monitor judged the drop against its max_drop
        shown["dropped"], shown["max_drop"] = dropped, estimate.get("max_drop")
        if not dropped:
            return shown, (
                f"estimated {estimate.get('metric', 'performance')} drop {drop:g} is within the "
                f"monitor's max_drop {estimate.get('max_drop')!r} (dropped: false)"
            )
        return shown, None
    if drop <= 0:
        return shown, (
            f"estimated {estimate.get('metric', 'performance')} drop {drop:g} is not a drop "
            f"(estimate {estimate.get('estimate')!r} vs reference {estimate.get('reference')!r})"
        )
    return shown, None


@dataclass(frozen=True)
class EventDecision:
    """One event's outcome: ``code`` is ``admitted`` or one of :data:`SUPPRESS_CODES`."""

    event_id: str
    asset: str
    kind: str
    timestamp: str
    key: str
    admitted: bool
    code: str
    reason: str
    rows: int | None = None
    estimate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "asset": self.asset,
            "kind": self.kind,
            "timestamp": self.timestamp,
            "key": self.key,
            "admitted": self.admitted,
            "code": self.code,
            "reason": self.reason,
            "rows": self.rows,
            "estimate": self.estimate,
        }


@dataclass(frozen=True)
class RunDecision:
    """The gate's decision on one training run: ``trigger`` is the kind of its first admitted
    event, ``schedule`` or ``manual`` (or the first event's kind when nothing was admitted)."""

    run_id: str
    run_type: str
    trigger: str
    admitted: bool
    decided_at: str
    reason: str
    events: tuple[EventDecision, ...] = ()
    forced_by: str | None = None

    @property
    def suppressed(self) -> list[EventDecision]:
        return [e for e in self.events if not e.admitted]

    def counts(self) -> dict[str, int]:
        """How many events each outcome code has (``admitted`` and the suppress codes)."""
        out: dict[str, int] = {}
        for event in self.events:
            out[event.code] = out.get(event.code, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_type": self.run_type,
            "trigger": self.trigger,
            "admitted": self.admitted,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "forced_by": self.forced_by,
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunDecision:
        return cls(
            run_id=str(data["run_id"]),
            run_type=str(data["run_type"]),
            trigger=str(data["trigger"]),
            admitted=bool(data["admitted"]),
            decided_at=str(data["decided_at"]),
            reason=str(data["reason"]),
            forced_by=data.get("forced_by"),
            events=tuple(EventDecision(**e) for e in data.get("events", [])),
        )


def _budget(policy: RetrainPolicy, ledger: Ledger, now: dt.datetime) -> tuple[str, str] | None:
    """Why a new retrain may not start now (cooldown, then the daily maximum), or None."""
    if policy.cooldown > 0 and ledger.retrains:
        last = ledger.retrains[-1]
        until = parse_time(last["at"]) + dt.timedelta(seconds=policy.cooldown)
        if now < until:
            return "cooldown", (
                f"cooldown: the last retrain (run {last['run_id']}, {last['trigger']}) was admitted at "
                f"{last['at']}; event-started retrains wait until {iso(until)}"
            )
    if policy.max_per_day is not None:
        day_ago = now - dt.timedelta(days=1)
        recent = [r for r in ledger.retrains if parse_time(r["at"]) > day_ago]
        if len(recent) >= policy.max_per_day:
            return "max_per_day", (
                f"max_per_day: {len(recent)} retrain(s) admitted in the last 24 hours "
                f"(limit {policy.max_per_day}); the oldest counted is run {recent[0]['run_id']} at "
                f"{recent[0]['at']}"
            )
    return None


def decide(
    policy: RetrainPolicy,
    ledger: Ledger,
    *,
    model: str,
    run_id: str,
    run_type: str,
    triggers: Sequence[Trigger],
    now: dt.datetime,
) -> RunDecision:
    """The decision on one run against ``ledger`` (pure: nothing is written; see :func:`record`)."""
    if not triggers:
        kind = SCHEDULE if run_type in ("scheduled", "backfill") else MANUAL
        return RunDecision(
            run_id, run_type, kind, True, iso(now),
            f"{kind} run: admitted (it counts toward cooldown and max_per_day)",
        )  # fmt: skip
    budget = _budget(policy, ledger, now)
    pending = ledger.pending_rows
    last_admitted = {k: parse_time(v["timestamp"]) for k, v in ledger.last_admitted.items()}
    run_keys: dict[str, str] = {}
    decisions: list[EventDecision] = []
    admitted_any = False
    for trigger in sorted(triggers, key=lambda t: (t.timestamp, t.event_id)):
        key = evidence_key(model, trigger)
        code, reason, estimate = _check(
            policy, ledger, trigger, key, run_keys, last_admitted, pending, admitted_any, budget
        )
        if trigger.kind == NEW_DATA and code in COUNTED_ROWS:
            pending += trigger.rows or 0
        if code == ADMITTED:
            admitted_any = True
            run_keys[key] = trigger.event_id
            last_admitted[trigger.kind] = max(
                trigger.timestamp, last_admitted.get(trigger.kind, trigger.timestamp)
            )
            reason = reason or f"admitted: {trigger.kind} evidence {key}"
        elif code == "min_new_rows":
            reason = (
                f"min_new_rows: {pending} of {policy.min_new_rows} new rows since the last new-data "
                "retrain; this batch's rows are kept and count toward the next one"
            )
        decisions.append(
            EventDecision(
                event_id=trigger.event_id,
                asset=trigger.asset,
                kind=trigger.kind,
                timestamp=iso(trigger.timestamp),
                key=key,
                admitted=code == ADMITTED,
                code=code,
                reason=reason,
                rows=trigger.rows,
                estimate=estimate,
            )
        )
    first = next((d for d in decisions if d.admitted), decisions[0])
    suppressed = sum(not d.admitted for d in decisions)
    summary = (
        f"{len(decisions) - suppressed} of {len(decisions)} event(s) admitted; {suppressed} suppressed"
        if admitted_any
        else f"all {len(decisions)} event(s) suppressed: the rest of the run is skipped"
    )
    return RunDecision(run_id, run_type, first.kind, admitted_any, iso(now), summary, tuple(decisions))


def _check(
    policy: RetrainPolicy,
    ledger: Ledger,
    trigger: Trigger,
    key: str,
    run_keys: Mapping[str, str],
    last_admitted: Mapping[str, dt.datetime],
    pending: int,
    admitted_any: bool,
    budget: tuple[str, str] | None,
) -> tuple[str, str, dict[str, Any] | None]:
    """The first check ``trigger`` fails as ``(code, reason, estimate)``; code ``admitted`` if none
    (the ``min_new_rows`` reason is written by the caller, which knows the rows so far)."""
    earlier = ledger.events.get(trigger.event_id)
    if earlier is not None:
        return "already_decided", f"already_decided: this event was decided by run {earlier}", None
    if policy.dedupe and key in ledger.keys:
        trained = ledger.keys[key]
        return (
            "duplicate",
            f"duplicate: evidence {key} was trained on by run {trained['run_id']} at {trained['at']}",
            None,
        )
    if policy.dedupe and key in run_keys:
        return (
            "duplicate",
            f"duplicate: evidence {key} is already admitted in this run (event {run_keys[key][:12]})",
            None,
        )
    estimate = None
    if trigger.kind == DRIFT and policy.require_estimated_drop:
        estimate, why = estimated_drop(trigger.extra)
        if why is not None:
            return "no_estimated_drop", f"no_estimated_drop: {why}", estimate
    if trigger.kind == NEW_DATA and policy.min_new_rows > 0 and not admitted_any:
        if trigger.rows is None:
            return (
                "no_row_count",
                (
                    "no_row_count: the new-data event names no row count and its rows could not be "
                    f"counted, so min_new_rows ({policy.min_new_rows}) cannot be checked"
                ),
                None,
            )
        if pending + trigger.rows < policy.min_new_rows:
            return "min_new_rows", "", None
    code, reason = _after_rows(policy, trigger, last_admitted, admitted_any, budget)
    return code, reason, estimate


def _after_rows(
    policy: RetrainPolicy,
    trigger: Trigger,
    last_admitted: Mapping[str, dt.datetime],
    admitted_any: bool,
    budget: tuple[str, str] | None,
) -> tuple[str, str]:
    """Debounce, then the run's budget (cooldown, daily maximum)."""
    last = last_admitted.get(trigger.kind)
    if policy.debounce > 0 and last is not None:
        since = (trigger.timestamp - last).total_seconds()
        if 0 <= since < policy.debounce:
            return "debounced", (
                f"debounced: {since:.3f}s after the {trigger.kind} event admitted at {iso(last)} "
                f"(debounce {policy.debounce:g}s): part of that burst, which retrains once"
            )
    if budget is not None and not admitted_any:
        return budget
    return ADMITTED, ""


def record(ledger: Ledger, decision: RunDecision) -> Ledger:
    """The ledger with ``decision`` recorded (a new object; see :mod:`.ledger`)."""
    out = ledger.pruned(parse_time(decision.decided_at))
    out.runs[decision.run_id] = decision.to_dict()
    for event in decision.events:
        out.events[event.event_id] = decision.run_id
    if not decision.admitted:
        out.pending_rows += _new_rows(decision.events)
        return out
    out.retrains.append({"run_id": decision.run_id, "at": decision.decided_at, "trigger": decision.trigger})
    admitted_new_data = False
    for event in decision.events:
        if not event.admitted:
            continue
        out.keys[event.key] = {"run_id": decision.run_id, "at": decision.decided_at}
        previous = out.last_admitted.get(event.kind)
        if previous is None or parse_time(previous["timestamp"]) < parse_time(event.timestamp):
            out.last_admitted[event.kind] = {"timestamp": event.timestamp, "run_id": decision.run_id}
        admitted_new_data |= event.kind == NEW_DATA
    out.pending_rows = 0 if admitted_new_data else out.pending_rows + _new_rows(decision.events)
    return out


def _new_rows(events: Sequence[EventDecision]) -> int:
    """Rows of the new-data events that count toward ``min_new_rows`` (not duplicates or repeats)."""
    return sum(e.rows or 0 for e in events if e.kind == NEW_DATA and e.code in COUNTED_ROWS)


def gate_run(
    store: LedgerStore,
    policy: RetrainPolicy,
    *,
    pipeline: str,
    model: str,
    run_id: str,
    run_type: str,
    triggers: Sequence[Trigger],
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    attempts: int = CAS_ATTEMPTS,
) -> tuple[RunDecision, bool]:
    """Decide on a run once, durably: ``(decision, replayed)``.

    A run already in the ledger (a retried gate task) gets its recorded decision back
    (``replayed``). Otherwise the decision is made against the ledger as read and written with a
    compare-and-swap; when another gate wrote in between, the ledger is read again and the run
    decided again against it (so two gates cannot both pass a cooldown).

    :raises RetrainLedgerError: the store failed, or the ledger kept changing for ``attempts``.
    """
    for attempt in range(attempts):
        ledger, version = store.load()
        if ledger is None:
            ledger = Ledger(pipeline=pipeline)
        elif ledger.pipeline != pipeline:
            from airflow_mlops.exceptions import RetrainLedgerCorruptError

            raise RetrainLedgerCorruptError(
                f"{store.uri} is the retrain ledger of pipeline {ledger.pipeline!r}, not {pipeline!r}; "
                "two pipelines share an artifact root and name -- give each its own"
            )
        if run_id in ledger.runs:
            return RunDecision.from_dict(ledger.runs[run_id]), True
        decision = decide(
            policy, ledger, model=model, run_id=run_id, run_type=run_type, triggers=triggers, now=clock()
        )
        try:
            store.save(record(ledger, decision), expected_version=version)
        except LedgerConflict:
            log.info(
                "The retrain ledger changed while deciding run %s (attempt %s); deciding again",
                run_id,
                attempt + 1,
            )
            time.sleep(random.uniform(0.01, 0.05 * (attempt + 1)))
            continue
        return decision, False
    raise RetrainLedgerError(
        f"the retrain ledger {store.uri} changed {attempts} times while run {run_id} was being decided; "
        "more gates are deciding at once than it can serialize -- the task retries"
    )


#: Suppressions a human approval cannot override: the same evidence never trains twice.
NOT_FORCEABLE = frozenset({"already_decided", "duplicate"})


def forceable(decision: RunDecision) -> bool:
    """Whether a person may force ``decision``'s run: nothing was admitted, and some event was
    held back by the policy's limits rather than being evidence already trained on."""
    return not decision.admitted and any(e.code not in NOT_FORCEABLE for e in decision.events)


def record_forced(ledger: Ledger, run_id: str, approver: str, now: dt.datetime) -> tuple[Ledger, RunDecision]:
    """The ledger with run ``run_id`` forced by ``approver`` (an approval recorded by Airflow's
    human-in-the-loop task): it counts as a retrain from ``now``, and the evidence of its forceable
    events counts as trained. Idempotent: a run already forced is returned as it is."""
    if run_id not in ledger.runs:
        from airflow_mlops.exceptions import RetrainLedgerCorruptError

        raise RetrainLedgerCorruptError(
            f"run {run_id} has no decision in the retrain ledger, so there is nothing to force; the "
            "ledger was replaced or pruned since its gate ran -- clear the run's retrain.gate task"
        )
    decision = RunDecision.from_dict(ledger.runs[run_id])
    if decision.forced_by is not None or decision.admitted:
        return ledger, decision
    if not forceable(decision):
        from airflow_mlops.exceptions import RetrainLedgerCorruptError

        raise RetrainLedgerCorruptError(
            f"run {run_id} holds only evidence already trained on; it cannot be forced"
        )
    forced = replace(
        decision,
        admitted=True,
        forced_by=approver,
        reason=f"{decision.reason}; forced: approved by {approver}",
    )
    out = ledger.pruned(now)
    out.runs[run_id] = forced.to_dict()
    out.retrains.append({"run_id": run_id, "at": iso(now), "trigger": f"forced {decision.trigger}"})
    for event in decision.events:
        if event.code in NOT_FORCEABLE:
            continue
        out.keys[event.key] = {"run_id": run_id, "at": iso(now)}
        previous = out.last_admitted.get(event.kind)
        if previous is None or parse_time(previous["timestamp"]) < parse_time(event.timestamp):
            out.last_admitted[event.kind] = {"timestamp": event.timestamp, "run_id": run_id}
        if event.kind == NEW_DATA:
            out.pending_rows = 0
    return out, forced


def force_run(
    store: LedgerStore,
    *,
    run_id: str,
    approver: str,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    attempts: int = CAS_ATTEMPTS,
) -> RunDecision:
    """Record durably that ``approver`` forced run ``run_id`` (see :func:`record_forced`)."""
    for _ in range(attempts):
        ledger, version = store.load()
        if ledger is None:
            from airflow_mlops.exceptions import RetrainLedgerCorruptError

            raise RetrainLedgerCorruptError(f"{store.uri} does not exist; run {run_id} cannot be forced")
        updated, forced = record_forced(ledger, run_id, approver, clock())
        if updated is ledger:
            return forced
        try:
            store.save(updated, expected_version=version)
        except LedgerConflict:
            time.sleep(random.uniform(0.01, 0.1))
            continue
        return forced
    raise RetrainLedgerError(
        f"the retrain ledger {store.uri} kept changing while run {run_id} was being forced"
    )


#: The training DAG's retrain gate and its human approval (``schedule.policy``: the factory puts
#: them first); the stages after them train on the events these admitted, nothing else.
RETRAIN_GATE_TASK_ID = "retrain.gate"
RETRAIN_FORCE_TASK_ID = "retrain.force"


class AdmittedEvents:
    """The admitted part of a run's triggering asset events, read like Airflow's accessor
    (``items()``: each asset and its events; ``values()``)."""

    def __init__(self, pairs: Sequence[tuple[Any, list[Any]]]) -> None:
        self._pairs = list(pairs)

    def items(self) -> list[tuple[Any, list[Any]]]:
        return list(self._pairs)

    def values(self) -> list[list[Any]]:
        return [events for _, events in self._pairs]

    def __iter__(self) -> Any:
        return iter([asset for asset, _ in self._pairs])

    def __len__(self) -> int:
        return len(self._pairs)


def events_to_train_on(events: Any, decision: Any, *, approved: bool) -> AdmittedEvents:
    """The triggering asset ``events`` (Airflow's accessor: asset -> events) that the gate's XCom
    ``decision`` admitted (its ``admitted_events`` ids); with ``approved`` (a person forced the
    run through ``retrain.force``) also its ``forceable_events``: the events the policy's limits
    held back, never evidence already trained on.

    :raises DataError: ``decision`` is not a gate's decision (fail closed: a held-back event is
        never trained on by accident).
    """
    if not isinstance(decision, Mapping) or not isinstance(decision.get("admitted_events"), list):
        from airflow_mlops.exceptions import DataError

        raise DataError(
            f"this run has a retrain gate ({RETRAIN_GATE_TASK_ID}) but its decision cannot be read "
            "from its XCom, so which triggering events it admitted is unknown; clear the gate task"
        )
    allowed = set(decision["admitted_events"])
    if approved and not decision.get("admitted"):
        allowed |= set(decision.get("forceable_events") or [])
    kept = []
    for asset, asset_events in events.items():
        mine = [
            e
            for e in asset_events
            if Trigger(asset.uri, "", e.timestamp, dict(e.extra or {})).event_id in allowed
        ]
        if mine:
            kept.append((asset, mine))
    return AdmittedEvents(kept)
