"""Operators of the ``<pipeline>__monitor`` DAG: batch scoring, drift detection, the drift event.

``ChampionScoreOperator`` snapshots the live window, loads the champion (any flavor and task,
:func:`airflow_mlops.training.flavors.load_predictor`) only after the same verify-and-scan that
promotion uses, and stores its predictions (the batch-inference pattern).
``DriftDetectOperator`` compares the window with the reference (:func:`airflow_mlops.drift.detect_drift`),
stores JSON and HTML reports and logs them to MLflow. ``DriftEventEmitOperator`` emits the
pipeline's ``drift`` asset event, which schedules ``<pipeline>__train``, only when there is drift.

The champion's output stored beside each window and reference row (:func:`champion_columns`):

==========  ===========================  ==============================  ==========================
task        ``mlops_score``              ``mlops_prediction``            more
==========  ===========================  ==============================  ==========================
binary      positive class probability   1 at or above the threshold
multiclass  the predicted class's prob.  the predicted class (its label) ``mlops_proba_<class>``
                                                                         per class
regression  the predicted value          the predicted value
==========  ===========================  ==============================  ==========================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import DriftReportLink, MLflowRunLink

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MONITOR_RUN_KIND = "monitor"
TAG_KIND = "mlops.kind"
TAG_MODEL_NAME = "mlops.model_name"
TAG_MODEL_VERSION = "mlops.model_version"
SCORE_COLUMN = "mlops_score"
PREDICTION_COLUMN = "mlops_prediction"
PROBA_PREFIX = "mlops_proba_"
OUT_OF_RANGE_RULES = ("drift", "alarm", "both")


def proba_column(label: str) -> str:
    """The column of a multiclass model's probability of class ``label``."""
    return f"{PROBA_PREFIX}{label}"


def champion_columns(predictor: Any, frame: pd.DataFrame, threshold: float | None) -> dict[str, Any]:
    """The champion's output on ``frame`` as the columns the monitor stores (see the module
    docstring); ``threshold``: binary only, the cut of ``mlops_prediction``."""
    import numpy as np

    out = predictor.predict_scores(frame)
    if predictor.task == "binary":
        cut = 0.5 if threshold is None else threshold
        return {SCORE_COLUMN: out, PREDICTION_COLUMN: (out >= cut).astype("int8")}
    if predictor.task == "regression":
        return {SCORE_COLUMN: out, PREDICTION_COLUMN: out}
    best = np.argmax(out, axis=1)
    columns: dict[str, Any] = {proba_column(c): out[:, j] for j, c in enumerate(predictor.classes)}
    columns[SCORE_COLUMN] = out[np.arange(len(out)), best]
    columns[PREDICTION_COLUMN] = np.asarray(predictor.classes, dtype=object)[best]
    return columns


def champion_output(frame: pd.DataFrame, task: str, classes: Sequence[str] | None) -> np.ndarray:
    """The champion's output read back from stored columns: 1-D (binary scores, regression
    values) or ``(rows, classes)`` probabilities (multiclass), what ``detect_drift`` takes.

    :raises DriftInputError: the columns are missing (the window was scored by another version).
    """
    from airflow_mlops.exceptions import DriftInputError

    names = [proba_column(c) for c in classes or ()] if task == "multiclass" else [SCORE_COLUMN]
    missing = [n for n in names if n not in frame.columns]
    if missing or not names:
        raise DriftInputError(
            f"the stored predictions lack the champion's output column(s) {', '.join(missing) or '(no classes)'} "
            f"for a {task} model; rerun monitor.score"
        )
    if task == "multiclass":
        return frame[names].to_numpy(dtype="float64")
    return frame[SCORE_COLUMN].to_numpy(dtype="float64")


class ChampionScoreOperator(MLOpsBaseOperator):
    """Score the live window with the champion (batch inference) and prepare the reference.

    The champion is downloaded, its signature and digest verified and every file scanned before
    it is loaded, exactly as for promotion; any flavor and task loads
    (:func:`airflow_mlops.training.flavors.load_predictor`). The window is snapshotted into the
    artifact store, and its predictions (the window plus the champion's output columns, see
    :func:`champion_columns`) are stored beside it: they are this pipeline's batch predictions for
    the interval.

    :param source: path or ``s3://`` URI of the live window (templated, e.g. ``.../{{ ds }}/...``).
    :param reference: ``champion`` (the rows the champion was trained on, pinned by sha256 on its
        model version), ``data`` (``data_reference``), or a path / URI (templated).
    :param threshold: binary models: the decision threshold for ``mlops_prediction`` when the
        model records none.

    Returns ``{"window", "predictions", "reference"}`` refs, ``champion_version``,
    ``champion_metrics`` (its recorded evaluation), ``labelled`` (the window has the target),
    ``features``, and what the detector needs to read the output: ``task``, ``classes`` (the
    model's class labels; empty for a regression) and ``threshold`` (binary; else None).
    Skips (with the reason in the log) when there is no champion yet: nothing to monitor.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "source", "reference", "data_reference")
    stage = "monitor"
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        source: str,
        target: str,
        model_name: str,
        features: Sequence[str] | None = None,
        data_format: str | None = None,
        reference: str = "champion",
        data_reference: str | None = None,
        max_reference_rows: int = 50_000,
        positive_label: Any = 1,
        threshold: float = 0.5,
        alias: str = "champion",
        allowed_globals: Sequence[str] = (),
        seed: int = 0,
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
        signing_method: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.target = target
        self.model_name = model_name
        self.features = list(features) if features else None
        self.data_format = data_format
        self.reference = reference
        self.data_reference = data_reference
        self.max_reference_rows = max_reference_rows
        self.positive_label = positive_label
        self.threshold = threshold
        self.alias = alias
        self.allowed_globals = list(allowed_globals)
        self.seed = seed
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.data.io import read_table, write_table
        from airflow_mlops.exceptions import DriftInputError
        from airflow_mlops.registry.mlflow_registry import fetch_trusted_champion, weights_dir
        from airflow_mlops.tasks import describe
        from airflow_mlops.training.flavors import load_predictor

        client = self.mlflow_hook.get_conn()
        store = self.artifact_store()
        with self.scratch() as tmp:
            window = read_table(
                self.fetch_source(self.source, tmp, "monitoring.source"), self.data_format, checked=True
            )
            if window.empty:
                raise DriftInputError(
                    f"the live window {self.source} has no rows: an empty window is not 'no drift'"
                )
            key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
                need_private=False
            )
            champion = fetch_trusted_champion(
                client,
                self.model_name,
                self.alias,
                key.trust,
                tmp / "champion",
                allowed_globals=self.allowed_globals,
                pipeline=self.pipeline,
            )
            if champion is None:
                raise AirflowSkipException(
                    f"{self.model_name} has no @{self.alias} version yet: nothing to monitor until the "
                    "first model is promoted"
                )
            version, model_dir = champion
            predictor = load_predictor(weights_dir(model_dir))
            features = self.features or predictor.features
            threshold = None
            if predictor.task == "binary":
                threshold = predictor.threshold if predictor.threshold is not None else float(self.threshold)
            self.log.info(
                "Scoring %s rows of %s with %s version %s (verified, scanned): %s model (%s)%s",
                len(window),
                self.source,
                self.model_name,
                version,
                predictor.flavor,
                describe(predictor.task, predictor.classes, predictor.positive_label),
                "" if threshold is None else f", threshold {threshold}",
            )
            write_table(window, tmp / "window.parquet")
            window_ref = store.put_file(
                tmp / "window.parquet",
                self.artifact_key(context, "window.parquet"),
                producer=self.task_id,
                source=self.source,
                rows=len(window),
            )
            predictions = window.copy()
            for column, values in champion_columns(predictor, window, threshold).items():
                predictions[column] = values
            write_table(predictions, tmp / "predictions.parquet")
            predictions_ref = store.put_file(
                tmp / "predictions.parquet",
                self.artifact_key(context, "predictions.parquet"),
                producer=self.task_id,
                rows=len(predictions),
                model_name=self.model_name,
                model_version=version,
                task=predictor.task,
                **({"threshold": threshold} if threshold is not None else {}),
            )
            mv = client.get_model_version(self.model_name, version)
            reference, described = self._reference(mv, tmp)
            if len(reference) > self.max_reference_rows:
                reference = reference.sample(self.max_reference_rows, random_state=self.seed)
            reference = reference.reset_index(drop=True)
            for column, values in champion_columns(predictor, reference, threshold).items():
                reference[column] = values
            write_table(reference, tmp / "reference.parquet")
            reference_ref = store.put_file(
                tmp / "reference.parquet",
                self.artifact_key(context, "reference.parquet"),
                producer=self.task_id,
                source=described,
                rows=len(reference),
            )
            champion_metrics = self._recorded_metrics(client, mv)
        self.log.info("Reference: %s (%s rows); features: %s", described, len(reference), features)
        return {
            "window": window_ref.to_dict(),
            "predictions": predictions_ref.to_dict(),
            "reference": reference_ref.to_dict(),
            "champion_version": version,
            "champion_metrics": champion_metrics,
            "features": features,
            "labelled": self.target in window.columns,
            "task": predictor.task,
            "classes": list(predictor.classes),
            "threshold": threshold,
        }

    def _reference(self, mv: Any, tmp: Any) -> tuple[Any, str]:
        """The reference rows and where they came from (``mv``: the champion's model version)."""
        from airflow_mlops.artifacts import ArtifactRef
        from airflow_mlops.data.io import read_table
        from airflow_mlops.exceptions import DriftInputError
        from airflow_mlops.registry.mlflow_registry import TAG_TRAINING_DATA

        if self.reference == "champion":
            version = mv.version
            raw = (mv.tags or {}).get(TAG_TRAINING_DATA)
            if not raw:
                raise DriftInputError(
                    f"version {version} of {self.model_name} records no training data "
                    f"(tag {TAG_TRAINING_DATA}; versions registered before monitoring existed lack it); "
                    "set monitoring.reference to `data` or a path, or promote a newly trained version"
                )
            ref = ArtifactRef.from_dict(json.loads(raw))
            path = self.fetch(ref, tmp / "reference-in")  # checked against the pinned sha256
            return read_table(path), f"the training data of version {version} ({ref.uri})"
        location = self.data_reference if self.reference == "data" else self.reference
        if not location:
            raise DriftInputError("monitoring.reference is `data`, but the spec sets no data.reference")
        what = "data.reference" if self.reference == "data" else "monitoring.reference"
        return read_table(self.fetch_source(location, tmp / "reference-in", what), checked=True), location

    def _recorded_metrics(self, client: Any, mv: Any) -> dict[str, float]:
        """The champion's evaluation metrics as its training run recorded them (``eval_*``)."""
        if not mv.run_id:
            return {}
        metrics = client.get_run(mv.run_id).data.metrics
        return {k[len("eval_") :]: float(v) for k, v in metrics.items() if k.startswith("eval_")}


class DriftDetectOperator(MLOpsBaseOperator):
    """Test the live window against the reference; store JSON and HTML reports; log to MLflow.

    The checks are :func:`airflow_mlops.drift.detect_drift`'s: univariate tests per feature, MMD
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

    Returns ``{"report", "html"}`` refs, ``drifted``, ``reasons``, ``drifted_features``,
    ``mlflow_run_id``.
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
        experiment: str | None = None,
        mlflow_conn_id: str = "mlflow_default",
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
        self.experiment = experiment or self.pipeline
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table
        from airflow_mlops.drift import detect_drift
        from airflow_mlops.drift.html import render_html

        store = self.artifact_store()
        client = self.mlflow_hook.get_conn()
        features = list(self.features)
        task = str(self.task or "binary")
        classes = [str(c) for c in self.classes] if self.classes else None
        operating: dict[str, Any] = {} if self.threshold is None else {"threshold": float(self.threshold)}
        with self.scratch() as tmp:
            current = read_table(self.fetch(self.predictions, tmp / "predictions"))
            reference = read_table(self.fetch(self.reference, tmp / "reference"))
            labelled = self.target in current.columns
            if self.performance and not labelled:
                self.log.info(
                    "The window has no %r column (labels): performance checks %s skipped",
                    self.target,
                    sorted(self.performance),
                )
            report = detect_drift(
                reference[features],
                current[[*features, self.target]] if labelled else current[features],
                features=features,
                target=self.target if labelled else None,
                reference_scores=champion_output(reference, task, classes) if self.prediction_drift else None,
                current_scores=champion_output(current, task, classes),
                # A champion without recorded metrics fails here (detect_drift names the metric).
                expected_metrics=dict(self.champion_metrics or {}) if labelled and self.performance else None,
                max_metric_drop=self.performance if labelled and self.performance else None,
                positive_label=self.positive_label,
                task=task,
                classes=classes,
                out_of_range=self.out_of_range,
                **operating,
                **self.settings,
            )
            self.log.info(
                "Drift report for %s version %s:\n%s",
                self.model_name,
                self.champion_version,
                report.summary(),
            )
            run_id = self._mlflow_run(client, context)
            history = self._history(client, run_id)
            window = ", ".join(str(v) for v in (context.get("ds"), context["run_id"]) if v)
            html = render_html(
                report,
                history=history,
                title=f"{self.pipeline}: drift of window {window}",
                context={
                    "pipeline": self.pipeline,
                    "window": window,
                    "model": f"{self.model_name} version {self.champion_version}",
                    "airflow run": self.airflow_run(context),
                    "MLflow run": run_id,
                },
            )
            report_path = tmp / "drift_report.json"
            report_path.write_text(json.dumps(report.to_dict(), indent=2))
            html_path = tmp / "drift_report.html"
            html_path.write_text(html, encoding="utf-8")
            report_ref = store.put_file(
                report_path, self.artifact_key(context, "drift_report.json"), producer=self.task_id
            )
            html_ref = store.put_file(
                html_path, self.artifact_key(context, "drift_report.html"), producer=self.task_id
            )
            self._log_to_mlflow(client, run_id, report, tmp, report_path, html_path, history)
        self.log.info("HTML report: %s", html_ref.uri)
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
                f"window. Report: {html_ref.uri}"
            )
        return {
            "report": report_ref.to_dict(),
            "html": html_ref.to_dict(),
            "drifted": report.drifted,
            "reasons": list(report.reasons),
            "drifted_features": list(report.drifted_features),
            "mlflow_run_id": run_id,
        }

    def _mlflow_run(self, client: Any, context: Any) -> str:
        from airflow_mlops.registry.mlflow_registry import start_or_resume_run

        run_id = start_or_resume_run(
            client,
            experiment=self.experiment,
            pipeline=self.pipeline,
            airflow_run=self.airflow_run(context),
            run_name=f"{self.pipeline} monitor {context['run_id']}",
        )
        for key, value in (
            (TAG_KIND, MONITOR_RUN_KIND),
            (TAG_MODEL_NAME, self.model_name),
            (TAG_MODEL_VERSION, str(self.champion_version)),
        ):
            client.set_tag(run_id, key, value)
        return run_id

    def _history(self, client: Any, run_id: str) -> list[Any]:
        """Reports of the recent earlier windows (oldest first), from their MLflow monitor runs."""
        import tempfile

        from airflow_mlops.drift import DriftReport

        experiment = client.get_experiment_by_name(self.experiment)
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{TAG_KIND}` = '{MONITOR_RUN_KIND}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=max(self.history - 1, 0),
        )
        history = []
        with tempfile.TemporaryDirectory() as tmp:
            for run in reversed(runs):
                if run.info.run_id == run_id:
                    continue
                try:
                    path = client.download_artifacts(run.info.run_id, "drift/drift_report.json", tmp)
                except Exception as exc:  # a run whose upload failed half-way: say so, show the rest
                    self.log.warning("No drift report in monitor run %s: %s", run.info.run_id, exc)
                    continue
                with open(path, encoding="utf-8") as fh:
                    history.append(DriftReport.from_dict(json.load(fh)))
        return history

    def _log_to_mlflow(
        self,
        client: Any,
        run_id: str,
        report: Any,
        tmp: Any,
        report_path: Any,
        html_path: Any,
        history: list[Any],
    ) -> None:
        from airflow_mlops.drift.figures import write_figures
        from airflow_mlops.registry.mlflow_registry import log_report, log_run_data

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
        log_run_data(
            client, run_id, metrics=metrics, tags={"mlops.drift": "drift" if report.drifted else "none"}
        )
        figures = write_figures(report, tmp / "figures", history=history)
        log_report(client, run_id, report_path.read_bytes(), "drift/drift_report.json")
        log_report(client, run_id, html_path.read_bytes(), "drift/drift_report.html")
        if figures:
            client.log_artifacts(run_id, str(tmp / "figures"), "drift/figures")
        client.set_terminated(run_id, status="FINISHED")
        client.set_model_version_tag(
            self.model_name, str(self.champion_version), "mlops.monitor.last_verdict", _verdict(report)
        )


def _verdict(report: Any) -> str:
    if report.quality_failed:
        return "data-quality alarm"
    return "drift" if report.drifted else "no drift"


class DriftEventEmitOperator(MLOpsBaseOperator):
    """Emit the pipeline's ``drift`` asset event when the window drifted; skip when it did not.

    The event's ``extra`` says why (``reasons``, ``drifted_features``), where the reports are, which
    champion version was monitored, and, when the window has labels, names it as ``data`` (with
    its ``ArtifactRef``), so the training run it starts learns from the drifted window.
    With ``on_drift="alert"`` the task fails instead (notifiers fire) and no event is emitted.

    :param asset: the drift asset (``x-mlops://<pipeline>/drift``); it is this task's outlet.
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
        **kwargs: Any,
    ) -> None:
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
        }
        if self.labelled is True:
            extra["data"] = [window.uri]
            extra["data_refs"] = [window.to_dict()]
        context["outlet_events"][self.asset].extra = extra
        self.log.info("Emitting %s with extra %s", self.asset.uri, json.dumps(extra, default=str))
        return extra
