"""``monitor.detect``: the live window against the reference; reports stored and logged to MLflow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import DriftReportLink, MLflowRunLink

OUT_OF_RANGE_RULES = ("drift", "alarm", "both")


class DriftDetectOperator(MLOpsBaseOperator):
    """Test the live window against the reference; store JSON and HTML reports; log to MLflow.

    The checks are :func:`airflow_mlops.drift.detect_drift`'s (through :func:`~airflow_mlops.drift.scoring.detect_window`): univariate tests per feature, MMD
    over the numeric features, data quality, prediction drift of the champion's output (per task:
    the positive-class scores, the predicted classes' shares, the predicted values) and, when the
    window has labels, the champion's metrics (any metric of its task) against its recorded
    evaluation. The reports, the figures and the history of recent windows are stored under the
    run's prefix and logged to an MLflow run tagged with the champion's version.

    A data-quality alarm fails the task after the reports are stored (no retraining starts on a
    broken feed). Drift does not fail it: ``drifted`` goes to the emit task.

    :param task: the champion's task (``monitor.score``'s ``task``; default ``binary``).
    :param classes: its class labels, the order of the stored probability columns (``classes``).
    :param threshold: binary: the operating threshold the thresholded metrics use (``threshold``).
    :param out_of_range: what more than ``max_out_of_range_share`` of a feature's values beyond
        the reference's range means: ``drift`` (default: drift of that feature, the drift event
        follows ``on_drift``), ``alarm`` (a data-quality alarm: this task fails, no retraining) or
        ``both`` (drift recorded in the report, and the alarm fails this task).
    :param calibration: the champion's stored calibration (``monitor.score``'s): its metrics are
        estimated on the window without labels, and reported (None: no estimate).
    :param estimation: ``monitoring.estimation`` (``metric``, ``max_drop``, ``confidence``, ``samples``).

    Returns ``{"report", "html"}`` refs, ``drifted``, ``reasons``, ``drifted_features``,
    ``mlflow_run_id`` and ``estimated_performance`` (what the drift event carries).
    """

    template_fields = (
        *MLOpsBaseOperator.template_fields,
        "predictions",
        "reference",
        "features",
        "champion_version",
        "champion_metrics",
        "task",
        "classes",
        "threshold",
        "calibration",
    )
    stage = "monitor"
    ui_color = "#fef7e0"
    operator_extra_links = (MLflowRunLink(), DriftReportLink())

    def __init__(
        self,
        *,
        predictions: Any,
        reference: Any,
        target: str,
        features: Any,
        model_name: str,
        champion_version: Any,
        champion_metrics: Any = None,
        settings: Mapping[str, Any] | None = None,
        performance: Mapping[str, float] | None = None,
        prediction_drift: bool = True,
        positive_label: Any = 1,
        task: Any = None,
        classes: Any = None,
        threshold: Any = None,
        out_of_range: str = "drift",
        history: int = 14,
        calibration: Any = None,
        estimation: Mapping[str, Any] | None = None,
        experiment: str | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        if out_of_range not in OUT_OF_RANGE_RULES:
            raise ValueError(
                f"out_of_range must be one of {', '.join(OUT_OF_RANGE_RULES)}, got {out_of_range!r}"
            )
        super().__init__(**kwargs)
        self.predictions = predictions
        self.reference = reference
        self.target = target
        self.features = features
        self.model_name = model_name
        self.champion_version = champion_version
        self.champion_metrics = champion_metrics
        self.settings = dict(settings or {})
        self.performance = dict(performance or {})
        self.prediction_drift = prediction_drift
        self.positive_label = positive_label
        self.task = task
        self.classes = classes
        self.threshold = threshold
        self.out_of_range = out_of_range
        self.history = history
        self.calibration = calibration
        self.estimation = dict(estimation or {})
        self.experiment = experiment or self.pipeline
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table
        from airflow_mlops.drift import history

        client = self.mlflow_hook.get_conn()
        with self.scratch() as tmp:
            current = read_table(self.fetch(self.predictions, tmp / "predictions"))
            reference = read_table(self.fetch(self.reference, tmp / "reference"))
            report = self._detect(current, reference)
            report, estimated = self._estimate(current, report)
            run_id = history.start_monitor_run(
                client,
                experiment=self.experiment,
                pipeline=self.pipeline,
                airflow_run=self.airflow_run(context),
                run_name=f"{self.pipeline} monitor {context['run_id']}",
                model_name=self.model_name,
                model_version=str(self.champion_version),
            )
            recent = history.recent_reports(client, self.experiment, run_id, self.history)
            refs = self._store_reports(context, tmp, report, recent, run_id)
            json_bytes, html_bytes = (
                (tmp / "drift_report.json").read_bytes(),
                (tmp / "drift_report.html").read_bytes(),
            )
            history.log_monitor_run(
                client, run_id, report, report_json=json_bytes, report_html=html_bytes, figures_dir=tmp / "figures",
                history=recent, model_name=self.model_name, model_version=str(self.champion_version),
            )  # fmt: skip
        self._raise_on_alarm(report, refs["html"]["uri"])
        return {
            **refs,
            "drifted": report.drifted,
            "reasons": list(report.reasons),
            "drifted_features": list(report.drifted_features),
            "mlflow_run_id": run_id,
            "estimated_performance": estimated,
        }

    def _detect(self, current: Any, reference: Any) -> Any:
        """:func:`~airflow_mlops.drift.scoring.detect_window` with this task's settings."""
        from airflow_mlops.drift.scoring import detect_window

        if self.performance and self.target not in current.columns:
            self.log.info(
                "The window has no %r column (labels): performance checks %s skipped",
                self.target,
                sorted(self.performance),
            )
        report = detect_window(
            current,
            reference,
            features=list(self.features),
            target=self.target,
            task=str(self.task or "binary"),
            classes=[str(c) for c in self.classes] if self.classes else None,
            threshold=None if self.threshold is None else float(self.threshold),
            champion_metrics=self.champion_metrics,
            performance=self.performance,
            prediction_drift=self.prediction_drift,
            positive_label=self.positive_label,
            out_of_range=self.out_of_range,
            settings=self.settings,
        )
        self.log.info(
            "Drift report for %s version %s:\n%s", self.model_name, self.champion_version, report.summary()
        )
        return report

    def _estimate(self, current: Any, report: Any) -> tuple[Any, dict[str, Any]]:
        """The report with the estimated metrics, and the event's summary (``estimate_for_event``)."""
        import dataclasses

        from airflow_mlops.drift.estimation import estimate_for_event

        estimate, summary = estimate_for_event(
            current, self.calibration, settings=self.estimation,
            champion=f"{self.model_name} version {self.champion_version}", features=list(self.features),
            target=self.target, task=str(self.task or "binary"),
            classes=[str(c) for c in self.classes] if self.classes else None,
            threshold=None if self.threshold is None else float(self.threshold),
            positive_label=self.positive_label, champion_metrics=self.champion_metrics,
        )  # fmt: skip
        if not summary["available"]:
            self.log.warning("No performance estimate of the drift event: %s", summary["reason"])
        if estimate is None:
            return report, summary
        self.log.info("%s", estimate.summary())
        return dataclasses.replace(report, estimated_performance=estimate.to_dict()), summary

    def _store_reports(
        self, context: Any, tmp: Path, report: Any, recent: list[Any], run_id: str
    ) -> dict[str, Any]:
        """Write and store ``drift_report.json`` and ``drift_report.html``; their refs as dicts."""
        from airflow_mlops.drift.html import render_html

        window = ", ".join(str(v) for v in (context.get("ds"), context["run_id"]) if v)
        html = render_html(
            report,
            history=recent,
            title=f"{self.pipeline}: drift of window {window}",
            context={
                "pipeline": self.pipeline,
                "window": window,
                "model": f"{self.model_name} version {self.champion_version}",
                "airflow run": self.airflow_run(context),
                "MLflow run": run_id,
            },
        )
        (tmp / "drift_report.json").write_text(json.dumps(report.to_dict(), indent=2))
        (tmp / "drift_report.html").write_text(html, encoding="utf-8")
        store = self.artifact_store()
        refs = {
            name: store.put_file(
                tmp / file, self.artifact_key(context, file), producer=self.task_id
            ).to_dict()
            for name, file in (("report", "drift_report.json"), ("html", "drift_report.html"))
        }
        self.log.info("HTML report: %s", refs["html"]["uri"])
        return refs

    def _raise_on_alarm(self, report: Any, html_uri: str) -> None:
        """Warn of values beyond the reference's range; fail on a data-quality alarm."""
        if report.out_of_range_features:
            self.log.warning(
                "Values beyond the reference's range in %s (monitoring.out_of_range: %s): %s",
                ", ".join(report.out_of_range_features),
                self.out_of_range,
                "counted as drift" if self.out_of_range == "drift" else "drift and a data-quality alarm",
            )
        if report.quality_failed:
            from airflow_mlops.exceptions import DataQualityAlarm

            failed = "; ".join(c.message for c in report.failed_quality_checks)
            raise DataQualityAlarm(
                f"data-quality alarm on the live window ({failed}); no retraining is started on this "
                f"window. Report: {html_uri}"
            )
