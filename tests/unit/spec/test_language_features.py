"""Schedules, task settings and their precedence, notifiers, deadlines, steps, allowed roots."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.factory import build_dags
from airflow_mlops.factory.builder import build_schedule
from airflow_mlops.spec.loader import load_spec, load_spec_text

BASE = """\
apiVersion: mlops/v1
pipeline: churn
data:
  source: data/{{ ds }}.parquet
  target: churned
registry:
  model_name: churn-model
"""
EMPTY_OP = "airflow.providers.standard.operators.empty.EmptyOperator"


def spec_of(extra: str, **kwargs):
    return load_spec_text(BASE + textwrap.dedent(extra), "spec.yaml", **kwargs)


def issues_of(extra: str, **kwargs):
    with pytest.raises(SpecError) as info:
        spec_of(extra, **kwargs)
    return info.value.issues


def train_dag(spec):
    return build_dags(spec)["churn__train"]


# --- schedules --------------------------------------------------------------------------------


def _core(timetable):
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(timetable)


def test_interval_schedule_is_a_data_interval_timetable() -> None:
    from airflow.sdk import DeltaDataIntervalTimetable

    assert build_schedule(spec_of("schedule: 6h\n")) == DeltaDataIntervalTimetable(dt.timedelta(hours=6))


@pytest.mark.parametrize(("schedule", "end"), [("'@daily'", "2026-01-02"), ("'0 0 * * 1'", "2026-01-12")])
def test_time_schedules_cover_a_closed_data_interval(schedule: str, end: str) -> None:
    """The run for a day trains on that day's partition, once the day is over ({{ ds }} = that day)."""
    from airflow.sdk import CronDataIntervalTimetable

    timetable = build_schedule(spec_of(f"schedule: {schedule}\n"))
    assert isinstance(timetable, CronDataIntervalTimetable)
    start = dt.datetime(2026, 1, 5 if "1'" in schedule else 1, tzinfo=dt.UTC)
    interval = _core(timetable).infer_manual_data_interval(
        run_after=dt.datetime.fromisoformat(end + "T00:00:00+00:00")
    )
    assert (interval.start, interval.end) == (start, dt.datetime.fromisoformat(end + "T00:00:00+00:00"))


def test_once_is_passed_through_and_cannot_be_combined_with_events() -> None:
    assert build_schedule(spec_of("schedule: '@once'\n")) == "@once"
    issues = issues_of("schedule: {time: '@once', events: [drift]}\n")
    assert "cannot be combined with `events`" in issues[0].message


def test_event_schedule_uses_the_pipelines_assets() -> None:
    schedule = build_schedule(spec_of("schedule: {events: [drift]}\n"))
    assert schedule.uri == "x-mlops://churn/drift"


def test_time_or_events_schedule() -> None:
    from airflow.sdk import AssetOrTimeSchedule

    dag = train_dag(
        spec_of("schedule: {time: '0 3 * * *', events: [drift, new_data, 's3://bucket/incoming/']}\n")
    )
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert type(dag.timetable.timetable).__name__ == "CronDataIntervalTimetable"
    uris = {a.uri for a in dag.timetable.asset_condition.objects}
    assert uris == {"x-mlops://churn/drift", "x-mlops://churn/new_data", "s3://bucket/incoming"}


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        ("'@every_day'", "unknown schedule preset"),
        ("'0 0 * *'", "5 fields"),
        ("{events: []}", "give `time`, `events` or both"),
        ("{time: 0s, events: [drift]}", "positive"),
    ],
)
def test_bad_schedules(schedule: str, needle: str) -> None:
    issues = issues_of(f"schedule: {schedule}\n")
    assert needle in issues[0].message
    assert issues[0].line == 8


# --- task settings ----------------------------------------------------------------------------


def test_stage_settings_win_over_defaults_and_builtins() -> None:
    dag = train_dag(
        spec_of("""\
        defaults: {retries: 4, queue: cpu, pool: mlops}
        stages:
          train: {queue: gpu, execution_timeout: 3h, pool_slots: 2}
        """)
    )
    train, validate = dag.get_task("training.fit"), dag.get_task("data.validate")
    assert (train.queue, train.pool, train.pool_slots, train.retries) == ("gpu", "mlops", 2, 4)
    assert train.execution_timeout == dt.timedelta(hours=3)
    assert (validate.queue, validate.execution_timeout) == ("cpu", dt.timedelta(hours=2))  # built-in timeout
    assert validate.retry_delay == dt.timedelta(minutes=5)


def test_folder_defaults_sit_under_the_spec(tmp_path: Path) -> None:
    (tmp_path / "mlops-defaults.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: mlops/v1
        kind: Defaults
        owner: platform
        tags: [team-a]
        defaults: {retries: 7, queue: shared}
        stages: {promote: {retries: 0}}
        """)
    )
    (tmp_path / "sub").mkdir()
    spec_path = tmp_path / "sub" / "churn.yaml"
    spec_path.write_text(BASE + "tags: [churn]\ndefaults: {queue: own}\n")
    spec = load_spec(spec_path)
    assert spec.owner == "platform" and spec.tags == ["team-a", "churn"]
    dag = train_dag(spec)
    assert dag.get_task("data.validate").retries == 7  # from the folder
    assert dag.get_task("data.validate").queue == "own"  # the spec wins
    assert dag.get_task("release.promote").retries == 0  # folder stage setting


def test_broken_folder_defaults_name_their_own_file(tmp_path: Path) -> None:
    (tmp_path / "mlops-defaults.yaml").write_text(
        "apiVersion: mlops/v1\nkind: Defaults\ndefaults: {retrys: 1}\n"
    )
    (tmp_path / "churn.yaml").write_text(BASE)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "churn.yaml")
    (issue,) = info.value.issues
    assert issue.file.endswith("mlops-defaults.yaml") and issue.line == 3
    assert "did you mean 'retries'" in issue.message


def test_notifiers_become_callbacks() -> None:
    dag = train_dag(
        spec_of("""\
        stages:
          promote:
            notify:
              on_failure:
                - notifier: tests.unit.spec.notifiers.RecordingNotifier
                  args: {channel: ml-alerts}
        """)
    )
    callbacks = dag.get_task("release.promote").on_failure_callback
    assert [type(c).__name__ for c in callbacks] == ["RecordingNotifier"]
    assert callbacks[0].channel == "ml-alerts"
    assert not dag.get_task("release.sign").on_failure_callback


def test_unknown_notifier_is_located() -> None:
    issues = issues_of(
        "defaults:\n  notify:\n    on_failure: [{notifier: airflow.providers.nope.Notifier}]\n"
    )
    assert issues[0].path == "defaults.notify.on_failure[0].notifier"
    assert "not installed" in issues[0].message and issues[0].line == 10


def test_deadline_alert() -> None:
    dag = train_dag(spec_of("deadline: {after: 2h, callback: tests.unit.spec.notifiers.RecordingNotifier}\n"))
    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert alert.interval == dt.timedelta(hours=2)
    assert alert.callback.path == "tests.unit.spec.notifiers.RecordingNotifier"


# --- steps ------------------------------------------------------------------------------------


def test_custom_steps_are_wired_after_their_dependencies() -> None:
    dag = train_dag(
        spec_of(f"""\
        steps:
          - {{id: announce, operator: {EMPTY_OP}, after: [promote]}}
          - {{id: report, operator: {EMPTY_OP}, after: [announce, gates.evaluate], settings: {{queue: io}}}}
        """)
    )
    assert "announce" in dag.get_task("release.promote").downstream_task_ids
    assert dag.get_task("report").upstream_task_ids == {"announce", "gates.evaluate"}
    assert dag.get_task("report").queue == "io"


@pytest.mark.parametrize(
    ("steps", "path", "needle"),
    [
        (
            f"[{{id: a, operator: {EMPTY_OP}}}, {{id: a, operator: {EMPTY_OP}}}]",
            "steps[1].id",
            "duplicate step id 'a'",
        ),
        (f"[{{id: promote, operator: {EMPTY_OP}}}]", "steps[0].id", "built-in"),
        (
            f"[{{id: a, operator: {EMPTY_OP}, after: [promte]}}]",
            "steps[0].after[0]",
            "did you mean 'promote'",
        ),
        (
            f"[{{id: a, operator: {EMPTY_OP}, after: [b]}}, {{id: b, operator: {EMPTY_OP}, after: [a]}}]",
            "steps[0].after",
            "cycle: a -> b -> a",
        ),
        (
            "[{id: a, operator: airflow.providers.standard.operators.empty.EmptyOperatr}]",
            "steps[0].operator",
            "did you mean 'EmptyOperator'",
        ),
        ("[{id: a, operator: no_such_pkg.Op}]", "steps[0].operator", "not installed"),
        ("[{id: a, operator: pathlib.Path}]", "steps[0].operator", "not an Airflow BaseOperator"),
        ("[{id: a, operator: 'not a path'}]", "steps[0].operator", "pattern"),
    ],
)
def test_step_errors(steps: str, path: str, needle: str) -> None:
    issues = issues_of(f"steps: {steps}\n")
    assert issues[0].path == path
    assert needle in issues[0].message
    assert issues[0].line == 8


# --- allowed roots ----------------------------------------------------------------------------


def test_paths_outside_allowed_roots(tmp_path: Path) -> None:
    roots = [str(tmp_path / "data"), "s3://ml-data/fraud"]
    ok = f"data:\n  source: {tmp_path}/data/{{{{ ds }}}}.parquet\n  target: y\n"
    text = BASE.replace("data:\n  source: data/{{ ds }}.parquet\n  target: churned\n", ok)
    load_spec_text(text, "s.yaml", allowed_roots=roots)
    escape = text.replace(f"{tmp_path}/data/", f"{tmp_path}/data/../../etc/")
    with pytest.raises(SpecError, match="outside the allowed roots"):
        load_spec_text(escape, "s.yaml", allowed_roots=roots)
    other_bucket = text.replace(f"{tmp_path}/data/", "s3://other-bucket/")
    with pytest.raises(SpecError) as info:
        load_spec_text(other_bucket, "s.yaml", allowed_roots=roots)
    assert info.value.issues[0].path == "data.source" and info.value.issues[0].line == 4
    load_spec_text(text.replace(f"{tmp_path}/data/", "s3://ml-data/fraud/"), "s.yaml", allowed_roots=roots)


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    issues = []
    try:
        load_spec_text(
            BASE.replace("data/{{", "../outside/{{"),
            "s.yaml",
            base=tmp_path / "specs",
            allowed_roots=[str(tmp_path / "specs")],
        )
    except SpecError as exc:
        issues = exc.issues
    assert issues and "outside the allowed roots" in issues[0].message
    load_spec_text(BASE, "s.yaml", base=tmp_path / "specs", allowed_roots=[str(tmp_path / "specs")])


@pytest.mark.parametrize(
    ("schedule", "plain", "explained"),
    [
        ("null", "manual runs only", "manual runs only"),
        ("'@once'", "`@once`", "`@once` (a single run)"),
        ("6h", "`6h`", "`6h` (one run per data interval, UTC)"),
        (
            "{time: '0 3 * * *', events: [drift]}",
            "`0 3 * * *` or asset event `drift`",
            "`0 3 * * *` (one run per data interval, UTC) or asset event `drift`",
        ),
        ("{events: [new_data]}", "asset event `new_data`", "asset event `new_data`"),
    ],
)
def test_schedule_in_words_for_the_dag_doc_and_render(schedule: str, plain: str, explained: str) -> None:
    from airflow_mlops.factory.builder import describe_schedule

    spec = spec_of(f"schedule: {schedule}\n")
    assert describe_schedule(spec) == plain
    assert describe_schedule(spec, explain=True) == explained
    assert f"**Runs on**: {plain}" in train_dag(spec).doc_md
