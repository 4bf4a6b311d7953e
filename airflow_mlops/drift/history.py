"""The monitor's record in MLflow: one run per window (tag ``mlops.kind=monitor``), its metrics,
reports and figures, the history of recent windows, and the verdict on the champion version.

No Airflow: every function takes the MLflow client it works with.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.drift.report import DriftReport

MONITOR_RUN_KIND = "monitor"
TAG_KIND = "mlops.kind"
TAG_MODEL_NAME = "mlops.model_name"
TAG_MODEL_VERSION = "mlops.model_version"
TAG_DRIFT = "mlops.drift"  # the window's drift verdict: "drift" or "none"
TAG_LAST_VERDICT = "mlops.monitor.last_verdict"
REPORT_ARTIFACT = "drift/drift_report.json"
HTML_ARTIFACT = "drift/drift_report.html"
FIGURES_ARTIFACT = "drift/figures"

log = logging.getLogger(__name__)


def verdict(report: DriftReport) -> str:
    """The window's verdict in words: ``data-quality alarm``, ``drift`` or ``no drift``."""
    if report.quality_failed:
        return "data-quality alarm"
    return "drift" if report.drifted else "no drift"


def monitor_metrics(report: DriftReport) -> dict[str, float]:
    """The metrics a monitor run logs: the verdict's flags and counts, the share of drifted
    features, the MMD p-value (when the multivariate test ran) and, on a labelled window, the
    champion's live metrics as ``live_<metric>``."""
    metrics: dict[str, float] = {
        "drifted": float(report.drifted),
        "quality_failed": float(report.quality_failed),
        "drifted_features": float(len(report.drifted_features)),
        "drift_share": len(report.drifted_features) / max(len(report.features), 1),
        "out_of_range_features": float(len(report.out_of_range_features)),
        "current_rows": float(report.current_rows),
    }
    if report.multivariate is not None:
        metrics["mmd_p_value"] = float(report.multivariate.p_value)
    for check in report.performance:
        metrics[f"live_{check.metric}"] = float(check.current)
    return metrics


def start_monitor_run(
    client: Any,
    *,
    experiment: str,
    pipeline: str,
    airflow_run: str,
    run_name: str,
    model_name: str,
    model_version: str,
) -> str:
    """The window's MLflow run (found again by its Airflow run on a retry), tagged as a monitor
    run of ``model_name`` version ``model_version``."""
    from airflow_mlops.registry.mlflow_registry import start_or_resume_run

    run_id = start_or_resume_run(
        client, experiment=experiment, pipeline=pipeline, airflow_run=airflow_run, run_name=run_name
    )
    for key, value in (
        (TAG_KIND, MONITOR_RUN_KIND),
        (TAG_MODEL_NAME, model_name),
        (TAG_MODEL_VERSION, model_version),
    ):
        client.set_tag(run_id, key, value)
    return run_id


def monitor_runs_filter() -> str:
    """The MLflow search filter of finished monitor runs."""
    return f"tags.`{TAG_KIND}` = '{MONITOR_RUN_KIND}' and attributes.status = 'FINISHED'"


def recent_reports(client: Any, experiment: str, run_id: str, history: int) -> list[DriftReport]:
    """The drift reports of up to ``history - 1`` earlier finished monitor runs of
    ``experiment``, oldest first, without ``run_id`` (this window's run); a run whose report cannot
    be downloaded is left out (logged)."""
    from airflow_mlops.drift import DriftReport

    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=monitor_runs_filter(),
        order_by=["attributes.start_time DESC"],
        max_results=max(history - 1, 0),
    )
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in reversed(runs):
            if run.info.run_id == run_id:
                continue
            try:
                path = client.download_artifacts(run.info.run_id, REPORT_ARTIFACT, tmp)
            except Exception as exc:  # a run whose upload failed half-way: say so, show the rest
                log.warning("No drift report in monitor run %s: %s", run.info.run_id, exc)
                continue
            with open(path, encoding="utf-8") as fh:
                reports.append(DriftReport.from_dict(json.load(fh)))
    return reports


def log_monitor_run(
    client: Any,
    run_id: str,
    report: DriftReport,
    *,
    report_json: bytes,
    report_html: bytes,
    figures_dir: Path,
    history: list[DriftReport],
    model_name: str,
    model_version: str,
) -> None:
    """Log the window's metrics, reports and figures (written under ``figures_dir``) to its run,
    finish the run, and tag the champion version with the verdict."""
    from airflow_mlops.drift.figures import write_figures
    from airflow_mlops.registry.mlflow_registry import log_report, log_run_data

    log_run_data(
        client,
        run_id,
        metrics=monitor_metrics(report),
        tags={TAG_DRIFT: "drift" if report.drifted else "none"},
    )
    figures = write_figures(report, figures_dir, history=history)
    log_report(client, run_id, report_json, REPORT_ARTIFACT)
    log_report(client, run_id, report_html, HTML_ARTIFACT)
    if figures:
        client.log_artifacts(run_id, str(figures_dir), FIGURES_ARTIFACT)
    client.set_terminated(run_id, status="FINISHED")
    client.set_model_version_tag(model_name, model_version, TAG_LAST_VERDICT, verdict(report))
