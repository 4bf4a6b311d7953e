"""operators/monitor.py: the drift event emitter, without an Airflow server."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.exceptions import DriftAlarmError
from airflow_mlops.operators.monitor import DriftEventEmitOperator


def _emitter(**kwargs: Any) -> DriftEventEmitOperator:
    from airflow.sdk import Asset

    args: dict[str, Any] = {
        "task_id": "emit_drift",
        "pipeline": "p",
        "asset": Asset(uri="x-mlops://p/drift", name="p__drift", group="mlops"),
        "drifted": True,
        "reasons": ["3 of 4 features drifted (share 0.75 >= 0.5): a, b, c"],
        "drifted_features": ["a", "b", "c"],
        "report": {"uri": "/s/r.json", "sha256": "0" * 64, "size": 1, "media_type": "application/json"},
        "html": {"uri": "/s/r.html", "sha256": "1" * 64, "size": 1, "media_type": "text/html"},
        "window": {"uri": "/s/w.parquet", "sha256": "2" * 64, "size": 1, "media_type": "x"},
        "labelled": True,
        "champion_version": "3",
    }
    args.update(kwargs)
    return DriftEventEmitOperator(**args)


def _context() -> dict[str, Any]:
    return {
        "outlet_events": defaultdict(SimpleNamespace),
        "dag": SimpleNamespace(dag_id="p__monitor"),
        "run_id": "manual__1",
    }


def test_drift_emits_an_event_that_says_why_and_names_the_labelled_window() -> None:
    op = _emitter()
    context = _context()
    extra = op.execute(context)
    assert context["outlet_events"][op.asset].extra == extra
    assert extra["reasons"] == ["3 of 4 features drifted (share 0.75 >= 0.5): a, b, c"]
    assert extra["drifted_features"] == ["a", "b", "c"] and extra["champion_version"] == "3"
    assert extra["data"] == ["/s/w.parquet"] and extra["data_refs"][0]["sha256"] == "2" * 64
    assert extra["source_run"] == "p__monitor/manual__1"
    # An unlabelled window is reported but not offered as training data.
    unlabelled = _emitter(labelled=False).execute(_context())
    assert "data" not in unlabelled and "data_refs" not in unlabelled


def test_no_drift_skips_so_no_event_exists_and_alert_mode_fails() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    for not_drifted in (False, None, "True"):  # only a real True emits
        with pytest.raises(AirflowSkipException):
            _emitter(drifted=not_drifted).execute(_context())
    alert = _emitter(on_drift="alert")
    assert alert.outlets == []
    with pytest.raises(DriftAlarmError, match="3 of 4 features drifted"):
        alert.execute(_context())
    with pytest.raises(ValueError, match="on_drift"):
        _emitter(on_drift="ignore")


def test_the_event_carries_the_drifted_features_statistics_from_the_verified_report(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from airflow_mlops.artifacts import ArtifactStore

    report = {
        "drift_share": 0.5,
        "features": [
            {
                "name": "a",
                "kind": "numeric",
                "drifted": True,
                "rules": ["tests"],
                "histogram": {"edges": [0, 1]},
                "tests": [
                    {
                        "test": "ks",
                        "statistic": 0.4,
                        "p_value": 1e-6,
                        "adjusted_p_value": 4e-6,
                        "threshold": 0.05,
                        "drifted": True,
                    }
                ],
                "out_of_range": {"share": 0.1},
            },
            {"name": "d", "kind": "numeric", "drifted": False, "tests": []},
        ],
    }
    (tmp_path / "r.json").write_text(json.dumps(report))
    ref = ArtifactStore(str(tmp_path / "store")).put_file(
        tmp_path / "r.json", "p/m/monitor/r.json", producer="detect"
    )
    extra = _emitter(report=ref.to_dict(), artifact_root=str(tmp_path / "store")).execute(_context())
    assert extra["drift_share"] == 0.5
    assert extra["drift_statistics"] == {
        "a": {
            "kind": "numeric",
            "rules": ["tests"],
            "tests": {
                "ks": {
                    "statistic": 0.4,
                    "p_value": 1e-6,
                    "adjusted_p_value": 4e-6,
                    "threshold": 0.05,
                    "drifted": True,
                }
            },
            "out_of_range_share": 0.1,
        }
    }
    json.dumps(extra, allow_nan=False)
    # A report that is not what the detect task stored (here: not there) leaves the statistics
    # empty, with a warning: the event itself is not lost.
    capsys.readouterr()
    extra = _emitter(artifact_root=str(tmp_path / "store")).execute(_context())
    assert extra["drift_statistics"] == {} and "drift_share" not in extra
    assert "carries no statistics: reading the report failed" in capsys.readouterr().out
