"""Task extra links: computed from the task's XCom outputs and the MLflow connection."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from airflow_mlops.operators import links
from airflow_mlops.provider_info import get_provider_info

MLFLOW = "http://mlflow.test:5000"


class _Key:
    dag_id, task_id, run_id, map_index = "fraud__train", "release.register", "manual__1", -1


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    values: dict[str, Any] = {}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": MLFLOW}))
    from airflow.sdk.execution_time.xcom import XCom

    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: values.get(key))
    return values


class _Operator:
    mlflow_conn_id = "mlflow_default"
    model_name = "fraud detector"
    mlflow_run_id = None


def test_mlflow_run_link_uses_the_run_output_or_the_rendered_parameter(outputs: dict[str, Any]) -> None:
    op = _Operator()
    assert links.MLflowRunLink().get_link(op, ti_key=_Key()) == ""  # the task produced no run yet
    outputs["run_id"] = "abc123"
    assert links.MLflowRunLink().get_link(op, ti_key=_Key()) == f"{MLFLOW}/#/runs/abc123"
    outputs.clear()
    op.mlflow_run_id = "from-parameter"
    assert links.MLflowRunLink().get_link(op, ti_key=_Key()) == f"{MLFLOW}/#/runs/from-parameter"


def test_model_version_link_quotes_the_name(outputs: dict[str, Any]) -> None:
    assert links.MLflowModelVersionLink().get_link(_Operator(), ti_key=_Key()) == ""
    outputs.update(model_name="fraud detector/v", version="7")
    assert (
        links.MLflowModelVersionLink().get_link(_Operator(), ti_key=_Key())
        == f"{MLFLOW}/#/models/fraud%20detector%2Fv/versions/7"
    )


def test_models_view_and_report_links_point_at_the_plugin(
    outputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.test/base/")
    assert (
        links.ModelsViewLink().get_link(_Operator(), ti_key=_Key())
        == "https://airflow.test/base/mlops/models/#model-fraud%20detector"
    )
    assert links.DriftReportLink().get_link(_Operator(), ti_key=_Key()) == ""
    outputs["mlflow_run_id"] = "r1"
    assert (
        links.DriftReportLink().get_link(_Operator(), ti_key=_Key())
        == "https://airflow.test/base/mlops/models/runs/r1/report/drift/drift_report.html"
    )
    assert (
        links.EvaluationReportLink()
        .get_link(_Operator(), ti_key=_Key())
        .endswith("/runs/r1/report/evaluation/evaluation_report.html")
    )


def test_a_tracking_uri_that_is_no_web_server_gives_no_link(
    outputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": "sqlite:///x.db"})
    )
    outputs["run_id"] = "abc"
    assert links.MLflowRunLink().get_link(_Operator(), ti_key=_Key()) == ""


def test_the_links_are_on_the_operators_and_in_the_provider_info() -> None:
    from airflow.sdk import BaseOperatorLink

    from airflow_mlops.operators.model import ModelEvaluateOperator
    from airflow_mlops.operators.monitor import DriftDetectOperator
    from airflow_mlops.operators.registry import (
        ModelPromoteOperator,
        ModelRegisterOperator,
        ModelRollbackOperator,
    )
    from airflow_mlops.operators.training import ModelPackageOperator

    def names(cls: type) -> set[str]:
        return {link.name for link in cls.operator_extra_links}

    assert names(ModelRegisterOperator) == {"MLflow run", "Model version", "Models view"}
    assert names(ModelPromoteOperator) == names(ModelRollbackOperator) == {"Model version", "Models view"}
    assert names(ModelEvaluateOperator) == {"MLflow run", "Evaluation report"}
    assert names(DriftDetectOperator) == {"MLflow run", "Drift report"}
    assert names(ModelPackageOperator) == {"MLflow run"}
    listed = get_provider_info()["extra-links"]
    for path in listed:
        module, _, name = path.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), name), BaseOperatorLink)
    used = {
        f"{type(link).__module__}.{type(link).__name__}"
        for cls in (ModelRegisterOperator, ModelEvaluateOperator, DriftDetectOperator)
        for link in cls.operator_extra_links
    }
    assert used <= set(listed)


def test_the_report_link_names_the_task_never_the_digest(outputs: dict[str, Any]) -> None:
    from urllib.parse import parse_qs, urlsplit

    assert links.ArtifactReportLink().get_link(_Operator(), ti_key=_Key()) == ""
    outputs["report"] = {"uri": "/store/p/r/screen/screen_summary.json", "sha256": "ab" * 32}
    assert links.ArtifactReportLink().get_link(_Operator(), ti_key=_Key()) == ""  # not a page
    outputs["html_report"] = {"uri": "/store/p/r/validate/validation_report.html", "sha256": "cd" * 32}
    link = links.ArtifactReportLink().get_link(_Operator(), ti_key=_Key())
    parts = urlsplit(link)
    assert parts.path == "/mlops/models/artifacts/report"
    assert parse_qs(parts.query) == {
        "dag_id": ["fraud__train"],
        "run_id": ["manual__1"],
        "task_id": ["release.register"],
        "map_index": ["-1"],
        "output": ["html_report"],
    }
    assert "cd" * 32 not in link and "store" not in link  # neither the digest nor the path


def test_the_report_link_quotes_run_ids(outputs: dict[str, Any]) -> None:
    class Key(_Key):
        run_id = "scheduled__2026-01-01T00:00:00+00:00"

    outputs["report"] = {"uri": "/s/p/r/screen/screen_report.html", "sha256": "ab" * 32}
    link = links.ArtifactReportLink().get_link(_Operator(), ti_key=Key())
    assert "run_id=scheduled__2026-01-01T00%3A00%3A00%2B00%3A00" in link and "output=report" in link
