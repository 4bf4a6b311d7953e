"""registry/evaluation_record.py: the evaluate stage's log lines, MLflow record and blessing."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.registry import evaluation_record as record


def _report(**kw: Any) -> Any:
    base = {
        "task": "binary",
        "model": {"flavor": "torch", "model_type": "mlp"},
        "metrics": {"roc_auc": 0.91, "f1": 0.8},
        "threshold": 0.42,
        "threshold_source": "model",
        "champion_mismatch": None,
        "champion_version": "3",
        "champion_threshold": None,
        "champion_threshold_source": None,
        "note": "compared with champion version 3",
        "passed": True,
        "gates": SimpleNamespace(summary=lambda: "roc_auc.min PASSED"),
        "to_dict": lambda: {"passed": True, "metrics": {"roc_auc": 0.91}},
    }
    return SimpleNamespace(**{**base, **kw})


def test_log_lines_say_the_threshold_only_for_a_thresholded_model() -> None:
    lines = record.evaluation_log_lines(_report())
    assert lines[0] == "Evaluated a binary model (torch, mlp)"
    assert lines[1].startswith("Holdout metrics at threshold 0.42 (model):")
    assert lines[-1] == "Gates (compared with champion version 3):\nroc_auc.min PASSED"
    lines = record.evaluation_log_lines(
        _report(
            task="regression",
            threshold=None,
            champion_mismatch="another task",
            champion_threshold=0.5,
            champion_threshold_source="spec",
        )
    )
    assert lines[1] == "Holdout metrics: {'roc_auc': 0.91, 'f1': 0.8}"
    assert "Champion 3 cannot be compared: another task" in lines
    assert "Champion scored at its threshold 0.5 (spec)" in lines


def test_the_run_gets_eval_metrics_the_gates_tag_and_both_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_mlops.registry.mlflow_registry as registry

    logged: dict[str, Any] = {}
    monkeypatch.setattr(
        registry,
        "log_run_data",
        lambda client, run_id, metrics, tags: logged.update(metrics=metrics, tags=tags),
    )
    monkeypatch.setattr(
        registry, "log_report", lambda client, run_id, data, path: logged.update({path: data})
    )
    record.log_evaluation(object(), "run-1", _report(passed=False), "<html>")
    assert logged["metrics"] == {"eval_roc_auc": 0.91, "eval_f1": 0.8}
    assert logged["tags"] == {"mlops.gates": "failed"}
    assert json.loads(logged[record.EVALUATION_ARTIFACT]) == {"passed": True, "metrics": {"roc_auc": 0.91}}
    assert logged[record.EVALUATION_HTML_ARTIFACT] == b"<html>"


def test_the_blessing_pins_the_digest_and_the_stored_report() -> None:
    ref = SimpleNamespace(uri="/s/evaluation.json", sha256="cd")
    blessing = record.blessing(
        _report(passed=False), model_sha256="ab", compared=True, report_ref=ref, by="d/r/eval"
    )
    assert blessing == {
        "model_sha256": "ab",
        "passed": False,
        "compared": True,
        "champion_version": "3",
        "report": {"uri": "/s/evaluation.json", "sha256": "cd"},
        "by": "d/r/eval",
    }
