"""Operators of the ``<pipeline>__monitor`` DAG: batch scoring, drift detection, the drift event.

``ChampionScoreOperator`` snapshots the live window, loads the champion (any flavor and task,
:func:`airflow_mlops.training.flavors.load_predictor`) only after the same verify-and-scan that
promotion uses, and stores its predictions (the batch-inference pattern; the columns are
:mod:`airflow_mlops.drift.scoring`'s). ``DriftDetectOperator`` compares the window with the
reference (:func:`airflow_mlops.drift.scoring.detect_window`), stores JSON and HTML reports and
logs them to MLflow (:mod:`airflow_mlops.drift.history`). ``DriftEventEmitOperator`` emits the
pipeline's ``drift`` asset event, which schedules ``<pipeline>__train``, only when there is drift.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_mlops.drift.history import MONITOR_RUN_KIND, TAG_KIND, TAG_MODEL_NAME, TAG_MODEL_VERSION
from airflow_mlops.drift.scoring import (
    PREDICTION_COLUMN,
    PROBA_PREFIX,
    SCORE_COLUMN,
    champion_columns,
    champion_output,
    proba_column,
)
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.monitor_detect import OUT_OF_RANGE_RULES, DriftDetectOperator
from airflow_mlops.operators.monitor_score import ChampionScoreOperator

__all__ = [  # the scoring columns and run tags stay importable from here
    "MONITOR_RUN_KIND",
    "OUT_OF_RANGE_RULES",
    "PREDICTION_COLUMN",
    "PROBA_PREFIX",
    "SCORE_COLUMN",
    "TAG_KIND",
    "TAG_MODEL_NAME",
    "TAG_MODEL_VERSION",
    "ChampionScoreOperator",
    "DriftDetectOperator",
    "DriftEventEmitOperator",
    "champion_columns",
    "champion_output",
    "proba_column",
]


class DriftEventEmitOperator(MLOpsBaseOperator):
    """Emit the pipeline's ``drift`` asset event when the window drifted; skip when it did not.

    The event's ``extra`` says why (``reasons``, ``drifted_features``, and ``drift_statistics``: each
    drifted feature's tests with their statistics and p-values, read from the verified JSON report,
    :func:`airflow_mlops.retrain.reason.drift_statistics`; ``drift_share``), where the reports are,
    which champion version was monitored, and, when the window has labels, names it as ``data`` (with
    its ``ArtifactRef``), so the training run it starts learns from the drifted window.
    With ``on_drift="alert"`` the task fails instead (notifiers fire) and no event is emitted.

    :param asset: the drift asset (``x-mlops://<pipeline>/drift``); it is this task's outlet.
    :param estimated_performance: ``monitor.detect``'s summary of the estimated metric
        (:func:`airflow_mlops.drift.estimation.event_summary`); it goes into the event's ``extra``
        under ``estimated_performance``.
    :param retrain_on: ``drift`` (default) or ``drift_and_estimated_drop``: then the event is
        emitted only when the metric also dropped beyond ``max_drop`` (skipped, with the numbers,
        otherwise), and a window without an estimate fails the task: it cannot decide
        (:func:`airflow_mlops.drift.estimation.retrain_decision`).
    """

    template_fields = (
        *MLOpsBaseOperator.template_fields,
        "drifted",
        "reasons",
        "drifted_features",
        "report",
        "html",
        "window",
        "labelled",
        "champion_version",
        "estimated_performance",
    )
    stage = "monitor"
    ui_color = "#fce8e6"

    def __init__(
        self,
        *,
        asset: Any,
        drifted: Any,
        reasons: Any,
        drifted_features: Any,
        report: Any,
        html: Any,
        window: Any,
        labelled: Any,
        champion_version: Any,
        on_drift: str = "retrain",
        estimated_performance: Any = None,
        retrain_on: str = "drift",
        **kwargs: Any,
    ) -> None:
        from airflow_mlops.drift.estimation import RETRAIN_ON

        if retrain_on not in RETRAIN_ON:
            raise ValueError(f"retrain_on must be one of {', '.join(RETRAIN_ON)}, got {retrain_on!r}")
        if on_drift not in ("retrain", "alert"):
            raise ValueError(f"on_drift must be 'retrain' or 'alert', got {on_drift!r}")
        super().__init__(outlets=[asset] if on_drift == "retrain" else [], **kwargs)
        self.asset = asset
        self.drifted = drifted
        self.reasons = reasons
        self.drifted_features = drifted_features
        self.report = report
        self.html = html
        self.window = window
        self.labelled = labelled
        self.champion_version = champion_version
        self.on_drift = on_drift
        self.estimated_performance = estimated_performance
        self.retrain_on = retrain_on

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.artifacts import ArtifactRef
        from airflow_mlops.exceptions import DriftAlarmError

        if self.drifted is not True:
            raise AirflowSkipException("no drift in this window: no drift event, nothing to retrain")
        reasons = list(self.reasons or [])
        for reason in reasons:
            self.log.warning("Drift: %s", reason)
        if self.on_drift == "alert":
            raise DriftAlarmError(
                "drift in the live window (monitoring.on_drift: alert): " + "; ".join(reasons)
            )
        estimated = self._estimated_drop()
        window = ArtifactRef.from_dict(self.window)
        extra: dict[str, Any] = {
            "reason": "; ".join(reasons),
            "reasons": reasons,
            "drifted_features": list(self.drifted_features or []),
            "report": ArtifactRef.from_dict(self.report).uri,
            "html_report": ArtifactRef.from_dict(self.html).uri,
            "champion_version": str(self.champion_version),
            "window": window.uri,
            "source_run": self.airflow_run(context),
            **self._statistics(),
        }
        if estimated is not None:
            extra["estimated_performance"] = estimated
        if self.labelled is True:
            extra["data"] = [window.uri]
            extra["data_refs"] = [window.to_dict()]
        context["outlet_events"][self.asset].extra = extra
        self.log.info("Emitting %s with extra %s", self.asset.uri, json.dumps(extra, default=str))
        return extra

    def _estimated_drop(self) -> dict[str, Any] | None:
        """The estimated-performance summary the event carries; with ``retrain_on:
        drift_and_estimated_drop``, skips when the metric did not drop (fails when unknown)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.drift.estimation import retrain_decision

        summary = dict(self.estimated_performance) if isinstance(self.estimated_performance, dict) else None
        emit, why = retrain_decision(True, summary, self.retrain_on)
        if not emit:
            raise AirflowSkipException(f"{why}: no drift event")
        if self.retrain_on != "drift":
            self.log.warning("Retraining: %s", why)
        return summary

    def _statistics(self) -> dict[str, Any]:
        """The drifted features' statistics and the drift share from the JSON report. They
        describe the event; a report that cannot be read leaves them empty (with a warning)
        rather than losing the event."""
        from airflow_mlops.retrain.reason import EVENT_STATISTICS_KEY, drift_event_statistics

        try:
            with self.scratch() as tmp:
                report = json.loads(self.fetch(self.report, tmp / "report").read_text())
        except Exception as exc:
            self.log.warning("The drift event carries no statistics: reading the report failed: %s", exc)
            return {EVENT_STATISTICS_KEY: {}}
        return drift_event_statistics(report)
