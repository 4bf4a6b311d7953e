"""drift/history.py: the monitor's MLflow runs, the metric choice and the history of windows."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.drift import history


def report(**kw: Any) -> Any:
    base = {
        "drifted": True,
        "quality_failed": False,
        "drifted_features": ["a"],
        "features": ["a", "b", "c", "d"],
        "out_of_range_features": [],
        "current_rows": 120,
        "multivariate": None,
        "performance": [],
    }
    return SimpleNamespace(**{**base, **kw})


def test_the_verdict_puts_a_quality_alarm_before_drift() -> None:
    assert history.verdict(report()) == "drift"
    assert history.verdict(report(drifted=False)) == "no drift"
    assert history.verdict(report(quality_failed=True)) == "data-quality alarm"


def test_the_metrics_are_the_flags_the_share_mmd_and_live_metrics_when_present() -> None:
    assert history.monitor_metrics(report()) == {
        "drifted": 1.0,
        "quality_failed": 0.0,
        "drifted_features": 1.0,
        "drift_share": 0.25,
        "out_of_range_features": 0.0,
        "current_rows": 120.0,
    }
    more = history.monitor_metrics(
        report(
            features=[],
            drifted_features=[],
            multivariate=SimpleNamespace(p_value=0.02),
            performance=[SimpleNamespace(metric="roc_auc", current=0.71)],
        )
    )
    assert more["drift_share"] == 0.0  # no features: no division by zero
    assert more["mmd_p_value"] == 0.02 and more["live_roc_auc"] == 0.71


class Client:
    """Monitor runs of one experiment, newest first, each with a stored report (or none)."""

    def __init__(self, tmp: Path, reports: dict[str, Any]) -> None:
        self.tmp, self.reports, self.searches = tmp, reports, []
        self.tags: dict[str, dict[str, str]] = {}

    def get_experiment_by_name(self, name: str) -> Any:
        return SimpleNamespace(experiment_id="7")

    def search_runs(self, ids: list[str], **kwargs: Any) -> list[Any]:
        self.searches.append((ids, kwargs))
        runs = [SimpleNamespace(info=SimpleNamespace(run_id=r)) for r in self.reports]
        return runs[: kwargs["max_results"]]

    def download_artifacts(self, run_id: str, path: str, dest: str) -> str:
        if self.reports[run_id] is None:
            raise OSError("no such artifact")
        target = Path(dest) / f"{run_id}.json"
        target.write_text(json.dumps(self.reports[run_id]))
        return str(target)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.tags.setdefault(run_id, {})[key] = value


def test_recent_reports_are_oldest_first_without_this_run_or_a_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_mlops.drift as drift

    monkeypatch.setattr(drift.DriftReport, "from_dict", staticmethod(lambda d: d["name"]))
    client = Client(tmp_path, {"now": {"name": "now"}, "r3": {"name": "3"}, "r2": None, "r1": {"name": "1"}})
    assert history.recent_reports(client, "p", "now", history=14) == ["1", "3"]
    ids, kwargs = client.searches[0]
    assert ids == ["7"] and kwargs["max_results"] == 13
    assert kwargs["filter_string"] == "tags.`mlops.kind` = 'monitor' and attributes.status = 'FINISHED'"
    assert kwargs["order_by"] == ["attributes.start_time DESC"]
    assert history.recent_reports(client, "p", "now", history=2) == []  # only "now" fits, and is left out


def test_a_monitor_run_is_tagged_with_its_kind_model_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_mlops.registry.mlflow_registry as registry

    monkeypatch.setattr(registry, "start_or_resume_run", lambda client, **kw: f"run-{kw['airflow_run']}")
    client = Client(Path("."), {})
    run_id = history.start_monitor_run(
        client,
        experiment="p",
        pipeline="p",
        airflow_run="d/r",
        run_name="x",
        model_name="m",
        model_version="3",
    )
    assert run_id == "run-d/r"
    assert client.tags[run_id] == {
        "mlops.kind": "monitor",
        "mlops.model_name": "m",
        "mlops.model_version": "3",
    }
