"""The spec language's shared parts: durations, dates, the strict base model, task settings,
notifications, deadlines, schedules and steps (see :mod:`airflow_mlops.spec.models`)."""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from airflow_mlops.metrics import METRIC_NAMES

API_VERSION = "mlops/v1"

POISONING_CHECKS = ("duplicates", "label_flips", "outliers", "class_balance")
METRICS = METRIC_NAMES  # the vocabulary of airflow_mlops/metrics.py
SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


#: The longest duration a spec may give (timeouts, delays, intervals); past it is a typo.
MAX_DURATION = dt.timedelta(days=3650)
_DURATION_RANGE = f"between 0 and {MAX_DURATION.days} days (10 years)"


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``, ``"1w"`` or a number of seconds -> timedelta.

    A duration lies between 0 and :data:`MAX_DURATION`; anything else (negative, infinite, or
    too big for Python's ``timedelta``) is a validation error naming that range.
    """
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration such as '5m', '1h' or a number of seconds")
    elif isinstance(value, (int, float)):
        seconds = float(value) if abs(value) < 1e300 else math.copysign(math.inf, value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("a duration such as '30s', '5m', '1h', '2d' or a number of seconds")
    if not 0 <= seconds <= MAX_DURATION.total_seconds():  # also NaN
        raise ValueError(f"a duration must be {_DURATION_RANGE}, e.g. '30m', '2h', '7d'")
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=seconds)


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]

_DATE_HINT = "write a date as YYYY-MM-DD, e.g. 2026-01-31"


#: The dates a spec may give: a schedule's intervals are computed past them, and Python's
#: datetimes end at 9999-12-31, so the range leaves room; before 1900 is a typo.
DATE_RANGE = (dt.date(1900, 1, 1), dt.date(2999, 12, 31))


def parse_date(value: Any) -> Any:
    date = _parse_date(value)
    if not DATE_RANGE[0] <= date <= DATE_RANGE[1]:
        raise ValueError(f"a date must lie between {DATE_RANGE[0]} and {DATE_RANGE[1]}; {_DATE_HINT}")
    return date


def _parse_date(value: Any) -> dt.date:
    """A calendar date: ``2026-01-31`` (YAML reads it as a date), the same quoted, or a midnight datetime.

    pydantic alone reads a number as a Unix timestamp and reports a bad string with a parser's
    words ("input is too short"); this names the format instead.
    """
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0) or (value.utcoffset() or dt.timedelta(0)) != dt.timedelta(0):
            raise ValueError(
                f"a date has no time of day (data intervals start at midnight UTC); {_DATE_HINT}"
            )
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError as exc:  # e.g. month 13, 30 February
                raise ValueError(f"{text!r} is not a valid date ({exc}); {_DATE_HINT}") from None
    raise ValueError(f"not a date; {_DATE_HINT}")


Date = Annotated[dt.date, BeforeValidator(parse_date)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*[.:][A-Za-z_][A-Za-z0-9_]*$"
Entrypoint = Annotated[str, Field(pattern=ENTRYPOINT_PATTERN)]
# The lifecycle's stages a step may run after, and the task each one names in the training DAG.
STAGE_TASK_IDS: dict[str, str] = {
    "validate": "data.validate",
    "screen": "data.screen",
    "train": "training.package",
    "scan": "gates.scan",
    "evaluate": "gates.evaluate",
    "sign": "release.sign",
    "register": "release.register",
    "promote": "release.promote",
}
STAGES = tuple(STAGE_TASK_IDS)
Stage = Literal["validate", "screen", "train", "scan", "evaluate", "sign", "register", "promote"]
assert get_args(Stage) == STAGES  # the type spells the same stages, in the same order


class NotifierSpec(StrictModel):
    """An Airflow notifier (any ``BaseNotifier`` subclass) and its arguments."""

    notifier: Entrypoint = Field(
        description="Import path of the notifier class, e.g. "
        "`airflow.providers.smtp.notifications.smtp.SmtpNotifier` (or `module:Class`)."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the notifier.")


class Notifications(StrictModel):
    """Notifiers called on task events (Airflow's ``on_*_callback``)."""

    on_failure: list[NotifierSpec] = Field(default_factory=list)
    on_retry: list[NotifierSpec] = Field(default_factory=list)
    on_success: list[NotifierSpec] = Field(default_factory=list)


class TaskSettings(StrictModel):
    """Airflow task settings. Unset keys inherit (see "Precedence of settings" above)."""

    retries: int | None = Field(
        None, ge=0, le=50, description="Times Airflow retries a failed task (built-in: 2)."
    )
    retry_delay: Duration | None = Field(None, description="Wait between retries, e.g. '5m' (built-in: 5m).")
    retry_exponential_backoff: bool | None = Field(None, description="Double the wait after each retry.")
    max_retry_delay: Duration | None = Field(None, description="Cap for exponential backoff.")
    execution_timeout: Duration | None = Field(
        None, description="A task running longer than this fails, e.g. '1h' (built-in: 2h)."
    )
    pool: str | None = Field(None, min_length=1, description="Airflow pool the task runs in.")
    pool_slots: int | None = Field(None, ge=1, description="Pool slots the task takes.")
    queue: str | None = Field(None, min_length=1, description="Executor queue (e.g. a GPU worker queue).")
    priority_weight: int | None = Field(None, description="Airflow priority weight.")
    notify: Notifications | None = Field(None, description="Notifiers called on failure, retry or success.")


class Defaults(TaskSettings):
    """Task settings for every stage of this spec (over the folder's defaults file)."""


class DeadlineConfig(StrictModel):
    """A DAG-run deadline alert (Airflow 3 ``DeadlineAlert``): a callback when a run is late."""

    after: Duration = Field(description="How long after the reference the run must be finished, e.g. '2h'.")
    reference: Literal["queued_at", "logical_date"] = Field(
        "queued_at", description="`queued_at`: when the run was queued; `logical_date`: its logical date."
    )
    callback: Entrypoint = Field(
        description="Import path of the callback (e.g. a notifier class), called with the run's context."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the callback.")
    mode: Literal["async", "sync"] = Field(
        "async",
        description="`async`: runs in the triggerer (awaitable callbacks, notifiers); `sync`: on an executor.",
    )


#: Asset events one schedule may list.
MAX_SCHEDULE_EVENTS = 32


class RetrainPolicyConfig(StrictModel):
    """Guardrails on the retrains that asset events start (`schedule.policy`).

    The first task of the training DAG, `retrain.gate`, decides each triggering event once:
    admitted, or suppressed with its reason (recorded in the retrain ledger beside the artifacts,
    in the task log, in the task's XCom and in the Models view). A run with no admitted event is
    skipped after the gate. Runs started by the time schedule or by hand are admitted and count
    as retrains for `cooldown` and `max_per_day`.
    """

    cooldown: Duration = Field(
        dt.timedelta(0),
        description="After a retrain is admitted (any trigger: event, schedule or manual), event-started "
        "runs within this time are suppressed (reason `cooldown`), e.g. '6h'. 0: no cooldown.",
    )
    debounce: Duration = Field(
        dt.timedelta(0),
        description="Events of one kind (drift, new_data) arriving within this time after an admitted "
        "event of that kind belong to its burst and are suppressed (reason `debounced`): a burst "
        "retrains once, e.g. '10m'. Measured on the events' times. 0: no debounce.",
    )
    max_per_day: int | None = Field(
        None,
        ge=0,
        description="At most this many admitted retrains in any 24 hours (rolling, schedule and manual "
        "runs included); event-started runs beyond it are suppressed (reason `max_per_day`). "
        "null: no limit; 0: events never retrain.",
    )
    min_new_rows: int = Field(
        0,
        ge=0,
        description="A new_data event retrains only once at least this many new rows arrived since the "
        "last admitted new-data retrain; the rows of suppressed batches add up (reason "
        "`min_new_rows`). Rows come from the event's `rows`, else are counted in its files; an "
        "event whose rows cannot be counted is suppressed (reason `no_row_count`). 0: any batch.",
    )
    dedupe: bool = Field(
        True,
        description="The same evidence never trains twice: each admitted event's key (model, trigger "
        "kind, and the drift window's sha256 or URI, or the new-data batch id) is kept for a year; "
        "an event with a known key is suppressed (reason `duplicate`).",
    )
    require_estimated_drop: bool = Field(
        False,
        description="A drift event retrains only when its extra carries `estimated_performance` with a "
        "positive `drop` (the monitor's label-free performance estimate); drift without one is "
        "suppressed (reason `no_estimated_drop`).",
    )
    force: Literal["never", "approval"] = Field(
        "never",
        description="`approval`: a run whose events were all suppressed by a limit (not as evidence "
        "already trained on) asks a person, through Airflow's human-in-the-loop approval "
        "(`retrain.force`), whether to retrain anyway; an approval is recorded in the ledger with "
        "the approver and counts as a retrain; a rejection, or no answer within `force_timeout`, "
        "skips the run. `never`: such runs are skipped. A `force` key in an event's extra or a "
        "run's conf is never honoured.",
    )
    force_timeout: Duration = Field(
        dt.timedelta(hours=1),
        description="How long `retrain.force` waits for an answer before it counts as a rejection.",
    )


class ScheduleConfig(StrictModel):
    """A schedule by time, by asset events, or both (either one starts a run)."""

    time: str | None = Field(
        None, description="Cron expression, preset (`@daily`) or interval (`6h`); null for events only."
    )
    events: list[str] = Field(
        default_factory=list,
        # Airflow hashes the whole schedule each time a task is wired into the DAG: a thousand
        # assets take the DAG processor seconds per parse.
        max_length=MAX_SCHEDULE_EVENTS,
        description="Asset events that start a run: `drift` and `new_data` (this pipeline's own "
        f"assets, `x-mlops://<pipeline>/drift`...), or any asset URI (`s3://bucket/key`); at most "
        f"{MAX_SCHEDULE_EVENTS}.",
    )
    policy: RetrainPolicyConfig | None = Field(
        None,
        description="Retrain guardrails on the runs `events` start: cooldown, debounce, a daily "
        "maximum, minimum new rows, dedupe of evidence, an estimated performance drop. Absent: "
        "every event run trains.",
    )

    @field_validator("time")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        return None if value is None else check_time_schedule(value)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        """Each entry is a pipeline event (``drift``, ``new_data``) or an asset URI with a scheme.

        A bare word that is neither would silently become an asset nothing ever updates.
        Reported at the entry itself (the error's location names its index).
        """
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        errors: list[InitErrorDetails] = []
        for index, event in enumerate(value):
            why = event_problem(event)
            if why is not None:
                error = PydanticCustomError("schedule_event", "{why}", {"why": why})
                errors.append(InitErrorDetails(type=error, loc=(index,), input=event))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return value

    @model_validator(mode="after")
    def _something_to_run_on(self) -> ScheduleConfig:
        if self.time is None and not self.events:
            raise ValueError("give `time`, `events` or both (or `schedule: null` for manual runs only)")
        if self.events and self.time in ("@once", "@continuous"):
            raise ValueError(
                f"`time: {self.time}` cannot be combined with `events`; use a cron, preset or interval"
            )
        policy = self.policy
        if policy is not None:
            if not self.events:
                raise ValueError(
                    "`policy` guards the runs that `events` start; give `events` or drop `policy`"
                )
            if policy.require_estimated_drop and "drift" not in self.events:
                raise ValueError(
                    "`policy.require_estimated_drop` applies to drift events; add `drift` to `events`"
                )
            if policy.min_new_rows and "new_data" not in self.events:
                raise ValueError(
                    "`policy.min_new_rows` applies to new_data events; add `new_data` to `events`"
                )
        return self


# The events a pipeline updates itself (x-mlops://<pipeline>/<event>); any other entry of
# `schedule.events` is an asset URI.
PIPELINE_EVENTS = ("drift", "new_data")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://\S")


def event_problem(event: str) -> str | None:
    """Why ``event`` cannot be a ``schedule.events`` entry, or None when it can."""
    if event in PIPELINE_EVENTS:
        return None
    match = _URI_SCHEME.match(event)
    if match is None:
        close = difflib.get_close_matches(event.lower(), PIPELINE_EVENTS, n=1, cutoff=0.6)
        if close:
            return (
                f"unknown event {event!r}; did you mean {close[0]!r}? (an event is "
                f"{' or '.join(PIPELINE_EVENTS)}, or an asset URI with a scheme such as s3://bucket/key)"
            )
        return (
            f"{event!r} is neither a pipeline event ({', '.join(PIPELINE_EVENTS)}) nor an asset URI; "
            "an asset needs a scheme, e.g. s3://bucket/incoming/ or x-team://features/ready"
        )
    if match.group(1).lower() == "airflow":
        return "the asset URI scheme 'airflow' is reserved by Airflow; use another, e.g. x-team://..."
    if not event.isascii():
        return "an asset URI must be ASCII only (Airflow rejects others)"
    return None


def check_time_schedule(value: str) -> str:
    """Accept a preset, a 5-field cron or an interval such as ``6h``; raise ``ValueError`` otherwise."""
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ValueError(f"unknown schedule preset {value!r}")
        return value
    if _DURATION.match(value):
        if parse_duration(value) <= dt.timedelta(0):
            raise ValueError("a schedule interval must be positive")
        return value
    from airflow_mlops.spec.cron import validate_cron

    validate_cron(value)
    return value


class StepSpec(StrictModel):
    """A task of your own, added to the lifecycle DAG (any Airflow operator)."""

    id: Identifier = Field(description="Task id; unique in the DAG.")
    operator: Entrypoint = Field(
        description="Import path of the operator class, e.g. "
        "`airflow.providers.standard.operators.bash.BashOperator`."
    )
    after: list[str] = Field(
        default_factory=list,
        description="What must finish first: stage names (`promote`), task ids (`release.promote`) "
        "or other steps' ids.",
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the operator.")
    settings: TaskSettings | None = Field(None, description="Task settings for this step.")
