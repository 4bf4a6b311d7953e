"""The retrain reason: what a run's triggering asset events and run type say about why it trains."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_mlops.retrain import reason as r

T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Asset:
    uri: str
    name: str = ""


@dataclass
class Event:
    """The fields of Airflow's ``AssetEventDagRunReferenceResult`` the reason reads."""

    asset: Any
    extra: Any = field(default_factory=dict)
    timestamp: Any = T0
    source_dag_id: Any = None
    source_run_id: Any = None
    source_task_id: Any = None
    source_map_index: int = -1


DRIFT = Asset("x-mlops://fraud/drift", "fraud__drift")
NEW_DATA = Asset("x-mlops://fraud/new_data", "fraud__new_data")


REPORT = {
    "features": [
        {
            "name": "amount",
            "kind": "numeric",
            "drifted": True,
            "rules": ["tests"],
            "tests": [
                {
                    "test": "ks",
                    "statistic": 0.41234567,
                    "p_value": 1.234e-9,
                    "adjusted_p_value": 5e-9,
                    "threshold": 0.05,
                    "drifted": True,
                },
                {
                    "test": "psi",
                    "statistic": float("nan"),
                    "p_value": None,
                    "threshold": 0.2,
                    "drifted": False,
                },
            ],
            "out_of_range": {"share": 0.12, "low": 0.0, "high": 5.0},
            "histogram": {"edges": [0.0, 1.0], "reference": [1.0], "current": [1.0]},
        }
    ]
}


def drift_event(at: dt.datetime = T0, **extra: Any) -> Event:
    body = {
        "reason": "amount drifted",
        "reasons": ["feature amount drifted: ks stat=0.41 p=1e-09"],
        "drifted_features": ["amount"],
        # as DriftEventEmitOperator writes it: drift_event_statistics() of the drift report
        **r.drift_event_statistics({**REPORT, "drift_share": 0.25}),
        "report": "/artifacts/fraud/m1/monitor/drift_report.json",
        "html_report": "/artifacts/fraud/m1/monitor/drift_report.html",
        "champion_version": "1",
        "window": "/artifacts/fraud/m1/monitor/window.parquet",
        "source_run": "fraud__monitor/scheduled__2026-01-05",
        **extra,
    }
    return Event(DRIFT, body, at, "fraud__monitor", "scheduled__2026-01-05", "emit_drift")


def new_data_event(at: dt.datetime = T0, batch: str = "b" * 64, **extra: Any) -> Event:
    payload = {
        "location": "/data/incoming",
        "pattern": "**/*.parquet",
        "batch_id": batch,
        "objects": ["/data/incoming/2026-01-06/batch.parquet"],
        "data": ["/data/incoming/2026-01-06/batch.parquet"],
        "count": 1,
        "bytes": 1234,
        **extra,
    }
    return Event(NEW_DATA, {"from_trigger": True, "payload": payload}, at)


def test_a_drift_event_names_the_features_their_statistics_the_window_and_the_monitor_run() -> None:
    reason = r.retrain_reason({DRIFT: [drift_event()]}, "asset_triggered")
    assert reason["kind"] == "drift" and reason["run_type"] == "asset_triggered"
    assert reason["event_count"] == 1 and reason["kinds"] == {"drift": 1} and reason["events_omitted"] == 0
    event = reason["events"][0]
    assert event["window"] == "/artifacts/fraud/m1/monitor/window.parquet"
    assert event["monitor_run"] == "fraud__monitor/scheduled__2026-01-05"
    assert event["source"] == {
        "dag_id": "fraud__monitor",
        "run_id": "scheduled__2026-01-05",
        "task_id": "emit_drift",
    }
    assert event["drifted_features"] == ["amount"] and event["champion_version"] == "1"
    ks = event["statistics"]["amount"]["tests"]["ks"]
    assert ks == {
        "statistic": 0.412346,
        "p_value": 1.234e-9,
        "adjusted_p_value": 5e-9,
        "threshold": 0.05,
        "drifted": True,
    }
    assert event["statistics"]["amount"]["tests"]["psi"]["statistic"] is None  # NaN is not JSON
    assert event["statistics"]["amount"]["out_of_range_share"] == 0.12
    assert event["at"] == "2026-01-05T12:00:00+00:00" == reason["first_event_at"] == reason["last_event_at"]
    assert reason["summary"] == (
        "feature amount (ks p=1.2e-09) drifted in window fraud__monitor/scheduled__2026-01-05"
    )
    json.dumps(reason, allow_nan=False)  # serialisable, finite
    assert list(reason) == sorted(reason) and list(event) == sorted(event)  # stable key order


def test_a_new_data_event_names_the_batch_its_files_and_size() -> None:
    reason = r.retrain_reason({NEW_DATA: [new_data_event(rows=500)]}, "asset_triggered")
    assert reason["kind"] == "new_data"
    event = reason["events"][0]
    assert event["batch_id"] == "b" * 64 and event["location"] == "/data/incoming"
    assert event["objects"] == ["/data/incoming/2026-01-06/batch.parquet"]
    assert event["object_count"] == 1 and event["bytes"] == 1234 and event["rows"] == 500
    assert event["source"] == {}  # a watcher's event has no source task
    assert reason["summary"] == "batch bbbbbbbbbbbbbbbb landed (1 file(s) in /data/incoming 500 rows)"


@pytest.mark.parametrize(
    ("run_type", "kind", "summary"),
    [
        ("scheduled", "schedule", "scheduled run"),
        ("manual", "manual", "manual run"),
        ("backfill", "backfill", "backfill run"),
        ("operator_triggered", "manual", "manual run"),
        ("asset_triggered", "other", "other run"),  # no event known: not claimed to be one
        ("something_new", "other", "other run"),
        (None, "other", "other run"),
    ],
)
def test_a_run_no_event_started_is_named_by_its_run_type(run_type: Any, kind: str, summary: str) -> None:
    reason = r.retrain_reason({}, run_type)
    assert reason["kind"] == kind and reason["summary"] == summary
    assert reason["event_count"] == 0 and reason["events"] == [] and reason["first_event_at"] is None


def test_an_enum_run_type_reads_as_its_value() -> None:
    class RunType:
        value = "scheduled"

    assert r.retrain_reason(None, RunType())["kind"] == "schedule"


def test_another_asset_is_named_but_its_extra_values_are_not_copied() -> None:
    other = Asset("s3://bucket/table")
    event = Event(other, {"api_token": "s3cr3t", "note": "hello", "password": "x"}, T0, "producer", "r1")
    reason = r.retrain_reason({other: [event]}, "asset_triggered")
    assert reason["kind"] == "asset" and reason["summary"] == "asset event s3://bucket/table"
    assert reason["events"][0]["extra_keys"] == ["note"]
    assert "s3cr3t" not in json.dumps(reason) and "hello" not in json.dumps(reason)


def test_credentials_in_uris_are_masked() -> None:
    event = new_data_event(location="s3://AKIAXXXXXXXX:topsecretvalue@bucket/incoming")
    reason = r.retrain_reason({NEW_DATA: [event]}, "asset_triggered")
    assert "topsecretvalue" not in json.dumps(reason)
    assert reason["events"][0]["location"].startswith("s3://***@bucket")


def test_many_events_keep_counts_and_the_first_ones_oldest_first() -> None:
    drifts = [drift_event(T0 + dt.timedelta(seconds=i), source_run=f"m/{i}") for i in range(600)]
    drifts.reverse()  # the order the mapping gives does not matter
    news = [new_data_event(T0 + dt.timedelta(seconds=1000 + i), batch=f"{i:064d}") for i in range(400)]
    reason = r.retrain_reason({DRIFT: drifts, NEW_DATA: news}, "asset_triggered")
    assert reason["kind"] == "drift"  # drift first, whatever the mix
    assert reason["event_count"] == 1000 and reason["kinds"] == {"drift": 600, "new_data": 400}
    assert len(reason["events"]) == r.MAX_EVENTS and reason["events_omitted"] == 1000 - r.MAX_EVENTS
    assert [e["monitor_run"] for e in reason["events"]] == [f"m/{i}" for i in range(r.MAX_EVENTS)]
    assert reason["first_event_at"] == "2026-01-05T12:00:00+00:00"
    assert reason["last_event_at"] == (T0 + dt.timedelta(seconds=1399)).isoformat()
    assert reason["summary"].endswith("(+999 more events)")
    assert len(json.dumps(reason)) < 20_000


def test_an_event_reached_through_an_alias_counts_once() -> None:
    event = drift_event()
    reason = r.retrain_reason({DRIFT: [event], Asset("alias"): [event]}, "asset_triggered")
    assert reason["event_count"] == 1


def test_many_drifted_features_and_long_reasons_are_bounded() -> None:
    names = [f"f{i}" for i in range(50)]
    stats = {
        n: {
            "kind": "numeric",
            "rules": ["tests"],
            "tests": [{"test": "ks", "statistic": 0.5, "p_value": 0.001, "threshold": 0.05, "drifted": True}],
        }
        for n in names
    }
    event = drift_event(drifted_features=names, drift_statistics=stats, reasons=["x" * 5000] * 20)
    reason = r.retrain_reason({DRIFT: [event]}, "asset_triggered")
    e = reason["events"][0]
    assert e["drifted_features"] == names[: r.MAX_FEATURES] and e["drifted_feature_count"] == 50
    assert len(e["statistics"]) == r.MAX_FEATURES
    assert len(e["reasons"]) == r.MAX_ITEMS and e["reason_count"] == 20
    assert all(len(x) <= r.MAX_TEXT for x in e["reasons"])
    assert reason["summary"] == (
        "features f0 (ks p=0.001), f1 (ks p=0.001), f2 (ks p=0.001) and 47 more drifted in window "
        "fraud__monitor/scheduled__2026-01-05"
    )


@pytest.mark.parametrize(
    "extra",
    [
        None,
        {},
        "not a mapping",
        ["a", "list"],
        {"payload": "odd"},
        {"drifted_features": "amount", "reasons": 7, "drift_statistics": ["odd"], "window": 3},
        {"drifted_features": [None, 1, {"x": 1}], "drift_statistics": {"a": "odd", "b": {"tests": "odd"}}},
        {"drift_share": float("inf"), "champion_version": object()},
    ],
)
def test_a_malformed_drift_extra_gives_the_kind_and_never_raises(extra: Any) -> None:
    reason = r.retrain_reason({DRIFT: [Event(DRIFT, extra, timestamp="not a time")]}, "asset_triggered")
    assert reason["kind"] == "drift" and reason["event_count"] == 1
    assert reason["summary"].startswith(("drift in window", "features"))
    json.dumps(reason, allow_nan=False)


@pytest.mark.parametrize(
    "extra",
    [None, {}, {"payload": {"count": "many", "objects": "one"}}, {"batch_id": 7, "bytes": math.nan}],
)
def test_a_malformed_new_data_extra_gives_the_kind_and_never_raises(extra: Any) -> None:
    reason = r.retrain_reason({NEW_DATA: [Event(NEW_DATA, extra, timestamp=None)]}, "asset_triggered")
    assert reason["kind"] == "new_data" and reason["summary"].startswith("batch ")
    json.dumps(reason, allow_nan=False)


def test_odd_events_and_mappings_never_raise() -> None:
    class Exploding:
        @property
        def asset(self) -> Any:
            raise RuntimeError("boom")

    assert r.retrain_reason({DRIFT: [Exploding()]}, "asset_triggered")["events"][0]["asset"] == DRIFT.uri
    assert r.retrain_reason({DRIFT: None}, "manual")["kind"] == "manual"
    assert r.retrain_reason({DRIFT: 3}, "manual")["kind"] == "manual"
    assert r.retrain_reason("not a mapping", "scheduled")["kind"] == "schedule"
    naive = Event(DRIFT, {}, dt.datetime(2026, 1, 5, 12, 0))
    assert r.retrain_reason({DRIFT: [naive]})["first_event_at"] == "2026-01-05T12:00:00+00:00"


def test_event_kind_reads_the_pipeline_asset_uri() -> None:
    assert r.event_kind("x-mlops://p/drift") == "drift"
    assert r.event_kind("x-mlops://p/new_data/") == "new_data"
    assert r.event_kind("x-mlops://p/other") == "asset"
    assert r.event_kind("s3://b/drift") == "asset"


def test_drift_statistics_reads_the_drifted_features_of_a_report() -> None:
    report = {
        "features": [
            {
                "name": "a",
                "kind": "numeric",
                "drifted": True,
                "rules": ["tests"],
                "tests": [
                    {
                        "test": "ks",
                        "statistic": 0.3,
                        "p_value": 0.001,
                        "adjusted_p_value": 0.004,
                        "threshold": 0.05,
                        "drifted": True,
                    }
                ],
                "out_of_range": None,
                "histogram": {"edges": [1, 2]},
            },
            {"name": "b", "kind": "categorical", "drifted": False, "tests": []},
            "odd",
        ]
    }
    stats = r.drift_statistics(report)
    assert list(stats) == ["a"] and "histogram" not in stats["a"]
    assert stats["a"]["tests"]["ks"]["adjusted_p_value"] == 0.004
    assert list(r.drift_statistics(report, ["b"])) == ["b"]
    assert r.drift_statistics({"features": "odd"}) == {} and r.drift_statistics(None) == {}


def test_tags_carry_kind_sentence_and_json_within_mlflow_limits() -> None:
    reason = r.retrain_reason({DRIFT: [drift_event()]}, "asset_triggered")
    tags = r.reason_tags(reason)
    assert tags[r.TAG_KIND] == "drift" and tags[r.TAG_SUMMARY] == reason["summary"]
    assert json.loads(tags[r.TAG_REASON]) == reason
    assert r.parse_reason_tags(tags) == reason
    assert r.reason_tags(None) == {} and r.reason_tags({}) == {}


def test_a_large_reason_is_compacted_to_fit_a_tag_keeping_the_counts() -> None:
    names = [f"feature_{i:03d}_" + "x" * 60 for i in range(50)]
    stats = {
        n: {
            "kind": "numeric",
            "rules": ["tests"],
            "tests": [
                {"test": t, "statistic": 0.5, "p_value": 0.01, "threshold": 0.05, "drifted": True}
                for t in ("ks", "psi", "wasserstein")
            ],
        }
        for n in names
    }
    events = [
        drift_event(T0 + dt.timedelta(seconds=i), drifted_features=names, drift_statistics=stats)
        for i in range(50)
    ]
    reason = r.retrain_reason({DRIFT: events}, "asset_triggered")
    assert len(json.dumps(reason)) > r.MAX_TAG_CHARS
    text = r.reason_tags(reason)[r.TAG_REASON]
    assert len(text) <= r.MAX_TAG_CHARS
    compacted = json.loads(text)
    assert (
        compacted["kind"] == "drift"
        and compacted["event_count"] == 50
        and compacted["summary"] == reason["summary"]
    )
    assert compacted["events_omitted"] == 50 - len(compacted["events"])
    assert len(r.compact(reason, limit=200)) <= 200  # the last resort: kind and sentence


def test_parse_reason_tags_is_defensive() -> None:
    assert r.parse_reason_tags(None) is None and r.parse_reason_tags({}) is None
    assert r.parse_reason_tags({r.TAG_KIND: "manual", r.TAG_REASON: "{not json"}) == {
        "kind": "manual",
        "summary": "manual run",
    }
    assert r.parse_reason_tags({r.TAG_REASON: "[1, 2]"}) is None


def test_describe_and_trigger_type() -> None:
    assert r.describe(None) == "unknown" and r.describe({"kind": "schedule"}) == "scheduled run"
    assert r.trigger_type({"kind": "schedule"}) == "scheduled"
    assert r.trigger_type({"kind": "backfill"}) == "manual"
    assert r.trigger_type({"kind": "drift"}) == "api" and r.trigger_type({"kind": "new_data"}) == "api"
