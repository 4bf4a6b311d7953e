from __future__ import annotations

import json

import pytest

from airflow_mlops.spec.cron import validate_cron
from airflow_mlops.spec.schema import SCHEMA_PATH, json_schema, schema_text


def test_committed_schema_is_generated_from_the_models() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "run: python -c 'from airflow_mlops.spec.schema import write_schema; write_schema()'"
    )


def test_schema_rejects_unknown_keys_and_requires_identity() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert {"apiVersion", "pipeline", "data", "registry"} <= set(schema["required"])
    assert json.loads(json.dumps(schema))  # serialisable


@pytest.mark.parametrize(
    "expr",
    [
        "0 3 * * *",
        "*/15 * * * 1-5",
        "0 0 1 jan,jul *",
        "5,10 4 * * sun",
        "0 9 * * MON-FRI",
        "0 0 * * fri-mon",  # a range that wraps round the week, as croniter (and Airflow) run it
        "0 0 L * *",
        "0 0 * * 1#2",
    ],
)
def test_valid_cron(expr: str) -> None:
    validate_cron(expr)


@pytest.mark.parametrize("expr", ["0 3 * * *", "0 0 * * fri-mon", "0 0 L * *", "61 * * * *", "0 0 30 2 *"])
def test_cron_accepts_what_airflow_schedules(expr: str) -> None:
    """The spec accepts exactly the expressions Airflow's cron timetable can compute a run for."""
    from airflow.exceptions import AirflowTimetableInvalid
    from airflow.timetables.interval import CronDataIntervalTimetable
    from croniter import CroniterError, croniter

    try:
        CronDataIntervalTimetable(expr, "UTC").validate()
        croniter(expr).get_next()  # a run can be computed
        airflow_runs_it = True
    except (AirflowTimetableInvalid, CroniterError):
        airflow_runs_it = False
    try:
        validate_cron(expr)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == airflow_runs_it


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("* * *", "5 fields"),
        ("0 24 * * *", "hour"),
        ("0 0 32 * *", "day of month"),
        ("*/0 * * * *", "minute: '\\*/0' .*step"),
        ("0 0 * foo *", "month: 'foo'"),
        ("1,2,61 * * * *", "minute: '61' .*outside 0-59"),
        ("0 0 * * 8", "day of week: '8' .*outside 0-7"),
        ("H * * * *", "hashed"),
        ("0 0 30 2 *", "never matches"),
    ],
)
def test_invalid_cron(expr: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        validate_cron(expr)


def test_docs_reference_is_generated_from_the_models() -> None:
    from airflow_mlops.spec.reference import DOC_PATH, updated_document

    text = DOC_PATH.read_text()
    assert text == updated_document(text), "run: python -m airflow_mlops.spec.reference"
    for key in ("max_suspect_fraction", "holdout_fraction", "compare_to_champion", "model_name"):
        assert f"`{key}`" in text
