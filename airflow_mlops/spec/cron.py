"""Cron schedules, validated by ``croniter`` (what Airflow's cron timetables run on), with a
message that names the bad field.

croniter decides what is valid, so a spec accepts exactly the expressions Airflow schedules (names
such as ``MON-FRI``, ``L``, ``W``, ``#``, wrapping ranges such as ``fri-mon``). Its own messages
name the whole expression ("[0 24 * * *] is not acceptable, out of range"); the bad field and
item are found here by asking croniter about each one alone. croniter is imported only when a
cron string is checked (the DAG processor has it loaded already: Airflow's timetables use it).
"""

from __future__ import annotations

import datetime as dt

# name, allowed numbers, names (for the message)
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("minute", "0-59", ""),
    ("hour", "0-23", ""),
    ("day of month", "1-31", "L (last), W"),
    ("month", "1-12", "jan-dec"),
    ("day of week", "0-7", "sun-sat; 0 and 7 are Sunday"),
)
_SYNTAX = "`*`, lists `a,b`, ranges `a-b` and steps `*/n`"
# A date every valid expression matches within a few years of (croniter gives up on
# expressions that never match, such as 30 February).
_PROBE_START = dt.datetime(2026, 1, 1)


def validate_cron(expr: str) -> None:
    """Raise ``ValueError`` naming the bad field unless ``expr`` is a valid 5-field cron."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday), this one has {len(parts)}"
        )
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        cron = croniter(expr, _PROBE_START)
    except CroniterError as exc:
        raise ValueError(_explain(parts, exc)) from None
    try:
        cron.get_next(dt.datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"{expr!r} never matches a date (e.g. day 30 or 31 of a month that has none)"
        ) from None


def _explain(parts: list[str], exc: Exception) -> str:
    """The first field (and item of it) croniter refuses on its own, in words."""
    from croniter import CroniterError, croniter

    def refused(index: int, value: str) -> Exception | None:
        probe = ["*"] * 5
        probe[index] = value
        try:
            croniter(" ".join(probe))
        except CroniterError as error:
            return error
        return None

    for index, part in enumerate(parts):
        error = refused(index, part)
        if error is None:
            continue
        name, numbers, names = _FIELDS[index]
        item = next((i for i in part.split(",") if refused(index, i) is not None), part)
        text = str(error).lower()
        if "step" in text:
            why = "a step (`/n`) must be a positive number"
        elif "range" in text or "bands" in text:
            why = f"outside {numbers}"
        elif "hash" in text:
            why = "`H` (hashed) values are not supported by Airflow"
        elif "question mark" in text:
            why = "`?` is allowed only in the day-of-month and day-of-week fields"
        else:
            why = "not a number" + (f" or a name ({names})" if names else "")
        allowed = numbers + (f" or {names}" if names else "")
        return f"{name}: {item!r} is not valid here ({why}); allowed: {allowed}, with {_SYNTAX}"
    return f"not a valid cron expression: {exc}"
