"""Task extra links: the MLflow run, the model version, the Models view and the stage reports.

Airflow 3 computes an operator's links when the task finishes (in the worker, from the task's
XCom outputs) and stores each as an XCom; the UI shows them as buttons on the task. A link whose
output is missing (the task failed before producing it) is empty, and the button is disabled.

- MLflow links point at the MLflow UI of the operator's MLflow connection (its tracking URI).
- The Models view and report links point at the Models view plugin
  (:mod:`airflow_mlops.ui`), which serves the reports behind Airflow's authentication.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.sdk import BaseOperatorLink

from airflow_mlops.urls import MODELS_VIEW_PREFIX

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def _output(ti_key: TaskInstanceKey, *keys: str) -> Any:
    """The first of these XCom outputs the task produced (None when it produced none)."""
    from airflow_mlops.compat import xcom_backend

    XCom = xcom_backend()  # the configured XCom backend
    for key in keys:
        value = XCom.get_value(ti_key=ti_key, key=key)
        if value not in (None, ""):
            return value
    return None


def mlflow_ui_url(operator: BaseOperator) -> str:
    """The MLflow UI of the operator's connection, or "" when its tracking URI is not a web server."""
    from airflow_mlops.hooks.mlflow import MLflowHook

    conn_id = getattr(operator, "mlflow_conn_id", MLflowHook.default_conn_name)
    uri = MLflowHook(mlflow_conn_id=conn_id).tracking_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else ""


def models_view_url(path: str = "/") -> str:
    """A URL of the Models view: absolute under ``[api] base_url`` when it is set, else rooted."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{MODELS_VIEW_PREFIX}{path}"


def _run_id(operator: BaseOperator, ti_key: TaskInstanceKey) -> str:
    value = _output(ti_key, "mlflow_run_id", "run_id") or getattr(operator, "mlflow_run_id", None)
    return "" if value in (None, "") else str(value)


class MLflowRunLink(BaseOperatorLink):
    """The MLflow run the task logged to (``mlflow_run_id``/``run_id`` output or parameter)."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run_id = _run_id(operator, ti_key)
        base = mlflow_ui_url(operator) if run_id else ""
        return f"{base}/#/runs/{quote(run_id, safe='')}" if base else ""


class MLflowModelVersionLink(BaseOperatorLink):
    """The model version the task registered, promoted or rolled back to."""

    name = "Model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        model = _output(ti_key, "model_name") or getattr(operator, "model_name", None)
        version = _output(ti_key, "version")
        if not model or version in (None, ""):
            return ""
        base = mlflow_ui_url(operator)
        return (
            f"{base}/#/models/{quote(str(model), safe='')}/versions/{quote(str(version), safe='')}"
            if base
            else ""
        )


class ModelsViewLink(BaseOperatorLink):
    """The model in the Models view (aliases, gates, signature, ML-BOM, drift)."""

    name = "Models view"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        model = _output(ti_key, "model_name") or getattr(operator, "model_name", None)
        return models_view_url(f"/#model-{quote(str(model), safe='')}") if model else ""


class _RunReportLink(BaseOperatorLink):
    path = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run_id = _run_id(operator, ti_key)
        return models_view_url(f"/runs/{quote(run_id, safe='')}/report/{self.path}") if run_id else ""


class EvaluationReportLink(_RunReportLink):
    """The evaluate stage's HTML report (every gate, metrics beside the champion's, curves)."""

    name = "Evaluation report"
    path = "evaluation/evaluation_report.html"


class DriftReportLink(_RunReportLink):
    """The drift stage's HTML report."""

    name = "Drift report"
    path = "drift/drift_report.html"


class ArtifactReportLink(BaseOperatorLink):
    """The stage's HTML report in the artifact store, served by the Models view.

    The link names the task instance and which of its outputs holds the report; the view reads
    the report's location and sha256 from that task's own XCom record (never from the URL) and
    serves the file only while it still has that digest."""

    name = "Report"
    keys: tuple[str, ...] = ("html_report", "report")

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        for key in self.keys:
            ref = _output(ti_key, key)
            if isinstance(ref, dict) and str(ref.get("uri", "")).endswith(".html") and ref.get("sha256"):
                query = urlencode(
                    {
                        "dag_id": ti_key.dag_id,
                        "run_id": ti_key.run_id,
                        "task_id": ti_key.task_id,
                        "map_index": ti_key.map_index,
                        "output": key,
                    },
                    quote_via=quote,
                )
                return models_view_url(f"/artifacts/report?{query}")
        return ""
