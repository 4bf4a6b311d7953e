"""The monitor DAG, the drift and new-data assets, and the `monitoring:` section of the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.factory import build_dags
from airflow_mlops.spec.loader import load_spec, load_spec_text
from tests.unit.spec.test_language_features import BASE, spec_of

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


def example_dags():
    return build_dags(load_spec(EXAMPLE), spec_path=EXAMPLE)


def test_a_spec_without_monitoring_has_no_monitor_dag() -> None:
    assert list(build_dags(spec_of(""))) == ["churn__train"]


def test_the_monitor_dag_scores_detects_then_emits() -> None:
    dag = example_dags()["fraud_detector__monitor"]
    assert sorted(t.task_id for t in dag.tasks) == ["monitor.detect", "monitor.emit_drift", "monitor.score"]
    assert dag.get_task("monitor.detect").downstream_task_ids == {"monitor.emit_drift"}
    assert "monitor.detect" in dag.get_task("monitor.score").downstream_task_ids
    # Only the emit task updates the drift asset, and only it: no drift -> it skips -> no event.
    emit = dag.get_task("monitor.emit_drift")
    assert [a.uri for a in emit.outlets] == ["x-mlops://fraud_detector/drift"]
    assert all(not t.outlets for t in dag.tasks if t.task_id != "monitor.emit_drift")
    # The drift asset is the one the train DAG is scheduled on.
    train = example_dags()["fraud_detector__train"]
    assert emit.outlets[0] in train.timetable.asset_condition.objects
    from airflow.sdk import CronDataIntervalTimetable

    assert dag.timetable == CronDataIntervalTimetable("0 0 * * *", timezone="UTC")
    assert dag.catchup is False and dag.max_active_runs == 1
    assert "monitoring" in dag.tags and "starts `fraud_detector__train`" in dag.doc_md


def test_monitor_settings_reach_the_operators() -> None:
    dag = example_dags()["fraud_detector__monitor"]
    score = dag.get_task("monitor.score")
    assert score.source.startswith(str(EXAMPLE.parent.resolve())) and score.source.endswith(
        "/{{ ds }}/batch.parquet"
    )
    assert "source" in score.template_fields
    assert (score.model_name, score.alias, score.reference) == ("fraud-detector", "champion", "champion")
    detect = dag.get_task("monitor.detect")
    assert detect.settings["p_value"] == 0.05 and detect.settings["correction"] == "bonferroni"
    assert detect.settings["min_rows"] == 500  # from the spec's quality section
    assert detect.performance == {"roc_auc": 0.1}
    assert {t.retries for t in dag.tasks} == {1}  # the spec's defaults apply to the monitor too


def test_monitor_task_settings_and_alert_mode() -> None:
    spec = spec_of(
        """
        monitoring:
          source: live/{{ ds }}.parquet
          schedule: 6h
          on_drift: alert
          settings: {retries: 4, queue: monitoring}
        """
    )
    dag = build_dags(spec)["churn__monitor"]
    assert {t.retries for t in dag.tasks} == {4}
    assert {t.queue for t in dag.tasks} == {"monitoring"}
    assert dag.get_task("monitor.emit_drift").outlets == []  # alert: nothing to emit


def test_the_new_data_asset_carries_its_watcher() -> None:
    from airflow_mlops.triggers.new_data import NewDataTrigger

    train = example_dags()["fraud_detector__train"]
    (asset,) = [a for a in train.timetable.asset_condition.objects if a.uri.endswith("/new_data")]
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, NewDataTrigger)
    _, kwargs = watcher.trigger.serialize()
    assert kwargs["location"] == str((EXAMPLE.parent / "../data/fraud/incoming").resolve())
    assert kwargs["pattern"] == "**/*.parquet" and kwargs["poll_interval"] == 10
    # The trigger's arguments are the same on every parse (Airflow compares them to keep one watcher).
    again = [
        a for a in example_dags()["fraud_detector__train"].timetable.asset_condition.objects if a.watchers
    ]
    assert again[0].watchers[0].trigger.serialize() == watcher.trigger.serialize()


def test_a_drift_event_without_a_watcher_section_is_a_plain_asset() -> None:
    dag = build_dags(spec_of("schedule: {events: [drift, new_data]}\n"))["churn__train"]
    assert all(not getattr(a, "watchers", None) for a in dag.timetable.asset_condition.objects)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("monitoring:\n  source: live.parquet\n  reference: data\n", "data.reference is not set"),
        ("monitoring:\n  source: live.parquet\n  schedule: '@once'\n", "makes no sense for a monitor"),
        ("monitoring:\n  source: live.parquet\n  drift: {correction: holm}\n", "monitoring.drift.correction"),
        (
            "monitoring:\n  source: live.parquet\n  performance: {auc: {max_drop: 0.1}}\n",
            "monitoring.performance",
        ),
        ("monitoring:\n  source: live.parquet\n  drift: {p_value: 1.5}\n", "monitoring.drift.p_value"),
        ("monitoring:\n  source: live.parquet\n  on_drift: retrian\n", "did you mean 'retrain'"),
    ],
)
def test_bad_monitoring_sections_are_refused(extra: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_of(extra)
    assert needle in str(info.value)


def test_a_watched_location_without_the_new_data_event_is_refused() -> None:
    text = BASE.replace("  target: churned\n", "  target: churned\n  new_data: {location: incoming}\n")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "spec.yaml")
    assert "`new_data` is not in schedule.events" in str(info.value)
    # ... and with the event it is accepted.
    spec = load_spec_text(text + "schedule: {events: [new_data]}\n", "spec.yaml")
    assert spec.data.new_data is not None and spec.data.new_data.location == "incoming"


def test_monitoring_locations_must_lie_under_the_allowed_roots(tmp_path: Path) -> None:
    text = BASE + "monitoring:\n  source: /elsewhere/live/{{ ds }}.parquet\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text, str(tmp_path / "spec.yaml"), base=tmp_path, allowed_roots=[str(tmp_path)])
    assert "monitoring.source" in str(info.value) and "outside the allowed roots" in str(info.value)
