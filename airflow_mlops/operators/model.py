"""Operators for the model stages: scan, evaluate, sign."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import EvaluationReportLink, MLflowRunLink


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
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
        signing_method: str | None = None,
        allowed_globals: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.holdout = holdout
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
        from airflow_mlops.registry.mlflow_registry import fetch_trusted_champion

        if not self.compare_to_champion:
            return None
        if not self.model_name:
            raise GateFailedError(
                f"task {self.task_id}: champion comparisons are configured "
                f"({', '.join(sorted(self.compare_to_champion))}) but no model_name names the "
                "registered model to compare with; set model_name (registry.model_name in the spec)"
            )
        key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
            need_private=False
        )
        champion = fetch_trusted_champion(
            self.mlflow_hook.get_conn(),
            self.model_name,
            self.alias,
            key.trust,
            dest,
            allowed_globals=self.allowed_globals,
            pipeline=self.pipeline,
        )
        if champion is None:
            self.log.info("No %s of %s yet: absolute thresholds only", self.alias, self.model_name)
        return champion

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table
        from airflow_mlops.registry.evaluation import evaluate_candidate
        from airflow_mlops.registry.evaluation_report import render_evaluation_report
        from airflow_mlops.registry.mlflow_registry import log_report, log_run_data

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
            )
            payload = report.to_dict()
            (tmp / "evaluation.json").write_text(json.dumps(payload, indent=2, default=str))
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
        self.log.info("Evaluation report (HTML): %s", html_ref.uri)
        model = report.model or {}
        self.log.info(
            "Evaluated a %s model (%s, %s)", report.task, model.get("flavor"), model.get("model_type")
        )
        if report.threshold is not None:
            self.log.info(
                "Holdout metrics at threshold %s (%s): %s",
                report.threshold,
                report.threshold_source,
                report.metrics,
            )
        else:
            self.log.info("Holdout metrics: %s", report.metrics)
        if report.champion_mismatch:
            self.log.warning(
                "Champion %s cannot be compared: %s", report.champion_version, report.champion_mismatch
            )
        if report.champion_threshold is not None:
            self.log.info(
                "Champion scored at its threshold %s (%s)",
                report.champion_threshold,
                report.champion_threshold_source,
            )
        self.log.info("Gates (%s):\n%s", report.note, report.gates.summary())
        if self.mlflow_run_id:
            client = self.mlflow_hook.get_conn()
            log_run_data(
                client,
                self.mlflow_run_id,
                metrics={f"eval_{k}": v for k, v in report.metrics.items()},
                tags={"mlops.gates": "passed" if report.passed else "failed"},
            )
            log_report(
                client,
                self.mlflow_run_id,
                json.dumps(payload, indent=2).encode(),
                "evaluation/evaluation.json",
            )
            log_report(client, self.mlflow_run_id, html.encode(), "evaluation/evaluation_report.html")
        report.gates.raise_if_failed()
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
            "blessing": {
                "model_sha256": str(self.model["sha256"]),
                "passed": report.passed,
                "compared": bool(self.compare_to_champion),
                "champion_version": report.champion_version,
                "report": {"uri": report_ref.uri, "sha256": report_ref.sha256},
                "by": f"{self.airflow_run(context)}/{self.task_id}",
            },
        }


class ModelSignOperator(MLOpsBaseOperator):
    """Sign the exact model directory with the key in an Airflow connection (OpenSSF model signing),
    and, given the evaluation, the two signed in-toto attestations about it: the evaluation (the
    gates' verdict, which promotion trusts only from here) and the ML-BOM (CycloneDX 1.6).

    The private key is read by :class:`~airflow_mlops.hooks.signing.ModelSigningHook`, written
    only to a private temporary file for the signing call, and never logged or returned.

    Returns ``{"model": ref, "signature": ref, "key_fingerprint": str}`` and, with ``evaluation``,
    ``"attestation"`` (DSSE envelope of the evaluation statement), ``"mlbom"`` (the CycloneDX
    document) and ``"mlbom_attestation"`` (its DSSE envelope).
    """

    template_fields = (
        *MLOpsBaseOperator.template_fields,
        "model",
        "evaluation",
        "blessing",
        "training_data",
        "holdout",
        "train_metrics",
    )
    stage = "sign"
    ui_color = "#fdeee2"

    def __init__(
        self,
        *,
        model: Any,
        signing_conn_id: str = "mlops_signing",
        signing_method: str | None = None,
        evaluation: Any = None,
        blessing: Any = None,
        model_name: str = "",
        training_data: Any = None,
        holdout: Any = None,
        train_metrics: Any = None,
        training: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method
        self.evaluation = evaluation
        self.blessing = blessing
        self.model_name = model_name
        self.training_data = training_data
        self.holdout = holdout
        self.train_metrics = train_metrics
        self.training = dict(training or {})

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.security.signing import sign_model, verify_model

        key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
            need_private=True
        )
        assert key.signer is not None
        store = self.artifact_store()
        out: dict[str, Any] = {}
        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "in")
            info = sign_model(model_dir, tmp / "model.sig", key.signer)
            signer = verify_model(model_dir, tmp / "model.sig", key.trust)  # signer and trust agree
            sig_ref = store.put_file(
                tmp / "model.sig",
                self.artifact_key(context, "model.sig"),
                producer=self.task_id,
                key_fingerprint=info.public_key_fingerprint,
            )
            who = info.public_key_fingerprint
            if signer.identity:
                who = f"{signer.method} {signer.identity} ({info.public_key_fingerprint})"
            if self.evaluation:
                out = self._attest(context, store, tmp, model_dir, key, who)
        self.log.info("Signed model %s (%s) by %s", self.model["sha256"], signer.method, who)
        return {
            "model": dict(self.model),
            "signature": sig_ref.to_dict(),
            "key_fingerprint": info.public_key_fingerprint,
            "signing_method": signer.method,
            "signer_identity": signer.identity,
            **out,
        }

    def _attest(
        self, context: Any, store: Any, tmp: Path, model_dir: Path, key: Any, fingerprint: str
    ) -> dict[str, Any]:
        """Sign the evaluation attestation and the ML-BOM; store them; return their refs."""
        import airflow_mlops
        from airflow_mlops.artifacts import directory_manifest
        from airflow_mlops.registry.mlflow_registry import weights_dir
        from airflow_mlops.security.attestation import (
            CYCLONEDX_PREDICATE,
            EVALUATION_PREDICATE,
            evaluation_predicate,
            sign_statement,
            statement,
        )
        from airflow_mlops.security.mlbom import build_mlbom, model_facts, validate_mlbom
        from airflow_mlops.training.flavors import read_config

        digest = str(self.model["sha256"])
        blessing = dict(self.blessing or {})
        if blessing.get("model_sha256") != digest:
            raise GateFailedError(
                f"the blessing handed to {self.task_id} is for model {blessing.get('model_sha256')}, not "
                f"{digest}: the gates judged another model; nothing is signed"
            )
        evaluation = json.loads(self.fetch(self.evaluation, tmp / "evaluation").read_text())
        config = read_config(weights_dir(model_dir))  # any flavor; format 1 read as binary torch
        refs: dict[str, Any] = {}
        envelope = sign_statement(
            statement(
                digest,
                EVALUATION_PREDICATE,
                evaluation_predicate(evaluation, blessing, model_facts(config)),
            ),
            key.signer,
        )
        bom = build_mlbom(
            model_name=self.model_name or self.pipeline,
            model_dir=model_dir,
            model_sha256=digest,
            files=[(rel, sha) for rel, sha, _ in directory_manifest(model_dir)],
            model_config=config,
            evaluation=evaluation,
            training_data=self.training_data,
            holdout=self.holdout,
            train_metrics=self.train_metrics if isinstance(self.train_metrics, dict) else None,
            training=self.training,
            code_version=airflow_mlops.__version__,
            signer=fingerprint,
            pipeline=self.pipeline,
        )
        validate_mlbom(bom)
        bom_envelope = sign_statement(statement(digest, CYCLONEDX_PREDICATE, bom), key.signer)
        for name, content in (
            ("attestation", ("evaluation.intoto.json", envelope)),
            ("mlbom", ("mlbom.cdx.json", bom)),
            ("mlbom_attestation", ("mlbom.intoto.json", bom_envelope)),
        ):
            filename, payload = content
            (tmp / filename).write_text(json.dumps(payload, indent=2, sort_keys=True))
            refs[name] = store.put_file(
                tmp / filename, self.artifact_key(context, filename), producer=self.task_id
            ).to_dict()
        self.log.info(
            "Attested the evaluation (%s) and the ML-BOM (%s components) of model %s",
            "passed" if blessing.get("passed") else "failed",
            len(bom["components"]),
            digest,
        )
        return refs
