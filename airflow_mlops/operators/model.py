"""Operators for the model stages: scan, evaluate, and sign (in :mod:`.model_sign`, re-exported)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import EvaluationReportLink, MLflowRunLink
from airflow_mlops.operators.model_sign import ModelSignOperator

__all__ = ["ModelEvaluateOperator", "ModelScanOperator", "ModelSignOperator"]


class ModelScanOperator(MLOpsBaseOperator):
    """Scan every file of a model for content that could run code on load; fail closed.

    Pickles are walked opcode by opcode (never unpickled), safetensors headers are checked,
    code files are accepted only when they are the package's own MLflow wrapper (by sha256).

    Returns ``{"model": ref, "report": ref}`` (the model ref unchanged, for the next stage).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "model")
    stage = "scan"
    ui_color = "#ece2fd"

    def __init__(self, *, model: Any, allowed_globals: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.allowed_globals = list(allowed_globals)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.mlflow_registry import trusted_code
        from airflow_mlops.security.scanning import scan_model_dir

        store = self.artifact_store()
        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "in")
            report = scan_model_dir(
                model_dir, allowed_globals=self.allowed_globals, trusted_code=trusted_code()
            )
            (tmp / "scan_report.json").write_text(json.dumps(report.to_dict(), indent=2))
            report_ref = store.put_file(
                tmp / "scan_report.json",
                self.artifact_key(context, "scan_report.json"),
                producer=self.task_id,
            )
        self.log.info("Scanned %s files: %s finding(s)", report.files_scanned, len(report.findings))
        report.ensure_safe()
        return {"model": dict(self.model), "report": report_ref.to_dict()}


class ModelEvaluateOperator(MLOpsBaseOperator):
    """Score the candidate on the holdout set and apply the gates; a gate that cannot decide blocks.

    Any model flavor (torch, XGBoost, LightGBM, scikit-learn) and any task: the task (``binary``,
    ``multiclass``, ``regression``) and the classes are the candidate's, read from its
    ``model_config.json``, and the metrics are that task's (:mod:`airflow_mlops.metrics`). A gate
    on a metric of another task blocks, and so does a champion of another task or with other
    classes (the comparison cannot decide; the report says why).

    Fetch -> call -> store: when champion comparisons are configured, the champion is fetched
    verified and scanned (:func:`~airflow_mlops.registry.mlflow_registry.fetch_trusted_champion`;
    a lookup that fails blocks, it never counts as "no champion"), then
    :func:`~airflow_mlops.registry.evaluation.evaluate_candidate` scores both on the *same*
    holdout rows, and the report is stored. No champion yet: absolute thresholds only, and the
    report's ``note`` says so. ``fairness`` and ``robustness`` (the spec's ``evaluation.fairness``
    and ``evaluation.robustness`` as plain dicts) add candidate-only gates: metric gaps between
    slices of the holdout, and metric drops under perturbations; their details are in the report.

    Binary models: each model (candidate and champion) is scored at the operating threshold
    stored with it; ``threshold`` is the fallback for a model trained before thresholds were stored
    (the report's ``threshold_source`` / ``champion_threshold_source`` say which was used), and
    ``positive_label`` (default: the model's own) must be the class the model scores. Multiclass
    and regression models have neither.

    Beside ``evaluation.json`` it stores ``evaluation_report.html``
    (:func:`~airflow_mlops.registry.evaluation_report.render_evaluation_report`: the verdict, the
    task and model flavor, every gate, the metrics beside the champion's, and the task's plots --
    ROC and precision-recall curves, score distributions and the confusion matrix at the operating
    threshold; the confusion matrix of a multiclass model; the residuals of a regression), also
    when a gate fails.

    :param watermark_conn_id: ``training.watermark.key_connection``: set, the candidate must carry
        the pipeline's watermark (the ``watermark`` gate, verified with the key of this connection
        against the candidate's ``watermark.json``; see docs/security.md); None: no watermark gate.

    Returns ``{"report": ref, "html_report": ref, "metrics": {...}, "task": str, "threshold":
    float|None, "champion_version": str|None, "note": str, "passed": True, "blessing": {...}}``
    (``threshold`` None for a multiclass or regression model); raises
    :class:`~airflow_mlops.exceptions.GateFailedError` when a gate fails (after storing the report
    and logging the metrics), which fails the task without retry.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "model", "holdout", "mlflow_run_id")
    stage = "evaluate"
    ui_color = "#e2f0fd"
    operator_extra_links = (MLflowRunLink(), EvaluationReportLink())

    def __init__(
        self,
        *,
        model: Any,
        holdout: Any,
        target: str,
        positive_label: Any = None,
        bounds: dict[str, dict[str, float | None]] | None = None,
        compare_to_champion: dict[str, dict[str, float]] | None = None,
        threshold: float = 0.5,
        fairness: dict[str, Any] | None = None,
        robustness: dict[str, Any] | None = None,
        model_name: str | None = None,
        alias: str = "champion",
        mlflow_run_id: str | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        signing_conn_id: str = ModelSigningHook.default_conn_name,
        signing_method: str | None = None,
        allowed_globals: Sequence[str] = (),
        watermark_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.holdout = holdout
        # set (training.watermark.key_connection): the candidate must carry the watermark
        self.watermark_conn_id = watermark_conn_id
        self.target = target
        self.positive_label = positive_label
        self.bounds = dict(bounds or {})
        self.compare_to_champion = dict(compare_to_champion or {})
        self.threshold = threshold
        self.fairness = dict(fairness) if fairness else None
        self.robustness = dict(robustness) if robustness else None
        self.model_name = model_name
        self.alias = alias
        self.mlflow_run_id = mlflow_run_id
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method
        self.allowed_globals = list(allowed_globals)

    def _champion(self, dest: Path) -> tuple[str, Path] | None:
        """The champion, verified and scanned, when comparisons are configured; else None."""
        if not self.compare_to_champion:
            return None
        if not self.model_name:
            raise GateFailedError(
                f"task {self.task_id}: champion comparisons are configured "
                f"({', '.join(sorted(self.compare_to_champion))}) but no model_name names the "
                "registered model to compare with; set model_name (registry.model_name in the spec)"
            )
        champion = self.fetch_trusted_alias(self.mlflow_hook.get_conn(), self.model_name, self.alias, dest)
        if champion is None:
            self.log.info("No %s of %s yet: absolute thresholds only", self.alias, self.model_name)
        return champion

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table
        from airflow_mlops.registry import evaluation_record as record
        from airflow_mlops.registry.evaluation import evaluate_candidate

        store = self.artifact_store()
        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "model")
            holdout = read_table(self.fetch(self.holdout, tmp / "holdout"))
            report = evaluate_candidate(
                model_dir,
                holdout,
                target=self.target,
                positive_label=self.positive_label,
                bounds=self.bounds,
                comparisons=self.compare_to_champion,
                threshold=self.threshold,
                champion=self._champion(tmp / "champion"),
                fairness=self.fairness,
                robustness=self.robustness,
                watermark_required=self.watermark_conn_id is not None,
                watermark_key=self._watermark_key(),
            )
            report_ref, html_ref, html = self._store(context, store, tmp, report)
        self.log.info("Evaluation report (HTML): %s", html_ref.uri)
        for line in record.evaluation_log_lines(report):
            self.log.info("%s", line)
        if self.mlflow_run_id:
            record.log_evaluation(self.mlflow_hook.get_conn(), self.mlflow_run_id, report, html)
        report.gates.raise_if_failed()
        return self._result(context, report, report_ref, html_ref)

    def _watermark_key(self) -> bytes | None:
        """The watermark key of ``watermark_conn_id`` (None when not required)."""
        if self.watermark_conn_id is None:
            return None
        from airflow_mlops.hooks.signing import read_watermark_key

        return read_watermark_key(self.watermark_conn_id)

    def _result(self, context: Any, report: Any, report_ref: Any, html_ref: Any) -> dict[str, Any]:
        from airflow_mlops.registry.evaluation_record import blessing

        return {
            "report": report_ref.to_dict(),
            "html_report": html_ref.to_dict(),
            "metrics": dict(report.metrics),
            "task": report.task,
            "threshold": report.threshold,
            "champion_version": report.champion_version,
            "note": report.note,
            "passed": True,
            # The verdict for this exact digest; registration records it, promotion checks it.
            "blessing": blessing(
                report,
                model_sha256=str(self.model["sha256"]),
                compared=bool(self.compare_to_champion),
                report_ref=report_ref,
                by=f"{self.airflow_run(context)}/{self.task_id}",
            ),
        }

    def _store(self, context: Any, store: Any, tmp: Path, report: Any) -> tuple[Any, Any, str]:
        """Store ``evaluation.json`` and ``evaluation_report.html``: their refs, and the HTML."""
        from airflow_mlops.registry.evaluation_report import render_evaluation_report

        (tmp / "evaluation.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
        report_ref = store.put_file(
            tmp / "evaluation.json", self.artifact_key(context, "evaluation.json"), producer=self.task_id
        )
        html = render_evaluation_report(
            report,
            title=f"Evaluation of {self.pipeline}",
            context={
                "pipeline": self.pipeline,
                "task": f"{self.airflow_run(context)}/{self.task_id}",
                "model sha256": str(self.model.get("sha256", "")),
                "evaluation.json": report_ref.uri,
            },
        )
        (tmp / "evaluation_report.html").write_text(html, encoding="utf-8")
        html_ref = store.put_file(
            tmp / "evaluation_report.html",
            self.artifact_key(context, "evaluation_report.html"),
            producer=self.task_id,
        )
        return report_ref, html_ref, html
